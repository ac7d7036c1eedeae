import Foundation
import Testing

@testable import KetenpostModel

struct RuleCase: Sendable, CustomStringConvertible {
    let type: MessageType
    let edits: [Edit]
    let path: String
    let rule: String

    init(_ type: MessageType, _ edits: [Edit], _ path: String, _ rule: String) {
        (self.type, self.edits, self.path, self.rule) = (type, edits, path, rule)
    }

    init(_ type: MessageType, _ edit: String, _ json: String?, _ rule: String) {
        self.init(type, [Edit(edit, json)], Self.dotted(edit), rule)
    }

    init(_ type: MessageType, _ edit: String, _ json: String?, _ path: String, _ rule: String) {
        self.init(type, [Edit(edit, json)], path, rule)
    }

    /// `payload.subjects.0.name` -> `payload.subjects[0].name`
    static func dotted(_ edit: String) -> String {
        edit.split(separator: ".").reduce("") { path, part in
            Int(part) != nil ? "\(path)[\(part)]" : (path.isEmpty ? String(part) : "\(path).\(part)")
        }
    }

    var description: String { "\(type.rawValue): \(edits) -> \(path) (\(rule))" }
}

@Suite struct RuleTests {
    static let header: [RuleCase] = [
        RuleCase(.signal, "header.from", #""Gemeente Eijsden""#, "partner-id"),
        RuleCase(.signal, "header.to", #""gemeente-eijsden-margraten""#, "self-addressed"),
        RuleCase(.signal, "header.expiresAt", #""2026-11-27T14:05:00Z""#, "order"),
        RuleCase(.signal, "header.expiresAt", #""2026-11-01T00:00:00Z""#, "order"),
        RuleCase(.signal, "header.expiresAt", #""2027-02-25T14:05:01Z""#, "max-lifetime"),
        RuleCase(.signal, "header.region", #""1903""#, "cbs-code"),
        RuleCase(.signal, "header.id", #""not-a-uuid""#, "uuid"),
        RuleCase(.intakeResponse, "header.correlationId", #""c3a9e1f0""#, "uuid"),
        RuleCase(.signal, "header.createdAt", #""2026-11-27 14:05""#, "date-time"),
        RuleCase(.signal, "header.createdAt", #""2026-02-30T10:00:00Z""#, "date-time"),
        RuleCase(.signal, "header.priority", #""high""#, "enum"),
        RuleCase(.signal, "header.type", #""letter""#, "enum"),
        RuleCase(.signal, "header.type", #""referral""#, "payload.schema", "type-mismatch"),
        RuleCase(.intakeResponse, "header.correlationId", nil, "required"),
        RuleCase(.referralResponse, "header.correlationId", nil, "required"),
        RuleCase(.signal, "header.from", nil, "required"),
        RuleCase(.signal, "header.from", "5", "type"),
        RuleCase(.signal, "header.cc", #""politie-avim-limburg""#, "unknown-field"),
        RuleCase(.signal, "header.region", "null", "null"),
    ]

    static let strict: [RuleCase] = [
        RuleCase(.signal, "signature", #""abc""#, "unknown-field"),
        RuleCase(.signal, "payload.place.floor", "3", "unknown-field"),
        RuleCase(.referral, "payload.person.middleName", #""van""#, "unknown-field"),
        RuleCase(.intakeNotice, "payload.dependants.0.name", #""Ana""#, "unknown-field"),
        RuleCase(.registration, "payload.person", #"{"alias": "R"}"#, "unknown-field"),
        RuleCase(.signal, "payload.notes", "null", "null"),
        RuleCase(.intakeNotice, "payload.dependants.0.ageYears", "null", "null"),
        RuleCase(.signal, "payload.schema", #""ketenpost/signal/v2""#, "schema"),
        RuleCase(.signal, "payload.schema", nil, "required"),
        RuleCase(.registration, "payload.year", #""2026""#, "type"),
        RuleCase(.signal, "payload.indicators", #""many""#, "type"),
        RuleCase(.registration, "payload.year", "2026.5", "integer"),
        RuleCase(.intakeNotice, "payload.dependants.0.ageYears", "1e30", "integer"),
        RuleCase(.signal, "payload.place", "[]", "type"),
    ]

    static let payload: [RuleCase] = [
        // signal
        RuleCase(.signal, "payload.urgency", #""very""#, "enum"),
        RuleCase(.signal, "payload.consent", #""maybe""#, "enum"),
        RuleCase(.signal, "payload.exploitationForms.0", #""forced-begging""#, "enum"),
        RuleCase(.signal, "payload.observedOn", #""2026-02-30""#, "date"),
        RuleCase(.signal, "payload.observedOn", #""26-11-2026""#, "date"),
        RuleCase(.signal, "payload.observedOn", #""2026-12-24""#, "not-future"),
        RuleCase(.signal, "payload.exploitationForms", "[]", "count"),
        RuleCase(.signal, "payload.exploitationForms", #"["labour", "labour"]"#, "unique"),
        RuleCase(.signal, "payload.indicators", "[]", "count"),
        RuleCase(.signal, "payload.indicators.0", #""   ""#, "empty"),
        RuleCase(.signal, "payload.indicators.1", #""line one\nline two""#, "control-character"),
        RuleCase(.signal, "payload.notes", "\"\(String(repeating: "a", count: 10_001))\"", "too-long"),
        RuleCase(.signal, "payload.person", #"{"gender": "male"}"#, "person-identifier"),
        RuleCase(.signal, "payload.person.gender", #""f""#, "enum"),
        RuleCase(
            .signal,
            [Edit("payload.reporter.phone", nil), Edit("payload.reporter.email", nil)],
            "payload.reporter",
            "contact-channel"
        ),
        RuleCase(.signal, "payload.reporter.email", #""a@b@c""#, "email"),
        RuleCase(.signal, "payload.reporter.email", #""@example.nl""#, "email"),
        RuleCase(.signal, "payload.reporter.phone", #""call me""#, "phone"),
        RuleCase(.signal, "payload.reporter.organisation", #""Gemeente E-M""#, "partner-id"),
        RuleCase(.signal, "payload.reporter.name", nil, "required"),
        RuleCase(.signal, "payload.place.municipality", #""GM193""#, "cbs-code"),
        RuleCase(.signal, "payload.legalBasis", #""consent""#, "consent"),
        RuleCase(.signal, "payload.legalBasis", #""gdpr""#, "enum"),
        // referral
        RuleCase(.referral, "payload.person.bsn", #""111222334""#, "bsn"),
        RuleCase(.referral, "payload.person.bsn", #""000000000""#, "bsn"),
        RuleCase(.referral, "payload.person.nationality", #""nl""#, "nationality"),
        RuleCase(.referral, "payload.person.dateOfBirth", #""1998-13-01""#, "date"),
        RuleCase(.referral, "payload.person.dateOfBirth", #""2030-01-01""#, "not-future"),
        RuleCase(.referral, "payload.caseReference", #""ZC 01""#, "case-reference"),
        RuleCase(.referral, "payload.needs.0", #""shelter""#, "enum"),
        RuleCase(.referral, "payload.needs", #"["legal", "legal"]"#, "unique"),
        RuleCase(.referral, "payload.person", nil, "required"),
        RuleCase(
            .referral,
            [Edit("payload.person.givenName", nil), Edit("payload.person.familyName", nil)],
            "payload.person",
            "person-identifier"
        ),
        // intake-notice
        RuleCase(.intakeNotice, "payload.languages.0", #""NL""#, "language"),
        RuleCase(.intakeNotice, "payload.languages", "[]", "count"),
        RuleCase(.intakeNotice, "payload.dependants.0.ageYears", "121", "range"),
        RuleCase(.intakeNotice, "payload.dependants.0.relation", #""cousin""#, "enum"),
        RuleCase(.intakeNotice, "payload.requestedArrival", #""tomorrow""#, "date-time"),
        RuleCase(.intakeNotice, "payload.languages", nil, "required"),
        // intake-response
        RuleCase(.intakeResponse, [Edit("payload.outcome", #""declined""#)], "payload.reason", "required"),
        RuleCase(.intakeResponse, [Edit("payload.outcome", #""waitlisted""#)], "payload.reason", "required"),
        RuleCase(.intakeResponse, "payload.arrivalInstructions", nil, "required"),
        RuleCase(.intakeResponse, "payload.outcome", #""maybe""#, "enum"),
        // enforcement-signal
        RuleCase(.enforcementSignal, "payload.subjects.0.medicalNeeds", #""diabetes""#, "no-victim-health-data"),
        RuleCase(.enforcementSignal, "payload.victim", #"{"alias": "R"}"#, "no-victim-health-data"),
        RuleCase(.enforcementSignal, "payload.person", #"{"alias": "R"}"#, "no-victim-health-data"),
        RuleCase(
            .enforcementSignal,
            "payload.observations.0",
            #"{"health_notes": "x"}"#,
            "payload.observations[0].health_notes",
            "no-victim-health-data"
        ),
        RuleCase(.enforcementSignal, "payload.subjects.0.kvkNumber", #""1234567""#, "kvk"),
        RuleCase(.enforcementSignal, "payload.subjects.1.kvkNumber", #""71234560""#, "not-applicable"),
        RuleCase(.enforcementSignal, "payload.subjects.0.dateOfBirth", #""1980-01-01""#, "not-applicable"),
        RuleCase(.enforcementSignal, "payload.subjects", "[]", "count"),
        RuleCase(.enforcementSignal, "payload.subjects.0.kind", #""ngo""#, "enum"),
        RuleCase(.enforcementSignal, "payload.requestedRoute", #""civil""#, "enum"),
        RuleCase(.enforcementSignal, "payload.suspicion", #""""#, "empty"),
        // referral-response
        RuleCase(
            .referralResponse,
            [Edit("payload.outcome", #""declined""#), Edit("payload.startDate", nil)],
            "payload.declineReason",
            "required"
        ),
        RuleCase(.referralResponse, "payload.declineReason", #""no-capacity""#, "not-applicable"),
        RuleCase(
            .referralResponse,
            [Edit("payload.outcome", #""declined""#), Edit("payload.startDate", nil), Edit("payload.declineReason", #""other""#)],
            "payload.explanation",
            "required"
        ),
        RuleCase(.referralResponse, [Edit("payload.outcome", #""completed""#)], "payload.startDate", "not-applicable"),
        RuleCase(.referralResponse, "payload.declineReason", #""busy""#, "enum"),
        RuleCase(.referralResponse, "payload.outcome", #""maybe""#, "enum"),
        RuleCase(.referralResponse, "payload.startDate", #""2026-02-30""#, "date"),
        RuleCase(.referralResponse, "payload.contact", nil, "required"),
        // registration
        RuleCase(.registration, "payload.year", "1999", "range"),
        RuleCase(.registration, "payload.year", "2027", "range"),
        RuleCase(.registration, "payload.pseudonym", #""short""#, "pseudonym"),
        RuleCase(.registration, "payload.pseudonym", #""ZL_2026_7F3K9Q2M""#, "pseudonym"),
        RuleCase(.registration, "payload.municipality", #""GM19030""#, "cbs-code"),
        RuleCase(.registration, "payload.referralSource", #""ngo""#, "enum"),
    ]

    @Test(arguments: header) func headerRule(_ c: RuleCase) throws { try check(c) }
    @Test(arguments: strict) func strictDecoding(_ c: RuleCase) throws { try check(c) }
    @Test(arguments: payload) func payloadRule(_ c: RuleCase) throws { try check(c) }

    private func check(_ c: RuleCase) throws {
        expectRejected(try Examples.edited(c.type, c.edits), path: c.path, rule: c.rule)
    }

    @Test func healthDataIsRefusedBeforeUnknownFieldCheck() throws {
        let data = try Examples.edited(.enforcementSignal, [Edit("payload.subjects.0.medicalNeeds", #""x""#)])
        let error = try #require(failure { _ = try SealedContent.decode(from: data, now: testNow) })
        #expect(error.issues.count == 1)
        #expect(error.issues[0].message.contains("enforcement signals may not carry victim health data"))
    }

    @Test func allValidationIssuesAreReportedTogether() throws {
        let data = try Examples.edited(
            .referral,
            [
                Edit("payload.person.bsn", #""123456789""#),
                Edit("payload.caseReference", ##""#1""##),
                Edit("header.to", #""zorgcoordinatie-zuid-limburg""#),
            ]
        )
        let error = try #require(failure { _ = try SealedContent.decode(from: data, now: testNow) })
        #expect(error.contains(path: "payload.person.bsn", rule: "bsn"))
        #expect(error.contains(path: "payload.caseReference", rule: "case-reference"))
        #expect(error.contains(path: "header.to", rule: "self-addressed"))
        #expect(error.issues.count == 3)
    }

    @Test func documentLevelRules() {
        let cases: [(String, String)] = [
            ("[]", "object"), ("\"text\"", "object"), ("42", "object"), ("{\"header\": ", "json"), ("", "json"),
        ]
        for (text, rule) in cases {
            let error = failure { _ = try SealedContent.decode(from: Data(text.utf8)) }
            #expect(error?.contains(path: "", rule: rule) == true, "\(text): \(String(describing: error))")
        }
        let big = Data(repeating: 0x20, count: Limits.documentBytes + 1)
        #expect(failure { _ = try SealedContent.decode(from: big) }?.contains(path: "", rule: "too-large") == true)
    }

    @Test func headerCanBeDecodedOnItsOwn() throws {
        let header = try Examples.content(.signal).header
        #expect(try RoutingHeader.decode(from: header.encoded()) == header)
        var edited = header
        edited.expiresAt = edited.createdAt.addingTimeInterval(Limits.maxLifetime)
        #expect(failure { try edited.validate() } == nil, "exactly 90 days is allowed")
        edited.expiresAt.addTimeInterval(1)
        #expect(failure { try edited.validate() }?.contains(path: "header.expiresAt", rule: "max-lifetime") == true)
    }

    @Test func payloadCanBeDecodedOnItsOwn() throws {
        let payload = try Examples.content(.enforcementSignal).payload
        #expect(try Payload.decode(from: payload.encoded(), now: testNow) == payload)
        var tree = try #require(try JSONSerialization.jsonObject(with: payload.encoded()) as? [String: Any])
        tree["medication"] = "none"
        let data = try JSONSerialization.data(withJSONObject: tree)
        #expect(
            failure { _ = try Payload.decode(from: data, now: testNow) }?.contains(
                path: "payload.medication",
                rule: "no-victim-health-data"
            ) == true
        )
    }
}

@Suite struct OptionalListTests {
    /// Empty lists may be left out; they decode as empty and the message stays valid.
    @Test func emptyListsMayBeOmitted() throws {
        let notice = try Examples.edited(.intakeNotice, [Edit("payload.dependants", nil), Edit("payload.safetyRisks", nil)])
        guard case .intakeNotice(let decoded) = try SealedContent.decode(from: notice, now: testNow).payload else {
            Issue.record("not an intake notice")
            return
        }
        #expect(decoded.dependants.isEmpty && decoded.safetyRisks.isEmpty)
        let signal = try Examples.edited(.enforcementSignal, [Edit("payload.observations", nil)])
        _ = try SealedContent.decode(from: signal, now: testNow)
    }
}
