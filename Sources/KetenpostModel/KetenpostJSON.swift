import Foundation

/// Carried as `DecodingError`'s underlying error so that `decodeStrict` can report our own rule
/// and message instead of Foundation's debug description, which may quote the offending value.
struct RuleViolation: Error {
    let rule: String
    let message: String

    static func decodingError(_ codingPath: [any CodingKey], _ rule: String, _ message: String) -> DecodingError {
        .dataCorrupted(.init(codingPath: codingPath, debugDescription: "\(rule): \(message)",
                             underlyingError: RuleViolation(rule: rule, message: message)))
    }
}

/// The one JSON dialect every party speaks. Signed bytes must be reproducible, so the
/// encoder is canonical; partners hand-write JSON with shell tools, so the decoder is strict
/// and explains every refusal.
public enum KetenpostJSON {
    /// Canonical form: sorted keys, `/` unescaped, UTF-8, dates as `2026-11-29T10:00:00Z`.
    public static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(RFC3339.format(date))
        }
        return encoder
    }

    /// Dates as RFC 3339 with or without fractional seconds, with `Z` or a numeric offset.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw RuleViolation.decodingError(decoder.codingPath, "date-time",
                                                  "must be an RFC 3339 date-time such as 2026-11-29T10:00:00Z")
            }
            return date
        }
        return decoder
    }

    /// Strict decode: DecodingError -> ValidationFailure with dotted path (prefix + codingPath, array index as [3]);
    /// unknown keys rejected (rule "unknown-field") at any depth; JSON null rejected (rule "null", "leave the field out
    /// instead"); top level must be an object; documents over 2 MiB rejected (rule "too-large") before parsing;
    /// a key repeated within one object rejected (rule "duplicate-key").
    ///
    /// Unknown keys are refused rather than ignored because a misspelt optional field would
    /// otherwise vanish silently: the sender believes it shared something the recipient never sees.
    public static func decodeStrict<T: Decodable & Encodable>(_ type: T.Type, from data: Data, path: String) throws(ValidationFailure) -> T {
        guard data.count <= Limits.documentBytes else {
            throw ValidationFailure(path: path, rule: "too-large", message: "must be at most \(Limits.documentBytes) bytes (2 MiB)")
        }
        guard let raw = try? JSONSerialization.jsonObject(with: data) else {
            throw ValidationFailure(path: path, rule: "json", message: "is not valid JSON")
        }
        guard let object = raw as? [String: Any] else {
            throw ValidationFailure(path: path, rule: "object", message: "must be a JSON object")
        }
        if let duplicate = DuplicateKeys.first(in: data, path: path) {
            throw ValidationFailure(path: duplicate, rule: "duplicate-key", message: "occurs more than once in its object")
        }
        var issues: [ValidationIssue] = []
        // Paths are only built when there is something to report: this runs on every message.
        if containsNull(object) {
            findNulls(object, path, &issues)
            throw ValidationFailure(issues)
        }

        let value: T
        do {
            value = try decoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw ValidationFailure([issue(for: error, prefix: path)])
        } catch {
            throw ValidationFailure(path: path, rule: "json", message: "could not be decoded")
        }

        // What survives a decode/encode round trip is exactly what the schema knows;
        // anything else in the input is an unknown field. Nil optionals are omitted on
        // encode, which is why null is refused separately above.
        guard let known = (try? encoder().encode(value)).flatMap({ try? JSONSerialization.jsonObject(with: $0) }) else {
            throw ValidationFailure(path: path, rule: "json", message: "could not be re-encoded")
        }
        findUnknownKeys(object, known, path, &issues)
        if !issues.isEmpty { throw ValidationFailure(issues) }
        return value
    }

    /// The path of the first key that occurs twice in one object, or nil. For callers that
    /// parse a document themselves (the envelope's outer layer) but must refuse what
    /// `decodeStrict` refuses.
    public static func duplicateKeyPath(in data: Data, path: String) -> String? {
        DuplicateKeys.first(in: data, path: path)
    }

    /// A decoding error as a validation issue with a dotted path under `prefix`.
    public static func issue(for error: DecodingError, prefix: String) -> ValidationIssue {
        switch error {
        case .keyNotFound(let key, let context):
            return ValidationIssue(path: Path.from(prefix, context.codingPath + [key]), rule: "required", message: "is required")
        case .valueNotFound(_, let context):
            return ValidationIssue(path: Path.from(prefix, context.codingPath), rule: "required", message: "is required")
        case .typeMismatch(let type, let context):
            return ValidationIssue(path: Path.from(prefix, context.codingPath), rule: "type", message: "must be \(jsonKind(type))")
        case .dataCorrupted(let context):
            let path = Path.from(prefix, context.codingPath)
            if let rule = context.underlyingError as? RuleViolation {
                return ValidationIssue(path: path, rule: rule.rule, message: rule.message)
            }
            return ValidationIssue(path: path, rule: "format", message: "has a value that cannot be read as the expected type")
        @unknown default:
            return ValidationIssue(path: prefix, rule: "format", message: "could not be decoded")
        }
    }

    private static func jsonKind(_ type: Any.Type) -> String {
        switch type {
        case is String.Type, is Date.Type, is UUID.Type: "a string"
        case is Bool.Type: "true or false"
        case is any BinaryInteger.Type: "an integer"
        case is any BinaryFloatingPoint.Type: "a number"
        case is [Any].Type: "an array"
        case is [String: Any].Type: "an object"
        default: "of another JSON type"
        }
    }

    private static func containsNull(_ node: Any) -> Bool {
        if node is NSNull { return true }
        if let object = node as? [String: Any] { return object.values.contains { containsNull($0) } }
        if let array = node as? [Any] { return array.contains { containsNull($0) } }
        return false
    }

    private static func findNulls(_ node: Any, _ path: String, _ issues: inout [ValidationIssue]) {
        if node is NSNull {
            issues.append(ValidationIssue(path: path, rule: "null", message: "must not be null; leave the field out instead"))
        } else if let object = node as? [String: Any] {
            for key in object.keys.sorted() { findNulls(object[key] as Any, Path.join(path, Path.safeKey(key)), &issues) }
        } else if let array = node as? [Any] {
            for (i, element) in array.enumerated() { findNulls(element, Path.index(path, i), &issues) }
        }
    }

    private static func findUnknownKeys(_ raw: Any, _ known: Any, _ path: String, _ issues: inout [ValidationIssue]) {
        if let object = raw as? [String: Any] {
            let knownObject = known as? [String: Any] ?? [:]
            for key in object.keys.sorted() {
                let child = Path.join(path, Path.safeKey(key))
                if let knownChild = knownObject[key] {
                    findUnknownKeys(object[key] as Any, knownChild, child, &issues)
                } else {
                    issues.append(ValidationIssue(path: child, rule: "unknown-field", message: "is not a field of this schema"))
                }
            }
        } else if let array = raw as? [Any], let knownArray = known as? [Any] {
            for (i, element) in array.enumerated() where i < knownArray.count {
                findUnknownKeys(element, knownArray[i], Path.index(path, i), &issues)
            }
        }
    }
}

