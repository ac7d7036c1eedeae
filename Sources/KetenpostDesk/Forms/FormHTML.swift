import Foundation
import KetenpostModel

/// Escapes text for HTML element content and quoted attribute values.
public enum HTML {
    public static func escape(_ text: String) -> String {
        var result = ""
        result.reserveCapacity(text.count)
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }
}

/// Renders a payload form as HTML: fieldsets for objects, selects for enumerations, rows with
/// add and remove buttons for lists (plain submit buttons: no JavaScript), a label on every
/// field, help text tied to it with `aria-describedby`, and each error next to its field.
struct FormHTML {
    let labels: Labels
    let values: FormValues
    /// Problems by form path, as sentences.
    let errors: [String: [String]]

    func render(_ form: FormField) -> String {
        var html = ""
        guard case .object(let children) = form.kind else { return html }
        for child in children { field(child, path: child.name, into: &html) }
        return html
    }

    private func id(_ path: String) -> String { "f-" + path.replacingOccurrences(of: ".", with: "-") }

    private func field(_ field: FormField, path: String, into html: inout String, rowLabel: String? = nil) {
        let label = rowLabel ?? labels.field(field)
        let required = field.required ? " <span class=\"req\">(\(labels["compose.required"]))</span>" : ""
        let help = labels.help(field)
        let fieldErrors = errors[path] ?? []
        var describedBy: [String] = []
        if help != nil { describedBy.append(id(path) + "-help") }
        if !fieldErrors.isEmpty { describedBy.append(id(path) + "-error") }
        let aria =
            (describedBy.isEmpty ? "" : " aria-describedby=\"\(describedBy.joined(separator: " "))\"")
            + (fieldErrors.isEmpty ? "" : " aria-invalid=\"true\"")
        func helpAndErrors() {
            if let help { html += "<p class=\"help\" id=\"\(id(path))-help\">\(HTML.escape(help))</p>" }
            if !fieldErrors.isEmpty {
                html += "<p class=\"field-error\" id=\"\(id(path))-error\">"
                html += fieldErrors.map(HTML.escape).joined(separator: " ")
                html += "</p>"
            }
        }
        let value = HTML.escape(values[path] ?? "")
        let name = HTML.escape(path)
        switch field.kind {
        case .constant:
            return
        case .object(let children):
            html += "<fieldset class=\"group\" id=\"\(id(path))\"><legend>\(HTML.escape(label))\(required)</legend>"
            helpAndErrors()
            for child in children { self.field(child, path: "\(path).\(child.name)", into: &html) }
            html += "</fieldset>"
        case .list(let item, _, let maxItems):
            let rows = values.rows(path, field: field)
            html += "<fieldset class=\"list\" id=\"\(id(path))\"><legend>\(HTML.escape(label))\(required)</legend>"
            helpAndErrors()
            html += "<input type=\"hidden\" name=\"\(name)._rows\" value=\"\(rows)\">"
            for row in 0..<rows {
                html += "<div class=\"row\">"
                self.field(item, path: "\(path).\(row)", into: &html, rowLabel: "\(labels.field(field)) \(row + 1)")
                html += "<button type=\"submit\" class=\"secondary\" name=\"_remove\" value=\"\(name).\(row)\" formnovalidate>"
                html +=
                    "\(labels["compose.removeRow"])<span class=\"visually-hidden\"> (\(HTML.escape(labels.field(field))) \(row + 1))</span>"
                html += "</button></div>"
            }
            if rows < (maxItems ?? 100) {
                html += "<button type=\"submit\" class=\"secondary\" name=\"_add\" value=\"\(name)\" formnovalidate>"
                html += "\(labels["compose.addRow"])<span class=\"visually-hidden\"> (\(HTML.escape(labels.field(field))))</span></button>"
            }
            html += "</fieldset>"
        case .choice(let options):
            html += "<div class=\"field\(fieldErrors.isEmpty ? "" : " has-error")\">"
            html += "<label for=\"\(id(path))\">\(HTML.escape(label))\(required)</label>"
            helpAndErrors()
            html += "<select id=\"\(id(path))\" name=\"\(name)\"\(aria)>"
            html += "<option value=\"\">\(labels["compose.none"])</option>"
            for option in options {
                let selected = values[path] == option ? " selected" : ""
                html += "<option value=\"\(HTML.escape(option))\"\(selected)>\(HTML.escape(labels.value(option)))</option>"
            }
            html += "</select></div>"
        case .text(let multiline, let maxLength):
            html += "<div class=\"field\(fieldErrors.isEmpty ? "" : " has-error")\">"
            html += "<label for=\"\(id(path))\">\(HTML.escape(label))\(required)</label>"
            helpAndErrors()
            let limit = maxLength.map { " maxlength=\"\($0)\"" } ?? ""
            if multiline {
                html += "<textarea id=\"\(id(path))\" name=\"\(name)\" rows=\"4\"\(limit)\(aria)>\(value)</textarea>"
            } else {
                html += "<input type=\"text\" id=\"\(id(path))\" name=\"\(name)\" value=\"\(value)\"\(limit)\(aria)>"
            }
            html += "</div>"
        case .date, .dateTime, .integer:
            let type: String
            var extra = ""
            switch field.kind {
            case .date: type = "date"
            case .dateTime: type = "datetime-local"
            case .integer(let minimum, let maximum):
                type = "number"
                extra = (minimum.map { " min=\"\($0)\"" } ?? "") + (maximum.map { " max=\"\($0)\"" } ?? "")
            default: type = "text"
            }
            html += "<div class=\"field\(fieldErrors.isEmpty ? "" : " has-error")\">"
            html += "<label for=\"\(id(path))\">\(HTML.escape(label))\(required)</label>"
            helpAndErrors()
            html += "<input type=\"\(type)\" id=\"\(id(path))\" name=\"\(name)\" value=\"\(value)\"\(extra)\(aria)>"
            html += "</div>"
        }
    }
}

