import Foundation
import KetenpostAPI
import KetenpostEnvelope
import Yams

/// One key of a configuration section, spelled here and nowhere else: its name, its default
/// (as the documentation writes it, and parsed from that text where it is a duration), what it
/// means, and how a value is read and checked. The parser, the unknown-key check, the defaults
/// and the reference in docs/OPERATIONS.md all come from these.
public struct ConfigurationKey<Value: Sendable & Equatable>: Sendable {
    public let name: String
    public let defaultValue: Value
    /// The default as docs/OPERATIONS.md and config/ketenpost.yaml write it ("none" for no value).
    public let documentedDefault: String
    public let summary: String
    let decode: @Sendable (Node) throws(ConfigurationRefusal) -> Value

    public init(
        _ name: String,
        default defaultValue: Value,
        documented: String,
        _ summary: String,
        decode: @escaping @Sendable (Node) throws(ConfigurationRefusal) -> Value
    ) {
        self.name = name
        self.defaultValue = defaultValue
        self.documentedDefault = documented
        self.summary = summary
        self.decode = decode
    }
}

/// Why a value was refused; `subkey` names a nested key (`queue.maxLifetime.TYPE`).
public struct ConfigurationRefusal: Error, Sendable {
    public let why: String
    public let subkey: String?

    public init(_ why: String, subkey: String? = nil) {
        self.why = why
        self.subkey = subkey
    }
}

/// A key without its value type: for the unknown-key check, the reference and the shipped-file check.
public protocol DocumentedKey: Sendable {
    var name: String { get }
    var documentedDefault: String { get }
    var summary: String { get }
    /// Whether `node` reads as this key's default (nil: the value is refused).
    func isDefault(_ node: Node) -> Bool?
}

extension ConfigurationKey: DocumentedKey {
    public func isDefault(_ node: Node) -> Bool? {
        (try? decode(node)).map { $0 == defaultValue }
    }
}

/// A part of the relay's configuration: one top-level key of the file and its struct.
public protocol ConfigurationSection: Sendable {
    /// The top-level key.
    static var name: String { get }
    /// Every key of the section, in the order the reference lists them.
    static var keys: [any DocumentedKey] { get }
    /// All defaults.
    init()
    /// Takes the values the file gives; keys it does not give keep their defaults.
    mutating func read(_ reader: SectionReader) throws(KetenpostError)
}

/// The keys one section of the file gives, for `ConfigurationSection.read`.
public struct SectionReader {
    let file: String
    let section: String
    let values: [String: Node]

    public init(file: String, section: String, values: [String: Node]) {
        self.file = file
        self.section = section
        self.values = values
    }

    /// Replaces `value` with the file's value for `key`, if the file gives one.
    public func read<Value>(_ key: ConfigurationKey<Value>, into value: inout Value) throws(KetenpostError) {
        guard let node = values[key.name] else { return }
        do {
            value = try key.decode(node)
        } catch {
            throw fail(key.name + (error.subkey.map { ".\($0)" } ?? ""), error.why)
        }
    }

    /// "FILE: section.key why".
    public func fail(_ key: String, _ why: String) -> KetenpostError {
        KetenpostError(.configInvalid, "\(file): \(section).\(key) \(why)")
    }
}

/// `HOST:PORT`.
public struct HostPort: Sendable, Equatable {
    public var host: String
    public var port: Int

    /// The host names that reach this machine only.
    public static let loopbackHosts: Set<String> = ["127.0.0.1", "::1", "localhost"]

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public static func parse(_ text: String) -> HostPort? {
        guard let colon = text.lastIndex(of: ":"), colon != text.startIndex,
            let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port)
        else { return nil }
        return HostPort(host: String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port: port)
    }
}

// MARK: Kinds of keys

extension ConfigurationKey {
    public static func scalar(_ node: Node) throws(ConfigurationRefusal) -> String {
        guard let text = node.scalar?.string else { throw ConfigurationRefusal("must be a single value, not a list or a mapping.") }
        return text
    }

    /// `key:` with nothing after it, `~` or `null`: for keys without a default, "none".
    public static func isNull(_ node: Node) -> Bool {
        guard let scalar = node.scalar, scalar.style == .plain else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(scalar.string)
    }
}

extension ConfigurationKey where Value == String {
    /// Text (a path, a host, an id); `check` returns why a value is refused.
    public static func text(
        _ name: String,
        _ defaultValue: String,
        _ summary: String,
        check: @escaping @Sendable (String) -> String? = { _ in nil }
    ) -> Self {
        Self(name, default: defaultValue, documented: defaultValue, summary) { node throws(ConfigurationRefusal) in
            let text = try scalar(node)
            if let why = check(text) { throw ConfigurationRefusal(why) }
            return text
        }
    }
}

