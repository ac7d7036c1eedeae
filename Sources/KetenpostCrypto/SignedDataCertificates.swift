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
/// Only the exact DER shape of RFC 5652 is split: version, digestAlgorithms, encapContentInfo,
/// one certificates field of plain certificates, optional crls, signerInfos, nothing else, in
/// that order, with minimal lengths. Anything else (indefinite or long-form lengths, a second
/// certificates field, certificates after the signer infos, other certificate choices) is left
/// to OpenSSL's own parse, so that the relay accepts exactly what `openssl cms` accepts; a
/// differential fuzz target (`signeddata-parsers`) holds the two paths to that.
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
            let signedData = TLV.read(bytes, at: explicit.contentStart), signedData.tag == 0x30, signedData.end == explicit.end,
            let children = DirectSignedData.children(bytes, of: signedData)
        else { return nil }
        // version, digestAlgorithms, encapContentInfo, [0] certificates, [1] crls (optional), signerInfos.
        let tags = children.map(\.tag)
        guard tags == [0x02, 0x31, 0x30, 0xA0, 0x31] || tags == [0x02, 0x31, 0x30, 0xA0, 0xA1, 0x31] else { return nil }
        let field = children[3]
        var certificates: [Data] = []
        var inner = field.contentStart
        while inner < field.end {
            guard let certificate = TLV.read(bytes, at: inner), certificate.tag == 0x30, certificate.end <= field.end else {
                return nil
            }
            certificates.append(Data(bytes[certificate.start..<certificate.end]))
            inner = certificate.end
        }
        guard !certificates.isEmpty else { return nil }
        var kept: [UInt8] = []
        kept.reserveCapacity(bytes.count)
        for child in children where child.start != field.start { kept.append(contentsOf: bytes[child.start..<child.end]) }
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
                // DER: the shortest length encoding only (no leading zero byte, long form from 128 on).
                guard length >= 0x80, bytes[start + 2] != 0 else { return nil }
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
    /// The largest certificate Ketenpost decodes from a message or handshake: real ones (also
    /// PKIoverheid's, with their policies and long names) are 1 to 3 KiB.
    public static let maximumSize = 16_384
    /// The most certificates one SignedData may carry: the signer and five intermediates.
    public static let maximumPerSignedData = 6

    /// The certificate for these DER bytes, decoded once per process and then shared: for
    /// certificates that were verified (a TLS client certificate after the handshake checked its
    /// chain). Refuses DER above `maximumSize`.
    public static func cached(der: some DataProtocol) throws(CryptoError) -> Certificate {
        try CertificateCache.certificate(der: Data(der))
    }
}

/// Certificates decoded once and shared, looked up by their DER bytes. Only certificates that
/// verified are admitted (a signer whose signature checked, a chain a trust store accepted), so
/// a partner cannot fill it with junk: it is bounded by count and by bytes, and cleared when full.
enum CertificateCache {
    private struct State {
        var certificates: [Data: Certificate] = [:]
        var bytes = 0
        var clears = 0
    }
    private static let entries = Mutex<State>(State())
    static let limit = 4_096
    static let byteLimit = 8 << 20

    /// The cached certificate, or a new one that is not cached (until `admit`).
    static func decode(der: Data) throws(CryptoError) -> Certificate {
        if let cached = entries.withLock({ $0.certificates[der] }) { return cached }
        guard der.count <= Certificate.maximumSize else {
            throw CryptoError(
                .malformed,
                "A certificate of \(der.count) bytes is larger than the \(Certificate.maximumSize) bytes a certificate may have here."
            )
        }
        return try Certificate(der: der)
    }

    /// Decodes and admits: for a certificate the caller has verified.
    static func certificate(der: Data) throws(CryptoError) -> Certificate {
        let certificate = try decode(der: der)
        admit(certificate)
        return certificate
    }

    /// Keeps a verified certificate for the next lookup of its DER.
    static func admit(_ certificate: Certificate) {
        let size = certificate.der.count
        guard size <= Certificate.maximumSize else { return }
        entries.withLock { state in
            if state.certificates[certificate.der] != nil { return }
            if state.certificates.count >= limit || state.bytes + size > byteLimit {
                state.certificates.removeAll(keepingCapacity: true)
                state.bytes = 0
                state.clears += 1
            }
            state.certificates[certificate.der] = certificate
            state.bytes += size
        }
    }

    /// How often the cache was cleared (tests: whether two lookups could share an object).
    static var clears: Int { entries.withLock { $0.clears } }
    /// Whether these DER bytes are cached (tests).
    static func contains(_ der: Data) -> Bool { entries.withLock { $0.certificates[der] != nil } }
    /// The DER bytes held (tests, the figure in SECURITY.md).
    static var bytes: Int { entries.withLock { $0.bytes } }
}
