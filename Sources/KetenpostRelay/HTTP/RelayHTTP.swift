import Foundation
import HTTPTypes
import Hummingbird
import KetenpostAPI
import KetenpostEnvelope
import KetenpostModel
import NIOCore
import Synchronization

/// The relay's HTTP API (docs/openapi.yaml). Authentication is middleware per route group;
/// handlers get the caller from the context and throw `KetenpostError`s, which are responses.
public enum RelayHTTP {
    /// The router with every endpoint of the API, over any context that knows the client certificate.
    public static func router<Context: PeerRequestContext>(
        core: RelayCore,
        context: Context.Type = RelayRequestContext.self
    ) -> Router<Context> {
        let router = Router(context: Context.self)
        addRoutes(to: router, core: core)
        return router
    }

    /// Adds the API to a router that may already carry middleware of its own (handler tests put
    /// the client certificate into their context that way).
    public static func addRoutes<Context: PeerRequestContext>(to router: Router<Context>, core: RelayCore) {
        router.add(middleware: RequestOutcomeMiddleware())
        // Probes answer from memory (readiness: one store query per second at most, however often
        // it is asked) and close their connection, so that probing cannot hold a connection slot.
        let readiness = Readiness(messages: core.messages)
        router.get("/v1/health") { _, _ in
            var response = json(API.HealthResponse(status: "ok"))
            response.headers[.connection] = "close"
            return response
        }
        router.get("/v1/ready") { _, _ in
            guard await readiness.ready() else { throw KetenpostError(.storeUnavailable, "The relay's store does not answer.") }
            var response = json(API.HealthResponse(status: "ready"))
            response.headers[.connection] = "close"
            return response
        }
        addPartnerRoutes(router.group().add(middleware: PartnerAuthentication(authenticator: core.authenticator)), core: core)
        addAdminRoutes(router.group().add(middleware: AdministratorAuthentication(authenticator: core.authenticator)), core: core)
    }

