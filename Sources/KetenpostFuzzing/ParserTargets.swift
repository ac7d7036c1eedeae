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
        // byte-level mutation rarely keeps a signature valid, layout changes always do.
        let input = data.first == 0x30 ? data : SignedDataLayouts.variant(of: Fixture.shared.signedSample, choices: data)
        try compare(input)
    }

    static func compare(_ input: Data) throws(FuzzFinding) {
        let fast = Result { () throws(CryptoError) in try CMS.verifySignature(input) }
        let reference = Result { () throws(CryptoError) in try CMS.verifySignature(input, fastPath: false) }
        switch (fast, reference) {
        case (.success(let a), .success(let b)):
            trace("accepted by both")
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
