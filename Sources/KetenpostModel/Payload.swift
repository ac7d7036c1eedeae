import Foundation

/// The content of a message, one case per message type. On the wire it is the payload object
/// itself; its `schema` field says which type it is.
public enum Payload: Codable, Sendable, Equatable {
    case signal(Signal)
    case referral(Referral)
    case intakeNotice(IntakeNotice)
    case intakeResponse(IntakeResponse)
    case referralResponse(ReferralResponse)
    case enforcementSignal(EnforcementSignal)
    case registration(Registration)

    public var type: MessageType { Swift.type(of: content).messageType }

    var content: any PayloadContent {
        switch self {
        case .signal(let v): v
        case .referral(let v): v
        case .intakeNotice(let v): v
        case .intakeResponse(let v): v
        case .referralResponse(let v): v
        case .enforcementSignal(let v): v
        case .registration(let v): v
        }
    }

    private enum SchemaKey: String, CodingKey { case schema }

    /// Dispatches on `schema`, e.g. `"schema": "ketenpost/signal/v1"`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: SchemaKey.self)
        let schema = try container.decode(String.self, forKey: .schema)
        guard let type = MessageType(schemaID: schema) else {
            throw RuleViolation.decodingError(
                container.codingPath + [SchemaKey.schema],
                "schema",
                "must be one of: \(MessageType.allCases.map(\.schemaID).joined(separator: ", "))"
            )
        }
        switch type {
        case .signal: self = .signal(try Signal(from: decoder))
        case .referral: self = .referral(try Referral(from: decoder))
        case .intakeNotice: self = .intakeNotice(try IntakeNotice(from: decoder))
        case .intakeResponse: self = .intakeResponse(try IntakeResponse(from: decoder))
        case .referralResponse: self = .referralResponse(try ReferralResponse(from: decoder))
        case .enforcementSignal: self = .enforcementSignal(try EnforcementSignal(from: decoder))
        case .registration: self = .registration(try Registration(from: decoder))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        try content.encode(to: encoder)
    }

    /// Checks every field rule; `now` is the reference for "not in the future" and "current year".
    public func validate(pathPrefix: String = "payload", now: Date = Date()) throws(ValidationFailure) {
        var checks = Checks(now: now)
        content.check(pathPrefix, &checks)
        try checks.finish()
    }

    public func encoded() -> Data { KetenpostJSON.canonical(self) }

    /// Strict decode plus validation of a payload on its own (paths `payload.…`).
    public static func decode(from data: Data, now: Date = Date()) throws(ValidationFailure) -> Payload {
        let payload = try KetenpostJSON.decodeStrict(Payload.self, from: data, path: "payload")
        try payload.validate(now: now)
        return payload
    }
}

/// The inner signed document of the envelope, `{"header": {...}, "payload": {...}}`.
///
/// The header is repeated here, under the sender's inner signature, so that the recipient can
/// detect a relay that misroutes a message or rewrites its clear header.
public struct SealedContent: Codable, Sendable, Equatable {
    public var header: RoutingHeader
    public var payload: Payload

    public init(header: RoutingHeader, payload: Payload) {
        self.header = header
        self.payload = payload
    }

    /// Strict decode, then every header, payload and cross-field rule; all issues at once.
    public static func decode(from data: Data, now: Date = Date()) throws(ValidationFailure) -> SealedContent {
        let content = try KetenpostJSON.decodeStrict(SealedContent.self, from: data, path: "")
        try content.validate(now: now)
        return content
    }

    /// Run before sealing, so that a sender never signs what the recipient would refuse.
    public func validate(now: Date = Date()) throws(ValidationFailure) {
        var c = Checks(now: now)
        header.check("header", &c)
        payload.content.check("payload", &c)
        c.check(payload.type == header.type, "payload.schema", "type-mismatch", "must match header.type")
        if let answered = header.type.answers {
            c.check(
                header.correlationId != nil,
                "header.correlationId",
                "required",
                "is required for an \(header.type.rawValue): the id of the \(answered.rawValue) it answers"
            )
        }
        try c.finish()
    }

    /// Canonical bytes: sorted keys, no slash escaping, whole-second UTC dates.
    public func encoded() -> Data { KetenpostJSON.canonical(self) }
}

extension KetenpostJSON {
    /// Encoding our own model types cannot fail: they hold only strings, integers, UUIDs and
    /// dates, and the date formatter clamps instead of throwing.
    static func canonical(_ value: some Encodable) -> Data {
        do {
            return try encoder().encode(value)
        } catch {
            preconditionFailure("encoding a Ketenpost model value failed: \(error)")
        }
    }
}
