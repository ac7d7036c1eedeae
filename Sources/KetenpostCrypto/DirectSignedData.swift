import COpenSSL
import Foundation
import Synchronization

/// Signing and checking the one SignedData shape Ketenpost itself makes, without OpenSSL's CMS
/// layer (issue 21).
///
/// Why: OpenSSL 3.0 sets up a new signature context for every CMS call (a provider look-up, key
/// export to the provider, a digest fetch), which costs about as much again as the P-256
/// arithmetic itself; measured on the project VM, a reused context verifies in 71 µs and a new
/// one in 136 µs, and signs in 34 µs against `CMS_sign`'s 93 µs. Here each key keeps a small
/// pool of initialised contexts and SHA-256 is fetched once.
///
/// The shape is exactly what `CMS_sign` makes for an EC key with Ketenpost's flags: version 1,
/// SHA-256, id-data content attached as one primitive OCTET STRING, one signer by issuer and
/// serial number, the signed attributes contentType, signingTime (UTCTime), messageDigest in DER
/// order, ecdsa-with-SHA256, no CRLs and no unsigned attributes. Checking answers only "valid"
/// or "not this shape, ask OpenSSL": anything else, a bad signature included, goes to `CMS_verify`,
/// so errors and everything the relay accepts are decided as before; the differential fuzz target
/// `signeddata-parsers` and `DirectSignedDataTests` hold the two paths to that.
enum DirectSignedData {
    // DER of the fixed parts.
    static let version1: [UInt8] = [0x02, 0x01, 0x01]
    static let sha256Algorithm: [UInt8] = [0x30, 0x0B, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01]
    static let ecdsaWithSHA256: [UInt8] = [0x30, 0x0A, 0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]
    static let idData: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01]
    static let signedDataOID: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02]
    static let contentTypeAttribute: [UInt8] =
        [0x30, 0x18, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x03, 0x31, 0x0B] + idData
    static let signingTimePrefix: [UInt8] = [
        0x30, 0x1C, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x05, 0x31, 0x0F, 0x17, 0x0D,
    ]
    static let messageDigestPrefix: [UInt8] = [
        0x30, 0x2F, 0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, 0x04, 0x31, 0x22, 0x04, 0x20,
    ]

    typealias TLV = SignedDataCertificates.TLV

    /// The children of the constructed TLV `parent`, or nil if they do not fill it exactly.
    static func children(_ bytes: [UInt8], of parent: TLV) -> [TLV]? {
        var result: [TLV] = []
        var cursor = parent.contentStart
        while cursor < parent.end {
            guard let child = TLV.read(bytes, at: cursor), child.end <= parent.end else { return nil }
            result.append(child)
            cursor = child.end
        }
        return result
    }

    static func slice(_ bytes: [UInt8], _ tlv: TLV) -> ArraySlice<UInt8> { bytes[tlv.start..<tlv.end] }

    /// Checks a SignedData whose certificates were taken out (`SignedDataCertificates.split`)
    /// against the certificates it carried. Nil: not the one shape, or not valid; OpenSSL decides.
    static func verify(_ withoutCertificates: Data, certificates: [Certificate]) -> CMS.Signed? {
        let bytes = [UInt8](withoutCertificates)
        guard let contentInfo = TLV.read(bytes, at: 0), contentInfo.tag == 0x30, contentInfo.end == bytes.count,
            let outer = children(bytes, of: contentInfo), outer.count == 2, slice(bytes, outer[0]).elementsEqual(signedDataOID),
            outer[1].tag == 0xA0, let explicit = children(bytes, of: outer[1]), explicit.count == 1, explicit[0].tag == 0x30,
            let fields = children(bytes, of: explicit[0]), fields.count == 4,
            slice(bytes, fields[0]).elementsEqual(version1),
            fields[1].tag == 0x31, bytes[fields[1].contentStart..<fields[1].end].elementsEqual(sha256Algorithm),
            fields[2].tag == 0x30, let encapsulated = children(bytes, of: fields[2]), encapsulated.count == 2,
            slice(bytes, encapsulated[0]).elementsEqual(idData), encapsulated[1].tag == 0xA0,
            let wrapped = children(bytes, of: encapsulated[1]), wrapped.count == 1, wrapped[0].tag == 0x04,
            fields[3].tag == 0x31, let infos = children(bytes, of: fields[3]), infos.count == 1, infos[0].tag == 0x30,
            let info = children(bytes, of: infos[0]), info.count == 6,
            slice(bytes, info[0]).elementsEqual(version1),
            info[1].tag == 0x30, let sid = children(bytes, of: info[1]), sid.count == 2, sid[0].tag == 0x30, sid[1].tag == 0x02,
            slice(bytes, info[2]).elementsEqual(sha256Algorithm),
            info[3].tag == 0xA0, let attributes = children(bytes, of: info[3]), attributes.count == 3,
            slice(bytes, attributes[0]).elementsEqual(contentTypeAttribute),
            isSigningTime(slice(bytes, attributes[1])),
            attributes[2].end - attributes[2].start == messageDigestPrefix.count + 32,
            bytes[attributes[2].start..<attributes[2].start + messageDigestPrefix.count].elementsEqual(messageDigestPrefix),
            slice(bytes, info[4]).elementsEqual(ecdsaWithSHA256),
            info[5].tag == 0x04
        else { return nil }
        let signerID = slice(bytes, info[1])
        let serial = slice(bytes, sid[1])
        // OpenSSL takes the first certificate whose issuer (compared in canonical form) and serial
        // number match. Byte equality is stricter than canonical equality, so the signer is taken
        // here only when no other certificate carries the same serial number.
        let candidates = certificates.filter { certificate in
            certificate.issuerAndSerialNumber.map { $0.suffix(serial.count).elementsEqual(serial) } ?? true
        }
        guard candidates.count == 1, let signer = candidates.first, let verifier = signer.verifier,
            signer.issuerAndSerialNumber?.elementsEqual(signerID) == true
        else { return nil }
        let content = Data(bytes[wrapped[0].contentStart..<wrapped[0].end])
        let digest = Digest.sha256(content)
        guard digest.elementsEqual(bytes[(attributes[2].end - 32)..<attributes[2].end]) else { return nil }
        // The signature covers the attributes as a SET OF (tag 0x31 instead of [0] IMPLICIT).
        var signedAttributes = Array(bytes[info[3].start..<info[3].end])
        signedAttributes[0] = 0x31
        let hash = Digest.sha256(Data(signedAttributes))
        let signature = Array(bytes[info[5].contentStart..<info[5].end])
        guard verifier.verify(signature: signature, hash: hash) else { return nil }
        return CMS.Signed(content: content, signer: signer, intermediates: certificates.filter { $0 != signer })
    }

    /// `17 0D` + YYMMDDHHMMSS + `Z`, as OpenSSL writes signingTime until 2049.
    static func isSigningTime(_ attribute: ArraySlice<UInt8>) -> Bool {
        guard attribute.count == signingTimePrefix.count + 13, attribute.prefix(signingTimePrefix.count).elementsEqual(signingTimePrefix)
        else { return false }
        let time = attribute.suffix(13)
        guard time.last == UInt8(ascii: "Z"), time.dropLast().allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }) else { return false }
        // A real calendar time only (no 31 February, no leap second): what this layer writes for
        // that moment must be the same bytes.
        let digits = time.dropLast().map { Int($0 - 0x30) }
        func pair(_ index: Int) -> Int32 { Int32(digits[index] * 10 + digits[index + 1]) }
        var parts = tm()
        let year = pair(0)
        parts.tm_year = (year < 50 ? 2000 + year : 1900 + year) - 1900
        parts.tm_mon = pair(2) - 1
        parts.tm_mday = pair(4)
        parts.tm_hour = pair(6)
        parts.tm_min = pair(8)
        parts.tm_sec = pair(10)
        guard parts.tm_mon >= 0, parts.tm_mon < 12, parts.tm_mday >= 1, parts.tm_hour < 24, parts.tm_min < 60, parts.tm_sec < 60 else {
            return false
        }
        let seconds = timegm(&parts)
        guard let again = signingTime(Date(timeIntervalSince1970: TimeInterval(seconds))) else { return false }
        return again[...].elementsEqual(attribute)
    }

    /// DER of signingTime for `date`, or nil from 2050 on (then GeneralizedTime; OpenSSL signs).
    static func signingTime(_ date: Date) -> [UInt8]? {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var parts = tm()
        guard gmtime_r(&seconds, &parts) != nil else { return nil }
        let year = Int(parts.tm_year) + 1900
        guard year >= 1950, year < 2050 else { return nil }
        var out = signingTimePrefix
        for value in [year % 100, Int(parts.tm_mon) + 1, Int(parts.tm_mday), Int(parts.tm_hour), Int(parts.tm_min), Int(parts.tm_sec)] {
            out.append(0x30 + UInt8(value / 10))
            out.append(0x30 + UInt8(value % 10))
        }
        out.append(UInt8(ascii: "Z"))
        return out
    }

    static func encode(_ tag: UInt8, _ parts: [UInt8]...) -> [UInt8] {
        TLV.encode(tag: tag, parts.flatMap { $0 })
    }
}

