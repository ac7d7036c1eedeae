import Foundation
import HTTPTypes
import Hummingbird
import KetenpostModel
import HummingbirdTLS
import Ketenpost
import KetenpostCrypto
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// The request context: Hummingbird's core storage plus the channel, to reach the TLS
/// client certificate (Hummingbird has no peer-certificate API of its own).
public struct RelayRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }

    /// The verified client certificate of this connection, in our OpenSSL wrapper.
    func peerCertificate() async -> Certificate? {
        guard let peer = try? await channel.nioSSL_peerCertificate().get(),
              let der = try? peer.toDERBytes() else { return nil }
        return try? Certificate.cached(der: der)
    }
}

/// The id of the request being handled, for log lines written deeper down.
public enum RequestScope {
    @TaskLocal public static var id: String?

    /// 64 random bits as 16 hex characters.
    static func newID() -> String {
        let value = UInt64.random(in: .min ... .max)
        let hex = String(value, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}

/// The HTTP API (docs/openapi.yaml) over mutual TLS.
public enum RelayHTTP {
    /// HTTP status for each error code; anything unknown is a 400 (the caller sent something wrong).
    static func status(for code: KetenpostError.Code) -> HTTPResponse.Status {
        switch code {
        case .unknownPartner, .partnerSuspended, .senderMismatch, .signerUnregistered, .signerNotSender, .signerMismatch,
             .policyForbidden, .correlationMismatch, .recipientSuspended, .receiptSignerMismatch:
            return .forbidden
        case .certificateUntrusted, .certificateExpired, .certificateNotYetValid, .certificateRevoked, .certificatePurpose,
             .certificateCRLUnavailable, .certificateInvalid:
            return .forbidden
        case .certificateInactive, .notAdministrator: return .forbidden
        case .messageNotFound, .recipientUnknown, .partnerNotFound, .certificateNotFound: return .notFound
        case .messageConflict, .leaseInvalid, .leaseExpired, .messageFinal, .partnerExists, .certificateExists: return .conflict
        case .requestTooLarge, .inputTooLarge: return .contentTooLarge
        case .requestUnsupportedMediaType: return .unsupportedMediaType
        case .rateLimited: return .tooManyRequests
        case .storeUnavailable: return .serviceUnavailable
        case .internalError: return .internalServerError
        default: return .badRequest
        }
    }

    static func json<T: Encodable>(_ value: T, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
        let data = (try? KetenpostJSON.encoder().encode(value)) ?? Data("{}".utf8)
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(_ error: KetenpostError) -> Response {
        var headers: HTTPFields = [:]
        if error.code == .rateLimited, let retry = error.detail.first(where: { $0.hasPrefix("retry-after=") }) {
            headers[.retryAfter] = String(retry.dropFirst("retry-after=".count))
        }
        return json(API.ErrorBody(code: error.code.rawValue, message: error.message), status: status(for: error.code), headers: headers)
    }

    /// Runs a handler and turns every failure into the JSON error body with a stable code.
    /// Every request gets an id: in each log line it causes (a task-local) and in the
    /// `X-Request-Id` answer header, so a partner's support call can be matched to the logs.
    static func handle(_ logger: Logger, _ body: () async throws -> Response) async -> Response {
        let id = RequestScope.newID()
        var response = await RequestScope.$id.withValue(id) { () async -> Response in
            do {
                return try await body()
            } catch let error as KetenpostError {
                logger.notice("request refused", metadata: ["error.code": "\(error.code)", "request.id": "\(id)"])
                return Self.error(error)
            } catch {
                logger.error("unexpected failure", metadata: ["error.type": "\(type(of: error))", "request.id": "\(id)"])
                return Self.error(KetenpostError(.internalError, "The relay failed unexpectedly; nothing was changed. Retry, and report it if it persists."))
            }
        }
        response.headers[.requestID] = id
        return response
    }

    /// Reads a CMS body: the right content type, refused with 413 before it is read whole, and
    /// complete within `limits.bodyTimeout` or the connection is closed.
    static func cmsBody(_ request: Request, limit: Int, context: RelayRequestContext, timeout: TimeInterval) async throws -> Data {
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

    /// Closes the connection if `body` has not finished within `timeout`: a client that trickles
    /// its body would otherwise hold the connection (and a body buffer) as long as it likes.
    static func withBodyDeadline<T: Sendable>(context: RelayRequestContext, timeout: TimeInterval,
                                              _ body: () async throws -> T) async throws -> T {
        let channel = context.channel
        let timer = Task {
            try await Task.sleep(for: .milliseconds(Int64(timeout * 1000)))
            channel.close(promise: nil)
        }
        defer { timer.cancel() }
        return try await body()
    }

    static func messageID(_ context: RelayRequestContext) throws -> UUID {
        guard let text = context.parameters.get("id"), let id = UUID(uuidString: text) else {
            throw KetenpostError(.requestInvalid, "The message id in the path must be a UUID.")
        }
        return id
    }

    /// The router with every endpoint of the API.
    public static func router(core: RelayCore) -> Router<RelayRequestContext> {
        let router = Router(context: RelayRequestContext.self)
        let limit = core.configuration.maxMessageBytes
        let logger = core.logger

        router.post("/v1/messages") { request, context in
            await handle(logger) {
                let partner = try core.admit(await context.peerCertificate())
                let body = try await cmsBody(request, limit: limit, context: context, timeout: core.configuration.bodyTimeout)
                let submitted = try await core.submit(body, as: partner)
                return json(submitted.response, status: submitted.duplicate ? .ok : .accepted)
            }
        }
        router.get("/v1/inbox") { request, context in
            await handle(logger) {
                let max = request.uri.queryParameters.get("max").flatMap(Int.init) ?? 10
                let wait = request.uri.queryParameters.get("wait").flatMap(Double.init) ?? 0
                guard (1...100).contains(max), wait >= 0 else {
                    throw KetenpostError(.requestInvalid, "max must be 1 to 100 and wait a number of seconds ≥ 0.")
                }
                let channel = context.channel
                return json(try await core.inbox(peer: await context.peerCertificate(), limit: max, wait: wait,
                                                 isConnected: { channel.isActive }))
            }
        }
        router.post("/v1/messages/:id/ack") { request, context in
            await handle(logger) {
                let id = try messageID(context)
                guard let token = request.uri.queryParameters.get("lease"), !token.isEmpty, token.count <= 128 else {
                    throw KetenpostError(.requestInvalid, "Give the lease token of the delivery as ?lease=TOKEN.")
                }
                let body = try await cmsBody(request, limit: SignedReceipt.maximumSize, context: context, timeout: core.configuration.bodyTimeout)
                return json(try await core.acknowledge(id: id, leaseToken: String(token), receipt: body, peer: await context.peerCertificate()))
            }
        }
        router.get("/v1/messages/:id") { _, context in
            await handle(logger) {
                json(try await core.status(id: try messageID(context), peer: await context.peerCertificate()))
            }
        }
        router.get("/v1/directory/:partner") { _, context in
            await handle(logger) {
                let id = context.parameters.get("partner") ?? ""
                return json(try core.directoryEntry(id, peer: await context.peerCertificate()))
            }
        }
        // The same certificates as PEM text, for partners with only curl and openssl.
        router.get("/v1/directory/:partner/certificates.pem") { _, context in
            await handle(logger) {
                let id = context.parameters.get("partner") ?? ""
                let entry = try core.directoryEntry(id, peer: await context.peerCertificate())
                return Response(status: .ok, headers: [.contentType: "application/x-pem-file"],
                                body: .init(byteBuffer: ByteBuffer(string: entry.certificates.joined())))
            }
        }
        addAdminRoutes(router, core: core)
        router.get("/v1/health") { _, _ in json(API.HealthResponse(status: "ok")) }
        router.get("/v1/ready") { _, _ in
            await core.ready()
                ? json(API.HealthResponse(status: "ready"))
                : error(KetenpostError(.storeUnavailable, "The relay's store does not answer."))
        }
        return router
    }

    /// Reads a JSON body of at most 256 KiB into `T`, strictly (unknown fields are refused).
    static func jsonBody<T: Codable>(_ request: Request, context: RelayRequestContext, as type: T.Type) async throws -> T {
        let contentType = request.headers[.contentType]?.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
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

    /// `/v1/admin/...` and `/metrics`: administrator certificates only (checked first, in RelayCore).
    static func addAdminRoutes(_ router: Router<RelayRequestContext>, core: RelayCore) {
        let logger = core.logger
        @Sendable func partnerID(_ context: RelayRequestContext) -> String { context.parameters.get("partner") ?? "" }
        router.get("/v1/admin/partners") { _, context in
            await handle(logger) { json(try core.adminPartners(peer: await context.peerCertificate())) }
        }
        router.post("/v1/admin/partners") { request, context in
            await handle(logger) {
                let peer = await context.peerCertificate()
                _ = try core.authenticateAdministrator(peer)
                let body = try await jsonBody(request, context: context, as: API.AdminNewPartner.self)
                return json(try await core.adminAddPartner(body, peer: peer), status: .created)
            }
        }
        router.get("/v1/admin/partners/:partner") { _, context in
            await handle(logger) { json(try core.adminPartner(partnerID(context), peer: await context.peerCertificate())) }
        }
        router.post("/v1/admin/partners/:partner/suspend") { _, context in
            await handle(logger) { json(try await core.adminSetState(partnerID(context), .suspended, peer: await context.peerCertificate())) }
        }
        router.post("/v1/admin/partners/:partner/resume") { _, context in
            await handle(logger) { json(try await core.adminSetState(partnerID(context), .active, peer: await context.peerCertificate())) }
        }
        router.post("/v1/admin/partners/:partner/certificates") { request, context in
            await handle(logger) {
                let peer = await context.peerCertificate()
                _ = try core.authenticateAdministrator(peer)
                let body = try await jsonBody(request, context: context, as: API.AdminCertificateInput.self)
                return json(try await core.adminAddCertificate(partnerID(context), body, peer: peer), status: .created)
            }
        }
        router.post("/v1/admin/partners/:partner/rotate") { request, context in
            await handle(logger) {
                let peer = await context.peerCertificate()
                _ = try core.authenticateAdministrator(peer)
                let body = try await jsonBody(request, context: context, as: API.AdminRotation.self)
                return json(try await core.adminRotate(partnerID(context), body, peer: peer))
            }
        }
        router.post("/v1/admin/certificates/:fingerprint/revoke") { request, context in
            await handle(logger) {
                let peer = await context.peerCertificate()
                _ = try core.authenticateAdministrator(peer)
                let body = try await jsonBody(request, context: context, as: API.AdminRevocation.self)
                return json(try await core.adminRevoke(fingerprint: context.parameters.get("fingerprint") ?? "", reason: body.reason, peer: peer))
            }
        }
        router.get("/v1/admin/certificates/expiring") { request, context in
            await handle(logger) {
                let peer = await context.peerCertificate()
                _ = try core.authenticateAdministrator(peer)
                let within = request.uri.queryParameters.get("within").map { Drafting.parseDuration(String($0)) }
                    ?? core.configuration.expiryWarning
                guard let within else { throw KetenpostError(.requestInvalid, "within must be a duration such as 30d.") }
                return json(try core.adminExpiring(within: within, peer: peer))
            }
        }
        router.get("/v1/admin/events") { request, context in
            await handle(logger) {
                let after = request.uri.queryParameters.get("after").flatMap { Int64($0) } ?? 0
                let limit = request.uri.queryParameters.get("limit").flatMap { Int($0) } ?? 100
                return json(try await core.adminEvents(after: after, limit: limit, peer: await context.peerCertificate()))
            }
        }
        router.post("/v1/admin/reload") { _, context in
            await handle(logger) {
                _ = try core.authenticateAdministrator(await context.peerCertificate())
                let changed = core.reloadCredentials()
                try await core.refreshDirectory(force: true)
                return json(API.HealthResponse(status: changed ? "reloaded" : "unchanged"))
            }
        }
        router.get("/v1/admin/status") { _, context in
            await handle(logger) {
                _ = try core.authenticateAdministrator(await context.peerCertificate())
                return Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                                body: .init(byteBuffer: ByteBuffer(string: await StatusPage.render(core))))
            }
        }
        router.get("/metrics") { _, context in
            await handle(logger) {
                let text = try await core.adminMetrics(peer: await context.peerCertificate())
                return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                                body: .init(byteBuffer: ByteBuffer(string: text)))
            }
        }
    }

    /// TLS 1.2+ with a required client certificate, checked by the relay itself (chain, CRLs,
    /// directory state) at every handshake; the relay's certificate is looked up per handshake,
    /// so a reloaded certificate applies to new connections while open ones continue.
    static func tlsConfiguration(core: RelayCore) throws -> TLSChannelConfiguration {
        let configuration = core.configuration
        do {
            let credentials = core.credentials
            let roots = try credentials.trust.anchors.map { try NIOSSLCertificate(bytes: Array($0.der), format: .der) }
            var tls = TLSConfiguration.makeServerConfigurationWithMTLS(certificateChain: credentials.tlsChain, privateKey: credentials.tlsKey,
                                                                      trustRoots: .certificates(roots))
            tls.minimumTLSVersion = .tlsv12
            tls.certificateVerification = .noHostnameVerification
            tls.sslContextCallback = { _, promise in promise.succeed(core.tlsOverride()) }
            return TLSChannelConfiguration(tlsConfiguration: tls, customVerificationCallback: { chain, promise in
                promise.succeed(core.verifyHandshake(chain))
            })
        } catch {
            throw KetenpostError(.configInvalid, "The relay's TLS files (tls.certificate \(configuration.tlsCertificate), tls.key, tls.trustAnchors \(configuration.trustAnchors)) cannot be used: \(error)")
        }
    }
}

/// Applies expiry, dead-letters and retention on a schedule, and ends long polls at shutdown.
struct SweeperService: Service {
    let core: RelayCore

    func run() async throws {
        await withGracefulShutdownHandler {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                _ = try? await core.sweep()
                let interval = Duration.milliseconds(Int64(core.configuration.sweepInterval * 1000))
                try? await cancelWhenGracefulShutdown { try await Task.sleep(for: interval) }
            }
        } onGracefulShutdown: {
            Task { await core.shutdown() }
        }
    }
}

extension HTTPTypes.HTTPField.Name {
    static let requestID = Self("X-Request-Id")!
}
