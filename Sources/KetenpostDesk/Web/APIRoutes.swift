import Foundation
import HTTPTypes
import Hummingbird
import KetenpostAPI
import KetenpostModel
import Logging
import NIOCore

/// The desk's JSON API for case systems (docs/desk-api.md, docs/desk-openapi.yaml): sends with
/// an idempotency key, status, the inbox by cursor with long polls, answers. Authenticated by API
/// tokens; every message read or sent is in the access log under the token's name.
enum APIRoutes {
    static func add(to router: Router<DeskRequestContext>, core: DeskCore) {
        let api = router.group("api/v1").add(middleware: APIAuthentication(core: core))
        api.post("messages") { request, context in
            let token = try context.apiToken(.send)
            let key = try idempotencyKey(request)
            let body = try await request.body.collect(upTo: context.maxUploadSize)
            let result = try await core.sendFromSystem(body: Data(buffer: body), key: key, scope: token.actor, actor: token.accessActor)
            return try taken(result)
        }
        api.get("messages/:id") { _, context in
            let id = try messageID(context)
            _ = try context.apiToken(.read)
            guard let message = try core.store.message(id), message.state != .draft else { throw notFound }
            return json(status(of: message))
        }
        // The evidence package of a sent or received message, as the desk's page offers it: for
        // the case file (the sealed message, both receipts, the openssl commands that check them).
        api.get("messages/:id/evidence.zip") { _, context in
            let token = try context.apiToken(.read)
            let id = try messageID(context)
            guard let message = try core.store.message(id), message.state != .draft, message.sealed != nil else { throw notFound }
            return try await Evidence.download(message, core: core, by: token.accessActor, english: true)
        }
        api.get("inbox") { request, context in
            let token = try context.apiToken(.read)
            let parameters = request.uri.queryParameters
            guard let after = Int64(parameters.get("after") ?? "0"), after >= 0 else {
                throw KetenpostError(.deskInputInvalid, "The cursor `after` is the `cursor` of an earlier answer (a whole number), or 0.")
            }
            let wait = min(max(Int(parameters.get("wait") ?? "0") ?? 0, 0), 60)
            let limit = min(max(Int(parameters.get("limit") ?? "50") ?? 50, 1), 200)
            // Long poll: the store is asked every quarter second (an index lookup) until a message
            // arrives or the wait is over.
            let deadline = ContinuousClock.now + .seconds(wait)
            var messages = try core.store.inbox(after: after, limit: limit)
            while messages.isEmpty && ContinuousClock.now < deadline && !Task.isCancelled {
                try await Task.sleep(for: .milliseconds(250))
                messages = try core.store.inbox(after: after, limit: limit)
            }
            var items: [[String: Any]] = []
            for message in messages {
                items.append(try inboxItem(message, core: core, actor: token.accessActor, detail: "api"))
            }
            let cursor = messages.last?.inboxSeq ?? after
            return json(["messages": items, "cursor": String(cursor)])
        }
        api.post("inbox/:id/answer") { request, context in
            let token = try context.apiToken(.answer)
            let key = try idempotencyKey(request)
            let id = try messageID(context)
            guard let original = try core.store.message(id), original.direction == .incoming else { throw notFound }
            guard original.state != .refused, MessageType.allCases.contains(where: { $0.answers?.rawValue == original.type }) else {
                throw KetenpostError(.deskWrongState, "Only intake notices and referrals that could be opened are answered.")
            }
            let body = try await request.body.collect(upTo: context.maxUploadSize)
            let result = try await core.sendFromSystem(
                body: Data(buffer: body),
                key: key,
                scope: token.actor,
                actor: token.accessActor,
                answering: original
            )
            return try taken(result)
        }
    }

    static let notFound = KetenpostError(.deskNotFound, "There is no message with this id at this desk.")

    static func messageID(_ context: DeskRequestContext) throws(KetenpostError) -> String {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { throw notFound }
        return id.uuidString.lowercased()
    }

