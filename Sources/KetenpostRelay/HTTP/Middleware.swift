import Foundation
import HTTPTypes
import Hummingbird
import KetenpostAPI
import Logging

/// The outermost middleware of every relay route: each answer carries the request id
/// (`X-Request-Id`, Hummingbird's `hb.request.id`, which is also in every log line the request
/// causes), a refusal is logged with its code, and a failure that is not a `KetenpostError`
/// becomes `internal.error` with a sentence instead of an empty 500.
struct RequestOutcomeMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            response = try await next(request, context)
        } catch let error as KetenpostError {
            context.logger.notice("request refused", metadata: ["error.code": "\(error.code)"])
            response = try error.response(from: request, context: context)
        } catch let error as any HTTPResponseError {
            // The router's own answers (404 for an unknown path, 405 for a wrong method).
            response = try error.response(from: request, context: context)
        } catch {
            context.logger.error("unexpected failure", metadata: ["error.type": "\(type(of: error))"])
            response = try KetenpostError(
                .internalError,
                "The relay failed unexpectedly; nothing was changed. Retry, and report it if it persists."
            )
            .response(from: request, context: context)
        }
        if let id = context.logger[metadataKey: "hb.request.id"] {
            response.headers[.requestID] = id.description
        }
        return response
    }
}

/// Partner routes: the client certificate must belong to an active partner and be usable for
/// TLS now, and the partner's rate limit must allow the request. Checked before any body is
/// read: an unknown or throttled partner does not get to upload megabytes first.
struct PartnerAuthentication<Context: PeerRequestContext>: RouterMiddleware {
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let (partner, certificate, trust) = try authenticator.caller(await context.peerCertificate())
        try authenticator.checkRate(partner)
        var context = context
        context.caller = .partner(partner, certificate: certificate, trust: trust)
        return try await next(request, context)
    }
}

/// Administrator routes (`/v1/admin/...`, `/metrics`): the client certificate must be one of
/// `admin.certificates` and chain to the trust anchors.
struct AdministratorAuthentication<Context: PeerRequestContext>: RouterMiddleware {
    let authenticator: Authenticator

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let actor = try authenticator.administrator(await context.peerCertificate())
        var context = context
        context.caller = .administrator(actor: actor)
        return try await next(request, context)
    }
}

/// Every `KetenpostError` is an HTTP answer: the status its code stands for and the JSON error
/// body with the code and the sentence (docs/openapi.yaml, `Error`).
extension KetenpostError: HTTPResponseError {
    public var status: HTTPResponse.Status {
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
        // 507: the relay will not store more for this sender now; nothing is wrong with the message.
        case .quotaExceeded: return .init(code: 507, reasonPhrase: "Insufficient Storage")
        case .storeUnavailable: return .serviceUnavailable
        case .internalError: return .internalServerError
        // Anything else: the caller sent something wrong.
        default: return .badRequest
        }
    }

    public func response(from request: Request, context: some RequestContext) throws -> Response {
        var headers: HTTPFields = [:]
        // A caller the relay does not serve (now) gets its answer and no reusable connection:
        // such connections are closed by the relay soon after (ConnectionGate).
        if [.unknownPartner, .partnerSuspended, .certificateInactive, .certificateRevoked, .notAdministrator].contains(code) {
            headers[.connection] = "close"
        }
        if code == .rateLimited, let retry = detail.first(where: { $0.hasPrefix("retry-after=") }) {
            headers[.retryAfter] = String(retry.dropFirst("retry-after=".count))
        }
        return RelayHTTP.json(API.ErrorBody(code: code.rawValue, message: message), status: status, headers: headers)
    }
}

extension HTTPField.Name {
    static let requestID = Self("X-Request-Id")!
}