/// Strict decoding for string enums: the default `RawRepresentable` decoding reports the bad
/// value in its debug text; this one reports the allowed values instead.
public protocol KetenpostEnum: RawRepresentable, CaseIterable, Codable, Sendable where RawValue == String {}

extension KetenpostEnum {
    public init(from decoder: any Decoder) throws {
        let raw = try decoder.singleValueContainer().decode(String.self)
        guard let value = Self(rawValue: raw) else {
            throw RuleViolation.decodingError(decoder.codingPath, "enum", "must be one of: \(Self.allowedValues)")
        }
        self = value
    }

    static var allowedValues: String { allCases.map(\.rawValue).joined(separator: ", ") }
}

/// The synthesized `Codable` code of this module picks these overloads for `UUID` fields,
/// so that a malformed id gets rule `uuid` instead of Foundation's generic, value-quoting error.
extension KeyedDecodingContainer {
    func decode(_ type: UUID.Type, forKey key: Key) throws -> UUID {
        let text = try decode(String.self, forKey: key)
        guard let uuid = UUID(uuidString: text) else {
            throw RuleViolation.decodingError(codingPath + [key], "uuid", "must be a UUID such as 3f2b8c4e-1d7a-4c9e-9b1f-2a6d5e8c7b90")
        }
        return uuid
    }

    func decodeIfPresent(_ type: UUID.Type, forKey key: Key) throws -> UUID? {
        try contains(key) ? decode(UUID.self, forKey: key) : nil
    }

    /// Foundation reports a fractional or too large number for an `Int` as invalid JSON without
    /// a coding path (an internal error, not a `DecodingError`), and the concrete
    /// `decode(Int.self, …)` cannot be overloaded like the UUID one above, so the types with
    /// integers call this from a hand-written `init(from:)`.
    func decodeInteger(forKey key: Key) throws -> Int {
        do {
            return try decode(Int.self, forKey: key)
        } catch let error as DecodingError {
            throw error
        } catch {
            throw RuleViolation.decodingError(codingPath + [key], "integer", "must be a whole number")
        }
    }

    func decodeIntegerIfPresent(forKey key: Key) throws -> Int? {
        try contains(key) ? decodeInteger(forKey: key) : nil
    }
}

/// Canonical UUIDs are lowercase (RFC 9562 and `uuidgen`), so that a partner composing JSON
/// with shell tools produces the same bytes as our encoder.
extension KeyedEncodingContainer {
    mutating func encode(_ value: UUID, forKey key: Key) throws {
        try encode(value.uuidString.lowercased(), forKey: key)
    }

    mutating func encodeIfPresent(_ value: UUID?, forKey key: Key) throws {
        if let value { try encode(value, forKey: key) }
    }
}
