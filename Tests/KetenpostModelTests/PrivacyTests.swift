import Foundation
import Testing

@testable import KetenpostModel

/// Failures reach logs and HTTP bodies; they must never repeat what the sender wrote.
@Suite struct PrivacyTests {
    static let canary = "Zoë-CANARY-7731"

    static let edits: [Edit] = [
        Edit("header.from", "\"\(canary)\""),
        Edit("header.id", "\"\(canary)\""),
        Edit("header.createdAt", "\"\(canary)\""),
        Edit("header.priority", "\"\(canary)\""),
        Edit("header.type", "\"\(canary)\""),
        Edit("payload.schema", "\"\(canary)\""),
        Edit("payload.urgency", "\"\(canary)\""),
        Edit("payload.observedOn", "\"\(canary)\""),
        Edit("payload.person.bsn", "\"\(canary)\""),
        Edit("payload.person.nationality", "\"\(canary)\""),
        Edit("payload.reporter.email", "\"\(canary)\""),
        Edit("payload.reporter.phone", "\"\(canary)\""),
        Edit("payload.indicators.0", "\"\(canary)\\n\(canary)\""),
        Edit("payload.person.\(canary)", "\"x\""),
        Edit("payload.person.alias", "7731"),
    ]

    @Test(arguments: edits)
    func failureNeverContainsTheValue(_ edit: Edit) throws {
        let data = try Examples.edited(.signal, [edit])
        let error = try #require(failure { _ = try SealedContent.decode(from: data, now: testNow) })
        for text in [error.description, String(describing: error), String(reflecting: error), error.localizedDescription] {
            #expect(!text.contains("CANARY"), "\(text)")
            #expect(!text.contains("7731"), "\(text)")
        }
    }

    @Test func descriptionNamesPathAndRule() {
        let issue = ValidationIssue(path: "payload.person.bsn", rule: "bsn", message: "must be 9 digits that pass the eleven-test")
        #expect(issue.description == "payload.person.bsn: must be 9 digits that pass the eleven-test (rule: bsn)")
        let failure = ValidationFailure([issue, ValidationIssue(path: "", rule: "json", message: "is not valid JSON")])
        #expect(failure.description.contains("payload.person.bsn: must be 9 digits"))
        #expect(failure.description.contains("(document): is not valid JSON (rule: json)"))
    }
}
