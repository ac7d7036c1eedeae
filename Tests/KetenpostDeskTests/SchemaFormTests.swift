import Foundation
import KetenpostDesk
import KetenpostModel
import Testing

/// The desk's forms come from the payload schemas compiled into it: those copies must equal
/// docs/schemas, every field must have Dutch words, and a form filled with an example must give
/// back exactly that example.
@Suite struct SchemaFormTests {
    static let generatedFile = Root.path("Sources/KetenpostDesk/Forms/EmbeddedSchemas.swift")

    /// The generated Swift file for the schemas in docs/schemas.
    static func generated() throws -> String {
        let folder = Root.path("docs/schemas")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder).filter { $0.hasSuffix(".schema.json") }.sorted()
        var lines = [
            "// swift-format-ignore-file",
            "// Generated from docs/schemas by SchemaFormTests (KETENPOST_UPDATE_DOCS=1 swift test --filter SchemaFormTests); do not edit.",
            "",
            "/// The payload JSON Schemas, compiled in so that the desk needs no files beside its binary.",
            "enum EmbeddedSchemas {",
            "    static let files: [String: String] = [",
        ]
        for name in names {
            let text = try String(contentsOfFile: "\(folder)/\(name)", encoding: .utf8)
            lines.append("        \"\(name.replacingOccurrences(of: ".schema.json", with: ""))\": #\"\"\"")
            lines.append(String(text.reversed().drop { $0 == "\n" }.reversed()))
            lines.append("\"\"\"#,")
        }
        lines += ["    ]", "}"]
        return lines.joined(separator: "\n") + "\n"
    }

    @Test func embeddedSchemasEqualDocsSchemas() throws {
        let expected = try Self.generated()
        if ProcessInfo.processInfo.environment["KETENPOST_UPDATE_DOCS"] == "1" {
            try expected.write(toFile: Self.generatedFile, atomically: true, encoding: .utf8)
        }
        let current = try String(contentsOfFile: Self.generatedFile, encoding: .utf8)
        #expect(current == expected, "run KETENPOST_UPDATE_DOCS=1 swift test --filter SchemaFormTests")
    }

    /// Every field, help text and choice of every form has Dutch words.
    @Test func everyFieldHasDutchWords() throws {
        let dutch = Labels(english: false)
        func walk(_ field: FormField, path: String) {
            switch field.kind {
            case .constant: return
            case .object(let children):
                for child in children { walk(child, path: "\(path).\(child.name)") }
            case .list(let item, _, _):
                walk(item, path: path + "[]")
            case .choice(let values):
                for value in values { #expect(dutch.value(value) != value || value == "partner" || value == "urgent", "\(path): \(value)") }
            default: break
            }
            if case .object = field.kind, path.split(separator: ".").count == 1 { return }
            #expect(dutch.field(field) != field.title || field.title == nil || field.title == "BSN", "no Dutch label for \(path)")
            if field.help != nil { #expect(dutch.help(field) != nil, "no Dutch help for \(path)") }
        }
        for type in MessageType.allCases {
            let form = PayloadForms.form(for: type)
            guard case .object(let children) = form.kind else {
                Issue.record("\(type) has no object form")
                continue
            }
            #expect(!children.isEmpty)
            walk(form, path: type.rawValue)
            #expect(dutch.type(type.rawValue) != type.rawValue)
        }
    }

    /// Each example, turned into form values and back, is the same payload: the forms can say
    /// everything the model can.
    @Test(arguments: MessageType.allCases) func examplesSurviveTheForm(type: MessageType) throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: Root.path("config/examples/\(type.rawValue).json")))
        let json = try JSONSerialization.jsonObject(with: data)
        let form = PayloadForms.form(for: type)
        let values = FormValues.from(json: json, form: form)
        let (built, problems) = values.payload(for: form)
        #expect(problems.isEmpty)
        let original = try KetenpostJSON.decodeStrict(Payload.self, from: data, path: "payload")
        let again = try KetenpostJSON.decodeStrict(Payload.self, from: built, path: "payload")
        #expect(again == original)
    }

    @Test func rowsAreAddedAndRemovedWithoutJavaScript() throws {
        let form = PayloadForms.form(for: .intakeNotice)
        guard case .object(let children) = form.kind, let languages = children.first(where: { $0.name == "languages" }) else {
            Issue.record("no languages list")
            return
        }
        var values = FormValues(["languages._rows": "3", "languages.0": "nl", "languages.1": "ro", "languages.2": "en"])
        values.removeRow("languages", index: 1, field: languages)
        #expect(
            values["languages._rows"] == "2" && values["languages.0"] == "nl" && values["languages.1"] == "en"
                && values["languages.2"] == nil
        )
        values.addRow("languages", field: languages)
        #expect(values.rows("languages", field: languages) == 3)
        // A posted row count cannot exceed the list's maximum.
        values["languages._rows"] = "100000"
        #expect(values.rows("languages", field: languages) == 10)
    }

    @Test func formValuesGiveProblemsByPath() throws {
        let form = PayloadForms.form(for: .intakeNotice)
        let values = FormValues([
            "dependants._rows": "1", "dependants.0.relation": "cousin", "dependants.0.ageYears": "four", "requestedArrival": "tonight",
        ])
        let (_, problems) = values.payload(for: form)
        #expect(problems["dependants.0.relation"] == "choice")
        #expect(problems["dependants.0.ageYears"] == "whole-number")
        #expect(problems["requestedArrival"] == "date-time")
    }
}
