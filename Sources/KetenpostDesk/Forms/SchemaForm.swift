import Foundation
import KetenpostAPI
import KetenpostModel

/// One field of a payload form, read from the message type's JSON Schema (docs/schemas): the
/// forms follow the schemas, and the schemas follow the model (SchemaTests), so that a form
/// cannot ask for something the model refuses or miss something it requires.
public struct FormField: Sendable {
    public indirect enum Kind: Sendable {
        case text(multiline: Bool, maxLength: Int?)
        case date
        case dateTime
        case integer(minimum: Int?, maximum: Int?)
        case choice([String])
        case object([FormField])
        case list(FormField, minItems: Int, maxItems: Int?)
        /// The payload's `schema` field: fixed, not shown.
        case constant(String)
    }

    /// The property name (for list items, the list's name).
    public var name: String
    /// The schema's English title and description.
    public var title: String?
    public var help: String?
    /// The common definition the field uses (`shortText`, `partnerId`, …), for its help text.
    public var definition: String?
    /// Whether `help` is the field's own description (else its definition's).
    public var ownHelp = false
    /// The schema's pattern for a text, checked when the form is read so that every problem
    /// shows at once (the model checks again, and checks what a schema cannot say).
    public var pattern: String?
    public var required: Bool
    public var kind: Kind
}

/// The forms of every payload type, built once from the embedded schemas.
public enum PayloadForms {
    /// The root object of `type`'s payload.
    public static func form(for type: MessageType) -> FormField {
        forms[type]!  // every type has a schema: SchemaFormTests checks it
    }

    static let forms: [MessageType: FormField] = {
        var result: [MessageType: FormField] = [:]
        let common = json(EmbeddedSchemas.files["common"]!)
        let definitions = common["$defs"] as? [String: Any] ?? [:]
        for type in MessageType.allCases {
            guard let text = EmbeddedSchemas.files[type.rawValue] else { continue }
            result[type] = field(name: type.rawValue, json(text), required: true, definitions: definitions)
        }
        return result
    }()

