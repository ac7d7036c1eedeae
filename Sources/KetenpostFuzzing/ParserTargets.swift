import Foundation
import KetenpostCrypto

/// The relay's two ways of reading a SignedData must agree (issue 20): the fast path, which
/// takes the certificates out before OpenSSL parses the rest (`SignedDataCertificates`), and
/// OpenSSL's own parse of the whole structure (`fastPath: false`). Whatever one accepts, the
/// other accepts with the same content, signer and certificates; whatever one refuses, the
/// other refuses.
enum ParserTargets {
    static func signedData(_ data: Data) throws(FuzzFinding) {
        // Raw DER as it is, or else a layout of a valid message that the input's bytes choose:
        // byte-level mutation rarely keeps a signature valid, layout changes always do. From
        // 0xE0 on, the first byte picks a change of the signed part, signed again (issue 21:
        // the direct check must take only what OpenSSL takes); the rest move the certificates.
        let input: Data
        if data.first == 0x30 {
            input = data
        } else if let first = data.first, first >= 0xE0 {
            let change = SignedAttributeLayouts.Change.allCases[Int(first - 0xE0) % SignedAttributeLayouts.Change.allCases.count]
            input = SignedDataLayouts.variant(of: SignedAttributeLayouts.make(change), choices: data.dropFirst())
        } else {
            input = SignedDataLayouts.variant(of: Fixture.shared.signedSample, choices: data)
        }
        try compare(input)
    }

    static func compare(_ input: Data) throws(FuzzFinding) {
        let fast = Result { () throws(CryptoError) in try CMS.verifySignature(input) }
        let reference = Result { () throws(CryptoError) in try CMS.verifySignature(input, fastPath: false) }
        switch (fast, reference) {
        case (.success(let a), .success(let b)):
            trace(CMS.verifiesDirectly(input) ? "accepted by both, directly" : "accepted by both")
            guard a.content == b.content, a.signer == b.signer, Set(a.intermediates) == Set(b.intermediates) else {
                throw FuzzFinding(.signedDataParsers, "parsers-disagree", "both accept, but read different content, signer or certificates")
            }
        case (.failure, .failure):
            trace("refused by both")
        case (.success, .failure(let error)):
            throw FuzzFinding(.signedDataParsers, "parsers-disagree", "the fast path accepts what OpenSSL's parse refuses (\(error.code))")
        case (.failure(let error), .success):
            throw FuzzFinding(.signedDataParsers, "parsers-disagree", "OpenSSL's parse accepts what the fast path refuses (\(error.code))")
        }
    }
}

/// Layout changes of a SignedData that keep its signature valid (the certificates field is
/// not signed): the cases where a shortcut parser and OpenSSL could read different things.
public enum SignedDataLayouts {
    public enum Change: UInt8, CaseIterable, Sendable {
        /// The certificates field moved after the signer infos.
        case certificatesLast
        /// A second certificates field after the first.
        case secondCertificatesField
        /// The certificates field's length in a longer form than DER allows.
        case longFormLength
        /// The certificates in the other order.
        case certificatesReversed
        /// An empty crls field after the certificates.
        case emptyCRLs
        /// No certificates field at all.
        case noCertificates
        /// The certificates field as an indefinite-length (BER) encoding.
        case indefiniteLength
        /// One byte of trailing garbage inside the SignedData.
        case trailingElement
    }

    /// A valid SignedData with two certificates (this process's fuzzing PKI).
    public static var sample: Data { Fixture.shared.signedSample }

    /// Whether the fast path and OpenSSL's own parse accept `der`.
    public static func accepted(_ der: Data) -> (fast: Bool, reference: Bool) {
        ((try? CMS.verifySignature(der)) != nil, (try? CMS.verifySignature(der, fastPath: false)) != nil)
    }

    /// `sample` changed by the changes the bytes of `choices` name, in order.
    public static func variant(of sample: Data, choices: Data) -> Data {
        var result = sample
        for byte in choices.prefix(4) {
            let change = Change.allCases[Int(byte) % Change.allCases.count]
            result = apply(change, to: result) ?? result
        }
        return result
    }

