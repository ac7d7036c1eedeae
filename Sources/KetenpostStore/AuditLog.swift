import Foundation
import KetenpostCrypto

/// One event of the audit trail: metadata only (ids, partner ids, codes), never content.
public struct AuditEvent: Sendable, Equatable {
    /// `message.accepted`, `message.leased`, `message.acknowledged`, `message.rejected`,
    /// `message.expired`, `message.dead-lettered`, `message.purged`, `partner.added`,
    /// `partner.suspended`, `partner.resumed`, `certificate.added`, `certificate.retiring`,
    /// `certificate.revoked`.
    public var action: String
    /// Who did it: a partner id, `admin:CN`, `import:FILE`, or `relay` for housekeeping.
    public var actor: String
    public var messageId: String?
    /// The other partner concerned (a message's recipient or sender; a directory change's partner).
    public var partnerId: String?
    public var fingerprint: String?
    public var detail: String?

    public init(
        action: String,
        actor: String,
        messageId: String? = nil,
        partnerId: String? = nil,
        fingerprint: String? = nil,
        detail: String? = nil
    ) {
        self.action = action
        self.actor = actor
        self.messageId = messageId
        self.partnerId = partnerId
        self.fingerprint = fingerprint
        self.detail = detail
    }
}

/// A record of the hash chain: each record's hash covers its content and the previous hash,
/// so a record changed, removed or moved breaks the chain from there on.
///
/// `hash` = lowercase hex SHA-256 of the record as JSON with sorted keys, no whitespace,
/// unescaped slashes, absent fields left out, and without `hash` itself:
/// `{"action":…,"actor":…,"at":MILLISECONDS,"detail":…,"fingerprint":…,"messageId":…,"partnerId":…,"prevHash":…,"sequence":N}`.
/// The first record's `prevHash` is 64 zeros. Sequences start at 1 and have no gaps.
public struct AuditRecord: Sendable, Equatable, Codable {
    public var sequence: Int64
    /// Milliseconds since 1970 (an integer, so that the hash does not depend on float formatting).
    public var at: Int64
    public var action: String
    public var actor: String
    public var messageId: String?
    public var partnerId: String?
    public var fingerprint: String?
    public var detail: String?
    public var prevHash: String
    public var hash: String

    public static let genesis = String(repeating: "0", count: 64)

    public init(sequence: Int64, at: Int64, event: AuditEvent, prevHash: String) {
        self.sequence = sequence
        self.at = at
        action = event.action
        actor = event.actor
        messageId = event.messageId
        partnerId = event.partnerId
        fingerprint = event.fingerprint
        detail = event.detail
        self.prevHash = prevHash
        hash = ""
        hash = computedHash()
    }

    public init(
        sequence: Int64,
        at: Int64,
        action: String,
        actor: String,
        messageId: String?,
        partnerId: String?,
        fingerprint: String?,
        detail: String?,
        prevHash: String,
        hash: String
    ) {
        self.sequence = sequence
        self.at = at
        self.action = action
        self.actor = actor
        self.messageId = messageId
        self.partnerId = partnerId
        self.fingerprint = fingerprint
        self.detail = detail
        self.prevHash = prevHash
        self.hash = hash
    }

    public var date: Date { Date(timeIntervalSince1970: Double(at) / 1000) }

    private struct Canonical: Encodable {
        var action: String
        var actor: String
        var at: Int64
        var detail: String?
        var fingerprint: String?
        var messageId: String?
        var partnerId: String?
        var prevHash: String
        var sequence: Int64
    }

