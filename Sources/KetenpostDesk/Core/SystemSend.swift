import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel

/// Sends by case systems (the JSON API and the watched folder): the same sealing, storing and
/// submitting as the screens, made idempotent by a key that names one message for good.
extension DeskCore {
    public enum SystemSendResult: Sendable {
        /// Nothing stored: fix these (paths, rules and sentences, never values).
        case invalid([ValidationIssue])
        /// Taken by the desk: sealed, stored and submitted (or queued, when the relay is out of
        /// reach). `created` is false when an earlier request with the same key made it.
        case taken(DeskMessage, created: Bool)
    }

    public var tokens: APITokens { APITokens(store: store) }

    /// Takes a case system's message. `body` is the request as sent (its hash binds the key);
    /// `answering` is the received message that this answers, for the answer route.
    public func sendFromSystem(
        body: Data,
        key: String,
        scope: String,
        actor: AccessEvent.Actor,
        answering: DeskMessage? = nil
    ) async throws -> SystemSendResult {
        let bodyHash = Self.canonicalHash(body)
        if let earlier = try store.idempotentMessage(scope: scope, key: key, bodyHash: bodyHash) {
            // A retry after a crash or a lost answer: push a queued message on at once.
            return .taken(earlier.state == .sending ? await submit(earlier) : earlier, created: false)
        }
        let parsed = try await SystemRequest.parse(body, core: self, answering: answering)
        guard let content = parsed.content else { return .invalid(parsed.problems) }
        let entry: API.DirectoryEntry
        do {
            entry = try await recipientEntry(content.header.to)
        } catch {
            throw KetenpostError(
                .deskRelayUnavailable,
                "The relay did not give the recipient's certificates (out of reach or busy); nothing was stored. Retry with the same key."
            )
        }
        let (certificates, intermediates) = try entry.sealingCertificates()
        let sealed = try Envelope.seal(content, from: identity, to: certificates, intermediates: intermediates, trust: trust)
        let now = DeskStore.milliseconds(Date())
        let id = content.header.id.uuidString.lowercased()
        let message = DeskMessage(
            id: id,
            direction: .outgoing,
            type: content.header.type.rawValue,
            counterpart: content.header.to,
            priority: content.header.priority.rawValue,
            correlationId: content.header.correlationId?.uuidString.lowercased(),
            createdAt: now,
            updatedAt: now,
            sentAt: DeskStore.milliseconds(content.header.createdAt),
            expiresAt: DeskStore.milliseconds(content.header.expiresAt),
            state: .sending,
            sealed: sealed,
            digest: Digest.sha256(sealed).hexString,
            copy: try vault.seal(try content.encoded()),
            createdBy: actor.staff
        )
        var events = [AccessEvent(staff: actor.staff, role: actor.role, action: .send, messageId: id)]
        if let original = message.correlationId, answering != nil {
            events.append(AccessEvent(staff: actor.staff, role: actor.role, action: .answer, messageId: original, detail: "with \(id)"))
        }
        let stored = try store.insertIdempotent(message, scope: scope, key: key, bodyHash: bodyHash, events: events)
        guard stored.created else {
            // Another request with this key was quicker; its message is the one.
            return .taken(stored.message, created: false)
        }
        logger.info("message sealed", metadata: ["message.id": "\(id)", "message.type": "\(message.type)", "actor.role": "\(actor.role)"])
        return .taken(await submit(stored.message), created: true)
    }
}

extension DeskCore {
    /// The hash that binds an idempotency key: of the JSON with sorted keys and no spaces, so that
    /// a client that serialises the same request again in another key order is not refused.
    static func canonicalHash(_ body: Data) -> String {
        guard let object = try? JSONSerialization.jsonObject(with: body),
            let canonical = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
        else { return Digest.sha256(body).hexString }
        return Digest.sha256(canonical).hexString
    }
}

/// The request body of a send (`POST /api/v1/messages`, a file in `outbox/`), or of an answer
/// (`POST /api/v1/inbox/{id}/answer`, where type, recipient and correlation come from the message
/// answered). Unknown keys are refused, like the envelope's.
enum SystemRequest {
    static let keys: Set<String> = ["type", "to", "payload", "labels", "priority", "expiresIn", "correlationId"]
    static let answerKeys: Set<String> = ["payload", "priority", "expiresIn"]

