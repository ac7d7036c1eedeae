import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import KetenpostStore
import Synchronization
import Testing

/// Certificate lifecycle against a running relay over mutual TLS: rotation with overlap in
/// both directions, revocation, stale CRLs, suspension, administration rights, the relay's own
/// certificate replaced while connections stay open, expiry warnings.
@Suite struct LifecycleTests {
    /// Sends a signal from `sender` to `coordinator`, sealed for whatever the directory hands out now.
    @discardableResult
    func send(_ h: Harness, from sender: RelayClient) async throws -> RelayClient.Sent {
        try await sender.send(payload: try h.example(.signal), type: .signal, to: coordinator)
    }

    @Test func rotationWithOverlapForTheRecipient() async throws {
        try await withRelay { h in
            let admin = try h.admin()
            let sender = try h.client(municipality)
            let oldDirectory = h.shared.pki.partnerDirectory(coordinator)
            let new = try h.issue(coordinator)

            // Before: one encryption certificate; a message sealed for the old key only.
            #expect(try await sender.directory(coordinator).certificates.count == 1)
            let beforeRotation = try await send(h, from: sender)

            let rotated = try await admin.adminRotate(
                coordinator,
                API.AdminRotation(
                    certificate: API.AdminCertificateInput(pem: new.certificate.pem),
                    overlapSeconds: 86_400
                )
            )
            #expect(rotated.certificates.map(\.state).sorted() == ["active", "retiring"])

            // During the overlap: both certificates are handed out and `send` seals to both.
            #expect(try await sender.directory(coordinator).certificates.count == 2)
            let duringOverlap = try await send(h, from: sender)
            let queuedForLater = try await send(h, from: sender)

            // The recipient with only the old key and with only the new key both connect (TLS),
            // and each opens what was sealed for it; receipts signed with either key are accepted.
            let oldOnly = try h.client(identity: oldDirectory)
            let newOnly = try h.client(identity: new.directory)
            let oldBatch = try await oldOnly.receive(max: 10)
            #expect(Set(oldBatch.map(\.id)) == [beforeRotation.header.id, duringOverlap.header.id, queuedForLater.header.id])
            for item in oldBatch {
                guard case .success = item.result else {
                    Issue.record("old key could not open \(item.id): \(item.result)")
                    continue
                }
            }
            // The old key acknowledges the message sealed before the rotation.
            try await oldOnly.acknowledge(try #require(oldBatch.first { $0.id == beforeRotation.header.id }))
            // The new key opens what was sealed during the overlap (after the old lease lapses).
            h.clock.advance(by: 31)
            let newBatch = try await newOnly.receive(max: 10)
            let fromOverlap = try #require(newBatch.first { $0.id == duringOverlap.header.id })
            guard case .success = fromOverlap.result else {
                Issue.record("new key could not open: \(fromOverlap.result)")
                return
            }
            try await newOnly.acknowledge(fromOverlap)
            #expect(try await sender.status(duringOverlap.header.id).state == "acknowledged")
            #expect(try await sender.status(beforeRotation.header.id).state == "acknowledged")

            // After the overlap: only the new certificate is handed out; the old one is refused at
            // the handshake, and a receipt signed with it is refused too.
            h.clock.advance(by: 86_400)
            #expect(try await sender.directory(coordinator).certificates == [new.certificate.pem])
            await expectHandshakeFailure { _ = try await h.client(identity: oldDirectory).inbox() }
            // The message queued during the overlap stays deliverable; a recipient holding both
            // keys opens it, and a message sealed before the rotation too.
            let both = try h.client(identity: new.directory, decryption: [oldDirectory])
            let sealedForOldOnly = try Envelope.seal(
                try Drafting.content(type: .signal, from: municipality, to: coordinator, payload: try h.example(.signal)),
                from: sender.identity,
                to: [try #require(Certificate.load(pemFile: oldDirectory + "/cert.pem").first)],
                trust: try h.trust
            )
            // (Sealed for the old key alone, as a sender with a stale directory copy would.)
            _ = try await sender.submit(sealedForOldOnly)
            h.clock.advance(by: 31)
            let last = try await both.receive(max: 10)
            #expect(Set(last.map(\.id)).isSuperset(of: [queuedForLater.header.id]))
            for item in last {
                guard case .success = item.result else {
                    Issue.record("both keys could not open \(item.id): \(item.result)")
                    continue
                }
                // A receipt signed with the new key is accepted after the overlap.
                try await both.acknowledge(item)
            }
            #expect(try await sender.status(queuedForLater.header.id).state == "acknowledged")

            // A receipt signed with the retired key is refused (over the new key's connection).
            let another = try await send(h, from: sender)
            let leased = try await newOnly.inbox(max: 10).messages
            let item = try #require(leased.first { $0.id == another.header.id })
            let oldIdentity = try Identity.load(directory: oldDirectory)
            let receipt = Receipt(
                kind: .acknowledgement,
                messageId: item.id,
                messageDigest: another.response.digest,
                from: municipality,
                to: coordinator,
                issuer: coordinator,
                disposition: .processed,
                time: Date()
            )
            await expectRelayError(.certificateInactive) {
                _ = try await newOnly.acknowledge(
                    id: item.id,
                    leaseToken: item.leaseToken,
                    receipt: try SignedReceipt.sign(receipt, as: oldIdentity)
                )
            }
        }
    }

    @Test func rotationWithOverlapForTheSender() async throws {
        try await withRelay { h in
            let admin = try h.admin()
            let oldSender = try h.client(municipality)
            let new = try h.issue(municipality)
            _ = try await admin.adminRotate(
                municipality,
                API.AdminRotation(
                    certificate: API.AdminCertificateInput(pem: new.certificate.pem),
                    overlapSeconds: 3600
                )
            )
            let newSender = try h.client(identity: new.directory)
            // During the overlap both signing (and TLS) certificates are accepted.
            let a = try await send(h, from: oldSender)
            let b = try await send(h, from: newSender)
            // The recipient verifies both signatures (its open checks the chain, not the directory).
            let recipient = try h.client(coordinator)
            let batch = try await recipient.receive(max: 10)
            #expect(Set(batch.map(\.id)) == [a.header.id, b.header.id])
            for item in batch {
                guard case .success(let opened) = item.result else {
                    Issue.record("\(item.result)")
                    continue
                }
                #expect(opened.header.from == municipality)
                try await recipient.acknowledge(item)
            }
            // After the overlap: the old TLS certificate fails the handshake, and a message signed
            // with the old key is refused even over the new certificate's connection.
            h.clock.advance(by: 3601)
            await expectHandshakeFailure { _ = try await h.client(municipality).directory(coordinator) }
            let entry = try await newSender.directory(coordinator)
            let sealed = try Envelope.seal(
                try Drafting.content(type: .signal, from: municipality, to: coordinator, payload: try h.example(.signal)),
                from: oldSender.identity,
                to: try entry.certificates.flatMap { try Certificate.all(pem: Data($0.utf8)) },
                trust: try h.trust
            )
            await expectRelayError(.certificateInactive) { _ = try await newSender.submit(sealed) }
            _ = try await send(h, from: newSender)
            // Every step is in the audit trail.
            let actions = try await admin.adminEvents().events.filter { $0.partner == municipality }.map(\.action)
            #expect(actions.contains("certificate.added") && actions.contains("certificate.retiring"))
        }
    }

    @Test func revocationRefusesALivePartnerWithinOneRequest() async throws {
        try await withRelay { h in
            let admin = try h.admin()
            let sender = try h.client(municipality)
            let sent = try await send(h, from: sender)  // its connection stays open in the pool
            let fingerprint = sender.identity.certificate.fingerprint
            let revoked = try await admin.adminRevoke(fingerprint: fingerprint, reason: "key-compromise")
            #expect(revoked.certificates.first { $0.fingerprint == fingerprint }?.state == "revoked")
            // The very next request on the open connection is refused ...
            await expectRelayError(.certificateRevoked) { _ = try await sender.status(sent.header.id) }
            // ... and so is every new handshake.
            await expectHandshakeFailure { _ = try await h.client(municipality).directory(coordinator) }
            // Its certificate is no longer handed out for sealing.
            #expect(try await h.client(coordinator).directory(municipality).certificates.isEmpty)
            // What it sent before stays deliverable.
            let recipient = try h.client(coordinator)
            let batch = try await recipient.receive(max: 10)
            #expect(batch.map(\.id) == [sent.header.id])
            // A revocation is final and audited.
            await expectRelayError(.certificateRevoked) { _ = try await admin.adminRevoke(fingerprint: fingerprint, reason: "superseded") }
            let event = try #require(try await admin.adminEvents().events.last { $0.action.hasPrefix("certificate.") })
            #expect(event.action == "certificate.revoked" && event.fingerprint == fingerprint && event.actor == "admin:ketenpost-admin")
            #expect(event.detail == "reason=key-compromise")
            // A restart keeps it: the import from partners.yaml does not bring the certificate back.
            try await h.restart()
            await expectHandshakeFailure { _ = try await h.client(municipality).directory(coordinator) }
        }
    }

    @Test func changesReachEveryInstanceOfTheSameStore() async throws {
        try await withRelay({ $0.directory.refreshInterval = 0.2 }) { a in
            try await withRelay({
                $0.store.path = a.configuration.store.path
                $0.directory.refreshInterval = 0.2
            }) { b in
                let sender = try b.client(municipality)
                _ = try await send(b, from: sender)
                // Revoked through instance A: instance B refuses the certificate within its refresh interval.
                _ = try await a.admin().adminRevoke(fingerprint: sender.identity.certificate.fingerprint, reason: "key-compromise")
                var refused = false
                for _ in 0..<50 where !refused {
                    do {
                        _ = try await b.client(municipality).directory(coordinator)
                        try await Task.sleep(for: .milliseconds(100))
                    } catch let error as KetenpostError where error.code == .tlsHandshakeFailed || error.code == .certificateRevoked {
                        // At the handshake, or (if B reloaded between handshake and request) on the request.
                        refused = true
                    }
                }
                #expect(refused, "instance B still accepts a certificate revoked through instance A")
                // A rotation through B is handed out by A.
                let new = try b.issue(coordinator)
                _ = try await b.admin().adminRotate(
                    coordinator,
                    API.AdminRotation(
                        certificate: API.AdminCertificateInput(pem: new.certificate.pem),
                        overlapSeconds: 60
                    )
                )
                // Each test relay has its own frozen clock; A's started before B's, which dated the rotation.
                a.clock.advance(by: max(0, b.clock().timeIntervalSince(a.clock())) + 1)
                var seen = 0
                for _ in 0..<50 where seen != 2 {
                    seen = try await a.client(shelter).directory(coordinator).certificates.count
                    if seen != 2 { try await Task.sleep(for: .milliseconds(100)) }
                }
                #expect(seen == 2)
            }
        }
    }

    @Test func aStaleCRLClosesTheDoorAndRaisesTheAlarm() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-crl-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let crlPath = dir.appendingPathComponent("crl.pem").path
        let ca = try SharedPKI.shared.pki.loadCA()
        func writeCRL(nextUpdate: TimeInterval) throws {
            let crl = try ca.revocationList(
                revokedSerials: [],
                lastUpdate: Date().addingTimeInterval(-2 * 86_400),
                nextUpdate: Date().addingTimeInterval(nextUpdate)
            )
            try crl.pem.write(toFile: crlPath, atomically: true, encoding: .utf8)
        }
        try writeCRL(nextUpdate: -3600)
        try await withRelay({
            // The issuing CA's list goes stale; the root's (for the issuing CA itself) stays current.
            $0.tls.crls = [crlPath, SharedPKI.shared.pki.rootCRLPath]
            $0.tls.reloadInterval = 3600
        }) { h in
            // Closed: no partner gets through the handshake.
            await expectHandshakeFailure { _ = try await h.client(municipality).directory(coordinator) }
            #expect(h.log.all.contains { $0.contains("CRL past its next update") && $0.contains("refusing") })
            #expect(h.relay.core.metrics.exposition().contains("ketenpost_crl_stale 1"))
            // A fresh CRL is picked up by the reload and opens the door again.
            try writeCRL(nextUpdate: 86_400)
            func checks(_ result: String) -> Int {
                let prefix = "ketenpost_credential_checks_total{result=\"\(result)\"} "
                let line = h.relay.core.metrics.exposition().split(separator: "\n").first { $0.hasPrefix(prefix) }
                return line.flatMap { Int($0.dropFirst(prefix.count)) } ?? 0
            }
            let (installed, unchanged, refused) = (checks("installed"), checks("unchanged"), checks("refused"))
            #expect(h.relay.core.reloadCredentials())
            _ = try await h.client(municipality).directory(coordinator)
            #expect(h.relay.core.metrics.exposition().contains("ketenpost_crl_stale 0"))
            #expect(checks("installed") == installed + 1)
            // The same files again: nothing to install (compared before anything is parsed).
            #expect(!h.relay.core.reloadCredentials())
            #expect(checks("unchanged") == unchanged + 1 && checks("installed") == installed + 1)
            // A file that is no longer a CRL: refused, the set in use stays.
            try "not a CRL".write(toFile: crlPath, atomically: true, encoding: .utf8)
            #expect(!h.relay.core.reloadCredentials())
            #expect(checks("refused") == refused + 1)
            #expect(h.log.all.contains { $0.contains("reload refused") })
            _ = try await h.client(municipality).directory(coordinator)
        }
        // `tls.staleCRL: accept` keeps the door open, with the same alarm.
        try writeCRL(nextUpdate: -3600)
        try await withRelay({
            $0.tls.crls = [crlPath, SharedPKI.shared.pki.rootCRLPath]
            $0.tls.acceptStaleCRL = true
        }) { h in
            _ = try await h.client(municipality).directory(coordinator)
            #expect(h.relay.core.metrics.exposition().contains("ketenpost_crl_stale 1"))
            #expect(h.log.all.contains { $0.contains("CRL past its next update") && $0.contains("still accepting") })
        }
    }

    @Test func suspendedPartnerIsRefusedUntilResumed() async throws {
        try await withRelay { h in
            let admin = try h.admin()
            let sender = try h.client(municipality)
            _ = try await send(h, from: sender)
            let suspended = try await admin.adminSuspend(coordinator)
            #expect(suspended.state == "suspended")
            // As a recipient it receives nothing new, and it cannot poll.
            await expectRelayError(.recipientSuspended) { _ = try await send(h, from: sender) }
            await expectRelayError(.partnerSuspended) { _ = try await h.client(coordinator).inbox() }
            // Resumed: the message accepted before is still there.
            _ = try await admin.adminResume(coordinator)
            #expect(try await h.client(coordinator).inbox().messages.count == 1)
            let actions = try await admin.adminEvents().events.map(\.action).filter { $0.hasPrefix("partner.") && $0 != "partner.added" }
            #expect(actions == ["partner.suspended", "partner.resumed"])
        }
    }

    @Test func aCertificateWithAnActivationTimeWaitsForIt() async throws {
        try await withRelay { h in
            let admin = try h.admin()
            let next = try h.issue(shelter)
            let start = h.clock().addingTimeInterval(3600)
            let added = try await admin.adminAddCertificate(
                shelter,
                API.AdminCertificateInput(pem: next.certificate.pem, activatesAt: start)
            )
            #expect(added.certificates.map(\.state).sorted() == ["active", "pending"])
            // Pending: not handed out, not accepted for TLS requests.
            #expect(try await h.client(municipality).directory(shelter).certificates.count == 1)
            await expectRelayError(.certificateInactive) { _ = try await h.client(identity: next.directory).inbox() }
            h.clock.advance(by: 3600)
            #expect(try await h.client(municipality).directory(shelter).certificates.count == 2)
            _ = try await h.client(identity: next.directory).inbox()
        }
    }

    @Test func onboardingAPartnerThroughTheAdminAPI() async throws {
        try await withRelay { h in
            let admin = try h.admin()
            let id = "gemeente-nieuw"
            let identity = try h.issue(id, name: id)
            let added = try await admin.adminAddPartner(
                API.AdminNewPartner(
                    id: id,
                    name: "Gemeente Nieuw",
                    role: "municipality",
                    oin: "00000001000000000097",
                    certificates: [API.AdminCertificateInput(pem: identity.certificate.pem)]
                )
            )
            #expect(added.state == "active" && added.certificates.count == 1)
            // It can send at once.
            _ = try await send(h, from: try h.client(identity: identity.directory))
            // Refusals with codes: twice the same id, a certificate for another partner, a bad role.
            await expectRelayError(.partnerExists) {
                _ = try await admin.adminAddPartner(
                    API.AdminNewPartner(id: id, name: "x", role: "municipality", oin: "00000001000000000097", certificates: [])
                )
            }
            let foreign = try h.issue(municipality)
            await expectRelayError(.requestInvalid) {
                _ = try await admin.adminAddCertificate(id, API.AdminCertificateInput(pem: foreign.certificate.pem))
            }
            await expectRelayError(.requestInvalid) {
                _ = try await admin.adminAddPartner(
                    API.AdminNewPartner(id: "x-y", name: "x", role: "pirate", oin: "00000001000000000097", certificates: [])
                )
            }
            await expectRelayError(.partnerNotFound) { _ = try await admin.adminPartner("nobody-here") }
            // A certificate from a CA nobody trusts is refused.
            let evil = try Certificate.load(pemFile: h.shared.identityDirectory("evil-maastricht") + "/cert.pem")[0]
            await expectRelayError(.certificateUntrusted) {
                _ = try await admin.adminAddCertificate("gemeente-maastricht", API.AdminCertificateInput(pem: evil.pem))
            }
            #expect(try await admin.adminPartners().partners.contains { $0.id == id })
        }
    }

    @Test func nonAdministratorsAreRefusedOnEveryAdminEndpoint() async throws {
        try await withRelay { h in
            let me = h.shared.identityDirectory(municipality)
            let curl = "curl -sS --max-time 30 --cacert '\(h.shared.pki.caCertificatePath)' --cert '\(me)/cert.pem' --key '\(me)/key.pem'"
            let fp = String(repeating: "a", count: 64)
            let endpoints = [
                ("GET", "/v1/admin/partners"), ("POST", "/v1/admin/partners"), ("GET", "/v1/admin/partners/\(coordinator)"),
                ("POST", "/v1/admin/partners/\(coordinator)/suspend"), ("POST", "/v1/admin/partners/\(coordinator)/resume"),
                ("POST", "/v1/admin/partners/\(coordinator)/certificates"), ("POST", "/v1/admin/partners/\(coordinator)/rotate"),
                ("POST", "/v1/admin/certificates/\(fp)/revoke"), ("GET", "/v1/admin/certificates/expiring"),
                ("GET", "/v1/admin/events"), ("POST", "/v1/admin/reload"), ("GET", "/metrics"), ("GET", "/v1/admin/status"),
            ]
            for (method, path) in endpoints {
                let body = method == "POST" ? "-H 'Content-Type: application/json' -d '{}'" : ""
                let result = try await shell("\(curl) -o - -w '\\n%{http_code}' -X \(method) \(body) '\(h.url.absoluteString)\(path)'")
                #expect(
                    result.stdout.hasSuffix("403") && result.stdout.contains("auth.not-administrator"),
                    "\(method) \(path): \(result.stdout) \(result.stderr)"
                )
            }
            // Nothing changed.
            #expect(try await h.admin().adminPartner(coordinator).state == "active")
            // The administrator is no partner either.
            await expectRelayError(.unknownPartner) { _ = try await h.admin().inbox() }
        }
    }

