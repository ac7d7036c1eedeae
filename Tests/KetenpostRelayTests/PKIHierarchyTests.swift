import Foundation
import Hummingbird
import KetenpostAPI
import KetenpostClient
import KetenpostConfiguration
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import Logging
import Synchronization
import Testing

/// A CA hierarchy made with the `openssl` command, as a real CA's would be: root → issuing CA
/// → partner certificate, each CA publishing its CRL at the distribution point its certificates
/// name, served by `CRLServer` so that the tests can revoke, stall or break it.
final class OpenSSLHierarchy: Sendable {
    let dir: URL
    let server: CRLServer
    let keyKind: String
    /// Partner id → identity directory (cert.pem, key.pem, chain.pem).
    let root: URL
    let issuing: URL

    init(keyKind: String = "ec", server: CRLServer, dir: URL) async throws {
        self.dir = dir
        self.server = server
        self.keyKind = keyKind
        root = dir.appendingPathComponent("root.pem")
        issuing = dir.appendingPathComponent("issuing.pem")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try await run(
            """
            \(Self.caConfig("root"))
            \(Self.caConfig("issuing"))
            openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout root.key -out root.pem -days 30 \
              -subj "/O=Test PKI/CN=Test Root CA \(UUID().uuidString.prefix(6))" \
              -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout issuing.key -out issuing.csr \
              -subj "/O=Test PKI/CN=Test Issuing CA \(UUID().uuidString.prefix(6))" 2>/dev/null
            printf '%s\\n' 'basicConstraints=critical,CA:TRUE,pathlen:0' 'keyUsage=critical,keyCertSign,cRLSign' \
              'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' \
              'crlDistributionPoints=URI:\(server.url("root.crl"))' > issuing.ext
            openssl x509 -req -in issuing.csr -CA root.pem -CAkey root.key -CAcreateserial -days 30 -sha256 \
              -extfile issuing.ext -out issuing.pem 2>/dev/null
            """
        )
        try await publish("root")
        try await publish("issuing")
    }

    static func caConfig(_ name: String) -> String {
        """
        mkdir -p \(name).db && touch \(name).db/index && echo 1000 > \(name).db/crlnumber
        cat > \(name).cnf <<EOF
        [ ca ]
        default_ca = ca_\(name)
        [ ca_\(name) ]
        database = \(name).db/index
        crlnumber = \(name).db/crlnumber
        certificate = \(name).pem
        private_key = \(name).key
        default_md = sha256
        default_crl_days = 1
        EOF
        """
    }

    @discardableResult
    func run(_ script: String) async throws -> String {
        let result = try await shell("set -euo pipefail\n" + script, in: dir)
        guard result.status == 0 else { throw KetenpostError(.internalError, "openssl script failed: \(result.stderr)") }
        return result.stdout
    }

    /// Makes the CA's current CRL (valid for `seconds`) and serves it at its distribution point.
    func publish(_ ca: String, validFor seconds: Int = 3600) async throws {
        try await run("openssl ca -config \(ca).cnf -gencrl -crlsec \(seconds) -out \(ca).crl.pem 2>/dev/null")
        server.set("\(ca).crl", .serve(try await der(ca)))
    }

    func der(_ ca: String) async throws -> Data {
        try await run("openssl crl -in \(ca).crl.pem -outform DER -out \(ca).crl.der")
        return try Data(contentsOf: dir.appendingPathComponent("\(ca).crl.der"))
    }

    /// Revokes a certificate file with the CA and publishes the new CRL.
    func revoke(_ certificate: String, by ca: String) async throws {
        try await run("openssl ca -config \(ca).cnf -revoke '\(certificate)' 2>/dev/null")
        try await publish(ca)
    }

