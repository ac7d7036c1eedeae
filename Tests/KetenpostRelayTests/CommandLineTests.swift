import Foundation
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import Testing

/// The partner commands (`send`, `inbox`, `status`) against a live relay, as a partner runs them.
@Suite struct CommandLineTests {
    var binary: String { ServeProcessTests.binary }

    /// The completion scripts that README.md tells users to install (swift-argument-parser's).
    @Test func completionScriptsNameTheSubcommands() async throws {
        for shellName in ["bash", "zsh", "fish"] {
            let script = try await shell("'\(binary)' --generate-completion-script \(shellName)")
            #expect(script.status == 0, "\(shellName): \(script.stderr)")
            for word in ["serve", "audit", "verify", "store-url", "report"] {
                #expect(script.stdout.contains(word), "\(shellName) script lacks \(word)")
            }
        }
    }

    /// `help SUBCOMMAND` ends with examples, and the root help points to it and to completions.
    @Test func helpShowsExamples() async throws {
        let root = try await shell("'\(binary)' --help")
        #expect(
            root.status == 0 && root.stdout.contains("ketenpost help <subcommand>") && root.stdout.contains("--generate-completion-script"),
            "\(root.stdout)"
        )
        for command in [
            "serve", "send", "inbox", "status", "seal", "open", "admin", "admin partners add", "admin certs rotate",
            "audit verify", "report", "conformance", "pki issue", "demo",
        ] {
            let help = try await shell("'\(binary)' help \(command)")
            #expect(help.status == 0, "\(command): \(help.stderr)")
            #expect(help.stdout.contains("Examples:\n  ketenpost \(command.split(separator: " ").first!)"), "\(command): \(help.stdout)")
        }
    }

    /// An unknown `--log-format` stops `serve` before anything starts, naming the choices.
    @Test func logFormatIsOneOfTwo() async throws {
        let result = try await shell("'\(binary)' serve --log-format xml --config /nonexistent.yaml")
        #expect(result.status != 0)
        #expect(result.stderr.contains("'text'") && result.stderr.contains("'json'"), "\(result.stderr)")
        #expect(!result.stderr.contains("nonexistent"), "the option must be refused before the configuration is read: \(result.stderr)")
    }

    /// `ketenpost-bench` names its four commands; the operators' `ketenpost` no longer has them.
    @Test func benchmarksAreTheirOwnProgram() async throws {
        let help = try await shell("'\(ServeProcessTests.bench)' --help")
        #expect(help.status == 0)
        for command in ["envelope", "relay", "backlog", "crash-test"] { #expect(help.stdout.contains(command), "\(help.stdout)") }
        let old = try await shell("'\(binary)' bench envelope")
        #expect(old.status != 0)
    }

    @Test func sendInboxStatusAndRetryWithTheSameID() async throws {
        try await withRelay { h in
            let pki = h.shared.pki
            let common = "--relay \(h.url.absoluteString) --trust '\(pki.caCertificatePath)'"
            let outbox = h.work.appendingPathComponent("outbox").path
            let id = UUID().uuidString.lowercased()
            let send =
                """
                '\(binary)' send --identity '\(pki.partnerDirectory(municipality))' \(common) --outbox '\(outbox)' --id \(id) --to \
                \(coordinator) --type signal --region GM1903 --in '\(Root.path("config/examples/signal.json"))'
                """
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
            // The receipt in the outbox checks with the stock openssl command (the relay's certificate
            // is a TLS server certificate: no S/MIME purpose).
            let check = try await shell(
                """
                openssl cms -verify -binary -inform DER -in '\(outbox)/\(id).receipt.der' -CAfile '\(pki.caCertificatePath)' \
                -purpose sslserver
                """
            )
            #expect(check.status == 0 && check.stdout.contains(id), "\(check.stderr)")

            let received = h.work.appendingPathComponent("received")
            let inbox = try await shell(
                "'\(binary)' inbox --identity '\(pki.partnerDirectory(coordinator))' \(common) --wait 2 --out '\(received.path)' --ack"
            )
            #expect(inbox.status == 0, "\(inbox.stderr)")
            #expect(inbox.stderr.contains("received \(id) signal from \(municipality), acknowledged"))
            let document = try Data(contentsOf: received.appendingPathComponent("\(id).json"))
            #expect(try SealedContent.decode(from: document).header.id.uuidString.lowercased() == id)

            let status = try await shell(
                "'\(binary)' status --identity '\(pki.partnerDirectory(municipality))' \(common) --receipts '\(h.work.path)/receipts' \(id)"
            )
            #expect(status.status == 0, "\(status.stderr)")
            #expect(status.stdout.contains("\"state\" : \"acknowledged\""))
            #expect(status.stdout.components(separatedBy: "\"verified\" : true").count == 3)
            let third = try await shell(
                """
                openssl cms -verify -binary -inform DER -in '\(h.work.path)/receipts/\(id).acknowledgement.der' -CAfile \
                '\(pki.caCertificatePath)'
                """
            )
            #expect(third.status == 0 && third.stdout.contains("\"issuer\":\"\(coordinator)\""), "\(third.stderr)")
            // Another partner cannot see it.
            let other = try await shell("'\(binary)' status --identity '\(pki.partnerDirectory(shelter))' \(common) \(id)")
            #expect(other.status == 1 && other.stderr.contains("message.not-found"))
        }
    }

    /// A message that is bad in itself (here: a payload that breaks its schema, sealed and
    /// signed correctly) gets a signed rejection; one that may open later (sealed for a key
    /// this identity does not hold yet) is left for redelivery, and `inbox` exits with 2.
    @Test func contentFailuresAreRejectedOthersLeftForRedelivery() async throws {
        try await withRelay { h in
            let sender = try h.client(municipality)
            let recipientCert = try Certificate.load(pemFile: h.shared.pki.partnerDirectory(coordinator) + "/cert.pem")
            let content = try Drafting.content(type: .signal, from: municipality, to: coordinator, payload: try h.example(.signal))
            var inner = try JSONSerialization.jsonObject(with: content.encoded()) as! [String: Any]
            var payload = inner["payload"] as! [String: Any]
            payload["urgency"] = "whenever"
            inner["payload"] = payload
            let innerDER = try CMS.sign(
                try JSONSerialization.data(withJSONObject: inner),
                signer: sender.identity.certificate,
                key: sender.identity.key,
                extraCertificates: sender.identity.chain
            )
            let encrypted = try CMS.encrypt(innerDER, for: recipientCert)
            let outer =
                "{\"envelope\":\"\(encrypted.base64EncodedString())\",\"format\":\"ketenpost/envelope/v1\",\"header\":\(String(decoding: content.header.encoded(), as: UTF8.self))}"
            let bad = try await sender.submit(
                sealed: try CMS.sign(
                    Data(outer.utf8),
                    signer: sender.identity.certificate,
                    key: sender.identity.key,
                    extraCertificates: sender.identity.chain
                ),
                header: content.header
            )

            // Sealed for a valid certificate of the coordinator that its identity does not hold.
            let ca = try h.shared.pki.loadCA()
            let key = try PrivateKey.generate(.ecP256)
            let entry = PartnerEntry(id: coordinator, name: "x", role: .careCoordinator, oin: "00000003000000000010")
            let stranger = try ca.issue(DevelopmentPKI.partnerProfile(entry, keyKind: .ecP256, now: Date()), for: key)
            let other = try Drafting.content(type: .signal, from: municipality, to: coordinator, payload: try h.example(.signal))
            let later = try await sender.submit(
                sealed: try Envelope.seal(other, from: sender.identity, to: [stranger], trust: try h.trust),
                header: other.header
            )

            let binary = self.binary
            let pki = h.shared.pki
            let inbox = try await shell(
                """
                '\(binary)' inbox --identity '\(pki.partnerDirectory(coordinator))' --relay \(h.url.absoluteString) --trust \
                '\(pki.caCertificatePath)' --ack
                """
            )
            #expect(inbox.status == 2, "\(inbox.stderr)")
            #expect(
                inbox.stderr.contains("refused \(bad.header.id.uuidString.lowercased()): payload.invalid, rejection receipt sent"),
                "\(inbox.stderr)"
            )
            #expect(
                inbox.stderr.contains(
                    "could not open \(later.header.id.uuidString.lowercased()): envelope.not-recipient; left for redelivery"
                )
            )
            let rejected = try await sender.status(bad.header.id)
            #expect(rejected.state == "rejected")
            #expect(rejected.reasonCode == "payload.invalid")
            #expect(try await sender.status(later.header.id).state == "delivered")
        }
    }
}
