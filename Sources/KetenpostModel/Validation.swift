import Foundation

/// One broken rule.
///
/// It carries the field's path and the rule, never the field's value: failures end up in
/// logs, audit trails and HTTP error bodies, and values may be special-category personal data.
public struct ValidationIssue: Sendable, Equatable, CustomStringConvertible {
    /// Dotted path of the field, e.g. `payload.subjects[2].kvkNumber`; empty for the whole document.
    public let path: String
    /// Stable, machine-readable rule name, e.g. `bsn`, `required`, `unknown-field`.
    public let rule: String
    /// A sentence fragment for humans that explains the rule; never contains the value.
    public let message: String

    public init(path: String, rule: String, message: String) {
        self.path = path
        self.rule = rule
        self.message = message
    }

    public var description: String { "\(path.isEmpty ? "(document)" : path): \(message) (rule: \(rule))" }
}

/// Why a document or value was refused: every issue found, so a partner can fix them all at once.
public struct ValidationFailure: Error, Sendable, Equatable, CustomStringConvertible, LocalizedError {
    /// Never empty.
    public let issues: [ValidationIssue]

    public init(_ issues: [ValidationIssue]) {
        precondition(!issues.isEmpty, "a ValidationFailure needs at least one issue")
        self.issues = issues
    }

    public init(path: String, rule: String, message: String) {
        self.init([ValidationIssue(path: path, rule: rule, message: message)])
    }

    public func contains(path: String, rule: String) -> Bool {
        issues.contains { $0.path == path && $0.rule == rule }
    }

    public var description: String {
        issues.count == 1
            ? "invalid: \(issues[0])"
            : "invalid (\(issues.count) issues): " + issues.map(\.description).joined(separator: "; ")
    }

    public var errorDescription: String? { description }
}

/// Size limits shared by all schemas, so that partners can rely on one set of numbers.
public enum Limits {
    /// Names, labels, single-line items (Unicode scalars).
    public static let shortText = 200
    /// Notes, suspicions, instructions (Unicode scalars).
    public static let freeText = 10_000
    /// Default maximum number of items in a list.
    public static let listItems = 100
    /// Largest JSON document accepted by `KetenpostJSON.decodeStrict`.
    public static let documentBytes = 2 * 1024 * 1024
    /// Longest time a message may wait for delivery.
    public static let maxLifetime: TimeInterval = 90 * 86_400
}

/// Collects issues while a value is checked, so that one pass reports every problem.
struct Checks {
    private(set) var issues: [ValidationIssue] = []
    /// Reference time for "not in the future" and "up to the current year" rules.
    let now: Date

    init(now: Date = Date()) { self.now = now }

    mutating func fail(_ path: String, _ rule: String, _ message: String) {
        issues.append(ValidationIssue(path: path, rule: rule, message: message))
    }

    mutating func check(_ ok: Bool, _ path: String, _ rule: String, _ message: @autoclosure () -> String) {
        if !ok { fail(path, rule, message()) }
    }

    func finish() throws(ValidationFailure) {
        if !issues.isEmpty { throw ValidationFailure(issues) }
    }

    // MARK: Reusable field rules

    /// Required text: not blank, bounded, and free of control characters (free text may hold line breaks).
    mutating func text(_ value: String, _ path: String, max: Int = Limits.shortText, multiline: Bool = false) {
        // One pass over the scalars: this runs for every text field of every message, so it
        // avoids Foundation's trimming and the Unicode property tables (control characters
        // are exactly the Cc ranges U+0000–U+001F and U+007F–U+009F).
        var count = 0
        var hasContent = false
        var hasControl = false
        for scalar in value.unicodeScalars {
            count += 1
            let v = scalar.value
            if v < 0x20 || (v >= 0x7F && v <= 0x9F) {
                if !(multiline && (v == 0x0A || v == 0x0D || v == 0x09)) { hasControl = true }
            } else if !hasContent && !scalar.properties.isWhitespace {
                hasContent = true
            }
        }
        guard hasContent else {
            return fail(path, "empty", "must not be empty or only whitespace")
        }
        if count > max { fail(path, "too-long", "must be at most \(max) characters") }
        if hasControl {
            fail(
                path,
                "control-character",
                multiline
                    ? "must not contain control characters other than line breaks and tabs"
                    : "must be a single line without control characters"
            )
        }
    }

    mutating func text(_ value: String?, _ path: String, max: Int = Limits.shortText, multiline: Bool = false) {
        if let value { text(value, path, max: max, multiline: multiline) }
    }

    mutating func freeText(_ value: String?, _ path: String) {
        text(value, path, max: Limits.freeText, multiline: true)
    }

    mutating func count(_ n: Int, _ path: String, _ range: ClosedRange<Int>) {
        check(
            range.contains(n),
            path,
            "count",
            range.lowerBound == 0
                ? "must have at most \(range.upperBound) items"
                : "must have \(range.lowerBound) to \(range.upperBound) items"
        )
    }

    mutating func unique<E: Hashable>(_ items: [E], _ path: String) {
        check(Set(items).count == items.count, path, "unique", "must not contain duplicates")
    }

    mutating func partnerID(_ value: String, _ path: String) {
        check(
            PartnerID.isValid(value),
            path,
            "partner-id",
            "must be a partner id: lowercase letters, digits and hyphens, 2 to 63 characters, not starting with a hyphen"
        )
    }

    mutating func municipality(_ value: String?, _ path: String) {
        if let value {
            check(
                Identifiers.isValidCBSMunicipality(value),
                path,
                "cbs-code",
                "must be a CBS municipality code: GM followed by 4 digits"
            )
        }
    }

    /// A calendar date `YYYY-MM-DD`; `notInFuture` compares with today in Dutch local time.
    mutating func date(_ value: String?, _ path: String, notInFuture: Bool = false) {
        guard let value else { return }
        guard let date = CalendarDate(value) else {
            return fail(path, "date", "must be a real calendar date written YYYY-MM-DD (years 1900-9999)")
        }
        if notInFuture {
            check(date <= CalendarDate.today(now: now), path, "not-future", "must not be in the future")
        }
    }
}

/// Path building shared by validation and decoding, so both report the same spelling.
enum Path {
    static func join(_ prefix: String, _ key: String) -> String {
        prefix.isEmpty ? key : "\(prefix).\(key)"
    }

    static func index(_ prefix: String, _ i: Int) -> String { "\(prefix)[\(i)]" }

    /// Keys in paths come from input when they are unknown: only show them when they look like
    /// field names, so that a partner who puts data into a key does not get it echoed into logs.
    static func safeKey(_ key: String) -> String {
        ASCII.matches(key, count: 1...64, first: ASCII.isLetterOrDigit) {
            ASCII.isLetterOrDigit($0) || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-")
        }
            ? key : "<key>"
    }

    static func from(_ prefix: String, _ codingPath: [any CodingKey]) -> String {
        codingPath.reduce(prefix) { path, key in
            key.intValue.map { index(path, $0) } ?? join(path, safeKey(key.stringValue))
        }
    }
}
