import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostRelay
import KetenpostStore
import Logging
import NIOCore
import Testing

/// A request context for handler tests: the client certificate comes from a test-only header
/// instead of a TLS connection. The live mutual-TLS tests cover the TLS layer itself.
struct PeerHeaderContext: PeerRequestContext {
    var coreContext: CoreRequestContextStorage
    var caller: Caller?
    var peer: Certificate?

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    func peerCertificate() async -> Certificate? { peer }
    var isConnected: Bool { true }
    func closeConnection(after timeout: TimeInterval) -> ConnectionDeadline { ConnectionDeadline {} }
}

/// Reads `X-Test-Peer` (the client certificate's DER in base64) into the context.
struct PeerHeaderMiddleware: RouterMiddleware {
    static let header = HTTPField.Name("X-Test-Peer")!

    func handle(
        _ request: Request,
        context: PeerHeaderContext,
        next: (Request, PeerHeaderContext) async throws -> Response
    ) async throws -> Response {
        var context = context
        if let value = request.headers[Self.header], let der = Data(base64Encoded: value) {
            context.peer = try Certificate.cached(der: der)
        }
        return try await next(request, context)
    }
}

/// The relay's routes over the in-memory store, through `app.test(.router)`: no sockets, no TLS.
/// Each test gets its own store and core; the development PKI is the shared one.
struct HandlerFixture {
    let shared = SharedPKI.shared
    let clock = TestClock()
    let store = MemoryRelayStore()
    let log = LogLines()

    func run(
        _ adjust: (inout RelayConfiguration) -> Void = { _ in },
        _ body: @Sendable (RelayServer, any TestClientProtocol) async throws -> Void
    ) async throws {
        var configuration = RelayConfiguration.development(
            pki: shared.pki,
            storePath: "unused",
            partnersFile: shared.partnersFile,
            policyFile: Root.path("config/policy.yaml")
        )
        configuration.developmentPKI.directory = nil
        configuration.limits.ratePerSecond = 1000
        configuration.limits.rateBurst = 1000
        adjust(&configuration)
        let log = self.log
        var logger = Logger(label: "test.handlers", factory: { _ in CapturingLogHandler(lines: log) })
        logger.logLevel = .trace
        let clock = self.clock
        let server = try await RelayServer.prepare(configuration, logger: logger, clock: { clock() }, store: store)
        let router = Router(context: PeerHeaderContext.self)
        router.add(middleware: PeerHeaderMiddleware())
        RelayHTTP.addRoutes(to: router, core: server.core)
        let app = Application(router: router, logger: logger)
        try await store.withRunning {
            try await server.start()
            try await app.test(.router) { client in try await body(server, client) }
        }
    }

    func peer(_ id: String) throws -> HTTPFields {
        let identity = try Identity.load(directory: shared.identityDirectory(id))
        return [PeerHeaderMiddleware.header: identity.certificate.der.base64EncodedString()]
    }

    var admin: HTTPFields {
        get throws {
            let identity = try Identity.load(directory: shared.pki.adminDirectory)
            return [PeerHeaderMiddleware.header: identity.certificate.der.base64EncodedString()]
        }
    }

    func sealed(_ type: MessageType, from sender: String, to recipient: String) throws -> (Data, RoutingHeader) {
        let identity = try Identity.load(directory: shared.identityDirectory(sender))
        let trust = try TrustStore.load(
            anchorsFile: shared.pki.caCertificatePath,
            crlFiles: [shared.pki.crlPath],
            intermediates: shared.pki.chain()
        )
        let certificates = try Certificate.load(pemFile: shared.identityDirectory(recipient) + "/cert.pem")
        let payload = try Data(contentsOf: URL(fileURLWithPath: Root.path("config/examples/\(type.rawValue).json")))
        let content = try Drafting.content(type: type, from: sender, to: recipient, payload: payload)
        return (try Envelope.seal(content, from: identity, to: certificates, trust: trust), content.header)
    }
}

/// The JSON object of a response body (empty, and a recorded issue, if it is not one).
func object(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) -> [String: Any] {
    guard let object = (try? JSONSerialization.jsonObject(with: Data(buffer: response.body))) as? [String: Any] else {
        Issue.record("not a JSON object: \(String(buffer: response.body))", sourceLocation: sourceLocation)
        return [:]
    }
    return object
}

/// The error code of a refusal, and that the refusal names the request.
func errorCode(_ response: TestResponse, sourceLocation: SourceLocation = #_sourceLocation) -> String? {
    #expect(response.headers[HTTPField.Name("X-Request-Id")!] != nil, sourceLocation: sourceLocation)
    return (object(response, sourceLocation: sourceLocation)["error"] as? [String: Any])?["code"] as? String
}

@Suite struct HandlerTests {
    @Test func healthAndReadinessNeedNoCertificate() async throws {
        try await HandlerFixture().run { _, client in
            try await client.execute(uri: "/v1/health", method: .get) { response in
                #expect(response.status == .ok)
                #expect(object(response)["status"] as? String == "ok")
            }
            try await client.execute(uri: "/v1/ready", method: .get) { response in
                #expect(response.status == .ok)
            }
        }
    }

