import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel

/// The JSON documents on their own: routing header, payload, receipt. Besides "no crash",
/// two properties are checked:
/// - canonical: what is accepted is accepted again, unchanged, in its own canonical encoding
///   (signed bytes are canonical, so a value that does not survive it cannot be re-signed);
/// - no values in errors: a refusal names field paths and rules, never a field's value
///   (docs/SECURITY.md: values may be special-category personal data).
enum PartnerIDs {
    /// `^[a-z0-9][a-z0-9-]{1,62}$`, as `PartnerID.isValid`.
    static func isPartnerID(_ value: String) -> Bool {
        let bytes = Array(value.utf8)
        func ok(_ b: UInt8) -> Bool { (b >= 0x61 && b <= 0x7A) || (b >= 0x30 && b <= 0x39) }
        return (2...63).contains(bytes.count) && ok(bytes[0]) && bytes.dropFirst().allSatisfy { ok($0) || $0 == 0x2D }
    }
}

enum DocumentTargets {
    /// "Today" for the payload rules that compare with it, fixed so that inputs replay the same.
    static let now = Date(timeIntervalSince1970: 1_795_953_600)  // 2026-11-29T12:00:00Z

    static func header(_ data: Data) throws(FuzzFinding) {
        let header: RoutingHeader
        do {
            header = try RoutingHeader.decode(from: data)
            trace("accepted")
        } catch {
            trace("refused: \(error)")
            return try checkNoValues(of: data, in: error.description, .header) { data in
                do {
                    _ = try RoutingHeader.decode(from: data)
                    return nil
                } catch { return "\(error)" }
            }
        }
        try canonical(.header, header.encoded(), input: data) { data throws in try RoutingHeader.decode(from: data).encoded() }
    }

    static func payload(_ data: Data) throws(FuzzFinding) {
        let payload: Payload
        do {
            payload = try Payload.decode(from: data, now: now)
            trace("accepted")
        } catch {
            trace("refused: \(error)")
            return try checkNoValues(of: data, in: error.description, .payload) { data in
                do {
                    _ = try Payload.decode(from: data, now: now)
                    return nil
                } catch { return "\(error)" }
            }
        }
        try canonical(.payload, payload.encoded(), input: data) { data throws in try Payload.decode(from: data, now: now).encoded() }
    }

    static func receipt(_ data: Data) throws(FuzzFinding) {
        let fixture = Fixture.shared
        if data.first == 0x30 {  // DER SEQUENCE: a signed receipt as the relay or a sender gets it
            let verified: SignedReceipt.Verified
            do { verified = try SignedReceipt.verify(data, trust: fixture.trust) } catch { return trace("refused: \(error.code)") }
            trace("verified")
            return try checkVerified(verified)
        }
        do {
            let receipt = try Receipt.decode(from: data)
            trace("accepted")
            try canonical(.receipt, receipt.encoded(), input: data) { data throws in try Receipt.decode(from: data).encoded() }
        } catch let finding as FuzzFinding {
            throw finding
        } catch {
            trace("refused: \(error)")
            try checkNoValues(of: data, in: "\(error)", .receipt) { data in
                do {
                    _ = try Receipt.decode(from: data)
                    return nil
                } catch { return "\(error)" }
            }
        }
        // The same document signed by the recipient identity (the issuer of the seed receipts).
        guard let signed = try? CMS.sign(data, signer: fixture.recipient.certificate, key: fixture.recipient.key) else { return }
        do {
            try checkVerified(try SignedReceipt.verify(signed, trust: fixture.trust))
            trace("signed and verified")
        } catch let finding as FuzzFinding {
            throw finding
        } catch {
            try checkNoValues(of: data, in: "\(error)", .receipt) { data in
                guard let signed = try? CMS.sign(data, signer: fixture.recipient.certificate, key: fixture.recipient.key) else {
                    return nil
                }
                do {
                    _ = try SignedReceipt.verify(signed, trust: fixture.trust)
                    return nil
                } catch { return "\(error)" }
            }
        }
    }

    private static func checkVerified(_ verified: SignedReceipt.Verified) throws(FuzzFinding) {
        guard verified.signer.commonName == verified.receipt.issuer else {
            throw FuzzFinding(.receipt, "receipt-issuer", "verified a receipt whose signer is not its issuer")
        }
        guard verified.signer == Fixture.shared.recipient.certificate else {
            throw FuzzFinding(.receipt, "receipt-signer", "verified a receipt signed by a certificate the fuzzer does not hold")
        }
    }