/// Initialised OpenSSL signature contexts for one key, reused: an `EVP_PKEY_CTX` may be used by
/// one thread at a time, so each call takes one from the pool (or makes one) and gives it back.
final class KeyContextPool: @unchecked Sendable {
    enum Operation { case sign, verify }
    private let key: OpaquePointer
    private let operation: Operation
    /// An idle context; only one thread holds it at a time (taken out of the pool to be used).
    private struct Idle: @unchecked Sendable { let context: OpaquePointer }
    private let idle = Mutex<[Idle]>([])
    /// Contexts kept when idle; more may exist while many threads use the key at once.
    private static let kept = 16

    /// Nil for keys other than EC: the direct path signs and checks ECDSA only.
    init?(key: OpaquePointer?, operation: Operation) {
        guard let key, EVP_PKEY_get_base_id(key) == EVP_PKEY_EC, EVP_PKEY_up_ref(key) == 1 else { return nil }
        self.key = key
        self.operation = operation
    }

    deinit {
        for entry in idle.withLock({ $0 }) { EVP_PKEY_CTX_free(entry.context) }
        EVP_PKEY_free(key)
    }

    private func take() -> OpaquePointer? {
        if let entry = idle.withLock({ $0.popLast() }) { return entry.context }
        guard let context = EVP_PKEY_CTX_new_from_pkey(nil, key, nil) else { return nil }
        let ready = operation == .sign ? EVP_PKEY_sign_init(context) : EVP_PKEY_verify_init(context)
        guard ready == 1 else {
            EVP_PKEY_CTX_free(context)
            return nil
        }
        return context
    }

