import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostModel
import KetenpostProvisioning
import Testing

@testable import KetenpostEnvelope

/// Builds an envelope layer by layer, so that tests can do what an attacker or a broken
/// partner would: change one layer and re-sign another.
struct Forge {
    var innerJSON: Data
    var innerSigner: Identity
    var outerSigner: Identity
    var outerHeader: RoutingHeader
    var recipients: [Certificate]
    var mutateInner: (inout Data) -> Void = { _ in }
    var mutateEncrypted: (inout Data) -> Void = { _ in }

    init(_ content: SealedContent, sender: Identity, recipients: [Certificate]) {
        innerJSON = content.encoded()
        innerSigner = sender
        outerSigner = sender
        outerHeader = content.header
        self.recipients = recipients
    }

    func build() throws -> Data {
        var inner = try CMS.sign(innerJSON, signer: innerSigner.certificate, key: innerSigner.key)
        mutateInner(&inner)
        var encrypted = try CMS.encrypt(inner, for: recipients)
        mutateEncrypted(&encrypted)
        let outer = Envelope.OuterContent(envelope: encrypted.base64EncodedString(), format: Envelope.format, header: outerHeader)
        return try CMS.sign(try KetenpostJSON.encoder().encode(outer), signer: outerSigner.certificate, key: outerSigner.key)
    }
}

/// Flips one bit of the first occurrence of `marker` in `data`.
func flip(_ data: inout Data, at marker: String) {
    guard let range = data.range(of: Data(marker.utf8)) else {
        Issue.record("marker \(marker) not found")
        return
    }
    data[range.lowerBound] ^= 0x01
}

@Suite struct EnvelopeRoundTrips {
    let pki = TestPKI.shared

    @Test(arguments: [
        (PrivateKey.Kind.ecP256, PrivateKey.Kind.ecP256),
        (.rsa(bits: 2048), .ecP256),
        (.ecP256, .rsa(bits: 2048)),
        (.rsa(bits: 2048), .rsa(bits: 2048)),
    ])
    func roundTrip(senderKind: PrivateKey.Kind, recipientKind: PrivateKey.Kind) throws {
        let sender = try pki.identity(municipality, key: senderKind)
        let recipient = try pki.identity(coordinator, key: recipientKind)
        let content = try exampleContent(.signal, from: municipality, to: coordinator)
        let sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust)
        let opened = try Envelope.open(sealed, as: recipient, trust: pki.trust)
        #expect(opened.content == content)
        #expect(opened.sender == sender.certificate)
        #expect(opened.digest == Digest.sha256(sealed).hexString)
        // The relay's view holds the header but nothing of the payload.
        let outer = try Envelope.readOuter(sealed, trust: pki.trust)
        #expect(outer.header == content.header)
    }

    @Test(arguments: MessageType.allCases)
    func everyTypeRoundTrips(type: MessageType) throws {
        let (from, to) = routes[type]!
        let sender = try pki.identity(from)
        let recipient = try pki.identity(to)
        let content = try exampleContent(type, from: from, to: to)
        let opened = try Envelope.open(
            try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust),
            as: recipient,
            trust: pki.trust
        )
        #expect(opened.content == content)
        #expect(opened.payload.type == type)
    }

    @Test func twoRecipientCertificatesEitherKeyOpens() throws {
        let sender = try pki.identity(municipality)
        let oldKey = try pki.makeIdentity(coordinator)
        let newKey = try pki.makeIdentity(coordinator, key: .rsa(bits: 2048))
        let content = try exampleContent(.signal, from: municipality, to: coordinator)
        let sealed = try Envelope.seal(content, from: sender, to: [oldKey.certificate, newKey.certificate], trust: TestPKI.shared.trust)
        #expect(try Envelope.open(sealed, as: oldKey, trust: pki.trust).content == content)
        #expect(try Envelope.open(sealed, as: newKey, trust: pki.trust).content == content)
        // A third key of the same partner that was not sealed for cannot open it.
        let other = try pki.makeIdentity(coordinator)
        expectCode(.notARecipient) { _ = try Envelope.open(sealed, as: other, trust: pki.trust) }
    }

    @Test func smallestAndLargestPayloads() throws {
        let sender = try pki.identity("politie-avim-limburg")
        let recipient = try pki.identity("belastingdienst")
        // Only required fields.
        let minimal =
            #"{"schema":"ketenpost/enforcement-signal/v1","subjects":[{"kind":"business","name":"B.V."}],"suspicion":"x","requestedRoute":"fiscal","legalBasis":"legal-task"}"#
        // About 1 MiB of non-ASCII text in the largest fields the schema allows.
        let chunk = String(repeating: "Zoë één 東京 🚐 ", count: 10_000 / 16)
        let observations = Array(repeating: chunk, count: 100)
        let large = try JSONSerialization.data(withJSONObject: [
            "schema": "ketenpost/enforcement-signal/v1",
            "subjects": [["kind": "business", "name": "Uitzendbureau Zuid B.V.", "kvkNumber": "12345678"]],
            "suspicion": chunk, "observations": observations, "requestedRoute": "criminal", "legalBasis": "legal-task",
        ])
        #expect(large.count > 1_000_000)
        for payload in [Data(minimal.utf8), large] {
            let content = try Drafting.content(
                type: .enforcementSignal,
                from: "politie-avim-limburg",
                to: "belastingdienst",
                payload: payload
            )
            let sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust)
            let opened = try Envelope.open(sealed, as: recipient, trust: pki.trust)
            #expect(opened.content == content)
        }
    }
}