extension ConfigurationKey where Value == String {
    /// Text the file must give (no default): a missing key stops start-up.
    public static func requiredText(
        _ name: String,
        _ summary: String,
        check: @escaping @Sendable (String) -> String? = { _ in nil }
    ) -> Self {
        Self(name, default: "", documented: ConfigurationFile.required, summary) { node throws(ConfigurationRefusal) in
            let text = try scalar(node)
            if let why = check(text) { throw ConfigurationRefusal(why) }
            return text
        }
    }
}

extension ConfigurationKey where Value == String? {
    /// Text without a default.
    public static func optionalText(
        _ name: String,
        _ summary: String,
        check: @escaping @Sendable (String) -> String? = { _ in nil }
    ) -> Self {
        Self(name, default: nil, documented: "none", summary) { node throws(ConfigurationRefusal) in
            if isNull(node) { return nil }
            let text = try scalar(node)
            if let why = check(text) { throw ConfigurationRefusal(why) }
            return text
        }
    }
}

extension ConfigurationKey where Value == HostPort? {
    /// `HOST:PORT` without a default; `check` returns why an address is refused.
    public static func address(_ name: String, _ summary: String, check: @escaping @Sendable (HostPort) -> String? = { _ in nil }) -> Self {
        Self(name, default: nil, documented: "none", summary) { node throws(ConfigurationRefusal) in
            if isNull(node) { return nil }
            guard let address = HostPort.parse(try scalar(node)) else {
                throw ConfigurationRefusal("must be HOST:PORT, such as 127.0.0.1:9464.")
            }
            if let why = check(address) { throw ConfigurationRefusal(why) }
            return address
        }
    }
}

extension ConfigurationKey where Value == [String] {
    /// A list of paths; one value is taken as a list of one.
    public static func list(_ name: String, _ defaultValue: [String], _ summary: String) -> Self {
        Self(name, default: defaultValue, documented: "[" + defaultValue.joined(separator: ", ") + "]", summary) {
            node throws(ConfigurationRefusal) in
            guard let sequence = node.sequence else { throw ConfigurationRefusal("must be a list, such as [a.pem, b.pem].") }
            var values: [String] = []
            for item in sequence {
                guard let text = item.scalar?.string else { throw ConfigurationRefusal("must be a list of single values.") }
                values.append(text)
            }
            return values
        }
    }
}

extension ConfigurationKey where Value == Int {
    public static func integer(_ name: String, _ defaultValue: Int, in range: ClosedRange<Int>, _ summary: String) -> Self {
        Self(name, default: defaultValue, documented: "\(defaultValue)", summary) { node throws(ConfigurationRefusal) in
            guard let value = Int(try scalar(node)), range.contains(value) else {
                throw ConfigurationRefusal("must be a whole number between \(range.lowerBound) and \(range.upperBound).")
            }
            return value
        }
    }
}

extension ConfigurationKey where Value == Double {
    public static func number(_ name: String, _ defaultValue: Double, in range: ClosedRange<Double>, _ summary: String) -> Self {
        Self(name, default: defaultValue, documented: Self.render(defaultValue), summary) { node throws(ConfigurationRefusal) in
            guard let value = Double(try scalar(node)), value.isFinite, range.contains(value) else {
                throw ConfigurationRefusal("must be a number between \(render(range.lowerBound)) and \(render(range.upperBound)).")
            }
            return value
        }
    }

    /// A duration such as `30s`, `5m`, `12h` or `7d`; the default is written the same way.
    public static func duration(
        _ name: String,
        _ defaultText: String,
        atLeast minimum: String? = nil,
        atMost maximum: String? = nil,
        _ summary: String
    ) -> Self {
        let low = minimum.flatMap(Drafting.parseDuration) ?? 0
        let high = maximum.flatMap(Drafting.parseDuration) ?? .greatestFiniteMagnitude
        return Self(name, default: Drafting.parseDuration(defaultText)!, documented: defaultText, summary) {
            node throws(ConfigurationRefusal) in
            guard let value = Drafting.parseDuration(try scalar(node)), value.isFinite else {
                throw ConfigurationRefusal("must be a duration such as 30s, 5m, 12h or 7d.")
            }
            if let minimum, value < low { throw ConfigurationRefusal("must be at least \(minimum).") }
            if let maximum, value > high { throw ConfigurationRefusal("must be at most \(maximum).") }
            return value
        }
    }

    public static func render(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
    }
}

extension ConfigurationKey where Value == Bool {
    /// One of two words.
    public static func choice(_ name: String, _ defaultValue: Bool, yes: String, no: String, _ summary: String) -> Self {
        Self(name, default: defaultValue, documented: defaultValue ? yes : no, summary) { node throws(ConfigurationRefusal) in
            switch try scalar(node) {
            case yes: return true
            case no: return false
            default: throw ConfigurationRefusal("must be \(no) or \(yes).")
            }
        }
    }
}

// MARK: Files of sections

