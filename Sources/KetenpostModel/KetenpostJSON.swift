import Foundation

/// Carried as `DecodingError`'s underlying error so that `decodeStrict` can report our own rule
/// and message instead of Foundation's debug description, which may quote the offending value.
struct RuleViolation: Error {
    let rule: String
    let message: String

    static func decodingError(_ codingPath: [any CodingKey], _ rule: String, _ message: String) -> DecodingError {
        .dataCorrupted(
            .init(
                codingPath: codingPath,
                debugDescription: "\(rule): \(message)",
                underlyingError: RuleViolation(rule: rule, message: message)
            )
        )
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

    /// A date as the encoder writes it (`2026-11-29T10:00:00Z`), for the same dates outside JSON.
    public static func dateText(_ date: Date) -> String { RFC3339.format(date) }

    /// A date as the decoder reads it (whole seconds), nil if the text is not RFC 3339.
    public static func date(fromText text: String) -> Date? {
        RFC3339.parse(text).map { Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded(.down)) }
    }

    /// Dates as RFC 3339 with or without fractional seconds (truncated to whole seconds), with `Z` or a numeric offset.
    public static func decoder() -> JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            guard let date = RFC3339.parse(text) else {
                throw RuleViolation.decodingError(
                    decoder.codingPath,
                    "date-time",
                    "must be an RFC 3339 date-time such as 2026-11-29T10:00:00Z"
                )
            }
            // Whole seconds, as they are encoded: rules checked on the decoded value then hold for
            // its canonical form too (a fraction that vanished on encoding made `expiresAt` equal
            // `createdAt`; found by the fuzz targets).
            return Date(timeIntervalSince1970: date.timeIntervalSince1970.rounded(.down))
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
    public static func decodeStrict<T: Decodable & Encodable>(_ type: T.Type, from data: Data, path: String) throws(ValidationFailure) -> T
    {
        guard data.count <= Limits.documentBytes else {
            throw ValidationFailure(path: path, rule: "too-large", message: "must be at most \(Limits.documentBytes) bytes (2 MiB)")
        }
        // One parser for everything (Foundation's JSONDecoder): the shape tree, the typed value
        // and the re-encoded tree. JSONSerialization would parse differently and, on Linux,
        // several times slower.
        guard let object = try? JSONDecoder().decode(JSONShape.self, from: data) else {
            throw ValidationFailure(path: path, rule: "json", message: "is not valid JSON")
        }
        guard case .object = object else {
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
        guard let known = (try? encoder().encode(value)).flatMap({ try? JSONDecoder().decode(JSONShape.self, from: $0) }) else {
            throw ValidationFailure(path: path, rule: "json", message: "could not be re-encoded")
        }
        findUnknownKeys(object, known, path, &issues)
        if !issues.isEmpty { throw ValidationFailure(issues) }
        return value
    }

    /// `decodeStrict` for a document whose fields are all scalars (no nested objects or arrays),
    /// in one parse: keys are checked against `fields` and for null on the top-level container
    /// while the value is decoded. Anything it does not accept goes through `decodeStrict`, so
    /// refusals carry exactly its issues; for such types both accept the same documents (a
    /// nested null or unknown key can only sit inside a value that fails to decode as a scalar).
    public static func decodeStrictFlat<T: Decodable & Encodable>(
        _ type: T.Type,
        from data: Data,
        path: String,
        fields: Set<String>
    ) throws(ValidationFailure) -> T {
        if let value = decodeOneParse(type, from: data, path: path, fields: fields) { return value }
        return try decodeStrict(type, from: data, path: path)
    }

    /// The one-parse path of `decodeStrictFlat`: the value, or nil for anything it does not accept.
    static func decodeOneParse<T: Decodable>(_ type: T.Type, from data: Data, path: String, fields: Set<String>) -> T? {
        guard data.count <= Limits.documentBytes, DuplicateKeys.first(in: data, path: path) == nil else { return nil }
        let decoder = decoder()
        decoder.userInfo[FlatDocument<T>.fieldsKey] = fields
        return try? decoder.decode(FlatDocument<T>.self, from: data).value
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

    private static func containsNull(_ node: JSONShape) -> Bool {
        switch node {
        case .null: return true
        case .object(let members): return members.values.contains { containsNull($0) }
        case .array(let elements): return elements.contains { containsNull($0) }
        case .value: return false
        }
    }

    private static func findNulls(_ node: JSONShape, _ path: String, _ issues: inout [ValidationIssue]) {
        switch node {
        case .null:
            issues.append(ValidationIssue(path: path, rule: "null", message: "must not be null; leave the field out instead"))
        case .object(let members):
            for key in members.keys.sorted() { findNulls(members[key]!, Path.join(path, Path.safeKey(key)), &issues) }
        case .array(let elements):
            for (i, element) in elements.enumerated() { findNulls(element, Path.index(path, i), &issues) }
        case .value:
            break
        }
    }

    private static func findUnknownKeys(_ raw: JSONShape, _ known: JSONShape, _ path: String, _ issues: inout [ValidationIssue]) {
        switch (raw, known) {
        case (.object(let members), _):
            let knownMembers: [String: JSONShape]
            if case .object(let k) = known { knownMembers = k } else { knownMembers = [:] }
            for key in members.keys.sorted() {
                let child = Path.join(path, Path.safeKey(key))
                if let knownChild = knownMembers[key] {
                    findUnknownKeys(members[key]!, knownChild, child, &issues)
                } else {
                    issues.append(ValidationIssue(path: child, rule: "unknown-field", message: "is not a field of this schema"))
                }
            }
        case (.array(let elements), .array(let knownElements)):
            for (i, element) in elements.enumerated() where i < knownElements.count {
                findUnknownKeys(element, knownElements[i], Path.index(path, i), &issues)
            }
        default:
            break
        }
    }
}

/// The shape of a JSON document: objects and arrays with their members, leaves without
/// their values (the strict checks need keys and nulls, never values).
enum JSONShape: Decodable {
    case object([String: JSONShape])
    case array([JSONShape])
    case value
    case null

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    init(from decoder: any Decoder) throws {
        if let container = try? decoder.container(keyedBy: AnyKey.self) {
            var members: [String: JSONShape] = [:]
            for key in container.allKeys { members[key.stringValue] = try container.decode(JSONShape.self, forKey: key) }
            self = .object(members)
        } else if var container = try? decoder.unkeyedContainer() {
            var elements: [JSONShape] = []
            while !container.isAtEnd { elements.append(try container.decode(JSONShape.self)) }
            self = .array(elements)
        } else {
            self = try decoder.singleValueContainer().decodeNil() ? .null : .value
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

/// A top-level object with only known keys and no nulls, decoded as `T` (see `decodeStrictFlat`).
private struct FlatDocument<T: Decodable>: Decodable {
    static var fieldsKey: CodingUserInfoKey { CodingUserInfoKey(rawValue: "ketenpost.flatFields")! }
    let value: T

    private struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    private struct Refused: Error {}

    init(from decoder: any Decoder) throws {
        guard let fields = decoder.userInfo[Self.fieldsKey] as? Set<String> else { throw Refused() }
        let container = try decoder.container(keyedBy: AnyKey.self)
        for key in container.allKeys {
            guard fields.contains(key.stringValue), try !container.decodeNil(forKey: key) else { throw Refused() }
        }
        value = try T(from: decoder)
    }
}