    /// The SignedData with one change, or nil when it has no shape to change.
    public static func apply(_ change: Change, to der: Data) -> Data? {
        let bytes = [UInt8](der)
        guard let contentInfo = DER.read(bytes, 0), let oid = DER.read(bytes, contentInfo.content),
            let explicit = DER.read(bytes, oid.end), let signedData = DER.read(bytes, explicit.content)
        else { return nil }
        var children: [[UInt8]] = []
        var cursor = signedData.content
        while cursor < signedData.end {
            guard let child = DER.read(bytes, cursor) else { return nil }
            children.append(Array(bytes[child.start..<child.end]))
            cursor = child.end
        }
        guard let index = children.firstIndex(where: { $0.first == 0xA0 }) else { return nil }
        let field = children[index]
        switch change {
        case .certificatesLast:
            children.remove(at: index)
            children.append(field)
        case .secondCertificatesField:
            children.insert(field, at: index + 1)
        case .longFormLength:
            guard let tlv = DER.read(field, 0) else { return nil }
            let content = Array(field[tlv.content..<tlv.end])
            let count = content.count
            children[index] =
                [0xA0, 0x84, UInt8(count >> 24 & 0xFF), UInt8(count >> 16 & 0xFF), UInt8(count >> 8 & 0xFF), UInt8(count & 0xFF)] + content
        case .certificatesReversed:
            guard let tlv = DER.read(field, 0) else { return nil }
            var certificates: [[UInt8]] = []
            var at = tlv.content
            while at < tlv.end, let certificate = DER.read(field, at) {
                certificates.append(Array(field[certificate.start..<certificate.end]))
                at = certificate.end
            }
            children[index] = DER.encode(0xA0, certificates.reversed().flatMap { $0 })
        case .emptyCRLs:
            children.insert([0xA1, 0x00], at: index + 1)
        case .noCertificates:
            children.remove(at: index)
        case .indefiniteLength:
            guard let tlv = DER.read(field, 0) else { return nil }
            children[index] = [0xA0, 0x80] + Array(field[tlv.content..<tlv.end]) + [0x00, 0x00]
        case .trailingElement:
            children.append([0x05, 0x00])
        }
        let newSignedData = DER.encode(0x30, children.flatMap { $0 })
        let newExplicit = DER.encode(0xA0, newSignedData)
        return Data(DER.encode(0x30, Array(bytes[oid.start..<oid.end]) + newExplicit))
    }

    /// Minimal DER reading and writing: single-byte tags, definite lengths.
    enum DER {
        struct TLV {
            var start: Int
            var content: Int
            var end: Int
        }

        static func read(_ bytes: [UInt8], _ start: Int) -> TLV? {
            guard start + 2 <= bytes.count else { return nil }
            let first = bytes[start + 1]
            var length = 0
            var content = start + 2
            if first < 0x80 {
                length = Int(first)
            } else {
                let count = Int(first & 0x7F)
                guard (1...4).contains(count), start + 2 + count <= bytes.count else { return nil }
                for index in 0..<count { length = length << 8 | Int(bytes[start + 2 + index]) }
                content += count
            }
            guard content + length <= bytes.count else { return nil }
            return TLV(start: start, content: content, end: content + length)
        }

        static func encode(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
            let count = content.count
            if count < 0x80 { return [tag, UInt8(count)] + content }
            var length: [UInt8] = []
            var rest = count
            while rest > 0 {
                length.insert(UInt8(rest & 0xFF), at: 0)
                rest >>= 8
            }
            return [tag, 0x80 | UInt8(length.count)] + length + content
        }
    }
}

/// Changes of the signed part of a SignedData (the signer info, its attributes, the content's
/// encoding), each signed again with the sender's key, so that the signature is valid over
/// whatever the change made (issue 21). Ketenpost's direct check (`CMS.verifiesDirectly`) takes
/// only the unchanged shape; for every change, the relay's answer must be OpenSSL's.
public enum SignedAttributeLayouts {
    public enum Change: UInt8, CaseIterable, Sendable {
        /// Nothing changed: built by hand and signed again (the direct check takes it).
        case resigned
        /// signingTime 31 February.
        case impossibleDate
        /// signingTime with second 60.
        case leapSecond
        /// signingTime as GeneralizedTime (allowed by RFC 5652 only from 2050 on).
        case generalizedTime
        /// A fourth signed attribute.
        case extraAttribute
        /// The signed attributes out of DER order.
        case unsortedAttributes
        /// Two messageDigest attributes.
        case duplicateDigest
        /// messageDigest of other content.
        case wrongDigest
        /// contentType attribute says SignedData while the content is id-data.
        case contentTypeMismatch
        /// SHA-256 with explicit NULL parameters.
        case digestWithNullParameter
        /// SignerInfo version 3 with an issuer-and-serial identifier.
        case signerInfoVersion3
        /// SignedData version 3.
        case signedDataVersion3
        /// Signed by another key than the certificate's.
        case otherKey
        /// The signer identifier names the CA's certificate.
        case signerIsTheCA
        /// An unsigned attribute after the signature.
        case unsignedAttribute
        /// The content as a constructed OCTET STRING.
        case constructedContent
        /// id-ecPublicKey as the signature algorithm.
        case ecPublicKeyAlgorithm
    }

    static let content = Data("sample".utf8)
    /// A fixed signing time (2026-12-01 10:00:00 UTC), so that inputs replay the same way.
    static let signingTime: [UInt8] = Array("261201100000Z".utf8)
    static let strangerKey: PrivateKey = {
        do { return try PrivateKey.generate(.ecP256) } catch { fatalError("cannot make a fuzzing key: \(error)") }
    }()

