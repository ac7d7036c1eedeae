import Foundation

/// What the relay needs to route a message, and nothing that identifies a person: the relay
/// reads it in clear (covered by the outer signature) and the recipient compares it with the
/// copy inside the inner signed content.
public struct RoutingHeader: Codable, Sendable, Equatable {
    /// Chosen by the sender; resubmitting the same id makes submission idempotent.
    public var id: UUID
    public var type: MessageType
    /// Sender partner id.
    public var from: String
    /// One recipient partner id; fan-out is several messages.
    public var to: String
    public var createdAt: Date
    public var expiresAt: Date
    /// The message this one answers (required for intake-response).
    public var correlationId: UUID?
    public var priority: Priority
    /// Statistics label only.
    public var exploitationForm: ExploitationForm?
    /// CBS municipality code, statistics label only.
    public var region: String?

    /// Dates are cut to whole seconds, as the canonical encoding does, so that a header
    /// survives encode and decode unchanged.
    public init(
        id: UUID = UUID(),
        type: MessageType,
        from: String,
        to: String,
        createdAt: Date,
        expiresAt: Date,
        correlationId: UUID? = nil,
        priority: Priority = .normal,
        exploitationForm: ExploitationForm? = nil,
        region: String? = nil
    ) {
        self.id = id
        self.type = type
        self.from = from
        self.to = to
        self.createdAt = Date(timeIntervalSince1970: Double(RFC3339.wholeSeconds(createdAt)))
        self.expiresAt = Date(timeIntervalSince1970: Double(RFC3339.wholeSeconds(expiresAt)))
        self.correlationId = correlationId
        self.priority = priority
        self.exploitationForm = exploitationForm
        self.region = region
    }

    /// Every key a header may have on the wire, for parsers that check keys themselves.
    public static let fieldNames: Set<String> = [
        "id", "type", "from", "to", "createdAt", "expiresAt", "correlationId", "priority", "exploitationForm", "region",
    ]

    /// Paths like `header.from`.
    public func validate() throws(ValidationFailure) {
        var checks = Checks()
        check("header", &checks)
        try checks.finish()
    }

    func check(_ path: String, _ c: inout Checks) {
        c.partnerID(from, Path.join(path, "from"))
        c.partnerID(to, Path.join(path, "to"))
        c.check(from != to, Path.join(path, "to"), "self-addressed", "must differ from header.from")
        c.check(expiresAt > createdAt, Path.join(path, "expiresAt"), "order", "must be later than createdAt")
        c.check(
            expiresAt.timeIntervalSince(createdAt) <= Limits.maxLifetime,
            Path.join(path, "expiresAt"),
            "max-lifetime",
            "must be at most 90 days after createdAt"
        )
        c.municipality(region, Path.join(path, "region"))
    }

    /// Canonical bytes, for a header that travels on its own (e.g. in the outer signed document).
    public func encoded() -> Data { KetenpostJSON.canonical(self) }

    /// Strict decode plus validation of a header on its own (paths `header.…`).
    public static func decode(from data: Data) throws(ValidationFailure) -> RoutingHeader {
        let header = try KetenpostJSON.decodeStrict(RoutingHeader.self, from: data, path: "header")
        try header.validate()
        return header
    }
}