    static func addPartnerRoutes<Context: PeerRequestContext>(_ routes: RouterGroup<Context>, core: RelayCore) {
        let messages = core.messages
        let configuration = core.configuration
        routes.post("/v1/messages") { request, context in
            let body = try await cmsBody(
                request,
                limit: configuration.limits.maxMessageBytes,
                context: context,
                timeout: configuration.limits.bodyTimeout
            )
            let submitted = try await messages.submit(body, as: try context.authenticated(), logger: context.logger)
            return json(submitted.response, status: submitted.duplicate ? .ok : .accepted)
        }
        routes.get("/v1/inbox") { request, context in
            let max = request.uri.queryParameters.get("max").flatMap(Int.init) ?? 10
            let wait = request.uri.queryParameters.get("wait").flatMap(Double.init) ?? 0
            guard (1...100).contains(max), wait >= 0 else {
                throw KetenpostError(.requestInvalid, "max must be 1 to 100 and wait a number of seconds ≥ 0.")
            }
            let isConnected: @Sendable () -> Bool = { [context] in context.isConnected }
            let leases = try await messages.leaseInbox(
                for: try context.authenticated(),
                limit: max,
                wait: wait,
                logger: context.logger,
                isConnected: isConnected
            )
            if InboxMultipart.isPreferred(byAccept: request.headers[values: .accept].joined(separator: ", ")) {
                return multipartInbox(leases.map(messages.inboxDelivery))
            }
            // Streamed one message at a time: the base64 of a whole batch is never held at once.
            return Response(
                status: .ok,
                headers: [.contentType: "application/json", .vary: "Accept"],
                body: ResponseBody { writer in
                    let encoder = KetenpostJSON.encoder()
                    try await writer.write(ByteBuffer(string: "{\"messages\":["))
                    for (index, lease) in leases.enumerated() {
                        var chunk = index == 0 ? Data() : Data(",".utf8)
                        chunk.append(try encoder.encode(messages.inboxMessage(lease)))
                        try await writer.write(ByteBuffer(bytes: chunk))
                    }
                    try await writer.write(ByteBuffer(string: "]}"))
                    try await writer.finish(nil)
                }
            )
        }
        routes.post("/v1/messages/:id/ack") { request, context in
            let id = try messageID(context)
            guard let token = request.uri.queryParameters.get("lease"), !token.isEmpty, token.count <= 128 else {
                throw KetenpostError(.requestInvalid, "Give the lease token of the delivery as ?lease=TOKEN.")
            }
            let body = try await cmsBody(
                request,
                limit: SignedReceipt.maximumSize,
                context: context,
                timeout: configuration.limits.bodyTimeout
            )
            return json(
                try await messages.acknowledge(
                    id: id,
                    leaseToken: String(token),
                    receipt: body,
                    as: try context.partner(),
                    logger: context.logger
                )
            )
        }
        routes.get("/v1/messages/:id") { _, context in
            json(try await messages.status(id: try messageID(context), for: try context.partner(), logger: context.logger))
        }
        routes.get("/v1/directory") { _, _ in json(messages.directoryList()) }
        routes.get("/v1/directory/:partner") { _, context in
            json(try messages.directoryEntry(context.parameters.get("partner") ?? ""))
        }
        // The CRLs the relay checks with, per CA the newest (PEM, one after the other): signed by
        // their CAs, so a relay cannot forge them. Recipients check senders against them
        // (`openssl cms -verify -crl_check_all -CRLfile`).
        routes.get("/v1/crls.pem") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "application/x-pem-file", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: messages.revocationListsPEM()))
            )
        }
        // The same certificates as PEM text, for partners with only curl and openssl: the
        // partner's certificates first, then their intermediates (CA:TRUE), as in a chain file.
        routes.get("/v1/directory/:partner/certificates.pem") { _, context in
            let entry = try messages.directoryEntry(context.parameters.get("partner") ?? "")
            return Response(
                status: .ok,
                headers: [.contentType: "application/x-pem-file"],
                body: .init(byteBuffer: ByteBuffer(string: (entry.certificates + (entry.chain ?? [])).joined()))
            )
        }
    }

    /// The inbox in the binary form (`InboxMultipart`): each sealed message as it is, after its
    /// part's headers; nothing waiting is 204.
    static func multipartInbox(_ deliveries: [API.InboxDelivery]) -> Response {
        guard !deliveries.isEmpty else { return Response(status: .noContent, headers: [.vary: "Accept"]) }
        let boundary = InboxMultipart.boundary(avoiding: deliveries.map(\.message))
        return Response(
            status: .ok,
            headers: [.contentType: InboxMultipart.contentType(boundary: boundary), .vary: "Accept"],
            body: ResponseBody { writer in
                for (index, delivery) in deliveries.enumerated() {
                    let head = InboxMultipart.partHead(delivery, boundary: boundary, first: index == 0)
                    var buffer = ByteBuffer()
                    buffer.reserveCapacity(head.utf8.count + delivery.message.count)
                    buffer.writeString(head)
                    buffer.writeBytes(delivery.message)
                    try await writer.write(buffer)
                }
                try await writer.write(ByteBuffer(string: InboxMultipart.closing(boundary: boundary)))
                try await writer.finish(nil)
            }
        )
    }

    /// `/v1/admin/...` and `/metrics`: administrator certificates only.
    static func addAdminRoutes<Context: PeerRequestContext>(_ routes: RouterGroup<Context>, core: RelayCore) {
        let administration = core.administration
        @Sendable func partnerID(_ context: Context) -> String { context.parameters.get("partner") ?? "" }
        routes.get("/v1/admin/partners") { _, _ in json(administration.partners()) }
        routes.post("/v1/admin/partners") { request, context in
            let body = try await jsonBody(request, context: context, as: API.AdminNewPartner.self)
            return json(
                try await administration.addPartner(body, actor: try context.administrator(), logger: context.logger),
                status: .created
            )
        }
        routes.get("/v1/admin/partners/:partner") { _, context in json(try administration.partner(partnerID(context))) }
        routes.post("/v1/admin/partners/:partner/suspend") { _, context in
            json(
                try await administration.setState(
                    partnerID(context),
                    .suspended,
                    actor: try context.administrator(),
                    logger: context.logger
                )
            )
        }
        routes.post("/v1/admin/partners/:partner/resume") { _, context in
            json(try await administration.setState(partnerID(context), .active, actor: try context.administrator(), logger: context.logger))
        }
        routes.post("/v1/admin/partners/:partner/certificates") { request, context in
            let body = try await jsonBody(request, context: context, as: API.AdminCertificateInput.self)
            return json(
                try await administration.addCertificate(
                    partnerID(context),
                    body,
                    actor: try context.administrator(),
                    logger: context.logger
                ),
                status: .created
            )
        }
        routes.post("/v1/admin/partners/:partner/rotate") { request, context in
            let body = try await jsonBody(request, context: context, as: API.AdminRotation.self)
            return json(
                try await administration.rotate(partnerID(context), body, actor: try context.administrator(), logger: context.logger)
            )
        }
        routes.post("/v1/admin/certificates/:fingerprint/revoke") { request, context in
            let body = try await jsonBody(request, context: context, as: API.AdminRevocation.self)
            return json(
                try await administration.revoke(
                    fingerprint: context.parameters.get("fingerprint") ?? "",
                    reason: body.reason,
                    actor: try context.administrator(),
                    logger: context.logger
                )
            )
        }
        routes.get("/v1/admin/crls") { _, context in json(try await administration.revocationLists(logger: context.logger)) }
        routes.get("/v1/admin/certificates/expiring") { request, _ in
            let within =
                request.uri.queryParameters.get("within").map { Drafting.parseDuration(String($0)) }
                ?? core.configuration.directory.expiryWarning
            guard let within else { throw KetenpostError(.requestInvalid, "within must be a duration such as 30d.") }
            return json(administration.expiring(within: within))
        }
        routes.get("/v1/admin/events") { request, context in
            let after = request.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0
            let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) } ?? 100
            return json(try await administration.events(after: after, limit: limit, logger: context.logger))
        }
        routes.post("/v1/admin/reload") { _, context in
            let changed = core.reloadCredentials()
            do { try await core.directory.refresh(force: true) } catch {
                throw KetenpostError.storeUnavailable(error, logger: context.logger)
            }
            return json(API.HealthResponse(status: changed ? "reloaded" : "unchanged"))
        }
        routes.get("/v1/admin/status") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                body: .init(byteBuffer: ByteBuffer(string: await StatusPage.render(core)))
            )
        }
        routes.get("/metrics") { _, _ in
            Response(
                status: .ok,
                headers: [.contentType: "text/plain; version=0.0.4"],
                body: .init(byteBuffer: ByteBuffer(string: await core.metricsText()))
            )
        }
    }

    // MARK: Requests and responses

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let data = (try? KetenpostJSON.encoder().encode(value)) ?? Data("{}".utf8)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func messageID(_ context: some RequestContext) throws(KetenpostError) -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw KetenpostError(.requestInvalid, "The message id in the path must be a UUID.")
        }
        return id
    }

    /// Reads a CMS body: the right content type, refused with 413 before it is read whole, and
    /// complete within `limits.bodyTimeout` or the connection is closed.
    static func cmsBody(_ request: Request, limit: Int, context: some PeerRequestContext, timeout: TimeInterval) async throws -> Data {
        let type = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
        guard let type, API.cmsContentTypes.contains(type) else {
            throw KetenpostError(.requestUnsupportedMediaType, "Send the DER bytes with Content-Type: application/cms.")
        }
        if let length = request.headers[.contentLength].flatMap(Int.init), length > limit {
            throw KetenpostError(.requestTooLarge, "The body is larger than the relay's limit of \(limit) bytes.")
        }
        var request = request
        let buffer = try await withBodyDeadline(context: context, timeout: timeout) {
            do {
                return try await request.collectBody(upTo: limit)
            } catch is NIOTooManyBytesError {
                throw KetenpostError(.requestTooLarge, "The body is larger than the relay's limit of \(limit) bytes.")
            }
        }
        return Data(buffer: buffer)
    }

    /// Reads a JSON body of at most 256 KiB into `T`, strictly (unknown fields are refused).
    static func jsonBody<T: Codable>(_ request: Request, context: some PeerRequestContext, as type: T.Type) async throws -> T {
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map {
            $0.trimmingCharacters(in: .whitespaces).lowercased()
        }
        guard contentType == "application/json" else {
            throw KetenpostError(.requestUnsupportedMediaType, "Send the request as Content-Type: application/json.")
        }
        var request = request
        let buffer: ByteBuffer
        do {
            buffer = try await withBodyDeadline(context: context, timeout: 60) { try await request.collectBody(upTo: 256 << 10) }
        } catch is NIOTooManyBytesError {
            throw KetenpostError(.requestTooLarge, "The body is larger than 256 KiB.")
        }
        do {
            return try KetenpostJSON.decodeStrict(T.self, from: Data(buffer: buffer), path: "body")
        } catch {
            throw KetenpostError(.requestInvalid, "The JSON body is not valid: \(error.description)")
        }
    }

    /// Closes the connection if `body` has not finished within `timeout`: a client that trickles
    /// its body would otherwise hold the connection (and a body buffer) as long as it likes.
    static func withBodyDeadline<T: Sendable>(
        context: some PeerRequestContext,
        timeout: TimeInterval,
        _ body: () async throws -> T
    ) async throws -> T {
        let deadline = context.closeConnection(after: timeout)
        defer { deadline.cancel() }
        return try await body()
    }
}

/// `/v1/ready`'s answer, asked of the store at most once a second.
final class Readiness: Sendable {
    private let messages: MessageService
    private let last = Mutex<(at: ContinuousClock.Instant, ready: Bool)?>(nil)

    init(messages: MessageService) { self.messages = messages }

    func ready() async -> Bool {
        let now = ContinuousClock.now
        if let held = last.withLock({ $0 }), now - held.at < .seconds(1) { return held.ready }
        let ready = await messages.ready()
        last.withLock { $0 = (now, ready) }
        return ready
    }
}