    /// A partner identity below the issuing CA: cert.pem (the leaf), chain.pem (the issuing CA), key.pem.
    func issue(_ id: String, oin: String, rsa: Bool = false, crl: String? = nil, ocsp: String? = nil) async throws -> String {
        let out = dir.appendingPathComponent(id)
        let keyUsage = rsa ? "digitalSignature,keyEncipherment" : "digitalSignature,keyAgreement"
        let newKey = rsa ? "-newkey rsa:3072" : "-newkey ec -pkeyopt ec_paramgen_curve:P-256"
        try await run(
            """
            mkdir -p '\(out.path)'
            openssl req -new \(newKey) -nodes -keyout '\(out.path)/key.pem' -out '\(id).csr' \
              -subj "/O=Test partner/serialNumber=\(oin)/CN=\(id)" 2>/dev/null
            printf '%s\\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,\(keyUsage)' \
              'extendedKeyUsage=clientAuth,emailProtection' 'subjectKeyIdentifier=hash' 'authorityKeyIdentifier=keyid' \
              'crlDistributionPoints=URI:\(crl ?? server.url("issuing.crl"))' > '\(id).ext'
            \(ocsp.map { "echo 'authorityInfoAccess=OCSP;URI:\($0)' >> '\(id).ext'" } ?? "")
            openssl x509 -req -in '\(id).csr' -CA issuing.pem -CAkey issuing.key -CAcreateserial -days 20 -sha256 \
              -extfile '\(id).ext' -out '\(out.path)/cert.pem' 2>/dev/null
            cp issuing.pem '\(out.path)/chain.pem'
            """
        )
        return out.path
    }

    /// An OCSP responder for the issuing CA (`openssl ocsp`, answering from the CA's database,
    /// which it re-reads when it changes), with a delegated signing certificate.
    func startOCSPResponder(port: Int) async throws -> Process {
        try await run(
            """
            openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ocsp.key -out ocsp.csr \
              -subj "/O=Test PKI/CN=Test OCSP responder" 2>/dev/null
            printf '%s\\n' 'basicConstraints=critical,CA:FALSE' 'keyUsage=critical,digitalSignature' \
              'extendedKeyUsage=OCSPSigning' > ocsp.ext
            openssl x509 -req -in ocsp.csr -CA issuing.pem -CAkey issuing.key -CAcreateserial -days 20 -sha256 \
              -extfile ocsp.ext -out ocsp.pem 2>/dev/null
            """
        )
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/openssl")
        process.arguments = [
            "ocsp", "-index", "issuing.db/index", "-port", "\(port)", "-rsigner", "ocsp.pem", "-rkey", "ocsp.key",
            "-CA", "issuing.pem", "-ignore_err",
        ]
        process.currentDirectoryURL = dir
        FileManager.default.createFile(atPath: dir.appendingPathComponent("ocsp.log").path, contents: nil)
        let log = try FileHandle(forWritingTo: dir.appendingPathComponent("ocsp.log"))
        process.standardOutput = log
        process.standardError = log
        try process.run()
        // Ready when it accepts a connection.
        for _ in 0..<50 {
            // A whole request: `openssl ocsp` serves one connection at a time, and a bare
            // connection without a request would hold it.
            if try await shell("curl -s -m 2 -o /dev/null http://127.0.0.1:\(port)/").status == 0 { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        return process
    }

    /// The anchors for the relay and the partners: the development root (the relay's own
    /// certificate) and this hierarchy's root.
    func anchors(with development: String) throws -> String {
        let file = dir.appendingPathComponent("anchors.pem")
        let text = try String(contentsOfFile: development, encoding: .utf8) + String(contentsOf: root, encoding: .utf8)
        try text.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }
}

/// Plays a CA's web server: serves, refuses, stalls or floods each CRL path as the test says.
final class CRLServer: Sendable {
    enum Mode: Sendable {
        case serve(Data)
        case status(Int)
        case slow(seconds: Int, Data)
        case oversized(bytes: Int)
    }

    final class State: Sendable {
        let modes = Mutex<[String: Mode]>([:])
    }
    private let state = State()
    private let app: Task<Void, any Error>
    let port: Int

    init() async throws {
        let router = Router()
        let state = self.state
        router.get(":name") { _, context -> Response in
            let name = context.parameters.get("name") ?? ""
            switch state.modes.withLock({ $0[name] }) {
            case .serve(let data)?:
                return Response(
                    status: .ok,
                    headers: [.contentType: "application/pkix-crl"],
                    body: .init(byteBuffer: ByteBuffer(bytes: data))
                )
            case .status(let code)?:
                return Response(status: .init(code: code))
            case .slow(let seconds, let data)?:
                try await Task.sleep(for: .seconds(seconds))
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(bytes: data)))
            case .oversized(let bytes)?:
                return Response(status: .ok, body: .init(byteBuffer: ByteBuffer(repeating: 0x30, count: bytes)))
            case nil:
                return Response(status: .notFound)
            }
        }
        let (stream, continuation) = AsyncStream.makeStream(of: Int.self)
        let application = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in continuation.yield(channel.localAddress?.port ?? 0) }
        )
        app = Task { try await application.runService() }
        var iterator = stream.makeAsyncIterator()
        port = await iterator.next() ?? 0
    }

    func url(_ name: String) -> String { "http://127.0.0.1:\(port)/\(name)" }
    func set(_ name: String, _ mode: Mode) { state.modes.withLock { $0[name] = mode } }
    func stop() { app.cancel() }
}