    /// 1 to 200 visible ASCII characters (a UUID, a case number with a suffix, a file name).
    static func idempotencyKey(_ request: Request) throws(KetenpostError) -> String {
        guard let key = request.headers[HTTPField.Name("Idempotency-Key")!], (1...200).contains(key.utf8.count),
            key.utf8.allSatisfy({ (0x21...0x7E).contains($0) })
        else {
            throw KetenpostError(
                .deskIdempotencyKeyMissing,
                "Send an Idempotency-Key header (1 to 200 visible ASCII characters, e.g. a UUID) that names this message for good; "
                    + "a retry with the same key never sends twice."
            )
        }
        return key
    }

    static func taken(_ result: DeskCore.SystemSendResult) throws -> Response {
        switch result {
        case .invalid(let problems):
            throw APIProblem(
                error: KetenpostError(
                    .deskMessageInvalid,
                    "The message breaks the rules of its type; `fields` says where. Nothing was sent."
                ),
                fields: problems
            )
        case .taken(let message, let created):
            var response = json(
                [
                    "id": message.id, "state": DeskAPIState.name(message.state), "statusUrl": "/api/v1/messages/\(message.id)",
                    "reasonCode": message.reasonCode as Any,
                ],
                status: .created
            )
            if !created { response.headers[HTTPField.Name("Idempotent-Replayed")!] = "true" }
            response.headers[.location] = "/api/v1/messages/\(message.id)"
            return response
        }
    }

    /// A message's delivery and business state, with its receipts. Metadata only.
    static func status(of message: DeskMessage) -> [String: Any] {
        var answer: [String: Any]? = nil
        if message.outcome != nil || message.answerId != nil {
            answer = [
                "outcome": message.outcome as Any, "reason": message.outcomeReason as Any, "messageId": message.answerId as Any,
                "at": message.answeredAt.map(iso) as Any,
            ]
        }
        return [
            "id": message.id,
            "direction": message.direction == .incoming ? "received" : "sent",
            "type": message.type,
            "partner": message.counterpart,
            "priority": message.priority,
            "correlationId": message.correlationId as Any,
            "state": DeskAPIState.name(message.state),
            "reasonCode": message.reasonCode as Any,
            "createdAt": iso(message.createdAt),
            "expiresAt": message.expiresAt.map(iso) as Any,
            "answer": answer as Any,
            "receipts": [
                "acceptance": message.acceptanceReceipt?.base64EncodedString() as Any,
                "recipient": message.recipientReceipt?.base64EncodedString() as Any,
            ],
        ]
    }

    /// A received message for the case system, opened from its sealed bytes; its reading is
    /// logged under the token's name.
    static func inboxItem(_ message: DeskMessage, core: DeskCore, actor: AccessEvent.Actor, detail: String) throws -> [String: Any] {
        var item = status(of: message)
        item["cursor"] = String(message.inboxSeq ?? 0)
        item.removeValue(forKey: "receipts")
        if message.state != .refused {
            let content = try core.content(of: message)
            let encoded = try content.encoded()
            let object = try JSONSerialization.jsonObject(with: encoded) as? [String: Any]
            item["payload"] = object?["payload"]
            let header = content.header
            item["labels"] = ["region": header.region as Any, "exploitationForm": header.exploitationForm?.rawValue as Any]
            try core.store.accessLog.recordEvent(
                AccessEvent(staff: actor.staff, role: actor.role, action: .view, messageId: message.id, detail: detail)
            )
        }
        return item
    }

    static func iso(_ milliseconds: Int64) -> String {
        Date(timeIntervalSince1970: Double(milliseconds) / 1000).formatted(.iso8601)
    }

    static func json(_ object: [String: Any], status: HTTPResponse.Status = .ok) -> Response {
        let data = (try? JSONSerialization.data(withJSONObject: clean(object), options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(
            status: status,
            headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data))
        )
    }

    /// Optional values that are nil become JSON null.
    static func clean(_ value: Any) -> Any {
        switch value {
        case let dictionary as [String: Any]: return dictionary.mapValues(clean)
        case let array as [Any]: return array.map(clean)
        default:
            let mirror = Mirror(reflecting: value)
            guard mirror.displayStyle == .optional else { return value }
            return mirror.children.first.map { clean($0.value) } ?? NSNull()
        }
    }
}

