import Foundation
import Testing

@testable import KetenpostStore

/// The audit hash covers canonical bytes that are written directly (`canonicalBytes`); they must
/// be exactly what the definition (`referenceCanonicalBytes`, JSONEncoder) gives, or records
/// hashed by one would not verify with the other.
@Suite("AuditRecord canonical bytes")
struct AuditRecordTests {
    private func record(
        _ action: String = "message.accepted",
        actor: String = "gemeente-utrecht",
        messageId: String? = nil,
        partnerId: String? = nil,
        fingerprint: String? = nil,
        detail: String? = nil,
        sequence: Int64 = 1,
        at: Int64 = 1_795_000_000_123
    ) -> AuditRecord {
        AuditRecord(
            sequence: sequence,
            at: at,
            event: AuditEvent(
                action: action,
                actor: actor,
                messageId: messageId,
                partnerId: partnerId,
                fingerprint: fingerprint,
                detail: detail
            ),
            prevHash: AuditRecord.genesis
        )
    }

    @Test func everyASCIICharacterIsEscapedAsTheEncoderDoes() {
        for scalar in 0..<0x80 {
            let text = "a\(Character(Unicode.Scalar(UInt8(scalar))))z"
            for made in [
                record(text), record(actor: text), record(messageId: text), record(partnerId: text),
                record(fingerprint: text), record(detail: text),
            ] {
                #expect(made.canonicalBytes() == made.referenceCanonicalBytes(), "U+\(String(scalar, radix: 16))")
            }
        }
    }

    @Test func nonASCIIAndEdgeValuesAgree() {
        let texts = ["", "é", "\u{2028}\u{2029}", "😀", "\u{FEFF}x", "a/b\\c\"d", "\u{7F}", "ÿ\u{0}", "Åsa Ørsted-Ünal", "\r\n\t"]
        for text in texts {
            for made in [record(text, detail: text), record(actor: text, partnerId: text), record(messageId: text, fingerprint: text)] {
                #expect(made.canonicalBytes() == made.referenceCanonicalBytes(), "\(Array(text.unicodeScalars))")
            }
        }
        for (sequence, at) in [(Int64(1), Int64(0)), (.max, .max), (42, -1), (9_999_999, .min)] {
            let made = record(sequence: sequence, at: at)
            #expect(made.canonicalBytes() == made.referenceCanonicalBytes())
            #expect(made.canonicalBytes(sequence: 7) == made.referenceCanonicalBytes(sequence: 7))
        }
    }

    @Test func randomRecordsAgree() {
        var generator = SystemRandomNumberGenerator()
        let pool = Array("abcXYZ019-_./:= \"\\\u{0}\u{1}\u{1F}\n\té€😀\u{2028}")
        func text() -> String {
            String((0..<Int.random(in: 0...12, using: &generator)).map { _ in pool.randomElement(using: &generator)! })
        }
        func maybe() -> String? { Bool.random(using: &generator) ? text() : nil }
        for _ in 0..<2_000 {
            let made = record(
                text(),
                actor: text(),
                messageId: maybe(),
                partnerId: maybe(),
                fingerprint: maybe(),
                detail: maybe(),
                sequence: Int64.random(in: 1...Int64.max, using: &generator),
                at: Int64.random(in: 0...Int64.max, using: &generator)
            )
            #expect(made.canonicalBytes() == made.referenceCanonicalBytes())
        }
    }

    /// The format is fixed (docs/SECURITY.md, "Hash chain"; `audit verify`): a known record, its known bytes and hash.
    @Test func aKnownRecordHasItsKnownHash() {
        let made = record(
            "message.leased",
            actor: "opvang-noord",
            messageId: "6f1c2b1e-0000-4000-8000-000000000001",
            partnerId: "gemeente-utrecht",
            detail: "attempt=1",
            sequence: 12,
            at: 1_795_000_000_123
        )
        let expected =
            #"{"action":"message.leased","actor":"opvang-noord","at":1795000000123,"detail":"attempt=1","#
            + #""messageId":"6f1c2b1e-0000-4000-8000-000000000001","partnerId":"gemeente-utrecht","#
            + #""prevHash":"0000000000000000000000000000000000000000000000000000000000000000","sequence":12}"#
        #expect(String(decoding: made.canonicalBytes(), as: UTF8.self) == expected)
        #expect(made.hash == made.computedHash())
        #expect(made.hash == "cd33ea18885b6c5c91b362e14437aad15243cd9836fce8d41e6fa43bf68ec883")
    }
}
