import Foundation

/// Proof of a hand-over: the relay's acceptance or the recipient's acknowledgement, signed by
/// its issuer and naming the exact message digest, so the sender can show a third party what
/// was accepted and received.
public struct Receipt: Codable, Sendable, Equatable {
    public static let schemaID = "ketenpost/receipt/v1"

    public enum Kind: String, KetenpostEnum {
        /// Issued by the relay once the message is durably stored.
        case acceptance
        /// Issued by the recipient after opening (or refusing) the message.
        case acknowledgement
    }

    public enum Disposition: String, KetenpostEnum { case accepted, processed, rejected }

    /// `ketenpost/receipt/v1`.
    public var schema: String
    public var kind: Kind
    public var messageId: UUID
    /// Lowercase hex SHA-256 (64 characters) of the sealed message bytes as accepted.
    public var messageDigest: String
    /// The message's sender partner id.
    public var from: String
    /// The message's recipient partner id.
    public var to: String
    /// Partner id (or relay id) that signs this receipt.
    public var issuer: String
    public var disposition: Disposition
    /// Required iff rejected; `^[a-z0-9][a-z0-9.-]{0,63}$`.
    public var reasonCode: String?
    public var time: Date

    public init(
        kind: Kind,
        messageId: UUID,
        messageDigest: String,
        from: String,
        to: String,
        issuer: String,
        disposition: Disposition,
        reasonCode: String? = nil,
        time: Date
    ) {
        self.schema = Self.schemaID
        self.kind = kind
        self.messageId = messageId
        self.messageDigest = messageDigest
        self.from = from
        self.to = to
        self.issuer = issuer
        self.disposition = disposition
        self.reasonCode = reasonCode
        self.time = Date(timeIntervalSince1970: Double(RFC3339.wholeSeconds(time)))
    }

    /// Paths like `receipt.reasonCode`.
    public func validate() throws(ValidationFailure) {
        var c = Checks()
        let p = "receipt"
        c.check(schema == Self.schemaID, Path.join(p, "schema"), "schema", "must be \(Self.schemaID)")
        c.check(
            ASCII.matches(messageDigest, count: 64...64, rest: ASCII.isLowerHex),
            Path.join(p, "messageDigest"),
            "digest",
            "must be a SHA-256 digest in 64 lowercase hexadecimal characters"
        )
        c.partnerID(from, Path.join(p, "from"))
        c.partnerID(to, Path.join(p, "to"))
        c.partnerID(issuer, Path.join(p, "issuer"))
        switch kind {
        case .acceptance:
            c.check(
                disposition == .accepted,
                Path.join(p, "disposition"),
                "disposition",
                "must be accepted for an acceptance receipt"
            )
        case .acknowledgement:
            c.check(
                disposition != .accepted,
                Path.join(p, "disposition"),
                "disposition",
                "must be processed or rejected for an acknowledgement receipt"
            )
        }
        let reasonPath = Path.join(p, "reasonCode")
        if let reasonCode {
            c.check(disposition == .rejected, reasonPath, "not-applicable", "is only allowed when the disposition is rejected")
            c.check(
                ASCII.matches(reasonCode, count: 1...64, first: { ASCII.isLower($0) || ASCII.isDigit($0) }) {
                    ASCII.isLower($0) || ASCII.isDigit($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "-")
                },
                reasonPath,
                "reason-code",
                "must be 1 to 64 lowercase letters, digits, dots or hyphens, starting with a letter or digit"
            )
        } else if disposition == .rejected {
            c.fail(reasonPath, "required", "is required when the disposition is rejected")
        }
        try c.finish()
    }

    public static func decode(from data: Data) throws(ValidationFailure) -> Receipt {
        // The relay decodes one receipt per acknowledgement: one parse when the receipt is
        // well-formed; the full strict decode only to explain a refusal.
        let receipt = try KetenpostJSON.decodeStrictFlat(Receipt.self, from: data, path: "receipt", fields: fieldNames)
        try receipt.validate()
        return receipt
    }

    /// Every JSON key of a receipt (all of them scalar values, as `decodeStrictFlat` requires).
    static let fieldNames: Set<String> = [
        "schema", "kind", "messageId", "messageDigest", "from", "to", "issuer",
        "disposition", "reasonCode", "time",
    ]

    /// Canonical bytes: these are what the issuer signs.
    public func encoded() -> Data { KetenpostJSON.canonical(self) }
}