    private func give(_ context: OpaquePointer) {
        let kept = idle.withLock { contexts -> Bool in
            guard contexts.count < Self.kept else { return false }
            contexts.append(Idle(context: context))
            return true
        }
        if !kept { EVP_PKEY_CTX_free(context) }
    }

    /// Whether `signature` (DER ECDSA) is valid for the 32-byte `hash`. The error queue is left empty.
    func verify(signature: [UInt8], hash: Data) -> Bool {
        guard operation == .verify, let context = take() else {
            OpenSSLErrorQueue.clear()
            return false
        }
        let result = hash.withUnsafeBytes { hashRaw in
            EVP_PKEY_verify(context, signature, signature.count, hashRaw.bindMemory(to: UInt8.self).baseAddress, hashRaw.count)
        }
        give(context)
        if result != 1 { OpenSSLErrorQueue.clear() }
        return result == 1
    }

    /// A DER ECDSA signature over the 32-byte `hash`.
    func sign(hash: Data) throws(CryptoError) -> [UInt8] {
        guard operation == .sign else { throw CryptoError(.internalError, "A verification key cannot sign.") }
        OpenSSLErrorQueue.clear()
        guard let context = take() else { throw .fromQueue(.internalError, "Could not prepare a signature.") }
        var signature = [UInt8](repeating: 0, count: Int(EVP_PKEY_get_size(key)))
        var length = signature.count
        let result = hash.withUnsafeBytes { hashRaw in
            EVP_PKEY_sign(context, &signature, &length, hashRaw.bindMemory(to: UInt8.self).baseAddress, hashRaw.count)
        }
        give(context)
        guard result == 1 else { throw .fromQueue(.internalError, "Could not complete a signature.") }
        return Array(signature.prefix(length))
    }
}