    /// The sample SignedData (sender's certificate and the CA's) with one change, signed again.
    public static func make(_ change: Change) -> Data {
        do { return try build(change) } catch { fatalError("cannot sign a layout: \(error)") }
    }

    static func build(_ change: Change) throws(CryptoError) -> Data {
        typealias DER = SignedDataLayouts.DER
        let fixture = Fixture.shared
        let oid: (_ arcs: [UInt8]) -> [UInt8] = { DER.encode(0x06, $0) }
        let pkcs9: (_ last: UInt8) -> [UInt8] = { oid([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x09, $0]) }
        let idData = oid([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01])
        let idSignedData = oid([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02])
        let sha256OID = oid([0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01])
        let sha256 = change == .digestWithNullParameter ? DER.encode(0x30, sha256OID + [0x05, 0x00]) : DER.encode(0x30, sha256OID)
        let signatureAlgorithm =
            change == .ecPublicKeyAlgorithm
            ? DER.encode(0x30, oid([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x02, 0x01]))
            : DER.encode(0x30, oid([0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x04, 0x03, 0x02]))
        func attribute(_ type: [UInt8], _ value: [UInt8]) -> [UInt8] { DER.encode(0x30, type + DER.encode(0x31, value)) }

        let time: [UInt8]
        switch change {
        case .impossibleDate: time = DER.encode(0x17, Array("260231100000Z".utf8))
        case .leapSecond: time = DER.encode(0x17, Array("261231235960Z".utf8))
        case .generalizedTime: time = DER.encode(0x18, Array("20261201100000Z".utf8))
        default: time = DER.encode(0x17, signingTime)
        }
        let digest = [UInt8](Digest.sha256(change == .wrongDigest ? Data("other".utf8) : content))
        let contentType = attribute(pkcs9(3), change == .contentTypeMismatch ? idSignedData : idData)
        let messageDigest = attribute(pkcs9(4), DER.encode(0x04, digest))
        var attributes = [contentType, attribute(pkcs9(5), time), messageDigest]
        switch change {
        case .extraAttribute: attributes.append(attribute(pkcs9(7), DER.encode(0x0C, Array("fuzz".utf8))))
        case .unsortedAttributes: attributes.reverse()
        case .duplicateDigest: attributes.append(messageDigest)
        default: break
        }
        let signedAttributes = attributes.flatMap { $0 }
        let key = change == .otherKey ? strangerKey : fixture.sender.key
        let signature = [UInt8](try CMS.ecdsaSignature(over: DER.encode(0x31, signedAttributes), key: key))

        let named = change == .signerIsTheCA ? fixture.ca.certificate : fixture.sender.certificate
        guard let identifier = issuerAndSerial(named.der) else { throw CryptoError(.internalError, "The certificate is not plain DER.") }
        var signerInfo = DER.encode(0x02, [change == .signerInfoVersion3 ? 3 : 1]) + identifier + sha256
        signerInfo += DER.encode(0xA0, signedAttributes) + signatureAlgorithm + DER.encode(0x04, signature)
        if change == .unsignedAttribute { signerInfo += DER.encode(0xA1, attribute(pkcs9(7), DER.encode(0x0C, Array("fuzz".utf8)))) }

        let octets = DER.encode(0x04, [UInt8](content))
        let encapsulated = idData + DER.encode(0xA0, change == .constructedContent ? DER.encode(0x24, octets) : octets)
        let certificates = [fixture.sender.certificate, fixture.ca.certificate].map { [UInt8]($0.der) }
        var signedData = DER.encode(0x02, [change == .signedDataVersion3 ? 3 : 1]) + DER.encode(0x31, sha256)
        signedData += DER.encode(0x30, encapsulated) + DER.encode(0xA0, certificates.flatMap { $0 })
        signedData += DER.encode(0x31, DER.encode(0x30, signerInfo))
        return Data(DER.encode(0x30, idSignedData + DER.encode(0xA0, DER.encode(0x30, signedData))))
    }

    /// IssuerAndSerialNumber from a certificate's own bytes.
    static func issuerAndSerial(_ der: Data) -> [UInt8]? {
        typealias DER = SignedDataLayouts.DER
        let bytes = [UInt8](der)
        guard let certificate = DER.read(bytes, 0), let tbs = DER.read(bytes, certificate.content) else { return nil }
        var fields: [SignedDataLayouts.DER.TLV] = []
        var cursor = tbs.content
        while cursor < tbs.end, fields.count < 4, let field = DER.read(bytes, cursor) {
            fields.append(field)
            cursor = field.end
        }
        let offset = bytes[tbs.content] == 0xA0 ? 1 : 0
        guard fields.count >= offset + 3 else { return nil }
        let serial = bytes[fields[offset].start..<fields[offset].end]
        let issuer = bytes[fields[offset + 2].start..<fields[offset + 2].end]
        return DER.encode(0x30, Array(issuer) + Array(serial))
    }
}
