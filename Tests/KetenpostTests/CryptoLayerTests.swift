import Foundation
import Testing
@testable import Ketenpost
import KetenpostCrypto
import KetenpostModel

@Suite struct ReceiptTests {
    let pki = TestPKI.shared

    func receipt(issuer: String, disposition: Receipt.Disposition = .processed, reason: String? = nil) -> Receipt {
        Receipt(kind: .acknowledgement, messageId: UUID(),
                messageDigest: Digest.sha256(Data("m".utf8)).hexString, from: "gemeente-eijsden-margraten",
                to: issuer, issuer: issuer, disposition: disposition, reasonCode: reason,
                time: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down)))
    }

    @Test func signedReceiptVerifies() throws {
        let coordinator = try pki.identity("zorgcoordinatie-zuid-limburg")
        for value in [receipt(issuer: coordinator.partnerID), receipt(issuer: coordinator.partnerID, disposition: .rejected, reason: "schema.invalid")] {
            let signed = try SignedReceipt.sign(value, as: coordinator)
            let verified = try SignedReceipt.verify(signed, trust: pki.trust)
            #expect(verified.receipt == value)
            #expect(verified.signer == coordinator.certificate)
        }
    }

    @Test func tamperedForgedAndMalformedReceipts() throws {
        let coordinator = try pki.identity("zorgcoordinatie-zuid-limburg")
        var signed = try SignedReceipt.sign(receipt(issuer: coordinator.partnerID), as: coordinator)
        flip(&signed, at: "processed")
        expectCode(.receiptSignatureInvalid) { _ = try SignedReceipt.verify(signed, trust: pki.trust) }
        // Signed by another partner than the issuer it names.
        let shelter = try pki.identity("opvang-zuid-limburg")
        let forged = try CMS.sign(receipt(issuer: coordinator.partnerID).encoded(), signer: shelter.certificate, key: shelter.key)
        expectCode(.receiptSignerMismatch) { _ = try SignedReceipt.verify(forged, trust: pki.trust) }
        expectCode(.receiptSignerMismatch) { _ = try SignedReceipt.sign(receipt(issuer: coordinator.partnerID), as: shelter) }
        // Not a receipt at all.
        let notReceipt = try CMS.sign(Data("{}".utf8), signer: shelter.certificate, key: shelter.key)
        expectCode(.receiptInvalid) { _ = try SignedReceipt.verify(notReceipt, trust: pki.trust) }
        expectCode(.receiptMalformed) { _ = try SignedReceipt.verify(Data([0x30, 0x03, 0x02]), trust: pki.trust) }
        // Untrusted signer.
        let evil = try pki.makeIdentity("zorgcoordinatie-zuid-limburg", issuer: pki.evilCA)
        expectCode(.certificateUntrusted) { _ = try SignedReceipt.verify(try SignedReceipt.sign(receipt(issuer: evil.partnerID), as: evil), trust: pki.trust) }
    }
}