    /// `encoded` must decode again and encode to the same bytes. A failure for an input with
    /// sub-second date-times is told apart (`canonical-subsecond-dates`): the canonical form
    /// drops fractions of a second, which the decoder keeps, so two times within one second
    /// compare differently before and after (a known issue, Tests/Fuzz/README.md).
    static func canonical(
        _ target: FuzzTarget,
        _ encoded: Data,
        input: Data,
        _ decodeAndEncode: (Data) throws -> Data
    ) throws(FuzzFinding) {
        let property = hasSubsecondTime(input) ? "canonical-subsecond-dates" : "canonical"
        let again: Data
        do {
            again = try decodeAndEncode(encoded)
        } catch {
            throw FuzzFinding(target, property, "an accepted document's canonical form is refused: \(error)")
        }
        guard again == encoded else {
            throw FuzzFinding(target, property, "an accepted document changes when its canonical form is decoded and encoded")
        }
    }

    /// Whether `data` holds something like `:05.25` (seconds with a fraction).
    static func hasSubsecondTime(_ data: Data) -> Bool {
        let bytes = [UInt8](data)
        func digit(_ i: Int) -> Bool { i < bytes.count && bytes[i] >= 0x30 && bytes[i] <= 0x39 }
        guard bytes.count >= 5 else { return false }
        for i in 0..<(bytes.count - 4) where bytes[i] == 0x3A && digit(i + 1) && digit(i + 2) && bytes[i + 3] == 0x2E && digit(i + 4) {
            return true
        }
        return false
    }

    /// Fails when a refusal quotes a string value of the JSON `input`.
    ///
    /// A value that occurs in the error text may be vocabulary (`" sexual"` is refused with a
    /// message that lists `sexual`): it counts only when the same input with that value
    /// shifted (every letter and digit to the next one) is refused with the shifted value in
    /// the text. Partner ids may be named where the relay or the recipient names a partner
    /// (`allowPartnerIDs`, for the envelope), as docs/SECURITY.md allows for metadata.
    static func checkNoValues(
        of input: Data,
        in text: String,
        _ target: FuzzTarget,
        allowPartnerIDs: Bool = false,
        refusal: (Data) -> String?
    ) throws(FuzzFinding) {
        guard let object = try? JSONSerialization.jsonObject(with: input, options: [.fragmentsAllowed]) else { return }
        var values: Set<String> = []
        var keys: Set<String> = []
        collect(object, &values, &keys, depth: 0)
        for value in values.sorted() where value.utf8.count >= 4 && !keys.contains(value) && text.contains(value) {
            if allowPartnerIDs, PartnerIDs.isPartnerID(value) { continue }
            let shifted = shift(value)
            guard shifted != value, !text.contains(shifted),
                let changed = try? JSONSerialization.data(
                    withJSONObject: replacing(object, value, with: shifted, depth: 0),
                    options: [.fragmentsAllowed]
                ),
                let second = refusal(changed)
            else { continue }
            if second.contains(shifted) {
                throw FuzzFinding(target, "error-quotes-value", "an error message quotes a value of the input")
            }
        }
    }

    /// Each ASCII letter and digit replaced by the next one (z to a, 9 to 0).
    static func shift(_ value: String) -> String {
        String(
            String.UnicodeScalarView(
                value.unicodeScalars.map { scalar -> Unicode.Scalar in
                    switch scalar {
                    case "a"..."y", "A"..."Y", "0"..."8": Unicode.Scalar(scalar.value + 1)!
                    case "z": "a"
                    case "Z": "A"
                    case "9": "0"
                    default: scalar
                    }
                }
            )
        )
    }

    private static func replacing(_ node: Any, _ value: String, with replacement: String, depth: Int) -> Any {
        guard depth < 64 else { return node }
        switch node {
        case let text as String: return text == value ? replacement : text
        case let object as [String: Any]: return object.mapValues { replacing($0, value, with: replacement, depth: depth + 1) }
        case let array as [Any]: return array.map { replacing($0, value, with: replacement, depth: depth + 1) }
        default: return node
        }
    }

    private static func collect(_ node: Any, _ values: inout Set<String>, _ keys: inout Set<String>, depth: Int) {
        guard depth < 64 else { return }
        switch node {
        case let text as String:
            values.insert(text)
        case let object as [String: Any]:
            for (key, value) in object {
                keys.insert(key)
                collect(value, &values, &keys, depth: depth + 1)
            }
        case let array as [Any]:
            for element in array { collect(element, &values, &keys, depth: depth + 1) }
        default:
            break
        }
    }
}