extension CMS {
    /// Makes SignedData for one certificate and key: the fixed parts (certificates, signer
    /// identifier) encoded once, then per message one SHA-256 of the content, one of the signed
    /// attributes and one ECDSA signature. The output is what `CMS_sign` makes with the same
    /// inputs and signing time, byte for byte up to the (randomised) signature; keys other than
    /// EC, and dates from 2050 on, are signed by `CMS_sign`.
    final class Signer: Sendable {
        let certificate: Certificate
        let key: PrivateKey
        let extraCertificates: [Certificate]
        private let certificatesField: [UInt8]
        private let signerIdentifier: [UInt8]
        private let contexts: KeyContextPool?

        init(certificate: Certificate, key: PrivateKey, extraCertificates: [Certificate]) throws(CryptoError) {
            guard key.matches(certificate) else {
                throw CryptoError(.keyMismatch, "The signing key does not belong to the signing certificate.")
            }
            self.certificate = certificate
            self.key = key
            self.extraCertificates = extraCertificates
            // CMS_sign adds the signer, then the others, once each; DER orders a SET OF by encoding.
            var distinct: [[UInt8]] = []
            for der in ([certificate] + extraCertificates).map({ [UInt8]($0.der) }) where !distinct.contains(der) {
                distinct.append(der)
            }
            certificatesField = DirectSignedData.encode(0xA0, distinct.sorted(by: Self.derSetOrder).flatMap { $0 })
            signerIdentifier = certificate.issuerAndSerialNumber.map { Array($0) } ?? []
            // A certificate given twice is refused by CMS_sign; left to it, so both answer alike.
            let repeated = distinct.count != 1 + extraCertificates.count
            contexts = signerIdentifier.isEmpty || repeated ? nil : KeyContextPool(key: key.pointer, operation: .sign)
        }

        /// X.690 11.6: SET OF components in ascending order of their encodings, the shorter
        /// padded with zeros at the end.
        static func derSetOrder(_ a: [UInt8], _ b: [UInt8]) -> Bool {
            for index in 0..<max(a.count, b.count) {
                let x = index < a.count ? a[index] : 0
                let y = index < b.count ? b[index] : 0
                if x != y { return x < y }
            }
            return false
        }

        func sign(_ content: some DataProtocol, at date: Date = Date()) throws(CryptoError) -> Data {
            let data = content as? Data ?? Data(content)
            guard let contexts, let signingTime = DirectSignedData.signingTime(date) else {
                return try CMS.signWithOpenSSL(data, signer: certificate, key: key, extraCertificates: extraCertificates)
            }
            let digest = Digest.sha256(data)
            let attributes = DirectSignedData.contentTypeAttribute + signingTime + DirectSignedData.messageDigestPrefix + [UInt8](digest)
            let signature = try contexts.sign(hash: Digest.sha256(Data(DirectSignedData.encode(0x31, attributes))))
            let signerInfo = DirectSignedData.encode(
                0x30,
                DirectSignedData.version1,
                signerIdentifier,
                DirectSignedData.sha256Algorithm,
                DirectSignedData.encode(0xA0, attributes),
                DirectSignedData.ecdsaWithSHA256,
                DirectSignedData.encode(0x04, signature)
            )
            let signedData = DirectSignedData.encode(
                0x30,
                DirectSignedData.version1,
                DirectSignedData.encode(0x31, DirectSignedData.sha256Algorithm),
                DirectSignedData.encode(
                    0x30,
                    DirectSignedData.idData,
                    DirectSignedData.encode(0xA0, DirectSignedData.encode(0x04, [UInt8](data)))
                ),
                certificatesField,
                DirectSignedData.encode(0x31, signerInfo)
            )
            return Data(DirectSignedData.encode(0x30, DirectSignedData.signedDataOID, DirectSignedData.encode(0xA0, signedData)))
        }
    }

