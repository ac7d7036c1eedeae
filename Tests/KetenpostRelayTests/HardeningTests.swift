import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import KetenpostStore
import Logging
import Testing

/// What a hostile partner, a compromised relay or a local user could still do (issue 20):
/// each case here failed before its fix. docs/SECURITY.md lists them with the attacks.
@Suite struct HardeningTests {
    /// TLS 1.2 only with ECDHE and an AEAD cipher; TLS 1.3 as is. `openssl s_client` offers one
    /// suite at a time, as an old or careless client would.
    @Test func theRelayOffersOnlyForwardSecretAEADSuites() async throws {
        try await withRelay { h in
            let me = h.shared.identityDirectory("gemeente-maastricht")
            func handshake(_ options: String) async throws -> Bool {
                let result = try await shell(
                    """
                    openssl s_client -connect 127.0.0.1:\(h.relay.port) -CAfile '\(h.shared.pki.caCertificatePath)' \
                    -cert '\(me)/cert.pem' -key '\(me)/key.pem' \(options) </dev/null 2>&1
                    """
                )
                return result.stdout.contains("Cipher is ") && !result.stdout.contains("Cipher is (NONE)")
            }
            for options in ["-tls1_3", "-tls1_2 -cipher ECDHE-ECDSA-AES128-GCM-SHA256", "-tls1_2 -cipher ECDHE-ECDSA-CHACHA20-POLY1305"] {
                let accepted = try await handshake(options)
                #expect(accepted, "\(options)")
            }
            // Refused: CBC with ECDHE, RSA key transport, and anything below TLS 1.2.
            for options in [
                "-tls1_2 -cipher ECDHE-ECDSA-AES128-SHA", "-tls1_2 -cipher ECDHE-ECDSA-AES256-SHA384",
                "-tls1_2 -cipher AES128-GCM-SHA256", "-tls1_1 -cipher 'DEFAULT:@SECLEVEL=0'",
            ] {
                let accepted = try await handshake(options)
                #expect(!accepted, "\(options)")
            }
        }
    }