    /// The bytes the hash covers.
    ///
    /// Written directly rather than through `JSONEncoder` (a record is hashed on the store's one
    /// writer for every message event, and the encoder took about 30 µs of it): the same bytes as
    /// `referenceCanonicalBytes`, which a test compares over every escape and many random records.
    public func canonicalBytes(sequence: Int64? = nil) -> Data {
        var out = [UInt8]()
        out.reserveCapacity(
            160 + action.utf8.count + actor.utf8.count + (detail?.utf8.count ?? 0) + (fingerprint?.utf8.count ?? 0)
                + (messageId?.utf8.count ?? 0) + (partnerId?.utf8.count ?? 0)
        )
        // Keys in sorted order; absent fields left out, as the encoder's synthesized conformance does.
        Self.member("action", action, first: true, &out)
        Self.member("actor", actor, &out)
        out += Array(",\"at\":\(at)".utf8)
        if let detail { Self.member("detail", detail, &out) }
        if let fingerprint { Self.member("fingerprint", fingerprint, &out) }
        if let messageId { Self.member("messageId", messageId, &out) }
        if let partnerId { Self.member("partnerId", partnerId, &out) }
        Self.member("prevHash", prevHash, &out)
        out += Array(",\"sequence\":\(sequence ?? self.sequence)}".utf8)
        return Data(out)
    }

    /// `"key":"value"` with JSONEncoder's string escaping: quote, backslash and control
    /// characters; slashes and everything else as UTF-8, unchanged.
    private static func member(_ key: String, _ value: String, first: Bool = false, _ out: inout [UInt8]) {
        out.append(first ? UInt8(ascii: "{") : UInt8(ascii: ","))
        out.append(UInt8(ascii: "\""))
        out += key.utf8
        out += [UInt8(ascii: "\""), UInt8(ascii: ":"), UInt8(ascii: "\"")]
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out += [UInt8(ascii: "\\"), UInt8(ascii: "\"")]
            case UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), UInt8(ascii: "\\")]
            case 0x08: out += [UInt8(ascii: "\\"), UInt8(ascii: "b")]
            case 0x0C: out += [UInt8(ascii: "\\"), UInt8(ascii: "f")]
            case 0x0A: out += [UInt8(ascii: "\\"), UInt8(ascii: "n")]
            case 0x0D: out += [UInt8(ascii: "\\"), UInt8(ascii: "r")]
            case 0x09: out += [UInt8(ascii: "\\"), UInt8(ascii: "t")]
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += [
                    UInt8(ascii: "\\"), UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)],
                ]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// The definition of the canonical bytes: `JSONEncoder` with sorted keys and unescaped
    /// slashes over the record without `hash`. Tests hold `canonicalBytes` to it.
    func referenceCanonicalBytes(sequence: Int64? = nil) -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let value = Canonical(
            action: action,
            actor: actor,
            at: at,
            detail: detail,
            fingerprint: fingerprint,
            messageId: messageId,
            partnerId: partnerId,
            prevHash: prevHash,
            sequence: sequence ?? self.sequence
        )
        return (try? encoder.encode(value)) ?? Data()
    }

    /// The hash of this content (optionally as if it stood at another sequence number).
    public func computedHash(sequence: Int64? = nil) -> String {
        Digest.sha256(canonicalBytes(sequence: sequence)).hexString
    }

    static func milliseconds(_ date: Date) -> Int64 { Int64((date.timeIntervalSince1970 * 1000).rounded(.down)) }
}

/// The relay's signature over the chain head at a moment: CMS SignedData over
/// `{"at":…,"hash":…,"relay":…,"sequence":N}`.
public struct AuditCheckpoint: Sendable, Equatable {
    public var sequence: Int64
    public var hash: String
    /// Milliseconds since 1970.
    public var at: Int64
    public var signature: Data

    public init(sequence: Int64, hash: String, at: Int64, signature: Data) {
        self.sequence = sequence
        self.hash = hash
        self.at = at
        self.signature = signature
    }
}

/// The audit trail in the store. State changes append their records in the same transaction.
public protocol AuditStore: Sendable {
    /// The last record's sequence and hash, or nil for an empty trail.
    func auditHead() async throws -> (sequence: Int64, hash: String)?
    /// Records after `sequence`, in order.
    func auditRecords(after sequence: Int64, limit: Int) async throws -> [AuditRecord]
    /// Stores a checkpoint (a second one for the same sequence is ignored).
    func addAuditCheckpoint(_ checkpoint: AuditCheckpoint) async throws
    func auditCheckpoints() async throws -> [AuditCheckpoint]
}