/// Issue 19: partners under intermediate CAs, CRLs per issuing CA fetched by the relay, and
/// recipients that check revocation.
@Suite(.serialized) struct PKIHierarchyTests {
    static let shelter = "opvang-keten-test"
    static let shelterOIN = "00000004000000000077"

    /// A relay that trusts the development root and the test hierarchy's root, fetching CRLs every second.
    static func withHierarchy(
        keyKind: String = "ec",
        adjust: @escaping @Sendable (inout RelayConfiguration) -> Void = { _ in },
        _ body: (Harness, OpenSSLHierarchy, String) async throws -> Void
    ) async throws {
        let server = try await CRLServer()
        defer { server.stop() }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-pki-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pki = try await OpenSSLHierarchy(keyKind: keyKind, server: server, dir: dir)
        let anchors = try pki.anchors(with: SharedPKI.shared.pki.caCertificatePath)
        try await withRelay({
            $0.tls.trustAnchors = anchors
            $0.revocation.fetch = true
            $0.revocation.refreshInterval = 1
            $0.revocation.timeout = 2
            $0.revocation.maxBytes = 100_000
            adjust(&$0)
        }) { h in try await body(h, pki, anchors) }
    }

    /// A partner client that trusts both roots; its CRLs come from the relay.
    static func client(_ h: Harness, identity: String, anchors: String, refresh: TimeInterval = 300) throws -> RelayClient {
        h.track(
            try RelayClient(
                relay: h.url,
                identity: try Identity.load(directory: identity),
                trust: try TrustStore.load(anchorsFile: anchors),
                relayID: DevelopmentPKI.relayID,
                revocation: .fromRelay(refreshInterval: refresh)
            )
        )
    }

    static func onboard(_ h: Harness, _ identity: String, id: String = shelter, oin: String = shelterOIN) async throws -> API.AdminPartner {
        // The harness's clock stands still; openssl issued this certificate (and its CA's lists)
        // after it started. The relay checks a certificate that is not valid yet at its notBefore,
        // where a CRL published later is not valid yet either: bring the clock up to now.
        h.clock.advance(by: max(0, Date().timeIntervalSince(h.clock()) + 1))
        let pem =
            try String(contentsOfFile: identity + "/cert.pem", encoding: .utf8)
            + String(contentsOfFile: identity + "/chain.pem", encoding: .utf8)
        return try await h.admin().adminAddPartner(
            API.AdminNewPartner(
                id: id,
                name: "Opvang keten test",
                role: "shelter",
                oin: oin,
                certificates: [API.AdminCertificateInput(pem: pem)]
            )
        )
    }

    static func recipe(_ name: String) throws -> String { try MinimalPartnerTests.recipe(name) }