    /// The data folder 0700, the database, WAL and shared memory 0600, whatever the umask; a
    /// database others can read stops start-up with what to do; a folder others may list is logged.
    @Test func theStoreFilesAreForTheRelaysUserAlone() async throws {
        try await withRelay { h in
            _ = try await h.client("gemeente-maastricht").send(
                payload: try h.example(.signal),
                type: .signal,
                to: "zorgcoordinatie-zuid-limburg"
            )
            let database = h.configuration.store.path
            #expect(mode(URL(fileURLWithPath: database).deletingLastPathComponent().path) == 0o700)
            for file in [database, database + "-wal", database + "-shm"] {
                #expect(mode(file) == 0o600, "\(file)")
            }
        }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-modes-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: folder) }
        let database = folder.appendingPathComponent("data/store.sqlite").path
        _ = try await StoreFactory.open(.sqlite(path: database))
        #expect(chmod(database, 0o644) == 0)
        do {
            _ = try await StoreFactory.open(.sqlite(path: database))
            Issue.record("a database others can read was opened")
        } catch {
            #expect(error.code == .configInvalid)
            #expect(error.message.contains("mode 644") && error.message.contains("chmod 600"), "\(error.message)")
        }
        #expect(chmod(database, 0o600) == 0)
        #expect(chmod(folder.appendingPathComponent("data").path, 0o755) == 0)
        let lines = LogLines()
        _ = try await StoreFactory.open(
            .sqlite(path: database),
            logger: Logger(label: "test", factory: { _ in CapturingLogHandler(lines: lines) })
        )
        #expect(lines.all.contains { $0.hasPrefix("warning") && $0.contains("mode 755") }, "\(lines.all)")
    }

    func mode(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode) & 0o777
    }

    /// A partner suspended while its upload is under way: the relay checks again once the body is
    /// in, and stores nothing. (Before: authorization only at the request head, 202.)
    @Test func aSubmissionIsCheckedAgainAfterItsUpload() async throws {
        try await withRelay({ $0.directory.refreshInterval = 0.2 }) { h in
            let sender = try h.client("gemeente-maastricht")
            let entry = try await sender.directory("zorgcoordinatie-zuid-limburg")
            let certificates = try entry.certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
            let content = try Drafting.content(
                type: .signal,
                from: "gemeente-maastricht",
                to: "zorgcoordinatie-zuid-limburg",
                payload: try h.example(.signal)
            )
            let sealed = try Envelope.seal(content, from: sender.identity, to: certificates, trust: try h.trust)
            let me = h.shared.identityDirectory("gemeente-maastricht")
            let connection = try InteractiveProcess(
                """
                exec openssl s_client -quiet -nocommands -connect 127.0.0.1:\(h.relay.port) -CAfile \
                '\(h.shared.pki.caCertificatePath)' -cert '\(me)/cert.pem' -key '\(me)/key.pem'
                """
            )
            defer { connection.stop() }
            connection.send(
                """
                POST /v1/messages HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/cms\r\nContent-Length: \
                \(sealed.count)\r\n\r\n
                """
            )
            connection.send(bytes: sealed.prefix(sealed.count / 2))
            try await Task.sleep(for: .milliseconds(300))
            _ = try await h.admin().adminSuspend("gemeente-maastricht")
            try await Task.sleep(for: .milliseconds(500))
            connection.send(bytes: sealed.dropFirst(sealed.count / 2))
            #expect(await connection.waitFor("HTTP/1.1 ", count: 1), "\(connection.text)")
            #expect(connection.text.contains("HTTP/1.1 403") && connection.text.contains("auth.partner-suspended"), "\(connection.text)")
            #expect(try await h.store.pendingCount(recipient: "zorgcoordinatie-zuid-limburg") == 0)
        }
    }

    /// A partner suspended during its long poll gets nothing leased when the wait ends (a lease
    /// that ran out during the wait makes a message available again). (Before: leased, 200.)
    @Test func aLongPollIsCheckedAgainBeforeItLeases() async throws {
        try await withRelay({ $0.directory.refreshInterval = 0.2 }) { h in
            let coordinator = "zorgcoordinatie-zuid-limburg"
            _ = try await h.client("gemeente-maastricht").send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let me = h.shared.identityDirectory(coordinator)
            func curl(_ query: String) async throws -> Shell {
                try await shell(
                    """
                    curl -sS --max-time 30 --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(me)/cert.pem' --key '\(me)/key.pem' \
                    -w '\\n%{http_code}' 'https://127.0.0.1:\(h.relay.port)/v1/inbox?\(query)'
                    """
                )
            }
            let first = try await curl("max=1")
            #expect(first.stdout.hasSuffix("200") && first.stdout.contains("leaseToken"), "\(first.stdout)")
            // Nothing to lease now; the wait ends after 3 s with one more lease attempt.
            async let poll = curl("max=1&wait=3")
            try await Task.sleep(for: .milliseconds(800))
            _ = try await h.admin().adminSuspend(coordinator)
            try await Task.sleep(for: .milliseconds(500))
            h.clock.advance(by: 120)  // the first lease (30 s) has run out
            let second = try await poll
            let refused = second.stdout.hasSuffix("403") && second.stdout.contains("auth.partner-suspended")
            let leased = second.stdout.contains("leaseToken")
            #expect(refused && !leased, "\(second.stdout.suffix(200))")
        }
    }

    /// SECURITY.md's promise that the relay cannot forge a sender (issue 20). A compromised
    /// relay puts messages straight into its store, signed by certificates from the right CA
    /// with the sender's commonName: one with the sender's OIN that was never registered, one
    /// with another organisation's OIN. Both chain and carry the name, so the envelope alone
    /// opens them; the recipient's client refuses both.
    @Test func aCompromisedRelayCannotForgeASender() async throws {
        try await withRelay { h in
            let coordinator = "zorgcoordinatie-zuid-limburg"
            let recipient = try h.client(coordinator)
            let certificates = try await recipient.directory(coordinator).certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
            let unregistered = try Identity.load(directory: h.shared.identityDirectory("unregistered-maastricht"))
            var other = try #require(try PartnerDirectoryFile.load(path: h.shared.partnersFile).partner("gemeente-maastricht"))
            other.oin = "00000009999999999999"
            let otherKey = try PrivateKey.generate(.ecP256)
            let otherOrganisation = try Identity(
                certificate: try h.shared.pki.loadCA().issue(
                    DevelopmentPKI.partnerProfile(other, keyKind: .ecP256, now: Date()),
                    for: otherKey
                ),
                key: otherKey,
                chain: try h.shared.pki.chain()
            )
            var forged: [UUID: String] = [:]
            for (signer, expected) in [(unregistered, "auth.signer-unregistered"), (otherOrganisation, "signer.not-sender")] {
                let content = try Drafting.content(
                    type: .signal,
                    from: "gemeente-maastricht",
                    to: coordinator,
                    payload: try h.example(.signal)
                )
                let sealed = try Envelope.seal(content, from: signer, to: certificates, trust: try h.trust)
                // What a CA-issued certificate shows is all the envelope checks by itself.
                _ = try Envelope.open(sealed, as: recipient.identity, trust: try h.trust)
                let now = Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
                _ = try await h.store.submit(
                    NewMessage(
                        id: content.header.id,
                        sender: "gemeente-maastricht",
                        recipient: coordinator,
                        type: MessageType.signal.rawValue,
                        priority: "normal",
                        correlationId: nil,
                        exploitationForm: nil,
                        region: nil,
                        digest: Digest.sha256(sealed).hexString,
                        body: sealed,
                        acceptedAt: now,
                        expiresAt: now.addingTimeInterval(3600),
                        acceptanceReceipt: Data([0x30, 0x00])
                    )
                )
                forged[content.header.id] = expected
            }
            let received = try await recipient.receive(max: 10)
            #expect(received.count == 2)
            for item in received {
                guard case .failure(let error) = item.result else {
                    Issue.record("a forged message from gemeente-maastricht was opened")
                    continue
                }
                #expect(error.code.rawValue == forged[item.id], "\(error)")
            }
            // A genuine message from the same partner still opens.
            _ = try await h.client("gemeente-maastricht").send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let genuine = try await recipient.receive(max: 10)
            #expect(genuine.count == 1)
            if case .failure(let error) = genuine.first?.result { Issue.record("the genuine message was refused: \(error)") }
        }
    }

    /// The relay's certificate (TLS server, no S/MIME purpose) cannot sign a message, and a
    /// partner's (S/MIME, no TLS server purpose) named like the relay cannot sign an acceptance receipt.
    @Test func relayAndPartnerSignaturesCannotStandInForEachOther() async throws {
        try await withRelay { h in
            let relay = try Identity.load(directory: h.shared.pki.relayDirectory)
            let coordinator = "zorgcoordinatie-zuid-limburg"
            let recipient = try h.client(coordinator)
            let certificates = try await recipient.directory(coordinator).certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) }
            let content = try Drafting.content(type: .signal, from: relay.partnerID, to: coordinator, payload: try h.example(.signal))
            let byRelay = try Envelope.seal(content, from: relay, to: certificates, trust: try h.trust)
            await expectRelayError(.certificatePurpose) { _ = try Envelope.open(byRelay, as: recipient.identity, trust: try h.trust) }

            var named = try #require(try PartnerDirectoryFile.load(path: h.shared.partnersFile).partner("gemeente-maastricht"))
            named.id = DevelopmentPKI.relayID
            let key = try PrivateKey.generate(.ecP256)
            let impostor = try Identity(
                certificate: try h.shared.pki.loadCA().issue(DevelopmentPKI.partnerProfile(named, keyKind: .ecP256, now: Date()), for: key),
                key: key,
                chain: try h.shared.pki.chain()
            )
            let receipt = Receipt(
                kind: .acceptance,
                messageId: UUID(),
                messageDigest: Digest.sha256(Data("m".utf8)).hexString,
                from: "gemeente-maastricht",
                to: coordinator,
                issuer: DevelopmentPKI.relayID,
                disposition: .accepted,
                time: Date(timeIntervalSince1970: Date().timeIntervalSince1970.rounded(.down))
            )
            let forged = try SignedReceipt.sign(receipt, as: impostor)
            await expectRelayError(.certificatePurpose) {
                _ = try SignedReceipt.verify(forged, trust: try h.trust, signer: .relay(DevelopmentPKI.relayID))
            }
            // The relay's own receipts pass that check.
            let sent = try await h.client("gemeente-maastricht").send(payload: try h.example(.signal), type: .signal, to: coordinator)
            #expect(sent.receipt.issuer == DevelopmentPKI.relayID)
        }
    }

    /// Issue 20: inbox answers bounded by bytes (at least one message each), streamed; a sender's
    /// undelivered messages bounded by a storage quota with a clear 507 and a metric.
    @Test func inboxBatchesAreBoundedByBytesAndSendersByAQuota() async throws {
        try await withRelay({
            $0.limits.maxBatchBytes = 1
            $0.limits.maxPendingBytesPerSender = 40_000
        }) { h in
            let coordinator = "zorgcoordinatie-zuid-limburg"
            let sender = try h.client("gemeente-maastricht")
            var accepted = 0
            var refusal: KetenpostError?
            for _ in 0..<30 {
                do {
                    _ = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
                    accepted += 1
                } catch let error as KetenpostError {
                    refusal = error
                    break
                }
            }
            #expect(refusal?.code == .quotaExceeded && refusal?.detail == ["HTTP 507"], "\(String(describing: refusal))")
            #expect(refusal?.message.contains("limits.maxPendingBytesPerSender") == true)
            #expect(accepted >= 2 && accepted < 30, "\(accepted) accepted")
            #expect(try await h.store.pendingCount(recipient: coordinator) == accepted)
            // Another sender is not affected.
            _ = try await h.client(municipality).send(payload: try h.example(.signal), type: .signal, to: coordinator)

            // Every answer holds one message (a batch always holds at least one).
            let recipient = try h.client(coordinator)
            var fetched = 0
            while true {
                let batch = try await recipient.receive(max: 10)
                if batch.isEmpty { break }
                #expect(batch.count == 1)
                for item in batch { _ = try await recipient.acknowledge(item) }
                fetched += batch.count
            }
            #expect(fetched == accepted + 1)
            // Once the recipient has fetched them and the quota has been counted again, the sender may send.
            try await Task.sleep(for: .seconds(6))
            _ = try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
            let metrics = try await h.admin().metrics()
            #expect(metrics.contains("ketenpost_quota_refusals_total{partner=\"gemeente-maastricht\"} 1"))
        }
    }
}
