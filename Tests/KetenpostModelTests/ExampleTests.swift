import Foundation
import Testing

@testable import KetenpostModel

@Suite struct ExampleTests {
    @Test(arguments: MessageType.allCases)
    func exampleDecodesAndValidates(_ type: MessageType) throws {
        let content = try Examples.content(type)
        #expect(content.header.type == type)
        #expect(content.payload.type == type)
        #expect(type.allowedRecipientRoles.isEmpty == false)
    }

    @Test(arguments: MessageType.allCases)
    func exampleRoundTrips(_ type: MessageType) throws {
        let content = try Examples.content(type)
        let bytes = content.encoded()
        let again = try SealedContent.decode(from: bytes, now: testNow)
        #expect(again == content)
        #expect(again.encoded() == bytes, "canonical encoding must be stable")
    }

    @Test func examplesUseNonASCIIAndSurviveIt() throws {
        let referral = try Examples.content(.referral)
        guard case .referral(let r) = referral.payload else {
            Issue.record("not a referral")
            return
        }
        #expect(r.contact.name == "Anaïs Brouwers")
        let text = String(decoding: referral.encoded(), as: UTF8.self)
        #expect(text.contains("Anaïs"), "non-ASCII is written as UTF-8, not escaped")
        #expect(Identifiers.isValidBSN(try #require(r.person.bsn)))
    }

    @Test func intakeResponseAnswersTheIntakeNotice() throws {
        let notice = try Examples.content(.intakeNotice)
        let response = try Examples.content(.intakeResponse)
        #expect(response.header.correlationId == notice.header.id)
        #expect(response.header.to == notice.header.from)
    }
}