    /// Signers kept per key and certificates, so that repeated signing (acceptance receipts,
    /// checkpoints, a partner's messages) reuses the encoded parts and the key's contexts. The
    /// key object is held, so its identity cannot be reused by another key while cached.
    private static let signers = Mutex<[Data: Signer]>([:])
    private static let signerLimit = 64

    static func signer(certificate: Certificate, key: PrivateKey, extraCertificates: [Certificate]) throws(CryptoError) -> Signer {
        var identity = withUnsafeBytes(of: ObjectIdentifier(key)) { Data($0) }
        for der in ([certificate] + extraCertificates).map(\.der) { identity.append(Digest.sha256(der)) }
        if let signer = signers.withLock({ $0[identity] }), signer.key === key { return signer }
        let signer = try Signer(certificate: certificate, key: key, extraCertificates: extraCertificates)
        signers.withLock { cache in
            if cache.count >= signerLimit { cache.removeAll(keepingCapacity: true) }
            cache[identity] = signer
        }
        return signer
    }
}

extension Certificate {
    /// The DER of IssuerAndSerialNumber (RFC 5652 10.2.4) as this certificate's own bytes hold
    /// its issuer and serial number; nil if the certificate is not plain DER.
    var issuerAndSerialNumber: ArraySlice<UInt8>? {
        issuerAndSerial.withLock { cached in
            if let cached { return cached.isEmpty ? nil : cached }
            let computed = Self.issuerAndSerial(of: [UInt8](der))
            cached = computed ?? []
            return computed
        }
    }

    private static func issuerAndSerial(of bytes: [UInt8]) -> ArraySlice<UInt8>? {
        typealias TLV = SignedDataCertificates.TLV
        guard let certificate = TLV.read(bytes, at: 0), certificate.tag == 0x30,
            let tbs = TLV.read(bytes, at: certificate.contentStart), tbs.tag == 0x30,
            let fields = DirectSignedData.children(bytes, of: tbs), fields.count >= 4
        else { return nil }
        let offset = fields[0].tag == 0xA0 ? 1 : 0
        guard fields.count >= offset + 4, fields[offset].tag == 0x02, fields[offset + 2].tag == 0x30 else { return nil }
        let serial = bytes[fields[offset].start..<fields[offset].end]
        let issuer = bytes[fields[offset + 2].start..<fields[offset + 2].end]
        return ArraySlice(SignedDataCertificates.TLV.encode(tag: 0x30, Array(issuer) + Array(serial)))
    }
}

extension CMS {
    /// Whether `der` is valid SignedData in Ketenpost's own shape, checked without OpenSSL's CMS
    /// layer (`DirectSignedData`); false means the CMS layer decides. For the tests and the
    /// differential fuzz target, which hold the two paths to the same answers.
    public static func verifiesDirectly(_ der: some DataProtocol) -> Bool {
        guard let split = SignedDataCertificates.split(der), split.certificates.count <= Certificate.maximumPerSignedData else {
            return false
        }
        var certificates: [Certificate] = []
        for certificate in split.certificates {
            guard let decoded = try? CertificateCache.decode(der: certificate) else { return false }
            certificates.append(decoded)
        }
        return DirectSignedData.verify(split.withoutCertificates, certificates: certificates) != nil
    }

    /// A DER ECDSA signature with SHA-256 over `data`, for an EC key: what a SignerInfo holds.
    /// For the tests and the fuzz target, which build SignedData layouts by hand and sign them.
    public static func ecdsaSignature(over data: some DataProtocol, key: PrivateKey) throws(CryptoError) -> Data {
        guard let contexts = KeyContextPool(key: key.pointer, operation: .sign) else {
            throw CryptoError(.internalError, "Only an EC key makes an ECDSA signature.")
        }
        return Data(try contexts.sign(hash: Digest.sha256(data as? Data ?? Data(data))))
    }
}