let routes: [MessageType: (String, String)] = [
    .signal: (municipality, coordinator),
    .referral: (coordinator, "opvang-zuid-limburg"),
    .intakeNotice: (coordinator, "opvang-zuid-limburg"),
    .intakeResponse: ("opvang-zuid-limburg", coordinator),
    .enforcementSignal: (municipality, "politie-avim-limburg"),
    .registration: (coordinator, "registratiepunt-mensenhandel"),
    .referralResponse: ("opvang-zuid-limburg", coordinator),
]

@Suite struct EnvelopeRejections {
    let pki = TestPKI.shared

    func parts() throws -> (Identity, Identity, SealedContent) {
        (try pki.identity(municipality), try pki.identity(coordinator), try exampleContent(.signal, from: municipality, to: coordinator))
    }

    @Test func flippedByteInOuterLayer() throws {
        let (sender, recipient, content) = try parts()
        var sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust)
        flip(&sealed, at: Envelope.format)
        expectCode(.outerSignatureInvalid) { _ = try Envelope.open(sealed, as: recipient, trust: pki.trust) }
        expectCode(.outerSignatureInvalid) { _ = try Envelope.readOuter(sealed, trust: pki.trust) }
    }

    @Test func flippedByteInEncryptedLayer() throws {
        let (sender, recipient, content) = try parts()
        var forge = Forge(content, sender: sender, recipients: [recipient.certificate])
        forge.mutateEncrypted = { $0[$0.count - 1] ^= 0x01 }  // the GCM tag
        expectCode(.decryptionFailed) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
        forge.mutateEncrypted = { $0[$0.count - 40] ^= 0x01 }  // the ciphertext
        expectCode(.decryptionFailed) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
    }

    @Test func flippedByteInInnerLayer() throws {
        let (sender, recipient, content) = try parts()
        var forge = Forge(content, sender: sender, recipients: [recipient.certificate])
        forge.mutateInner = { flip(&$0, at: "\"payload\"") }
        expectCode(.innerSignatureInvalid) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
    }

    @Test func editedOuterHeaderIsCaught() throws {
        let (sender, recipient, content) = try parts()
        // Edited without re-signing: the outer signature breaks.
        var sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust)
        flip(&sealed, at: "\"priority\":\"normal\"")
        expectCode(.outerSignatureInvalid) { _ = try Envelope.open(sealed, as: recipient, trust: pki.trust) }
        // Edited and re-signed (a relay or sender that rewrites the header): the inner copy disagrees.
        var forge = Forge(content, sender: sender, recipients: [recipient.certificate])
        forge.outerHeader.priority = .urgent
        expectCode(.headerMismatch) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
        // Swapped for another message's header.
        forge.outerHeader = try exampleContent(.signal, from: municipality, to: coordinator).header
        expectCode(.headerMismatch) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
    }

    @Test func misroutedMessageIsCaught() throws {
        let (sender, recipient, content) = try parts()
        let sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust)
        let shelter = try pki.identity("opvang-zuid-limburg")
        expectCode(.recipientMismatch) { _ = try Envelope.open(sealed, as: shelter, trust: pki.trust) }
    }

    @Test func wrongRecipientKey() throws {
        let (sender, _, content) = try parts()
        let sealedFor = try pki.makeIdentity(coordinator)
        let sealed = try Envelope.seal(content, from: sender, to: [sealedFor.certificate], trust: TestPKI.shared.trust)
        for kind in [PrivateKey.Kind.ecP256, .rsa(bits: 2048)] {
            let other = try pki.makeIdentity(coordinator, key: kind)
            expectCode(.notARecipient) { _ = try Envelope.open(sealed, as: other, trust: pki.trust) }
        }
        // An RSA recipient entry with an EC key of the same partner, and the reverse.
        let rsaRecipient = try pki.makeIdentity(coordinator, key: .rsa(bits: 2048))
        let sealedRSA = try Envelope.seal(content, from: sender, to: [rsaRecipient.certificate], trust: TestPKI.shared.trust)
        expectCode(.notARecipient) { _ = try Envelope.open(sealedRSA, as: sealedFor, trust: pki.trust) }
    }

    @Test func untrustedCA() throws {
        let (_, recipient, content) = try parts()
        let evil = try pki.makeIdentity(municipality, issuer: pki.evilCA)
        let sealed = try Envelope.seal(content, from: evil, to: [recipient.certificate], trust: TestPKI.shared.trust)
        expectCode(.certificateUntrusted) { _ = try Envelope.open(sealed, as: recipient, trust: pki.trust) }
    }

    @Test func expiredAndNotYetValidCertificates() throws {
        let (_, recipient, content) = try parts()
        let day: TimeInterval = 86_400
        let expired = try pki.makeIdentity(municipality, notBefore: pki.now - 30 * day, notAfter: pki.now - day)
        expectCode(.certificateExpired) {
            _ = try Envelope.open(
                try Envelope.seal(content, from: expired, to: [recipient.certificate], trust: TestPKI.shared.trust),
                as: recipient,
                trust: pki.trust
            )
        }
        let future = try pki.makeIdentity(municipality, notBefore: pki.now + day, notAfter: pki.now + 30 * day)
        expectCode(.certificateNotYetValid) {
            _ = try Envelope.open(
                try Envelope.seal(content, from: future, to: [recipient.certificate], trust: TestPKI.shared.trust),
                as: recipient,
                trust: pki.trust
            )
        }
    }

    @Test func revokedCertificateAndStaleCRL() throws {
        let (_, recipient, content) = try parts()
        let sender = try pki.makeIdentity(municipality)
        let sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust)
        let fresh = try pki.ca.revocationList(revokedSerials: [], lastUpdate: pki.now - 60, nextUpdate: pki.now + 86_400)
        let withFresh = try TrustStore(anchors: [pki.ca.certificate], revocationLists: [fresh])
        #expect(try Envelope.open(sealed, as: recipient, trust: withFresh).content == content)

        let revoking = try pki.ca.revocationList(
            revokedSerials: [sender.certificate.serialNumberHex],
            lastUpdate: pki.now - 60,
            nextUpdate: pki.now + 86_400
        )
        let withRevocation = try TrustStore(anchors: [pki.ca.certificate], revocationLists: [revoking])
        expectCode(.certificateRevoked) { _ = try Envelope.open(sealed, as: recipient, trust: withRevocation) }

        // A CRL past its next update no longer vouches for anyone: the door closes.
        let stale = try pki.ca.revocationList(revokedSerials: [], lastUpdate: pki.now - 2 * 86_400, nextUpdate: pki.now - 86_400)
        let withStale = try TrustStore(anchors: [pki.ca.certificate], revocationLists: [stale])
        expectCode(.certificateCRLUnavailable) { _ = try Envelope.open(sealed, as: recipient, trust: withStale) }
    }

    @Test func signerThatIsNotTheSender() throws {
        let (_, recipient, content) = try parts()
        let maastricht = try pki.identity("gemeente-maastricht")
        // Sealing refuses to sign someone else's header.
        expectCode(.signerNotSender) {
            _ = try Envelope.seal(content, from: maastricht, to: [recipient.certificate], trust: TestPKI.shared.trust)
        }
        // A forged message, signed on both layers by another (trusted) partner.
        var forge = Forge(content, sender: maastricht, recipients: [recipient.certificate])
        expectCode(.signerNotSender) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
        // Only the inner layer by another partner.
        forge.outerSigner = try pki.identity(municipality)
        expectCode(.signerMismatch) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
        // Another certificate of the same partner on the inner layer is a mismatch too.
        forge.innerSigner = try pki.makeIdentity(municipality)
        expectCode(.signerMismatch) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
    }

    @Test func schemaViolationsNameTheFieldPath() throws {
        let (sender, recipient, content) = try parts()
        var forge = Forge(content, sender: sender, recipients: [recipient.certificate])
        var document = try JSONSerialization.jsonObject(with: content.encoded()) as! [String: Any]
        var payload = document["payload"] as! [String: Any]
        payload["urgency"] = "whenever"
        document["payload"] = payload
        forge.innerJSON = try JSONSerialization.data(withJSONObject: document)
        let error = expectCode(.payloadInvalid) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }
        #expect(error?.message.contains("payload.urgency") == true)

        // A payload of another type than the header says.
        let referral = try exampleContent(.referral, from: municipality, to: coordinator)
        document["payload"] = try JSONSerialization.jsonObject(with: referral.payload.encodedForTest())
        forge.innerJSON = try JSONSerialization.data(withJSONObject: document)
        expectCode(.payloadInvalid) { _ = try Envelope.open(try forge.build(), as: recipient, trust: pki.trust) }

        // Drafting refuses invalid payloads before anything is sealed, with the path.
        let bad = expectCode(.payloadInvalid) {
            _ = try Drafting.content(
                type: .signal,
                from: municipality,
                to: coordinator,
                payload: Data(#"{"schema":"ketenpost/signal/v1"}"#.utf8)
            )
        }
        #expect(bad?.message.contains("payload.") == true)
    }

    @Test func invalidOuterHeaderIsRejected() throws {
        let (sender, recipient, content) = try parts()
        var forge = Forge(content, sender: sender, recipients: [recipient.certificate])
        forge.outerHeader.region = "GM19"
        let error = expectCode(.headerInvalid) { _ = try Envelope.readOuter(try forge.build(), trust: pki.trust) }
        #expect(error?.message.contains("header.region") == true)
    }

    /// The outer JSON document must be exactly the documented shape.
    @Test func malformedOuterDocuments() throws {
        let (sender, recipient, content) = try parts()
        let header = String(decoding: content.header.encoded(), as: UTF8.self)
        let envelope = try CMS.encrypt(Data("x".utf8), for: [recipient.certificate]).base64EncodedString()
        func signed(_ json: String) throws -> Data {
            try CMS.sign(Data(json.utf8), signer: sender.certificate, key: sender.key)
        }
        let cases: [(String, KetenpostError.Code)] = [
            (#"{"envelope":"\#(envelope)","format":"ketenpost/envelope/v2","header":\#(header)}"#, .outerContentInvalid),
            (#"{"envelope":"\#(envelope)","format":"ketenpost/envelope/v1","header":\#(header),"extra":1}"#, .outerContentInvalid),
            (#"{"envelope":"\#(envelope)","format":"ketenpost/envelope/v1"}"#, .outerContentInvalid),
            (#"{"envelope":"\#(envelope)","envelope":"AA==","format":"ketenpost/envelope/v1","header":\#(header)}"#, .outerContentInvalid),
            (#"{"envelope":"not base64!","format":"ketenpost/envelope/v1","header":\#(header)}"#, .outerContentInvalid),
            (#"{"envelope":42,"format":"ketenpost/envelope/v1","header":\#(header)}"#, .outerContentInvalid),
            (#"[1,2,3]"#, .outerContentInvalid),
            (#"not json"#, .outerContentInvalid),
            (
                #"{"envelope":"\#(envelope)","format":"ketenpost/envelope/v1","header":\#(header.dropLast()),"region":null}}"#,
                .headerInvalid
            ),
            (#"{"envelope":"\#(envelope)","format":"ketenpost/envelope/v1","header":\#(header.dropLast()),"secret":"x"}}"#, .headerInvalid),
            (
                #"{"envelope":"\#(envelope)","format":"ketenpost/envelope/v1","header":\#(header.replacingOccurrences(of: #""priority":"normal""#, with: #""priority":"high""#))}"#,
                .headerInvalid
            ),
        ]
        for (json, code) in cases {
            expectCode(code) { _ = try Envelope.readOuter(try signed(json), trust: pki.trust) }
        }
        // The documented shape itself is accepted by the relay's check.
        let good = #"{"envelope":"\#(envelope)","format":"ketenpost/envelope/v1","header":\#(header)}"#
        #expect(try Envelope.readOuter(try signed(good), trust: pki.trust).header == content.header)
    }

    @Test func truncatedGarbageAndEmptyInput() throws {
        let (sender, recipient, content) = try parts()
        let sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: TestPKI.shared.trust)
        for length in [1, 10, sealed.count / 2, sealed.count - 1] {
            expectCode(.envelopeMalformed) { _ = try Envelope.open(sealed.prefix(length), as: recipient, trust: pki.trust) }
        }
        var generator = SystemRandomNumberGenerator()
        let garbage = Data((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) })
        expectCode(.envelopeMalformed) { _ = try Envelope.open(garbage, as: recipient, trust: pki.trust) }
        expectCode(.envelopeMalformed) { _ = try Envelope.open(sealed + Data([0]), as: recipient, trust: pki.trust) }
        expectCode(.envelopeMalformed) { _ = try Envelope.open(Data("-----BEGIN CMS-----".utf8), as: recipient, trust: pki.trust) }
        expectCode(.inputEmpty) { _ = try Envelope.open(Data(), as: recipient, trust: pki.trust) }
        expectCode(.inputTooLarge) { _ = try Envelope.open(Data(count: Envelope.maximumSize + 1), as: recipient, trust: pki.trust) }
        // A valid CMS of the wrong kind: the encrypted layer on its own.
        let encryptedOnly = try CMS.encrypt(Data("x".utf8), for: [recipient.certificate])
        expectCode(.envelopeMalformed) { _ = try Envelope.open(encryptedOnly, as: recipient, trust: pki.trust) }
    }

    @Test func sealingToAnotherPartnersCertificateIsRefused() throws {
        let (sender, _, content) = try parts()
        let shelter = try pki.identity("opvang-zuid-limburg")
        expectCode(.recipientCertificateMismatch) {
            _ = try Envelope.seal(content, from: sender, to: [shelter.certificate], trust: TestPKI.shared.trust)
        }
        expectCode(.recipientCertificateMismatch) { _ = try Envelope.seal(content, from: sender, to: [], trust: TestPKI.shared.trust) }
    }

    @Test func errorsCarryNoContent() throws {
        let (sender, recipient, _) = try parts()
        // A canary in a personal field must not surface in any error text.
        let canary = "CANARY-\(UUID().uuidString)"
        var json = try JSONSerialization.jsonObject(with: try Paths.example(.signal)) as! [String: Any]
        var person = json["person"] as? [String: Any] ?? [:]
        person["alias"] = canary
        person["bsn"] = "123"
        json["person"] = person
        do {
            _ = try Drafting.content(
                type: .signal,
                from: municipality,
                to: coordinator,
                payload: try JSONSerialization.data(withJSONObject: json)
            )
            Issue.record("an invalid BSN was accepted")
        } catch {
            #expect(!"\(error)".contains(canary))
            #expect(!String(reflecting: error).contains(canary))
        }
        _ = sender
        _ = recipient
    }
}

extension Payload {
    func encodedForTest() throws -> Data { try KetenpostJSON.encoder().encode(self) }
}

/// Review fixes: what a sender encrypts to, and what a recipient acts on.
@Suite struct RecipientCertificateAndExpiryTests {
    let pki = TestPKI.shared

    @Test func sealingChecksEveryRecipientCertificate() throws {
        let sender = try pki.identity(municipality)
        let content = try exampleContent(.signal, from: municipality, to: coordinator)
        // A certificate with the recipient's name from a CA nobody trusts (a relay slipping in its own key).
        let foreign = try pki.makeIdentity(coordinator, issuer: pki.evilCA)
        expectCode(.certificateUntrusted) { _ = try Envelope.seal(content, from: sender, to: [foreign.certificate], trust: pki.trust) }
        // Expired.
        let expired = try pki.makeIdentity(coordinator, notBefore: pki.now - 10 * 86_400, notAfter: pki.now - 86_400)
        expectCode(.certificateExpired) { _ = try Envelope.seal(content, from: sender, to: [expired.certificate], trust: pki.trust) }
        // Revoked.
        let good = try pki.makeIdentity(coordinator)
        let crl = try pki.ca.revocationList(
            revokedSerials: [good.certificate.serialNumberHex],
            lastUpdate: pki.now - 60,
            nextUpdate: pki.now + 86_400
        )
        let withCRL = try TrustStore(anchors: [pki.ca.certificate], revocationLists: [crl])
        expectCode(.certificateRevoked) { _ = try Envelope.seal(content, from: sender, to: [good.certificate], trust: withCRL) }
        // Not meant for encryption: a signing-only key usage.
        let key = try PrivateKey.generate(.ecP256)
        var profile = DevelopmentPKI.partnerProfile(pki.entry(coordinator), keyKind: .ecP256, now: pki.now)
        profile.keyUsage = "critical,digitalSignature"
        let signingOnly = try pki.ca.issue(profile, for: key)
        expectCode(.certificatePurpose) { _ = try Envelope.seal(content, from: sender, to: [signingOnly], trust: pki.trust) }
        // One bad certificate among good ones refuses the whole seal.
        expectCode(.certificateUntrusted) {
            _ = try Envelope.seal(content, from: sender, to: [good.certificate, foreign.certificate], trust: pki.trust)
        }
    }

    @Test func expiredMessagesAreNotActedOn() throws {
        let sender = try pki.identity(municipality)
        let recipient = try pki.identity(coordinator)
        var options = Drafting.Options()
        options.lifetime = 3600
        let content = try Drafting.content(
            type: .signal,
            from: municipality,
            to: coordinator,
            payload: try Paths.example(.signal),
            options: options
        )
        let sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate], trust: pki.trust)
        let later = Date().addingTimeInterval(2 * 3600)
        expectCode(.messageExpired) { _ = try Envelope.open(sealed, as: recipient, trust: pki.trust, at: later) }
        #expect(try Envelope.open(sealed, as: recipient, trust: pki.trust, at: later, allowExpired: true).content == content)
        // Within the five minutes of tolerated clock skew it still opens.
        #expect(try Envelope.open(sealed, as: recipient, trust: pki.trust, at: Date().addingTimeInterval(3600 + 120)).content == content)
    }

    /// AES-CBC EnvelopedData (what `openssl cms -encrypt -aes-256-cbc` makes) is refused: without
    /// authentication, distinct failures after decryption would be a padding oracle.
    @Test func unauthenticatedEncryptionIsRefused() async throws {
        let sender = try pki.identity(municipality)
        let recipient = try pki.identity(coordinator)
        let content = try exampleContent(.signal, from: municipality, to: coordinator)
        let dir = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let inner = try CMS.sign(content.encoded(), signer: sender.certificate, key: sender.key)
        try inner.write(to: dir.appendingPathComponent("inner.der"))
        try recipient.certificate.pem.write(to: dir.appendingPathComponent("to.pem"), atomically: true, encoding: .utf8)
        let result = try await run(
            opensslPath,
            [
                "cms", "-encrypt", "-binary", "-aes-256-cbc", "-in", "inner.der", "-outform", "DER",
                "-out", "envelope.der", "-recip", "to.pem",
            ],
            directory: dir
        )
        #expect(result.status == 0, "\(result.stderr)")
        let encrypted = try Data(contentsOf: dir.appendingPathComponent("envelope.der"))
        let outer = Envelope.OuterContent(envelope: encrypted.base64EncodedString(), format: Envelope.format, header: content.header)
        let sealed = try CMS.sign(try KetenpostJSON.encoder().encode(outer), signer: sender.certificate, key: sender.key)
        expectCode(.envelopeMalformed) { _ = try Envelope.open(sealed, as: recipient, trust: pki.trust) }
    }
}

private let municipality = "gemeente-eijsden-margraten"
private let coordinator = "zorgcoordinatie-zuid-limburg"
