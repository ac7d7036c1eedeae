import Foundation
import Testing

@testable import KetenpostModel

@Suite struct ReceiptTests {
    static let digest = String(repeating: "ab", count: 32)

    func receipt(
        _ kind: Receipt.Kind = .acknowledgement,
        _ disposition: Receipt.Disposition = .processed,
        reason: String? = nil
    ) -> Receipt {
        Receipt(
            kind: kind,
            messageId: UUID(uuidString: "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e") ?? UUID(),
            messageDigest: Self.digest,
            from: "gemeente-eijsden-margraten",
            to: "zorgcoordinatie-zuid-limburg",
            issuer: "zorgcoordinatie-zuid-limburg",
            disposition: disposition,
            reasonCode: reason,
            time: Date(timeIntervalSince1970: 1_795_946_400.5)
        )
    }

    @Test func validReceiptsRoundTrip() throws {
        for r in [receipt(.acceptance, .accepted), receipt(), receipt(.acknowledgement, .rejected, reason: "payload.invalid")] {
            try r.validate()
            let decoded = try Receipt.decode(from: r.encoded())
            #expect(decoded == r)
            #expect(decoded.encoded() == r.encoded())
        }
        let text = String(decoding: receipt().encoded(), as: UTF8.self)
        #expect(text.hasPrefix(#"{"disposition":"processed","from":"gemeente-eijsden-margraten","issuer""#))
        #expect(text.contains(#""schema":"ketenpost/receipt/v1""#))
        #expect(text.contains(#""time":"2026-11-29T10:00:00Z""#))
    }

    @Test func receiptRules() {
        func rejects(_ r: Receipt, _ path: String, _ rule: String, sourceLocation: SourceLocation = #_sourceLocation) {
            let error = failure { try r.validate() }
            #expect(error?.contains(path: path, rule: rule) == true, "\(String(describing: error))", sourceLocation: sourceLocation)
        }
        rejects(receipt(.acceptance, .processed), "receipt.disposition", "disposition")
        rejects(receipt(.acknowledgement, .accepted), "receipt.disposition", "disposition")
        rejects(receipt(.acknowledgement, .rejected), "receipt.reasonCode", "required")
        rejects(receipt(.acknowledgement, .processed, reason: "late"), "receipt.reasonCode", "not-applicable")
        rejects(receipt(.acknowledgement, .rejected, reason: "Bad Reason"), "receipt.reasonCode", "reason-code")
        rejects(receipt(.acknowledgement, .rejected, reason: "-late"), "receipt.reasonCode", "reason-code")
        rejects(receipt(.acknowledgement, .rejected, reason: String(repeating: "a", count: 65)), "receipt.reasonCode", "reason-code")
        var r = receipt()
        r.messageDigest = Self.digest.uppercased()
        rejects(r, "receipt.messageDigest", "digest")
        r = receipt()
        r.messageDigest = String(Self.digest.dropLast())
        rejects(r, "receipt.messageDigest", "digest")
        r = receipt()
        r.schema = "ketenpost/receipt/v2"
        rejects(r, "receipt.schema", "schema")
        r = receipt()
        r.issuer = "Relay"
        rejects(r, "receipt.issuer", "partner-id")
    }

    @Test func receiptDecodingIsStrict() throws {
        var tree = try #require(try JSONSerialization.jsonObject(with: receipt().encoded()) as? [String: Any])
        tree["signature"] = "abc"
        tree["kind"] = "ack"
        let data = try JSONSerialization.data(withJSONObject: tree)
        #expect(failure { _ = try Receipt.decode(from: data) }?.contains(path: "receipt.kind", rule: "enum") == true)
        tree["kind"] = "acknowledgement"
        let unknown = try JSONSerialization.data(withJSONObject: tree)
        #expect(failure { _ = try Receipt.decode(from: unknown) }?.contains(path: "receipt.signature", rule: "unknown-field") == true)
        tree["signature"] = nil
        tree["messageId"] = "6f1c2d3e"
        let badID = try JSONSerialization.data(withJSONObject: tree)
        #expect(failure { _ = try Receipt.decode(from: badID) }?.contains(path: "receipt.messageId", rule: "uuid") == true)
    }

    /// `Receipt.decode` parses once and falls back to `decodeStrict` only to explain a refusal:
    /// for every variant both must accept the same documents, with the same values or issues.
    @Test func oneParseDecodeAgreesWithTheStrictDecoder() throws {
        let full = String(decoding: receipt(.acknowledgement, .rejected, reason: "payload.invalid").encoded(), as: UTF8.self)
        let keys = try #require(try JSONSerialization.jsonObject(with: Data(full.utf8)) as? [String: Any]).keys
        #expect(Set(keys) == Receipt.fieldNames)
        let body = String(full.dropFirst().dropLast())
        let variants = [
            full,
            String(decoding: receipt().encoded(), as: UTF8.self),
            "{\(body),\"extra\":1}",
            "{\(body),\"extra\":null}",
            "{\(body),\"reasonCode\":\"late\"}",  // duplicate key
            full.replacingOccurrences(of: "\"payload.invalid\"", with: "null"),
            full.replacingOccurrences(of: "\"payload.invalid\"", with: "{\"a\":null}"),
            full.replacingOccurrences(of: "\"payload.invalid\"", with: "[null]"),
            full.replacingOccurrences(of: "\"payload.invalid\"", with: "{\"unknown\":1}"),
            full.replacingOccurrences(of: "\"payload.invalid\"", with: "7"),
            full.replacingOccurrences(of: "2026-11-29T10:00:00Z", with: "2026-11-29T10:00:00.75+01:00"),
            full.replacingOccurrences(of: "2026-11-29T10:00:00Z", with: "yesterday"),
            "[\(full)]", "\"receipt\"", "{}", "", "{\(body)", "\(full) trailing",
        ]
        for text in variants {
            let data = Data(text.utf8)
            let strict = Result { () throws(ValidationFailure) -> Receipt in
                let value = try KetenpostJSON.decodeStrict(Receipt.self, from: data, path: "receipt")
                try value.validate()
                return value
            }
            let fast = Result { () throws(ValidationFailure) -> Receipt in try Receipt.decode(from: data) }
            // The one-parse path itself takes exactly the documents the strict decoder accepts.
            let oneParse = KetenpostJSON.decodeOneParse(Receipt.self, from: data, path: "receipt", fields: Receipt.fieldNames)
            #expect((oneParse != nil) == ((try? KetenpostJSON.decodeStrict(Receipt.self, from: data, path: "receipt")) != nil), "\(text)")
            switch (strict, fast) {
            case (.success(let a), .success(let b)): #expect(a == b && oneParse == a, "\(text)")
            case (.failure(let a), .failure(let b)): #expect(a.issues == b.issues, "\(text)")
            default: Issue.record("the decoders disagree on \(text): strict \(strict), one parse \(fast)")
            }
        }
    }
}
