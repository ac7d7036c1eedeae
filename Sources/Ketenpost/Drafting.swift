import Foundation
import KetenpostModel

/// Turns a payload document and a few routing choices into the content to seal.
public enum Drafting {
    /// How long a message may wait for its recipient when the sender does not say.
    public static func defaultLifetime(for type: MessageType) -> TimeInterval {
        switch type {
        case .intakeNotice: return 3 * 86_400      // a shelter place is needed soon, or not at all
        case .intakeResponse: return 7 * 86_400
        case .signal: return 14 * 86_400
        case .referral, .enforcementSignal, .registration: return 30 * 86_400
        }
    }

    public struct Options: Sendable {
        public var id: UUID = UUID()
        public var correlationID: UUID?
        public var lifetime: TimeInterval?
        public var priority: Priority = .normal
        public var exploitationForm: ExploitationForm?
        public var region: String?
        public init() {}
    }

    /// Validates the payload for `type` and wraps it with a fresh routing header.
    public static func content(type: MessageType, from: String, to: String, payload json: Data,
                               options: Options = Options(), now: Date = Date()) throws(KetenpostError) -> SealedContent {
        let payload: Payload
        do {
            payload = try KetenpostJSON.decodeStrict(Payload.self, from: json, path: "payload")
            try payload.validate()
        } catch {
            throw .validation(error, layer: "payload")
        }
        guard payload.type == type else {
            throw KetenpostError(.payloadInvalid, "The payload's schema is for \(payload.type.rawValue), not for \(type.rawValue).")
        }
        // Whole seconds: RFC 3339 without fractions is the documented header form.
        let created = Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down))
        let header = RoutingHeader(
            id: options.id, type: type, from: from, to: to, createdAt: created,
            expiresAt: created.addingTimeInterval((options.lifetime ?? defaultLifetime(for: type)).rounded(.down)),
            correlationId: options.correlationID, priority: options.priority,
            exploitationForm: options.exploitationForm, region: options.region)
        do {
            try header.validate()
        } catch {
            throw .validation(error, layer: "routing header")
        }
        return SealedContent(header: header, payload: payload)
    }

    /// Parses durations such as `90s`, `30m`, `12h`, `14d`.
    public static func parseDuration(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let value = Double(text.dropLast()), value > 0 else { return nil }
        switch unit {
        case "s": return value
        case "m": return value * 60
        case "h": return value * 3600
        case "d": return value * 86_400
        default: return nil
        }
    }
}