    @Test func expiringCertificatesAreListedLoggedAndMeasured() async throws {
        try await withRelay({ $0.directory.expiryWarning = 30 * 86_400 }) { h in
            let admin = try h.admin()
            let soon = try h.issue(shelter, validDays: 10)
            _ = try await admin.adminAddCertificate(shelter, API.AdminCertificateInput(pem: soon.certificate.pem))
            let list = try await admin.adminExpiring(withinDays: 30)
            #expect(list.certificates.map(\.certificate.fingerprint) == [soon.certificate.fingerprint])
            #expect(list.certificates.first?.certificate.daysLeft == 9)
            #expect(try await admin.adminExpiring(withinDays: 5).certificates.isEmpty)
            h.relay.core.warnExpiring()
            #expect(
                h.log.all.contains {
                    $0.contains("certificate expires soon") && $0.contains("partner.id=\(shelter)") && $0.contains("certificate.daysLeft=9")
                }
            )
            let metrics = try await admin.metrics()
            let line = try #require(
                metrics.split(separator: "\n").first {
                    $0.hasPrefix("ketenpost_certificate_days_left{") && $0.contains(String(soon.certificate.fingerprint.prefix(16)))
                }
            )
            #expect(line.contains("partner=\"\(shelter)\""))
            #expect(Double(line.split(separator: " ").last ?? "").map { $0 > 9 && $0 < 10.1 } == true)
        }
    }

    @Test func theRelayCertificateRotatesWhileConnectionsStayOpen() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-relaycert-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let pki = SharedPKI.shared.pki
        let live = dir.appendingPathComponent("relay")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        for file in ["cert.pem", "key.pem"] {
            try FileManager.default.copyItem(atPath: pki.relayDirectory + "/" + file, toPath: live.appendingPathComponent(file).path)
        }
        try await withRelay({
            $0.tls.certificate = live.appendingPathComponent("cert.pem").path
            $0.tls.key = live.appendingPathComponent("key.pem").path
            $0.tls.reloadInterval = 1
            $0.directory.refreshInterval = 0.2
        }) { h in
            let oldSerial = try Certificate.load(pemFile: pki.relayDirectory + "/cert.pem")[0].serialNumberHex
            let me = h.shared.identityDirectory(municipality)
            // A connection that stays open across the rotation.
            let connection = try InteractiveProcess(
                """
                exec openssl s_client -connect 127.0.0.1:\(h.relay.port) -CAfile '\(pki.caCertificatePath)' -cert '\(me)/cert.pem' \
                -key '\(me)/key.pem' -ign_eof
                """
            )
            defer { connection.stop() }
            // Not a probe: probes close their connection after answering.
            let request = "GET /v1/directory HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
            connection.send(request)
            #expect(await connection.waitFor("\"partners\"", count: 1), "\(connection.text)")
            #expect(try servedSerial(connection.text) == oldSerial)
            let sender = try h.client(municipality)
            let before = try await send(h, from: sender)

            // Replace the files (key first: a half-done replacement is refused and retried).
            let next = dir.appendingPathComponent("next")
            let newCertificate = try pki.issueRelay(into: next.path)
            try FileManager.default.removeItem(at: live.appendingPathComponent("key.pem"))
            try FileManager.default.copyItem(at: next.appendingPathComponent("key.pem"), to: live.appendingPathComponent("key.pem"))
            try FileManager.default.removeItem(at: live.appendingPathComponent("cert.pem"))
            try FileManager.default.copyItem(at: next.appendingPathComponent("cert.pem"), to: live.appendingPathComponent("cert.pem"))
            var reloaded = false
            for _ in 0..<100 where !reloaded {
                try await Task.sleep(for: .milliseconds(100))
                reloaded = h.log.all.contains { $0.contains("certificates reloaded") && $0.contains(newCertificate.serialNumberHex) }
            }
            #expect(reloaded)

            // The open connection still works ...
            connection.send(request)
            #expect(await connection.waitFor("\"partners\"", count: 2), "\(connection.text)")
            // ... and a new connection sees the new certificate.
            let fresh = try await shell(
                """
                openssl s_client -connect 127.0.0.1:\(h.relay.port) -CAfile '\(pki.caCertificatePath)' -cert '\(me)/cert.pem' -key \
                '\(me)/key.pem' </dev/null
                """
            )
            #expect(try servedSerial(fresh.stdout) == newCertificate.serialNumberHex)
            // Receipts signed before and after verify (the client checks each acceptance receipt).
            let after = try await send(h, from: try h.client(municipality))
            #expect(after.receipt.issuer == DevelopmentPKI.relayID)
            let oldReceipt = try #require(Data(base64Encoded: before.response.receipt))
            let newReceipt = try #require(Data(base64Encoded: after.response.receipt))
            #expect(
                try SignedReceipt.verify(oldReceipt, trust: try h.trust, signer: .relay(DevelopmentPKI.relayID)).signer.serialNumberHex
                    == oldSerial
            )
            #expect(
                try SignedReceipt.verify(newReceipt, trust: try h.trust, signer: .relay(DevelopmentPKI.relayID)).signer.serialNumberHex
                    == newCertificate.serialNumberHex
            )
        }
    }

    /// The serial of the first certificate PEM in `openssl s_client` output.
    func servedSerial(_ text: String) throws -> String {
        guard let start = text.range(of: "-----BEGIN CERTIFICATE-----"),
            let end = text.range(of: "-----END CERTIFICATE-----", range: start.upperBound..<text.endIndex)
        else {
            throw KetenpostError(.internalError, "no certificate in the s_client output")
        }
        return try Certificate(pem: Data(text[start.lowerBound..<end.upperBound].utf8)).serialNumberHex
    }
}