    private static func json(_ text: String) -> [String: Any] {
        (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
    }

    private static func field(name: String, _ node: [String: Any], required: Bool, definitions: [String: Any]) -> FormField {
        // A $ref's own title and description override the definition's.
        let ownHelp = node["description"] != nil
        var node = node
        var definition: String?
        while let ref = node["$ref"] as? String, let name = ref.split(separator: "/").last.map(String.init),
            let target = definitions[name] as? [String: Any]
        {
            definition = definition ?? name
            node.removeValue(forKey: "$ref")
            node = target.merging(node) { _, own in own }
        }
        let title = node["title"] as? String
        let help = node["description"] as? String
        let kind: FormField.Kind
        if let constant = node["const"] as? String {
            kind = .constant(constant)
        } else if let values = node["enum"] as? [String] {
            kind = .choice(values)
        } else {
            switch node["type"] as? String {
            case "object":
                let properties = node["properties"] as? [String: Any] ?? [:]
                let requiredNames = Set(node["required"] as? [String] ?? [])
                // Schema order is lost by JSONSerialization; the model's order is the readable one.
                let order = propertyOrder(in: node)
                kind = .object(
                    order.compactMap { key in
                        (properties[key] as? [String: Any]).map {
                            field(name: key, $0, required: requiredNames.contains(key), definitions: definitions)
                        }
                    }
                )
            case "array":
                let items = node["items"] as? [String: Any] ?? [:]
                kind = .list(
                    field(name: name, items, required: true, definitions: definitions),
                    minItems: node["minItems"] as? Int ?? 0,
                    maxItems: node["maxItems"] as? Int
                )
            case "integer":
                kind = .integer(minimum: node["minimum"] as? Int, maximum: node["maximum"] as? Int)
            default:
                if node["format"] as? String == "date" || definition == "date" || definition == "pastDate" {
                    kind = .date
                } else if node["format"] as? String == "date-time" {
                    kind = .dateTime
                } else {
                    let maxLength = node["maxLength"] as? Int
                    kind = .text(multiline: definition == "freeText" || (maxLength ?? 0) > 1000, maxLength: maxLength)
                }
            }
        }
        return FormField(
            name: name,
            title: title,
            help: help,
            definition: definition,
            ownHelp: ownHelp,
            pattern: node["pattern"] as? String,
            required: required,
            kind: kind
        )
    }

    /// Properties in the order the schema file lists them (JSONSerialization forgets it).
    private static func propertyOrder(in node: [String: Any]) -> [String] {
        let properties = node["properties"] as? [String: Any] ?? [:]
        let names = Array(properties.keys)
        guard let raw = rawOrder[Set(names)] else { return names.sorted() }
        return raw
    }

    /// Every "properties" object's keys in file order, found by scanning the schema texts.
    private static let rawOrder: [Set<String>: [String]] = {
        var result: [Set<String>: [String]] = [:]
        for text in EmbeddedSchemas.files.values {
            scanProperties(Array(text.utf8), into: &result)
        }
        return result
    }()

    private static func scanProperties(_ bytes: [UInt8], into result: inout [Set<String>: [String]]) {
        let marker = Array("\"properties\": {".utf8)
        var index = 0
        while index + marker.count <= bytes.count {
            guard Array(bytes[index..<index + marker.count]) == marker else {
                index += 1
                continue
            }
            // Walk the object; collect keys at depth 1.
            var depth = 0
            var keys: [String] = []
            var position = index + marker.count - 1
            var inString = false
            var stringStart = 0
            var expectingKey = false
            while position < bytes.count {
                let byte = bytes[position]
                if inString {
                    if byte == UInt8(ascii: "\\") {
                        position += 1
                    } else if byte == UInt8(ascii: "\"") {
                        inString = false
                        if depth == 1 && expectingKey {
                            keys.append(String(decoding: bytes[stringStart..<position], as: UTF8.self))
                            expectingKey = false
                        }
                    }
                } else {
                    switch byte {
                    case UInt8(ascii: "\""):
                        inString = true
                        stringStart = position + 1
                    case UInt8(ascii: "{"), UInt8(ascii: "["):
                        depth += 1
                        if depth == 1 { expectingKey = true }
                    case UInt8(ascii: "}"), UInt8(ascii: "]"):
                        depth -= 1
                    case UInt8(ascii: ","):
                        if depth == 1 { expectingKey = true }
                    default: break
                    }
                    if depth == 0 { break }
                }
                position += 1
            }
            result[Set(keys)] = keys
            index += marker.count
        }
    }
}

/// A form's state as the browser posts it: field paths (`person.alias`, `languages.0`,
/// `dependants.1.relation`, and `PATH._rows` for the number of rows of a list) to values. Drafts
/// keep this (encrypted), so that a half-filled form comes back as it was left.
public struct FormValues: Codable, Sendable, Equatable {
    public var fields: [String: String]

    public init(_ fields: [String: String] = [:]) { self.fields = fields }

    public subscript(_ path: String) -> String? {
        get { fields[path] }
        set { fields[path] = newValue }
    }

    /// The number of rows a list shows: as posted, or its minimum (at least one when required).
    public func rows(_ path: String, field: FormField) -> Int {
        guard case .list(_, let minItems, let maxItems) = field.kind else { return 0 }
        let posted = fields["\(path)._rows"].flatMap(Int.init) ?? (field.required ? max(minItems, 1) : 0)
        return min(max(posted, field.required ? max(minItems, 1) : 0), maxItems ?? Limits.listItems, Limits.listItems)
    }

    /// Adds an empty row to the list at `path`.
    public mutating func addRow(_ path: String, field: FormField) {
        guard case .list(_, _, let maxItems) = field.kind else { return }
        fields["\(path)._rows"] = String(min(rows(path, field: field) + 1, maxItems ?? Limits.listItems))
    }