    /// Waits (up to ten seconds) until `condition` holds.
    static func eventually(_ what: String, _ condition: () async throws -> Bool) async throws {
        for _ in 0..<100 {
            if try await condition() { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        Issue.record("timed out waiting for \(what)")
    }

    @Test(arguments: ["ec", "rsa"])
    func aPartnerUnderAnIntermediateWorksWithOnlyOpenSSLAndCurl(keyKind: String) async throws {
        try await Self.withHierarchy(keyKind: keyKind) { h, pki, anchors in
            let me = try await pki.issue(Self.shelter, oin: Self.shelterOIN, rsa: keyKind == "rsa")
            // Onboarding with the chain: stored, served, and its CA's CRL fetched at registration.
            let added = try await Self.onboard(h, me)
            #expect(added.certificates.count == 1 && added.certificates[0].state == "active")
            let coordinatorClient = try Self.client(h, identity: h.shared.identityDirectory(coordinator), anchors: anchors)
            let entry = try await coordinatorClient.directory(Self.shelter)
            #expect(entry.certificates.count == 1 && entry.chain?.count == 1)
            let crls = try await h.admin().adminRevocationLists()
            let issuing = try #require(crls.lists.first { $0.source == pki.server.url("issuing.crl") })
            #expect(issuing.state == "current" && issuing.inEffect && issuing.lastError == nil && issuing.revokedCount == 0)
            #expect(crls.lists.contains { $0.source == pki.server.url("root.crl") && $0.state == "current" })

            // The coordinator refers someone to the new shelter (sealed to its certificate, chain checked).
            let sent = try await coordinatorClient.send(payload: try h.example(.referral), type: .referral, to: Self.shelter)

            // The shelter, with openssl and curl only: receive, open (revocation checked with the
            // relay's CRLs), acknowledge with its own signed receipt, and answer.
            let work = h.work.appendingPathComponent("openssl-\(keyKind)")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            let env = [
                "ME": me, "ME_ID": Self.shelter, "CA": anchors, "RELAY": h.url.absoluteString, "CRLS": "crls.pem",
                "SENDER": me, "FROM": Self.shelter, "TO": coordinator, "TYPE": "referral-response",
                "PAYLOAD": Root.path("config/examples/referral-response.json"), "CORRELATION": sent.header.id.uuidString.lowercased(),
                "TO_CERT": "recipient-certs.pem",
            ]
            let script = try [
                "set -euo pipefail", Self.recipe("receive"),
                "test \"${MESSAGE_ID,,}\" = '\(sent.header.id.uuidString.lowercased())' || { cat inbox.json >&2; exit 1; }",
                Self.recipe("open"), Self.recipe("acknowledge"), "cat acknowledged.json",
                // The answer: the recipient's certificate (the first in the chain file), sealed and submitted.
                "curl -sS --fail --cacert \"$CA\" --cert \"$ME/cert.pem\" --key \"$ME/key.pem\" "
                    + "\"$RELAY/v1/directory/$TO/certificates.pem\" > recipient-certs.pem",
                "openssl x509 -in recipient-certs.pem -out recipient-cert.pem", "TO_CERT=recipient-cert.pem",
                Self.recipe("seal"), Self.recipe("submit").split(separator: "\n").dropFirst(2).joined(separator: "\n"),
                "cat accepted.json",
            ].joined(separator: "\n")
            let result = try await shell(script, in: work, env: env)
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("\"state\":\"acknowledged\""), "\(result.stdout)")
            #expect(result.stdout.contains("\"state\":\"accepted\""), "\(result.stdout)")

            // The coordinator sees the shelter's signed receipt and opens the answer.
            let status = try await coordinatorClient.status(sent.header.id)
            #expect(status.state == "acknowledged" && status.recipientReceipt != nil)
            let received = try await coordinatorClient.receive(max: 10, wait: 5)
            let answer = try #require(received.first).result.get()
            #expect(answer.header.from == Self.shelter && answer.header.correlationId == sent.header.id)
            try await coordinatorClient.acknowledge(received[0])
        }
    }

    @Test func aLeafRevokedByItsIntermediatesCRLIsRefusedAtTheDoorAndByTheRecipient() async throws {
        try await Self.withHierarchy { h, pki, anchors in
            let me = try await pki.issue(Self.shelter, oin: Self.shelterOIN)
            _ = try await Self.onboard(h, me)
            let shelterClient = try Self.client(h, identity: me, anchors: anchors)
            // A recipient that refreshes the relay's CRLs every second; it holds them already.
            let coordinatorClient = try Self.client(h, identity: h.shared.identityDirectory(coordinator), anchors: anchors, refresh: 1)
            _ = try await coordinatorClient.currentTrust()
            // Sent before the revocation: the shelter's answer to a referral, queued for the coordinator.
            let referral = try await coordinatorClient.send(payload: try h.example(.referral), type: .referral, to: Self.shelter)
            let received = try await shelterClient.receive(max: 1, wait: 5)
            try await shelterClient.acknowledge(try #require(received.first))
            var options = Drafting.Options()
            options.correlationID = referral.header.id
            _ = try await shelterClient.send(
                payload: try h.example(.referralResponse),
                type: .referralResponse,
                to: coordinator,
                options: options
            )

            // The CA revokes the shelter's certificate; the relay fetches the new list within a refresh.
            try await pki.revoke(me + "/cert.pem", by: "issuing")
            try await Self.eventually("the relay to hold the new CRL") {
                try await h.admin().adminRevocationLists().lists.contains {
                    $0.source == pki.server.url("issuing.crl") && $0.revokedCount == 1
                }
            }
            // Refused at the door: the handshake (or the first request) of the revoked certificate fails.
            try await Self.eventually("the door to close") {
                (try? await Self.client(h, identity: me, anchors: anchors, refresh: 1).directory(coordinator)) == nil
            }
            // And by the recipient: what the revoked certificate signed no longer opens.
            try await Task.sleep(for: .seconds(1.1))
            let inbox = try await coordinatorClient.receive(max: 10, wait: 5)
            let refused = try #require(inbox.first)
            #expect(throws: KetenpostError.self) { try refused.result.get() }
            if case .failure(let error) = refused.result { #expect(error.code == .certificateRevoked, "\(error)") }
        }
    }

    @Test func crlEndpointFailuresFollowTheDocumentedBehaviour() async throws {
        try await Self.withHierarchy(adjust: { $0.admin.listen = HostPort(host: "127.0.0.1", port: 0) }) { h, pki, anchors in
            let me = try await pki.issue(Self.shelter, oin: Self.shelterOIN)
            _ = try await Self.onboard(h, me)
            let admin = try h.admin()
            let good = try await pki.der("issuing")
            func issuingList() async throws -> API.AdminRevocationList? {
                try await admin.adminRevocationLists().lists.first { $0.source == pki.server.url("issuing.crl") }
            }
            func expectError(_ code: String) async throws {
                try await Self.eventually("lastError \(code)") { try await issuingList()?.lastError?.hasPrefix(code) == true }
                // The list held stays in use: the partner still gets in.
                let held = try #require(try await issuingList())
                #expect(held.state == "current" && held.inEffect, "\(held)")
                _ = try await Self.client(h, identity: me, anchors: anchors).directory(coordinator)
            }
            // Down, slow, oversized, signed by another CA: the list held stays, the error is shown.
            pki.server.set("issuing.crl", .status(503))
            try await expectError("http-503")
            // The status page shows the CA's list with the error.
            let page = try await shell("curl -sS http://127.0.0.1:\(try #require(h.relay.statusPort))/status").stdout
            #expect(page.contains("<table id=\"crls\"") && page.contains(pki.server.url("issuing.crl")) && page.contains("http-503"))
            pki.server.set("issuing.crl", .slow(seconds: 5, good))
            try await expectError("timeout")
            pki.server.set("issuing.crl", .oversized(bytes: 200_000))
            try await expectError("too-large")
            pki.server.set("issuing.crl", .serve(try await pki.der("root")))
            try await expectError("wrong-issuer")
            pki.server.set("issuing.crl", .serve(Data("not a list".utf8)))
            try await expectError("not-a-crl")
            // Past its nextUpdate: kept (it is the CA's newest), but the door closes (tls.staleCRL:
            // refuse) and the alarm is raised, until a current list arrives.
            try await pki.publish("issuing", validFor: 1)
            try await Self.eventually("the short-lived list") { try await issuingList()?.state == "stale" }
            try await Self.eventually("the door to close") {
                (try? await Self.client(h, identity: me, anchors: anchors).directory(coordinator)) == nil
            }
            try await Self.eventually("the alarm") { h.relay.core.metrics.exposition().contains("ketenpost_crl_stale 1") }
            // A recipient that gets the stale list from the relay refuses to trust anything.
            await #expect(throws: KetenpostError.self) {
                _ = try await Self.client(h, identity: h.shared.identityDirectory(coordinator), anchors: anchors).currentTrust()
            }
            try await pki.publish("issuing")
            try await Self.eventually("a current list again") { try await issuingList()?.state == "current" }
            try await Self.eventually("the door to open again") {
                (try? await Self.client(h, identity: me, anchors: anchors).directory(coordinator)) != nil
            }

        }
    }

    @Test func aPartnerWhoseCAsListCannotBeFetchedIsRefusedAtRegistration() async throws {
        try await Self.withHierarchy { h, pki, anchors in
            // The relay has never held the issuing CA's list, and its server is down.
            pki.server.set("issuing.crl", .status(503))
            let me = try await pki.issue(Self.shelter, oin: Self.shelterOIN)
            await expectRelayError(.certificateCRLUnavailable) { _ = try await Self.onboard(h, me) }
            let missing = try #require(
                try await h.admin().adminRevocationLists().lists.first { $0.source == pki.server.url("issuing.crl") }
            )
            #expect(missing.state == "missing" && missing.lastError?.hasPrefix("http-503") == true, "\(missing)")
            // Once the CA's server answers, the same registration goes through.
            try await pki.publish("issuing")
            _ = try await Self.onboard(h, me)
            _ = try await Self.client(h, identity: me, anchors: anchors).directory(coordinator)
        }
    }

    static func freePort() async throws -> Int {
        let text = try await shell("python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));print(s.getsockname()[1])'")
        return Int(text.stdout.trimmingCharacters(in: .whitespacesAndNewlines))!
    }

    @Test func anOCSPResponderThatRevokesACertificateClosesTheDoor() async throws {
        let port = try await Self.freePort()
        try await Self.withHierarchy(adjust: {
            $0.revocation.ocsp = true
            $0.revocation.ocspInterval = 1
        }) { h, pki, anchors in
            let responder = try await pki.startOCSPResponder(port: port)
            defer { responder.terminate() }
            let url = "http://127.0.0.1:\(port)"
            // `openssl ocsp` re-reads its CA database after it served the next request: a request
            // after each change makes it current.
            func nudge() async throws { _ = try await shell("curl -s -m 2 -o /dev/null \(url)/") }
            // Known to the responder as valid: registered.
            let me = try await pki.issue(Self.shelter, oin: Self.shelterOIN, ocsp: url)
            try await pki.run("openssl ca -config issuing.cnf -valid '\(me)/cert.pem' 2>/dev/null")
            try await nudge()
            do { _ = try await Self.onboard(h, me) } catch {
                Issue.record("\(error): \((try? String(contentsOf: pki.dir.appendingPathComponent("ocsp.log"), encoding: .utf8)) ?? "")")
                throw error
            }
            _ = try await Self.client(h, identity: me, anchors: anchors).directory(coordinator)
            // Unknown to the responder: refused at registration (tls.staleCRL: refuse).
            let stranger = try await pki.issue("opvang-onbekend", oin: "00000004000000000080", ocsp: url)
            await expectRelayError(.certificateCRLUnavailable) {
                _ = try await Self.onboard(h, stranger, id: "opvang-onbekend", oin: "00000004000000000080")
            }
            // The CA revokes it in its database only (its CRL still lists nothing): the relay's
            // next OCSP check revokes it in the directory, and the door closes.
            try await pki.run("openssl ca -config issuing.cnf -revoke '\(me)/cert.pem' 2>/dev/null")
            try await nudge()
            try await Self.eventually("the directory to revoke the certificate") {
                try await h.admin().adminPartner(Self.shelter).certificates.first?.state == "revoked"
            }
            let certificate = try #require(try await h.admin().adminPartner(Self.shelter).certificates.first)
            #expect(certificate.revocationReason == "ca-revoked-ocsp")
            #expect(try await h.admin().adminEvents().events.contains { $0.action == "certificate.revoked" && $0.actor == "ocsp" })
            await #expect(throws: (any Error).self) {
                _ = try await Self.client(h, identity: me, anchors: anchors).directory(coordinator)
            }
            // A revoked certificate is refused at registration by the responder's word alone.
            let second = try await pki.issue("opvang-keten-drie", oin: "00000004000000000081", ocsp: url)
            try await pki.run("openssl ca -config issuing.cnf -revoke '\(second)/cert.pem' 2>/dev/null")
            try await nudge()
            await expectRelayError(.certificateRevoked) {
                _ = try await Self.onboard(h, second, id: "opvang-keten-drie", oin: "00000004000000000081")
            }
        }
    }