/// A process kept running with a pipe to its stdin and its output collected as it comes
/// (an `openssl s_client` connection held open across a certificate rotation).
final class InteractiveProcess: @unchecked Sendable {  // Process and Pipe are used from one test at a time
    private let process: Process
    private let input: Pipe
    private let output = LogLines()

    init(_ script: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", script]
        let input = Pipe()
        let out = Pipe()
        process.standardInput = input
        process.standardOutput = out
        process.standardError = out
        self.process = process
        self.input = input
        let output = self.output
        try process.run()
        // A plain thread with blocking reads until end of file, not `readabilityHandler`: that
        // handler's dispatch source, torn down with the pipe, can leave a dangling epoll entry
        // that crashes libdispatch later in the test run (swift-corelibs-foundation#5507).
        let reader = out.fileHandleForReading
        Thread.detachNewThread {
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                output.append(String(decoding: data, as: UTF8.self))
            }
        }
    }

    func send(_ text: String) { input.fileHandleForWriting.write(Data(text.utf8)) }
    func send(bytes: Data) { input.fileHandleForWriting.write(bytes) }

    var text: String { output.all.joined() }

    /// Waits up to ten seconds until `needle` occurs `count` times in the output.
    func waitFor(_ needle: String, count: Int) async -> Bool {
        for _ in 0..<200 {
            if text.components(separatedBy: needle).count - 1 >= count { return true }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return false
    }

    var isRunning: Bool { process.isRunning }

    func stop() {
        if process.isRunning { process.terminate() }
    }
}