    /// Removes row `index` of the list at `path`, moving later rows up.
    public mutating func removeRow(_ path: String, index: Int, field: FormField) {
        let count = rows(path, field: field)
        guard index >= 0, index < count else { return }
        let prefix = "\(path)."
        var moved: [String: String] = [:]
        for (key, value) in fields {
            guard key.hasPrefix(prefix), !key.hasPrefix("\(path)._rows") else {
                moved[key] = value
                continue
            }
            let rest = key.dropFirst(prefix.count)
            let parts = rest.split(separator: ".", maxSplits: 1)
            guard let row = Int(parts[0]) else {
                moved[key] = value
                continue
            }
            if row == index { continue }
            let newRow = row > index ? row - 1 : row
            moved[prefix + String(newRow) + (parts.count > 1 ? "." + parts[1] : "")] = value
        }
        moved["\(path)._rows"] = String(count - 1)
        fields = moved
    }

    /// The payload JSON these values describe, and the problems found on the way (by path). Empty
    /// fields are left out; whether something is missing is the model's to say.
    public func payload(for form: FormField) -> (json: Data, problems: [String: String]) {
        var problems: [String: String] = [:]
        let value = build(form, path: "", problems: &problems) ?? [:]
        let data = (try? JSONSerialization.data(withJSONObject: value, options: [.sortedKeys])) ?? Data("{}".utf8)
        return (data, problems)
    }

    private func build(_ field: FormField, path: String, problems: inout [String: String]) -> Any? {
        func child(_ name: String) -> String { path.isEmpty ? name : "\(path).\(name)" }
        switch field.kind {
        case .constant(let value):
            return value
        case .object(let children):
            var object: [String: Any] = [:]
            for c in children {
                if let v = build(c, path: child(c.name), problems: &problems) { object[c.name] = v }
            }
            let onlyConstant = object.count == children.filter { if case .constant = $0.kind { true } else { false } }.count
            let present = !(object.isEmpty || (onlyConstant && !path.isEmpty))
            // Required fields of an object that is there (or must be) are named all at once.
            if present || field.required {
                for c in children where c.required && object[c.name] == nil && problems[child(c.name)] == nil {
                    // A list whose rows were all refused is not also "missing".
                    if problems.keys.contains(where: { $0.hasPrefix(child(c.name) + ".") }) { continue }
                    problems[child(c.name)] = "required"
                }
            }
            return present ? object : nil
        case .list(let item, _, _):
            var items: [Any] = []
            for row in 0..<rows(path, field: field) {
                if let v = build(item, path: "\(path).\(row)", problems: &problems) { items.append(v) }
            }
            return items.isEmpty ? nil : items
        case .text, .date, .choice, .dateTime, .integer:
            guard let raw = fields[path]?.replacingOccurrences(of: "\r\n", with: "\n"),
                !raw.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            else { return nil }
            switch field.kind {
            case .integer:
                guard let number = Int(raw.trimmingCharacters(in: .whitespaces)) else {
                    problems[path] = "whole-number"
                    return nil
                }
                return number
            case .choice(let values):
                guard values.contains(raw) else {
                    problems[path] = "choice"
                    return nil
                }
                return raw
            case .dateTime:
                guard let date = Self.localDateTime(raw) else {
                    problems[path] = "date-time"
                    return nil
                }
                return date
            default:
                if let pattern = field.pattern, raw.range(of: pattern, options: .regularExpression) == nil {
                    problems[path] = Self.rule(for: field)
                    return nil
                }
                return raw
            }
        }
    }

    /// The rule name (ProblemText) of a pattern a field does not match.
    static func rule(for field: FormField) -> String {
        let byName: [String: String] = [
            "languages": "language", "nationality": "nationality", "phone": "phone", "email": "email", "bsn": "bsn",
            "kvkNumber": "kvk", "caseReference": "case-reference", "pseudonym": "pseudonym",
        ]
        let byDefinition: [String: String] = [
            "partnerId": "partner-id", "cbsMunicipality": "cbs-code", "date": "date", "pastDate": "date", "dateTime": "date-time",
            "shortText": "control-character", "freeText": "control-character",
        ]
        return byName[field.name] ?? field.definition.flatMap { byDefinition[$0] } ?? "type-mismatch"
    }

