import Foundation
import Synchronization

/// Takes the certificates out of a SignedData before OpenSSL parses it, so that each distinct
/// certificate is decoded once per process instead of once per message.
///
/// Why: OpenSSL 3.0 decodes the public key of every certificate it parses through its provider
/// decoders (`OSSL_DECODER_CTX_new_for_pkey`), which a profile of the relay's submit path put at
/// about half the cost of checking a message's outer signature. The certificates field is not
/// covered by the signature (the signed attributes are), so verifying the structure without it,
/// with the same certificates supplied from a cache, checks exactly the same thing.
///
/// Anything that is not the plain DER shape Ketenpost writes (indefinite lengths, other
/// certificate choices, no certificates field) is left to the ordinary parse, which then gives
/// the usual errors.
enum SignedDataCertificates {
    /// The SignedData without its `certificates` field, and the DER of each certificate it held.
    struct Split {
        var withoutCertificates: Data
        var certificates: [Data]
    }

    private static let signedDataOID: [UInt8] = [0x06, 0x09, 0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02]

    static func split(_ der: some DataProtocol) -> Split? {
        let bytes = [UInt8](der)
        guard let contentInfo = TLV.read(bytes, at: 0), contentInfo.tag == 0x30, contentInfo.end == bytes.count else { return nil }
        guard let oid = TLV.read(bytes, at: contentInfo.contentStart), oid.tag == 0x06,
            Array(bytes[oid.start..<oid.end]) == signedDataOID,
            let explicit = TLV.read(bytes, at: oid.end), explicit.tag == 0xA0, explicit.end == contentInfo.end,
            let signedData = TLV.read(bytes, at: explicit.contentStart), signedData.tag == 0x30, signedData.end == explicit.end
        else { return nil }
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        var certificates: [Data] = []
        var found = false
        var cursor = signedData.contentStart
        while cursor < signedData.end {
            guard let child = TLV.read(bytes, at: cursor), child.end <= signedData.end else { return nil }
            if child.tag == 0xA0 && !found {
                found = true
                var inner = child.contentStart
                while inner < child.end {
                    guard let certificate = TLV.read(bytes, at: inner), certificate.tag == 0x30, certificate.end <= child.end else {
                        return nil
                    }
                    certificates.append(Data(bytes[certificate.start..<certificate.end]))
                    inner = certificate.end
                }
            } else {
                kept.append(contentsOf: bytes[child.start..<child.end])
            }
            cursor = child.end
        }
        guard found, !certificates.isEmpty else { return nil }
        let newSignedData = TLV.encode(tag: 0x30, kept)
        let newExplicit = TLV.encode(tag: 0xA0, newSignedData)
        let newContentInfo = TLV.encode(tag: 0x30, signedDataOID + newExplicit)
        return Split(withoutCertificates: Data(newContentInfo), certificates: certificates)
    }

    /// One DER tag-length-value header: single-byte tags and definite lengths only.
    struct TLV {
        var tag: UInt8
        var start: Int
        var contentStart: Int
        var end: Int

        static func read(_ bytes: [UInt8], at start: Int) -> TLV? {
            guard start + 2 <= bytes.count else { return nil }
            let tag = bytes[start]
            guard tag & 0x1F != 0x1F else { return nil }  // multi-byte tags: not ours
            let first = bytes[start + 1]
            var length = 0
            var contentStart = start + 2
            if first < 0x80 {
                length = Int(first)
            } else {
                let count = Int(first & 0x7F)
                guard count >= 1, count <= 4, start + 2 + count <= bytes.count else { return nil }  // 0x80: indefinite
                for index in 0..<count { length = length << 8 | Int(bytes[start + 2 + index]) }
                contentStart += count
            }
            let end = contentStart + length
            guard end <= bytes.count else { return nil }
            return TLV(tag: tag, start: start, contentStart: contentStart, end: end)
        }

        static func encode(tag: UInt8, _ content: [UInt8]) -> [UInt8] {
            var out: [UInt8] = [tag]
            let length = content.count
            if length < 0x80 {
                out.append(UInt8(length))
            } else {
                var lengthBytes: [UInt8] = []
                var rest = length
                while rest > 0 {
                    lengthBytes.insert(UInt8(rest & 0xFF), at: 0)
                    rest >>= 8
                }
                out.append(0x80 | UInt8(lengthBytes.count))
                out.append(contentsOf: lengthBytes)
            }
            out.append(contentsOf: content)
            return out
        }
    }
}

extension Certificate {
    /// The certificate for these DER bytes, decoded once per process and then shared: for the
    /// certificates every request presents again (TLS client certificates, message signers).
    public static func cached(der: some DataProtocol) throws(CryptoError) -> Certificate {
        try CertificateCache.certificate(der: Data(der))
    }
}

/// Certificates decoded once and shared, looked up by their DER bytes (bounded; cleared when full).
enum CertificateCache {
    private static let entries = Mutex<(certificates: [Data: Certificate], clears: Int)>(([:], 0))
    static let limit = 4_096

    static func certificate(der: Data) throws(CryptoError) -> Certificate {
        if let cached = entries.withLock({ $0.certificates[der] }) { return cached }
        let certificate = try Certificate(der: der)
        entries.withLock { entries in
            if entries.certificates.count >= limit {
                entries.certificates.removeAll(keepingCapacity: true)
                entries.clears += 1
            }
            entries.certificates[der] = certificate
        }
        return certificate
    }

    /// How often the cache was cleared (tests: whether two lookups could share an object).
    static var clears: Int { entries.withLock { $0.clears } }
}