    @Test func partnerRoutesRefuseCallersTheDirectoryDoesNotAllow() async throws {
        let fixture = HandlerFixture()
        try await fixture.run { _, client in
            // No certificate at all: refused before any handler runs.
            try await client.execute(uri: "/v1/inbox", method: .get) { response in
                #expect(response.status == .unauthorized || response.status == .forbidden)
                #expect(errorCode(response)?.hasPrefix("auth.") == true)
            }
            // A valid certificate that the directory does not list.
            try await client.execute(uri: "/v1/inbox", method: .get, headers: try fixture.peer("unregistered-maastricht")) { response in
                #expect(response.status == .forbidden)
                #expect(["auth.certificate-inactive", "auth.unknown-partner"].contains(errorCode(response)))
            }
            // A suspended partner.
            try await client.execute(uri: "/v1/inbox", method: .get, headers: try fixture.peer("gemeente-geschorst")) { response in
                #expect(response.status == .forbidden)
                #expect(errorCode(response) == "auth.partner-suspended")
            }
            // A partner is not an administrator.
            try await client.execute(uri: "/v1/admin/partners", method: .get, headers: try fixture.peer(municipality)) { response in
                #expect(response.status == .forbidden)
                #expect(errorCode(response) == "auth.not-administrator")
            }
        }
    }

    @Test func submitDeliverAcknowledgeThroughTheRouter() async throws {
        let fixture = HandlerFixture()
        try await fixture.run { _, client in
            let (sealed, header) = try fixture.sealed(.signal, from: municipality, to: coordinator)
            var headers = try fixture.peer(municipality)
            headers[.contentType] = "application/pkcs7-mime"
            try await client.execute(uri: "/v1/messages", method: .post, headers: headers, body: ByteBuffer(bytes: sealed)) { response in
                #expect(response.status == .accepted)
                let body = object(response)
                #expect(body["id"] as? String == header.id.uuidString.lowercased() || body["id"] as? String == header.id.uuidString)
                #expect(body["state"] as? String == "accepted")
            }
            // The same bytes again: the original answer, 200.
            try await client.execute(uri: "/v1/messages", method: .post, headers: headers, body: ByteBuffer(bytes: sealed)) { response in
                #expect(response.status == .ok)
            }
            // The sender may not read the recipient's inbox; the recipient gets the message with a lease.
            try await client.execute(uri: "/v1/inbox?max=5", method: .get, headers: try fixture.peer(municipality)) { response in
                #expect((object(response)["messages"] as? [Any])?.isEmpty == true)
            }
            let lease: String = try await client.execute(uri: "/v1/inbox?max=5", method: .get, headers: try fixture.peer(coordinator)) {
                response in
                #expect(response.status == .ok)
                let messages = try #require(object(response)["messages"] as? [[String: Any]])
                #expect(messages.count == 1)
                #expect(messages.first?["from"] as? String == municipality)
                #expect(Data(base64Encoded: messages.first?["message"] as? String ?? "") == sealed)
                return try #require(messages.first?["leaseToken"] as? String)
            }
            try await client.execute(uri: "/v1/messages/\(header.id)", method: .get, headers: try fixture.peer(municipality)) { response in
                #expect(object(response)["state"] as? String == "delivered")
            }
            // A third partner does not learn that the message exists.
            try await client.execute(uri: "/v1/messages/\(header.id)", method: .get, headers: try fixture.peer(shelter)) { response in
                #expect(response.status == .notFound)
                #expect(errorCode(response) == "message.not-found")
            }
            // The recipient's signed receipt closes it.
            let recipient = try Identity.load(directory: fixture.shared.identityDirectory(coordinator))
            let receipt = Receipt(
                kind: .acknowledgement,
                messageId: header.id,
                messageDigest: Digest.sha256(sealed).hexString,
                from: municipality,
                to: coordinator,
                issuer: coordinator,
                disposition: .processed,
                reasonCode: nil,
                time: fixture.clock()
            )
            var ackHeaders = try fixture.peer(coordinator)
            ackHeaders[.contentType] = "application/pkcs7-mime"
            let signed = try SignedReceipt.sign(receipt, as: recipient)
            try await client.execute(
                uri: "/v1/messages/\(header.id)/ack?lease=\(lease)",
                method: .post,
                headers: ackHeaders,
                body: ByteBuffer(bytes: signed)
            ) { response in
                #expect(response.status == .ok)
                #expect(object(response)["state"] as? String == "acknowledged")
            }
            try await client.execute(uri: "/v1/messages/\(header.id)", method: .get, headers: try fixture.peer(municipality)) { response in
                #expect(object(response)["state"] as? String == "acknowledged")
            }
        }
        #expect(try await fixture.store.pendingCount(recipient: coordinator) == 0)
    }

