import Foundation
import Ketenpost
import KetenpostClient
import KetenpostCrypto
import KetenpostModel
import Testing

/// The partner commands (`send`, `inbox`, `status`) against a live relay, as a partner runs them.
@Suite struct CommandLineTests {
    var binary: String { ServeProcessTests.binary }

    @Test func sendInboxStatusAndRetryWithTheSameID() async throws {
        try await withRelay { h in
            let pki = h.shared.pki
            let common = "--relay \(h.url.absoluteString) --trust '\(pki.caCertificatePath)'"
            let outbox = h.work.appendingPathComponent("outbox").path
            let id = UUID().uuidString.lowercased()
            let send = "'\(binary)' send --identity '\(pki.partnerDirectory(municipality))' \(common) --outbox '\(outbox)' --id \(id) --to \(coordinator) --type signal --region GM1903 --in '\(Root.path("config/examples/signal.json"))'"
            let first = try await shell(send)
            #expect(first.status == 0, "\(first.stderr)")
            #expect(first.stdout.contains("\"receiptVerified\" : true"))
            #expect(FileManager.default.fileExists(atPath: "\(outbox)/\(id).der"))
            #expect(FileManager.default.fileExists(atPath: "\(outbox)/\(id).receipt.der"))
            // The same command again resubmits the same bytes: the original receipt, no second message.
            let again = try await shell(send)
            #expect(again.status == 0, "\(again.stderr)")
            #expect(again.stdout.contains("\"duplicate\" : true"))
            #expect(try await h.store.pendingCount(recipient: coordinator) == 1)
            // The receipt in the outbox checks with the stock openssl command.
            let check = try await shell("openssl cms -verify -binary -inform DER -in '\(outbox)/\(id).receipt.der' -CAfile '\(pki.caCertificatePath)'")
            #expect(check.status == 0 && check.stdout.contains(id), "\(check.stderr)")

            let received = h.work.appendingPathComponent("received")
            let inbox = try await shell("'\(binary)' inbox --identity '\(pki.partnerDirectory(coordinator))' \(common) --wait 2 --out '\(received.path)' --ack")
            #expect(inbox.status == 0, "\(inbox.stderr)")
            #expect(inbox.stderr.contains("received \(id) signal from \(municipality), acknowledged"))
            let document = try Data(contentsOf: received.appendingPathComponent("\(id).json"))
            #expect(try SealedContent.decode(from: document).header.id.uuidString.lowercased() == id)

            let status = try await shell("'\(binary)' status --identity '\(pki.partnerDirectory(municipality))' \(common) --receipts '\(h.work.path)/receipts' \(id)")
            #expect(status.status == 0, "\(status.stderr)")
            #expect(status.stdout.contains("\"state\" : \"acknowledged\""))
            #expect(status.stdout.components(separatedBy: "\"verified\" : true").count == 3)
            let third = try await shell("openssl cms -verify -binary -inform DER -in '\(h.work.path)/receipts/\(id).acknowledgement.der' -CAfile '\(pki.caCertificatePath)'")
            #expect(third.status == 0 && third.stdout.contains("\"issuer\":\"\(coordinator)\""), "\(third.stderr)")
            // Another partner cannot see it.
            let other = try await shell("'\(binary)' status --identity '\(pki.partnerDirectory(shelter))' \(common) \(id)")
            #expect(other.status == 1 && other.stderr.contains("message.not-found"))
        }
    }

    @Test func aMessageThatCannotBeOpenedGetsASignedRejection() async throws {
        try await withRelay { h in
            // Sealed for a certificate of the coordinator that its identity does not hold.
            let ca = try h.shared.pki.loadCA()
            let key = try PrivateKey.generate(.ecP256)
            let entry = PartnerEntry(id: coordinator, name: "x", role: .careCoordinator, oin: "00000003000000000010")
            let stranger = try ca.issue(DevelopmentPKI.partnerProfile(entry, keyKind: .ecP256, now: Date()), for: key)
            let sender = try h.client(municipality)
            let content = try Drafting.content(type: .signal, from: municipality, to: coordinator, payload: try h.example(.signal))
            let sent = try await sender.submit(sealed: try Envelope.seal(content, from: sender.identity, to: [stranger]), header: content.header)

            let binary = self.binary
            let pki = h.shared.pki
            let inbox = try await shell("'\(binary)' inbox --identity '\(pki.partnerDirectory(coordinator))' --relay \(h.url.absoluteString) --trust '\(pki.caCertificatePath)' --ack")
            #expect(inbox.status == 0, "\(inbox.stderr)")
            #expect(inbox.stderr.contains("refused \(sent.header.id.uuidString.lowercased()): envelope.not-recipient, rejection receipt sent"))
            let status = try await sender.status(sent.header.id)
            #expect(status.state == "rejected")
            #expect(status.reasonCode == "envelope.not-recipient")
        }
    }
}
