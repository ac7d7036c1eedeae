import Foundation
import KetenpostAPI
import KetenpostModel

/// Turns a payload document and a few routing choices into the content to seal.
public enum Drafting {
    /// How long a message may wait for its recipient when the sender does not say.
    public static func defaultLifetime(for type: MessageType) -> TimeInterval {
        switch type {
        case .intakeNotice: return 3 * 86_400  // a shelter place is needed soon, or not at all
        case .intakeResponse: return 7 * 86_400
        case .referralResponse: return 30 * 86_400
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
    public static func content(
        type: MessageType,
        from: String,
        to: String,
        payload json: Data,
        options: Options = Options(),
        now: Date = Date()
    ) throws(KetenpostError) -> SealedContent {
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
            id: options.id,
            type: type,
            from: from,
            to: to,
            createdAt: created,
            expiresAt: created.addingTimeInterval((options.lifetime ?? defaultLifetime(for: type)).rounded(.down)),
            correlationId: options.correlationID,
            priority: options.priority,
            exploitationForm: options.exploitationForm,
            region: options.region
        )
        do {
            try header.validate()
        } catch {
            throw .validation(error, layer: "routing header")
        }
        return SealedContent(header: header, payload: payload)
    }

    /// A duration such as `30s`, `5m`, `12h` or `7d`: positive, finite, at most ten years
    /// (`infs` or `1e400s` parse as numbers, and would trap where the relay turns them into integers).
    public static func parseDuration(_ text: String) -> TimeInterval? {
        guard let unit = text.last, let value = Double(text.dropLast()), value.isFinite, value > 0 else { return nil }
        let seconds: TimeInterval
        switch unit {
        case "s": seconds = value
        case "m": seconds = value * 60
        case "h": seconds = value * 3600
        case "d": seconds = value * 86_400
        default: return nil
        }
        return seconds <= 10 * 366 * 86_400 ? seconds : nil
    }
}