    /// `datetime-local` (`2026-11-29T17:00`) is Dutch local time; the payload wants RFC 3339 with a zone.
    static func localDateTime(_ text: String) -> String? {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = DeskFormat.timeZone
        for format in ["yyyy-MM-dd'T'HH:mm", "yyyy-MM-dd'T'HH:mm:ss"] {
            formatter.dateFormat = format
            if let date = formatter.date(from: text) {
                let output = ISO8601DateFormatter()
                output.timeZone = DeskFormat.timeZone
                output.formatOptions = [.withInternetDateTime]
                return output.string(from: date)
            }
        }
        // Already RFC 3339 (a draft made through the API, or a browser without datetime-local).
        return ISO8601DateFormatter().date(from: text) != nil ? text : nil
    }

    /// The form values of a payload JSON document (to show a received message in a form, or to
    /// start an answer).
    public static func from(json: Any, form: FormField) -> FormValues {
        var values = FormValues()
        func fill(_ field: FormField, _ value: Any?, path: String) {
            guard let value else { return }
            switch field.kind {
            case .constant: return
            case .object(let children):
                let object = value as? [String: Any] ?? [:]
                for c in children { fill(c, object[c.name], path: path.isEmpty ? c.name : "\(path).\(c.name)") }
            case .list(let item, _, _):
                let array = value as? [Any] ?? []
                values["\(path)._rows"] = String(array.count)
                for (index, element) in array.enumerated() { fill(item, element, path: "\(path).\(index)") }
            case .dateTime:
                values[path] = (value as? String).flatMap(DeskFormat.localInput) ?? "\(value)"
            default:
                values[path] = "\(value)"
            }
        }
        fill(form, json, path: "")
        return values
    }
}

extension ValidationIssue {
    /// The form path of the field this issue is about: `payload.subjects[2].kvkNumber` → `subjects.2.kvkNumber`.
    public var formPath: String {
        var path = self.path
        for prefix in ["payload.", "payload"] where path.hasPrefix(prefix) {
            path.removeFirst(prefix.count)
            break
        }
        return path.replacingOccurrences(of: "[", with: ".").replacingOccurrences(of: "]", with: "")
    }
}

/// Dates and times as the desk shows them: Dutch local time.
public enum DeskFormat {
    public static let timeZone = TimeZone(identifier: "Europe/Amsterdam") ?? .current

    /// `29-11-2026 18:00` (nl) or `29 Nov 2026 18:00` (en).
    /// From calendar fields rather than a DateFormatter: making one per time on a list page cost
    /// more than the page's database work (measured with `ketenpost-bench desk`).
    public static func dateTime(_ date: Date, english: Bool) -> String {
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: date)
        let (year, month, day) = (c.year ?? 0, c.month ?? 1, c.day ?? 1)
        let time = "\(twoDigits(c.hour ?? 0)):\(twoDigits(c.minute ?? 0))"
        return english ? "\(day) \(months[month - 1]) \(year) \(time)" : "\(twoDigits(day))-\(twoDigits(month))-\(year) \(time)"
    }

    static let calendar: Calendar = {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        return calendar
    }()
    static let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    static func twoDigits(_ n: Int) -> String { n < 10 ? "0\(n)" : "\(n)" }

    public static func dateTime(milliseconds: Int64, english: Bool) -> String {
        dateTime(Date(timeIntervalSince1970: Double(milliseconds) / 1000), english: english)
    }

    /// `2003-09-30` → `30-09-2003`.
    public static func date(_ text: String) -> String {
        let parts = text.split(separator: "-")
        guard parts.count == 3 else { return text }
        return "\(parts[2])-\(parts[1])-\(parts[0])"
    }

    /// An RFC 3339 time as a `datetime-local` value in Dutch local time.
    static func localInput(_ text: String) -> String? {
        guard let date = ISO8601DateFormatter().date(from: text) else { return nil }
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = timeZone
        formatter.dateFormat = "yyyy-MM-dd'T'HH:mm"
        return formatter.string(from: date)
    }
}
