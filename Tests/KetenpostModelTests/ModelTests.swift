import Foundation
import Testing

@testable import KetenpostModel

/// Values built in Swift (as a case system would) validate and encode like decoded ones.
@Suite struct ModelTests {
    let created = Date(timeIntervalSince1970: 1_795_946_400.9)

    func header(
        _ type: MessageType,
        from: String = "opvang-zuid-limburg",
        to: String = "zorgcoordinatie-zuid-limburg",
        correlationId: UUID? = nil
    ) -> RoutingHeader {
        RoutingHeader(
            type: type,
            from: from,
            to: to,
            createdAt: created,
            expiresAt: created.addingTimeInterval(7 * 86_400),
            correlationId: correlationId,
            region: "GM1903"
        )
    }

    @Test func builtSealedContentRoundTrips() throws {
        let payload = Payload.intakeResponse(
            IntakeResponse(
                outcome: .waitlisted,
                reason: "Vol tot 3 december; plek gereserveerd.",
                legalBasis: .vitalInterest
            )
        )
        let content = SealedContent(header: header(.intakeResponse, correlationId: UUID()), payload: payload)
        try content.validate(now: testNow)
        #expect(try SealedContent.decode(from: content.encoded(), now: testNow) == content)
        #expect(content.header.priority == .normal)

        let keys = try #require(try JSONSerialization.jsonObject(with: content.encoded()) as? [String: Any]).keys
        #expect(Set(keys) == ["header", "payload"])
    }

    @Test func builtPayloadsValidate() throws {
        let contact = Contact(organisation: "zorgcoordinatie-zuid-limburg", name: "Anaïs Brouwers", email: "a.brouwers@example.nl")
        let payloads: [Payload] = [
            .signal(
                Signal(
                    observedOn: "2026-11-20",
                    place: Place(description: "Station Maastricht"),
                    exploitationForms: [.sexual, .criminal],
                    indicators: ["minderjarig lijkend meisje met oudere man"],
                    urgency: .acute,
                    reporter: contact,
                    consent: .notPossible,
                    legalBasis: .vitalInterest
                )
            ),
            .referral(
                Referral(person: Person(alias: "S."), needs: [.housing], legalBasis: .legalTask, caseReference: "A-1", contact: contact)
            ),
            .intakeNotice(
                IntakeNotice(
                    person: Person(givenName: "Siân"),
                    languages: ["cy"],
                    urgency: .normal,
                    requestedArrival: created,
                    referrer: contact,
                    legalBasis: .consent
                )
            ),
            .enforcementSignal(
                EnforcementSignal(
                    subjects: [Subject(kind: .business, name: "X B.V.")],
                    suspicion: "…",
                    requestedRoute: .fiscal,
                    legalBasis: .legalTask
                )
            ),
            .registration(
                Registration(
                    exploitationForm: .unknown,
                    year: 2026,
                    municipality: "GM0935",
                    referralSource: .police,
                    pseudonym: "abcd-1234",
                    legalBasis: .legalTask
                )
            ),
        ]
        for payload in payloads {
            try payload.validate(now: testNow)
            #expect(try Payload.decode(from: payload.encoded(), now: testNow) == payload)
        }
    }

    @Test func payloadTypeMustMatchHeader() {
        let content = SealedContent(
            header: header(.signal),
            payload: .intakeResponse(IntakeResponse(outcome: .accepted, arrivalInstructions: "Welkom.", legalBasis: .consent))
        )
        let error = failure { try content.validate(now: testNow) }
        #expect(error?.contains(path: "payload.schema", rule: "type-mismatch") == true)
        #expect(error?.contains(path: "header.correlationId", rule: "required") == false)
    }

    @Test func headerRulesOnBuiltValues() {
        var h = header(.signal, to: "opvang-zuid-limburg")
        #expect(failure { try h.validate() }?.contains(path: "header.to", rule: "self-addressed") == true)
        h = header(.signal)
        h.expiresAt = h.createdAt.addingTimeInterval(-1)
        #expect(failure { try h.validate() }?.contains(path: "header.expiresAt", rule: "order") == true)
        h.expiresAt = h.createdAt.addingTimeInterval(91 * 86_400)
        #expect(failure { try h.validate() }?.contains(path: "header.expiresAt", rule: "max-lifetime") == true)
        h = header(.signal)
        h.region = "GM 1903"
        #expect(failure { try h.validate() }?.contains(path: "header.region", rule: "cbs-code") == true)
    }

    @Test func wrongSchemaOnAStructIsCaught() throws {
        let data = Data(#"{"schema":"ketenpost/signal/v1","outcome":"accepted","arrivalInstructions":"x","legalBasis":"consent"}"#.utf8)
        let response = try KetenpostJSON.decodeStrict(IntakeResponse.self, from: data, path: "payload")
        let error = failure { try Payload.intakeResponse(response).validate() }
        #expect(error?.contains(path: "payload.schema", rule: "schema") == true)
    }
}

@Suite struct HeaderFieldNameTests {
    /// `RoutingHeader.fieldNames` must list exactly what a fully populated header encodes.
    @Test func fieldNamesMatchTheEncoding() throws {
        let header = RoutingHeader(
            type: .intakeResponse,
            from: "opvang-zuid-limburg",
            to: "politie-avim-limburg",
            createdAt: testNow,
            expiresAt: testNow.addingTimeInterval(3600),
            correlationId: UUID(),
            priority: .urgent,
            exploitationForm: .criminal,
            region: "GM1903"
        )
        let object = try JSONSerialization.jsonObject(with: header.encoded()) as? [String: Any]
        #expect(Set(object?.keys.map { $0 } ?? []) == RoutingHeader.fieldNames)
    }
}