    @Test func aChainWhoseIntermediateIsRevokedByTheRootIsRefused() async throws {
        try await Self.withHierarchy { h, pki, anchors in
            let me = try await pki.issue(Self.shelter, oin: Self.shelterOIN)
            _ = try await Self.onboard(h, me)
            _ = try await Self.client(h, identity: me, anchors: anchors).directory(coordinator)
            try await pki.revoke(pki.issuing.path, by: "root")
            try await Self.eventually("the relay to hold the root's new CRL") {
                try await h.admin().adminRevocationLists().lists.contains {
                    $0.source == pki.server.url("root.crl") && $0.revokedCount == 1
                }
            }

            try await Self.eventually("the door to close") {
                (try? await Self.client(h, identity: me, anchors: anchors).directory(coordinator)) == nil
            }
            // Nor can another certificate of the revoked intermediate be registered.
            let second = try await pki.issue("opvang-keten-twee", oin: "00000004000000000079")
            await #expect(throws: KetenpostError.self) {
                _ = try await Self.onboard(h, second, id: "opvang-keten-twee", oin: "00000004000000000079")
            }
        }
    }
}

/// The development PKI in the real shape: root → issuing CA → identities, the issuing CA's CRL
/// published at a loopback distribution point that the relay itself serves (`serveCRLs`) and
/// fetches from like any CA's.
@Suite struct DevelopmentCRLEndpointTests {
    @Test func serveAnswersAtTheDistributionPointAndARevocationReachesTheDoor() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-devcrl-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: dir) }
        let port = Int(
            try await shell("python3 -c 'import socket;s=socket.socket();s.bind((\"127.0.0.1\",0));print(s.getsockname()[1])'")
                .stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        )!
        let pki = DevelopmentPKI(directory: dir.appendingPathComponent("certs").path, crlEndpoint: "http://127.0.0.1:\(port)")
        let partners = try PartnerDirectoryFile.load(path: Root.path("config/partners.yaml"))
        try pki.create(partners: partners.partners)
        var c = RelayConfiguration.development(
            pki: pki,
            storePath: dir.appendingPathComponent("store.sqlite").path,
            partnersFile: Root.path("config/partners.yaml"),
            policyFile: Root.path("config/policy.yaml")
        )
        c.developmentPKI.serveCRLs = true
        c.revocation.fetch = true
        c.revocation.refreshInterval = 1
        c.tls.crls = []  // only what the distribution points give
        let log = LogLines()
        let logger = Logger(label: "test.devcrl", factory: { _ in CapturingLogHandler(lines: log) })
        let relay = try await RunningRelay.start(try await RelayServer.prepare(c, logger: logger), logger: logger)
        do {
            // The endpoint answers with DER CRLs, as a CA's web server does.
            let served = try await shell("curl -sS --fail http://127.0.0.1:\(port)/issuing.crl | openssl crl -inform DER -noout -issuer")
            #expect(served.status == 0 && served.stdout.contains("Ketenpost Development Issuing CA"), "\(served.stderr)")
            let maastricht = try Identity.load(directory: pki.partnerDirectory("gemeente-maastricht"))
            let client = try RelayClient(
                relay: relay.url,
                identity: maastricht,
                trust: try TrustStore.load(anchorsFile: pki.caCertificatePath),
                relayID: DevelopmentPKI.relayID
            )
            defer { Task { try? await client.shutdown() } }
            _ = try await client.directory("zorgcoordinatie-zuid-limburg")
            // A message sealed by the partner now, opened later with `ketenpost open`, which
            // checks revocation against the relay's CRLs unless given --crl.
            let binary = ServeProcessTests.binary
            let coordinator = pki.partnerDirectory("zorgcoordinatie-zuid-limburg")
            let message = dir.appendingPathComponent("signal.der").path
            let sealed = try await shell(
                """
                '\(binary)' seal --identity '\(pki.partnerDirectory("gemeente-maastricht"))' --to zorgcoordinatie-zuid-limburg \
                  --to-cert '\(coordinator)/cert.pem' --to-cert '\(coordinator)/chain.pem' --trust '\(pki.caCertificatePath)' \
                  --type signal --in '\(Root.path("config/examples/signal.json"))' --out '\(message)'
                """
            )
            #expect(sealed.status == 0, "\(sealed.stderr)")
            let open = "'\(binary)' open --identity '\(coordinator)' --trust '\(pki.caCertificatePath)' --in '\(message)' --relay "
            let opened = try await shell(open + relay.url.absoluteString)
            #expect(opened.status == 0, "\(opened.stderr)")
            // Without the relay's CRLs (and no --crl), nothing is opened: fail closed.
            let unreachable = try await shell(open + "https://127.0.0.1:1")
            #expect(unreachable.status == 1 && unreachable.stdout.isEmpty, "\(unreachable.stdout)")
            let lists = try await relay.core.administration.revocationLists(logger: logger).lists
            #expect(lists.contains { $0.source == "http://127.0.0.1:\(port)/issuing.crl" && $0.state == "current" }, "\(lists)")
            #expect(lists.contains { $0.source == "http://127.0.0.1:\(port)/root.crl" && $0.state == "current" }, "\(lists)")
            // `pki revoke` writes the CRL files; the endpoint serves them at once and the relay
            // fetches them within its refresh.
            try pki.revoke(serials: [maastricht.certificate.serialNumberHex])
            try await PKIHierarchyTests.eventually("the relay to fetch the new list") {
                try await relay.core.administration.revocationLists(logger: logger).lists.contains {
                    $0.source.hasSuffix("/issuing.crl") && $0.revokedCount == 1
                }
            }
            let refused = try RelayClient(
                relay: relay.url,
                identity: maastricht,
                trust: try TrustStore.load(anchorsFile: pki.caCertificatePath),
                relayID: DevelopmentPKI.relayID
            )
            defer { Task { try? await refused.shutdown() } }
            await #expect(throws: (any Error).self) { _ = try await refused.directory("zorgcoordinatie-zuid-limburg") }
            // And the message it signed before no longer opens for the recipient.
            let afterwards = try await shell(open + relay.url.absoluteString)
            #expect(afterwards.status == 1 && afterwards.stderr.contains("certificate.revoked"), "\(afterwards.stderr)")
        } catch {
            await relay.stop()
            throw error
        }
        await relay.stop()
    }
}