/// A configuration file of sections (`config/ketenpost.yaml`, the desk's `desk.yaml`): reads
/// the composed YAML tree and hands each section its keys.
public enum ConfigurationFile {
    /// The file's text; a file that cannot be read stops start-up with its path and why.
    public static func text(at path: String) throws(KetenpostError) -> String {
        do { return try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KetenpostError(.configInvalid, "\(path): cannot be read (\(error.localizedDescription)).")
        }
    }

    /// The keys each section gives, after checking that every section and key is declared.
    /// Read from the composed node tree, key by key: nothing is built as plain values, so a
    /// complex key such as `? [x]` cannot trap and aliases are not expanded (found by the
    /// config-relay fuzz target). A misspelt key would otherwise be ignored silently and its
    /// default used, so every key must be one a section declares.
    public static func sections(
        of text: String,
        file: String,
        declared: [any ConfigurationSection.Type]
    ) throws(KetenpostError) -> [String: [String: Node]] {
        func fail(_ key: String, _ why: String) -> KetenpostError {
            KetenpostError(.configInvalid, "\(file): \(key) \(why)")
        }
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw KetenpostError(.configInvalid, "\(file): not valid YAML (\(error)).")
        }
        var given: [String: [String: Node]] = [:]
        var sections: Node.Mapping = [:]
        if let root, !ConfigurationKey<String>.isNull(root) {
            guard case .mapping(let mapping) = root else { throw fail("the document", "must be a mapping of sections.") }
            sections = mapping
        }
        for (sectionNode, value) in sections {
            guard let name = sectionNode.scalar?.string else { throw fail("a key", "is not text; keys are plain section names.") }
            guard let section = declared.first(where: { $0.name == name }) else { throw fail(name, "is not a known key.") }
            guard given[name] == nil else { throw fail(name, "is given twice.") }
            var keys: [String: Node] = [:]
            if case .mapping(let mapping) = value {
                for (keyNode, node) in mapping {
                    guard let key = keyNode.scalar?.string else { throw fail("\(name): a key", "is not text.") }
                    guard section.keys.contains(where: { $0.name == key }) else { throw fail("\(name).\(key)", "is not a known key.") }
                    guard keys[key] == nil else { throw fail("\(name).\(key)", "is given twice.") }
                    keys[key] = node
                }
            } else if !ConfigurationKey<String>.isNull(value) {
                throw fail(name, "must be a mapping of keys, such as \(name): {\(section.keys[0].name): …}.")
            }
            given[name] = keys
        }
        for section in declared {
            for key in section.keys where key.documentedDefault == required && given[section.name]?[key.name] == nil {
                throw fail("\(section.name).\(key.name)", "is required: \(key.summary)")
            }
        }
        return given
    }

    /// The documented default of a key that the file must give.
    public static let required = "required"

    /// Lets `section` read its keys from what `sections(of:)` returned.
    public static func read<Section: ConfigurationSection>(
        _ section: inout Section,
        from given: [String: [String: Node]],
        file: String
    ) throws(KetenpostError) {
        try section.read(SectionReader(file: file, section: Section.name, values: given[Section.name] ?? [:]))
    }

    /// What a shipped example file gets wrong: a key with a default that it leaves out or gives
    /// another value (keys without a default may be left out or switched on). Empty when the
    /// file shows exactly the defaults the parser applies.
    public static func differencesFromDefaults(in text: String, sections declared: [any ConfigurationSection.Type]) -> [String] {
        guard let root = try? Yams.compose(yaml: text), case .mapping(let sections) = root else { return ["the file is not a mapping"] }
        var problems: [String] = []
        for section in declared {
            let given = sections.first { $0.key.scalar?.string == section.name }?.value.mapping
            for key in section.keys {
                let path = "\(section.name).\(key.name)"
                guard let node = given?.first(where: { $0.key.scalar?.string == key.name })?.value else {
                    if key.documentedDefault != "none" { problems.append("\(path) is not shown (default \(key.documentedDefault))") }
                    continue
                }
                if key.documentedDefault != "none" && key.documentedDefault != required && key.isDefault(node) != true {
                    problems.append("\(path) has a value other than its default \(key.documentedDefault)")
                }
            }
        }
        return problems
    }

    /// The generated block between `begin` and `end` markers in a document, or nil without markers.
    public static func generatedBlock(in document: String, begin: String, end: String) -> Range<String.Index>? {
        guard let start = document.range(of: begin), let stop = document.range(of: end, range: start.upperBound..<document.endIndex) else {
            return nil
        }
        return start.upperBound..<stop.lowerBound
    }

    /// The reference table of every key, its default and its meaning, for the documentation.
    public static func reference(_ sections: [any ConfigurationSection.Type]) -> String {
        var lines = ["| key | default | meaning |", "|---|---|---|"]
        for section in sections {
            for key in section.keys {
                lines.append("| `\(section.name).\(key.name)` | `\(key.documentedDefault)` | \(key.summary) |")
            }
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