/// The API's names for message states: the same words as the relay's where they mean the same.
enum DeskAPIState {
    static func name(_ state: DeskState) -> String {
        switch state {
        case .draft: "draft"
        case .sending: "queued"
        case .accepted: "accepted"
        case .delivered: "delivered"
        case .acknowledged: "acknowledged"
        case .rejected: "rejected"
        case .expired: "expired"
        case .dead: "dead-lettered"
        case .failed: "failed"
        case .new: "new"
        case .opened: "opened"
        case .answered: "answered"
        case .refused: "refused"
        }
    }
}

/// An API error with the fields it is about: rendered as JSON by `APIAuthentication`.
struct APIProblem: Error {
    var error: KetenpostError
    var fields: [ValidationIssue] = []
}

extension APIToken {
    static let role = "api-token"
    var accessActor: AccessEvent.Actor { AccessEvent.Actor(staff: actor, role: Self.role) }
}

extension DeskRequestContext {
    func apiToken(_ scope: APIToken.Scope) throws(KetenpostError) -> APIToken {
        guard let token = token else { throw KetenpostError(.deskTokenInvalid, "Send a valid API token.") }
        guard token.scopeSet.contains(scope) else {
            throw KetenpostError(
                .deskTokenScope,
                "This token may not \(scope.rawValue); ask the desk administrator for a token with that scope."
            )
        }
        return token
    }
}

/// Checks `Authorization: Bearer kpd_…` and renders every failure below it as JSON in the
/// relay's style (`{"error": {"code", "message", "fields"}}`), never as a page.
struct APIAuthentication: RouterMiddleware {
    typealias Context = DeskRequestContext
    let core: DeskCore

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        var response: Response
        do {
            let header = request.headers[.authorization] ?? ""
            guard header.hasPrefix("Bearer "), let token = core.tokens.verify(String(header.dropFirst(7)), at: core.clock()) else {
                throw KetenpostError(
                    .deskTokenInvalid,
                    """
                    Send `Authorization: Bearer TOKEN` with a token of this desk (`ketenpost desk tokens add`); this one is missing, \
                    unknown or revoked.
                    """
                )
            }
            var context = context
            context.token = token
            response = try await next(request, context)
        } catch {
            response = Self.render(error, logger: context.logger)
        }
        response.headers[.cacheControl] = "no-store"
        return response
    }

    static func render(_ error: any Error, logger: Logger) -> Response {
        let problem: APIProblem
        let status: HTTPResponse.Status
        switch error {
        case let error as APIProblem:
            problem = error
            status = .unprocessableContent
        case let error as KetenpostError:
            problem = APIProblem(error: error)
            status = Self.status(error.code)
        case let error as any HTTPResponseError:
            let tooLarge = error.status == .contentTooLarge
            problem = APIProblem(
                error: KetenpostError(
                    tooLarge ? .requestTooLarge : .deskInputInvalid,
                    tooLarge ? "The body is larger than 512 KiB; messages are much smaller." : "The request could not be read."
                )
            )
            status = error.status
        default:
            logger.error("unexpected failure", metadata: ["error.type": "\(type(of: error))"])
            problem = APIProblem(
                error: KetenpostError(.internalError, "The desk failed unexpectedly. Retry with the same idempotency key.")
            )
            status = .internalServerError
        }
        logger.notice("api request refused", metadata: ["error.code": "\(problem.error.code)"])
        var detail: [String: Any] = ["code": problem.error.code.rawValue, "message": problem.error.message]
        if !problem.fields.isEmpty {
            detail["fields"] = problem.fields.map { ["path": $0.path, "rule": $0.rule, "message": $0.message] }
        }
        return APIRoutes.json(["error": detail], status: status)
    }

    static func status(_ code: KetenpostError.Code) -> HTTPResponse.Status {
        switch code {
        case .deskTokenInvalid: .unauthorized
        case .deskTokenScope: .forbidden
        case .deskNotFound: .notFound
        case .deskIdempotencyConflict, .deskConflict: .conflict
        case .deskIdempotencyKeyMissing, .deskInputInvalid: .badRequest
        case .deskWrongState: .conflict
        case .storeUnavailable, .deskRelayUnavailable: .serviceUnavailable
        case .requestTooLarge: .contentTooLarge
        default: .badGateway
        }
    }
}