    @Test func badRequestsGetACodeAndAStatus() async throws {
        let fixture = HandlerFixture()
        try await fixture.run({ $0.limits.maxMessageBytes = 1024 }) { _, client in
            let partner = try fixture.peer(municipality)
            try await client.execute(uri: "/v1/inbox?max=0", method: .get, headers: partner) { response in
                #expect(response.status == .badRequest)
                #expect(errorCode(response) == "request.invalid")
            }
            try await client.execute(uri: "/v1/messages/not-a-uuid", method: .get, headers: partner) { response in
                #expect(response.status == .badRequest)
                #expect(errorCode(response) == "request.invalid")
            }
            try await client.execute(uri: "/v1/messages/\(UUID())", method: .get, headers: partner) { response in
                #expect(response.status == .notFound)
            }
            var json = partner
            json[.contentType] = "application/json"
            try await client.execute(uri: "/v1/messages", method: .post, headers: json, body: ByteBuffer(string: "{}")) { response in
                #expect(response.status == .unsupportedMediaType)
                #expect(errorCode(response) == "request.unsupported-media-type")
            }
            var cms = partner
            cms[.contentType] = "application/pkcs7-mime"
            try await client.execute(
                uri: "/v1/messages",
                method: .post,
                headers: cms,
                body: ByteBuffer(repeating: 0x30, count: 4096)
            ) { response in
                #expect(response.status == .contentTooLarge)
                #expect(errorCode(response) == "request.too-large")
            }
            try await client.execute(uri: "/v1/messages", method: .post, headers: cms, body: ByteBuffer(string: "not cms")) { response in
                #expect(response.status == .badRequest || response.status == .unprocessableContent)
                #expect(errorCode(response)?.hasPrefix("envelope.") == true)
            }
            try await client.execute(uri: "/v1/directory/nobody-here", method: .get, headers: partner) { response in
                #expect(response.status == .notFound)
            }
            // The listing a desk offers recipients from: every partner, sorted, no certificates.
            try await client.execute(uri: "/v1/directory", method: .get, headers: partner) { response in
                #expect(response.status == .ok)
                let list = try KetenpostJSON.decoder().decode(API.DirectoryList.self, from: Data(buffer: response.body))
                #expect(list.partners.map(\.id) == list.partners.map(\.id).sorted())
                #expect(list.partners.contains { $0.id == shelter && $0.role == "shelter" && $0.state == "active" })
            }
            try await client.execute(uri: "/v1/directory", method: .get) { response in
                #expect(response.status == .forbidden || response.status == .unauthorized)
            }
        }
        // Refusals are logged with their code and never with the body.
        #expect(fixture.log.all.contains { $0.contains("request refused") && $0.contains("request.too-large") })
        #expect(!fixture.log.all.contains { $0.contains("not cms") })
    }

    @Test func administratorsManageTheDirectoryThroughTheRouter() async throws {
        let fixture = HandlerFixture()
        try await fixture.run { _, client in
            let admin = try fixture.admin
            try await client.execute(uri: "/v1/admin/partners", method: .get, headers: admin) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/v1/admin/partners/\(shelter)/suspend", method: .post, headers: admin) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/v1/inbox", method: .get, headers: try fixture.peer(shelter)) { response in
                #expect(errorCode(response) == "auth.partner-suspended")
            }
            try await client.execute(uri: "/v1/admin/partners/\(shelter)/resume", method: .post, headers: admin) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/v1/inbox", method: .get, headers: try fixture.peer(shelter)) { response in
                #expect(response.status == .ok)
            }
            try await client.execute(uri: "/v1/admin/partners/nobody-here", method: .get, headers: admin) { response in
                #expect(response.status == .notFound)
                #expect(errorCode(response) == "admin.partner-not-found")
            }
        }
        // Both changes are in the audit trail, with the administrator as actor.
        let records = try await fixture.store.auditRecords(after: 0, limit: 1000)
        let changes = records.filter { $0.partnerId == shelter && $0.actor.hasPrefix("admin") }
        #expect(changes.count == 2, "\(records.map { "\($0.action) \($0.actor)" })")
    }

    /// The status page is a Mustache template: every value is escaped, whatever it holds.
    @Test func theStatusPageEscapesEveryValue() async throws {
        let fixture = HandlerFixture()
        try await fixture.run({ $0.store.path = "/tmp/<script>alert('x')</script>&.sqlite" }) { _, client in
            try await client.execute(uri: "/v1/admin/status", method: .get, headers: try fixture.admin) { response in
                #expect(response.status == .ok)
                let page = String(buffer: response.body)
                #expect(page.contains("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;.sqlite"), "\(page.prefix(2000))")
                #expect(!page.contains("<script>"))
                #expect(page.contains("<table id=\"partners\"") && page.contains("id=\"partner-\(municipality)\""))
            }
            // Not for partners.
            try await client.execute(uri: "/v1/admin/status", method: .get, headers: try fixture.peer(municipality)) { response in
                #expect(response.status == .forbidden)
            }
        }
    }
}