/// Renders an opened payload as a readable page: a definition list per object, list items as
/// lists, enumeration values and dates in the screen's language, never raw JSON.
struct PayloadHTML {
    let labels: Labels

    func render(_ json: Any, form: FormField) -> String {
        var html = ""
        guard case .object(let children) = form.kind, let object = json as? [String: Any] else { return html }
        html += "<dl class=\"payload\">"
        for child in children { field(child, object[child.name], into: &html) }
        html += "</dl>"
        return html
    }

    private func field(_ field: FormField, _ value: Any?, into html: inout String) {
        guard let value else { return }
        if let array = value as? [Any], array.isEmpty { return }
        if case .constant = field.kind { return }
        html += "<dt>\(HTML.escape(labels.field(field)))</dt><dd>"
        html += self.value(field, value)
        html += "</dd>"
    }

    private func value(_ field: FormField, _ value: Any) -> String {
        switch field.kind {
        case .object(let children):
            guard let object = value as? [String: Any] else { return "" }
            var html = "<dl class=\"nested\">"
            for child in children { self.field(child, object[child.name], into: &html) }
            return html + "</dl>"
        case .list(let item, _, _):
            let array = value as? [Any] ?? []
            return "<ul>" + array.map { "<li>" + self.value(item, $0) + "</li>" }.joined() + "</ul>"
        case .choice:
            return HTML.escape(labels.value("\(value)"))
        case .date:
            return HTML.escape(DeskFormat.date("\(value)"))
        case .dateTime:
            let text = "\(value)"
            return HTML.escape(ISO8601DateFormatter().date(from: text).map { DeskFormat.dateTime($0, english: labels.english) } ?? text)
        case .text(let multiline, _):
            let text = HTML.escape("\(value)")
            return multiline ? "<span class=\"multiline\">\(text)</span>" : text
        default:
            return HTML.escape("\(value)")
        }
    }
}