    static func parse(
        _ body: Data,
        core: DeskCore,
        answering: DeskMessage?
    ) async throws -> (content: SealedContent?, problems: [ValidationIssue]) {
        var problems: [ValidationIssue] = []
        func problem(_ path: String, _ rule: String, _ message: String) {
            problems.append(ValidationIssue(path: path, rule: rule, message: message))
        }
        guard let object = (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] else {
            return (nil, [ValidationIssue(path: "", rule: "json", message: "The body is not a JSON object.")])
        }
        for key in object.keys.sorted() where !(answering == nil ? keys : answerKeys).contains(key) {
            problem(key, "unknown-field", "This field is not part of the request; leave it out.")
        }
        // Type, recipient and correlation: from the request, or from the message answered.
        let type: MessageType?
        let to: String?
        var correlation: UUID?
        if let answering {
            type = MessageType.allCases.first { $0.answers?.rawValue == answering.type }
            to = answering.counterpart
            correlation = UUID(uuidString: answering.id)
            if type == nil { problem("", "not-answerable", "Only intake notices and referrals are answered.") }
        } else {
            type = (object["type"] as? String).flatMap(MessageType.init(rawValue:))
            if type == nil {
                let names = MessageType.allCases.map(\.rawValue).joined(separator: ", ")
                problem("type", object["type"] == nil ? "required" : "choice", "The type is one of: \(names).")
            }
            to = object["to"] as? String
            if let type, let to {
                let allowed: [String]
                do {
                    allowed = try await core.recipients(for: type).map(\.id)
                } catch {
                    throw KetenpostError(
                        .deskRelayUnavailable,
                        "The relay's directory could not be read to check the recipient; nothing was stored. Retry with the same key."
                    )
                }
                if !allowed.contains(to) {
                    problem("to", "recipient", "The policy does not let this partner receive this type from you (or it is suspended).")
                }
            } else if object["to"] == nil {
                problem("to", "required", "The recipient's partner id is required.")
            } else if !(object["to"] is String) {
                problem("to", "type", "The recipient is a partner id (a string).")
            }
            if let value = object["correlationId"] {
                correlation = (value as? String).flatMap(UUID.init(uuidString:))
                if correlation == nil { problem("correlationId", "uuid", "The correlation id is a message id (a UUID).") }
            }
        }
        var options = Drafting.Options()
        options.correlationID = correlation
        if let value = object["priority"] {
            if let priority = (value as? String).flatMap(Priority.init(rawValue:)) {
                options.priority = priority
            } else {
                problem("priority", "choice", "The priority is normal or urgent.")
            }
        } else if let answering {
            options.priority = Priority(rawValue: answering.priority) ?? .normal
        }
        if let value = object["expiresIn"] {
            if let seconds = value as? Int, (3600...(90 * 86_400)).contains(seconds), !(value is Bool) {
                options.lifetime = TimeInterval(seconds)
            } else {
                problem("expiresIn", "lifetime", "The lifetime is a whole number of seconds from 3600 (an hour) to 7776000 (90 days).")
            }
        }
        if let labels = object["labels"] {
            if let labels = labels as? [String: Any] {
                for key in labels.keys.sorted() where key != "region" && key != "exploitationForm" {
                    problem("labels.\(key)", "unknown-field", "Labels are region and exploitationForm.")
                }
                if let region = labels["region"] {
                    if let region = region as? String, Identifiers.isValidCBSMunicipality(region) {
                        options.region = region
                    } else {
                        problem("labels.region", "cbs", "The region is a CBS municipality code: GM and four digits, e.g. GM1903.")
                    }
                }
                if let form = labels["exploitationForm"] {
                    if let form = (form as? String).flatMap(ExploitationForm.init(rawValue:)) {
                        options.exploitationForm = form
                    } else {
                        let names = ExploitationForm.allCases.map(\.rawValue).joined(separator: ", ")
                        problem("labels.exploitationForm", "choice", "The exploitation form is one of: \(names).")
                    }
                }
            } else {
                problem("labels", "type", "Labels are an object with region and exploitationForm.")
            }
        }
        // The payload, by the model's rules, each problem by its path.
        var payloadJSON: Data?
        if let payload = object["payload"] as? [String: Any] {
            payloadJSON = try? JSONSerialization.data(withJSONObject: payload)
        } else {
            problem("payload", object["payload"] == nil ? "required" : "type", "The payload is a JSON object of the type's schema.")
        }
        if let payloadJSON, let type {
            do {
                let payload = try KetenpostJSON.decodeStrict(Payload.self, from: payloadJSON, path: "payload")
                try payload.validate()
                if payload.type != type {
                    problem("payload.schema", "schema", "The payload's schema is for \(payload.type.rawValue), not for \(type.rawValue).")
                }
            } catch {
                problems += error.issues
            }
        }
        guard problems.isEmpty, let type, let to, let payloadJSON else { return (nil, problems) }
        do {
            return (try Drafting.content(type: type, from: core.partnerID, to: to, payload: payloadJSON, options: options), [])
        } catch {
            return (nil, [ValidationIssue(path: "", rule: error.code.rawValue, message: error.message)])
        }
    }
}