@Suite struct DevelopmentPKITests {
    @Test func createsEveryIdentityOnceWithPrivateKeys() throws {
        let dir = try Paths.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let partners = try PartnerDirectoryFile.load(path: Paths.root.appendingPathComponent("config/partners.yaml").path)
        #expect(partners.partners.count == 8)
        let pki = DevelopmentPKI(directory: dir.path)
        let first = try pki.create(partners: partners.partners)
        #expect(first.created.count == 12)   // CA, relay, administrator, conformance echo, 8 partners
        let second = try pki.create(partners: partners.partners)
        #expect(second.created.isEmpty)

        let trust = try TrustStore.load(anchorsFile: pki.caCertificatePath, crlFiles: [pki.crlPath])
        for partner in partners.partners {
            let identity = try Identity.load(directory: pki.partnerDirectory(partner.id))
            #expect(identity.partnerID == partner.id)
            #expect(identity.certificate.subjectSerialNumber == partner.oin)
            #expect(identity.certificate.organization == partner.name)
            try trust.verify(identity.certificate, for: .contentSigning)
            try trust.verify(identity.certificate, for: .tlsClient)
            let mode = try FileManager.default.attributesOfItem(atPath: pki.partnerDirectory(partner.id) + "/key.pem")[.posixPermissions] as? Int
            #expect(mode == 0o600)
        }
        #expect(try Identity.load(directory: pki.partnerDirectory("belastingdienst")).certificate.keyAlgorithm == .rsa)
        #expect(try Identity.load(directory: pki.partnerDirectory("gemeente-maastricht")).certificate.keyAlgorithm == .ec)
        let relay = try Identity.load(directory: pki.relayDirectory)
        try trust.verify(relay.certificate, for: .tlsServer)
        // The administrator's certificate is for TLS client authentication only.
        let admin = try Identity.load(directory: pki.adminDirectory)
        try trust.verify(admin.certificate, for: .tlsClient)
        #expect(throws: CryptoError.self) { try trust.verify(admin.certificate, for: .contentSigning) }
        #expect(FileManager.default.fileExists(atPath: pki.adminDirectory + "/key.pem"))
        // A partner certificate is not a TLS server certificate.
        #expect(throws: CryptoError.self) {
            try trust.verify(try Identity.load(directory: pki.partnerDirectory("gemeente-maastricht")).certificate, for: .tlsServer)
        }
    }

    @Test func invalidPartnerFilesNameTheKey() throws {
        let cases: [(String, String)] = [
            ("partners:\n  - id: Bad_Id\n    name: X\n    role: police\n    oin: \"00000001000000000040\"\n", "partners[0].id"),
            ("partners:\n  - id: a-b\n    name: X\n    role: pirate\n    oin: \"00000001000000000040\"\n", "role"),
            ("partners:\n  - id: a-b\n    name: X\n    role: police\n    oin: 123\n", "oin"),
            ("partners:\n  - id: a-b\n    role: police\n    oin: \"00000001000000000040\"\n", "name"),
            ("partners:\n  - id: a-b\n    name: X\n    role: police\n    oin: \"00000001000000000040\"\n  - id: a-b\n    name: Y\n    role: police\n    oin: \"00000001000000000040\"\n", "twice"),
        ]
        for (text, mention) in cases {
            let error = expectCode(.configInvalid) { _ = try PartnerDirectoryFile.parse(text, file: "partners.yaml") }
            #expect(error?.message.contains(mention) == true, "\(String(describing: error)) should mention \(mention)")
            #expect(error?.message.hasPrefix("partners.yaml") == true)
        }
    }

    @Test func identityWithMismatchedKeyIsRefused() throws {
        let pki = TestPKI.shared
        let a = try pki.makeIdentity("gemeente-maastricht")
        let b = try pki.makeIdentity("gemeente-maastricht")
        expectCode(.identityInvalid) { _ = try Identity(certificate: a.certificate, key: b.key) }
        expectCode(.identityInvalid) { _ = try Identity.load(directory: "/nonexistent") }
    }
}

@Suite struct ConcurrencyAndLeaks {
    let pki = TestPKI.shared

    @Test func manyTasksSealAndOpenAtOnce() async throws {
        let senders = try ["gemeente-eijsden-margraten", "gemeente-maastricht", "politie-avim-limburg"].map { try pki.identity($0) }
        let recipient = try pki.identity("zorgcoordinatie-zuid-limburg")
        let rsaRecipient = try pki.identity("zorgcoordinatie-zuid-limburg", key: .rsa(bits: 2048))
        let trust = pki.trust
        try await withThrowingTaskGroup(of: Int.self) { group in
            for task in 0..<16 {
                group.addTask {
                    var done = 0
                    for round in 0..<15 {
                        let sender = senders[(task + round) % senders.count]
                        let content = try exampleContent(.signal, from: sender.partnerID, to: recipient.partnerID)
                        let sealed = try Envelope.seal(content, from: sender, to: [recipient.certificate, rsaRecipient.certificate], trust: TestPKI.shared.trust)
                        let opener = round % 2 == 0 ? recipient : rsaRecipient
                        let opened = try Envelope.open(sealed, as: opener, trust: trust)
                        guard opened.content == content, opened.sender == sender.certificate else { return done }
                        // A failure in one task must not leave errors behind for the next operation on this thread.
                        var broken = sealed
                        broken[broken.count / 2] ^= 0xFF
                        _ = try? Envelope.open(broken, as: opener, trust: trust)
                        done += 1
                    }
                    return done
                }
            }
            var total = 0
            for try await count in group { total += count }
            #expect(total == 16 * 15)
        }
    }
}

