import Foundation
import Testing

@testable import KetenpostModel

@Suite struct IdentifierTests {
    @Test func bsnElevenTest() {
        #expect(Identifiers.isValidBSN("111222333"))
        #expect(Identifiers.isValidBSN("123456782"))
        #expect(!Identifiers.isValidBSN("123456789"))
        #expect(!Identifiers.isValidBSN("000000000"), "all zeros passes the sum but is not a number")
        #expect(!Identifiers.isValidBSN("11122233"))
        #expect(!Identifiers.isValidBSN("1112223330"))
        #expect(!Identifiers.isValidBSN("١١١٢٢٢٣٣٣"), "only ASCII digits")
        #expect(!Identifiers.isValidBSN("11122233a"))
    }

    @Test func otherIdentifiers() {
        #expect(Identifiers.isValidKvK("71234560"))
        #expect(!Identifiers.isValidKvK("7123456"))
        #expect(!Identifiers.isValidKvK("7123456x"))
        #expect(Identifiers.isValidOIN("00000001000000019030"))
        #expect(!Identifiers.isValidOIN("0000000100000001903"))
        #expect(Identifiers.isValidCBSMunicipality("GM1903"))
        #expect(!Identifiers.isValidCBSMunicipality("gm1903"))
        #expect(!Identifiers.isValidCBSMunicipality("GM193"))
        #expect(!Identifiers.isValidCBSMunicipality("GM19031"))
        #expect(!Identifiers.isValidCBSMunicipality("PV31"))
    }

    @Test func partnerIDs() {
        for id in ["gemeente-eijsden-margraten", "belastingdienst", "a1", "0-relay", String(repeating: "a", count: 63)] {
            #expect(PartnerID.isValid(id), "\(id)")
        }
        for id in ["a", "-relay", "Gemeente", "gemeente eijsden", "gemeente_em", "zorgcoördinatie", "", String(repeating: "a", count: 64)] {
            #expect(!PartnerID.isValid(id), "\(id)")
        }
    }

    @Test func messageTypeTable() {
        #expect(MessageType.signal.schemaID == "ketenpost/signal/v1")
        #expect(MessageType.enforcementSignal.schemaID == "ketenpost/enforcement-signal/v1")
        #expect(MessageType(schemaID: "ketenpost/intake-notice/v1") == .intakeNotice)
        #expect(MessageType(schemaID: "ketenpost/intake-notice/v2") == nil)
        #expect(MessageType.intakeResponse.allowedSenderRoles == [.shelter])
        #expect(MessageType.intakeResponse.allowedRecipientRoles == [.careCoordinator, .police, .municipality])
        #expect(MessageType.signal.allows(from: .shelter, to: .careCoordinator))
        #expect(!MessageType.signal.allows(from: .careCoordinator, to: .careCoordinator))
        #expect(MessageType.enforcementSignal.allowedRecipientRoles == [.police, .taxOffice, .municipality])
        #expect(!MessageType.enforcementSignal.allowedSenderRoles.contains(.careCoordinator))
        #expect(MessageType.registration.allowedRecipientRoles == [.registry])
    }
}

extension IdentifierTests {
    @Test func patternsCheckTheFirstCharacterToo() {
        #expect(ASCII.matches("#1", count: 1...64, rest: ASCII.isLetterOrDigit) == false)
        #expect(ASCII.matches("a1", count: 1...64, rest: ASCII.isLetterOrDigit))
        #expect(ASCII.matches("-a", count: 1...64, first: ASCII.isLower, rest: { _ in true }) == false)
    }
}
