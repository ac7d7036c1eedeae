import Foundation
import ServiceLifecycle

/// Where a message stands. The sender sees every change.
public enum MessageState: String, Codable, Sendable, CaseIterable {
    /// Stored and waiting for the recipient.
    case accepted
    /// Leased to the recipient at least once, not yet acknowledged.
    case delivered
    /// The recipient acknowledged it with a signed "processed" receipt.
    case acknowledged
    /// The recipient answered with a signed "rejected" receipt (with a reason code).
    case rejected
    /// Its `expiresAt` passed before it was acknowledged.
    case expired
    /// It was delivered the maximum number of times without an acknowledgement.
    case deadLettered = "dead-lettered"

    /// Final states never change again.
    public var isFinal: Bool { ![.accepted, .delivered].contains(self) }
}

/// A message as the store keeps it: routing metadata, receipts and (until purged) the sealed bytes.
/// Everything here is metadata; the body is ciphertext the relay cannot read.
public struct StoredMessage: Sendable, Equatable {
    public var id: UUID
    public var sender: String
    public var recipient: String
    /// `MessageType.rawValue`.
    public var type: String
    /// `Priority.rawValue`.
    public var priority: String
    public var correlationId: UUID?
    /// Non-identifying statistics labels from the header.
    public var exploitationForm: String?
    public var region: String?
    /// Lowercase hex SHA-256 of the sealed bytes as accepted.
    public var digest: String
    public var size: Int
    public var acceptedAt: Date
    /// When the relay stops trying: the earlier of the header's `expiresAt` and the relay's limit.
    public var expiresAt: Date
    public var state: MessageState
    /// How many times it was leased.
    public var attempts: Int
    public var leaseToken: String?
    public var leaseUntil: Date?
    public var firstDeliveredAt: Date?
    public var lastDeliveredAt: Date?
    /// When it reached a final state.
    public var completedAt: Date?
    /// The relay's signed acceptance receipt (CMS DER).
    public var acceptanceReceipt: Data
    /// The recipient's signed receipt (CMS DER), once acknowledged or rejected.
    public var recipientReceipt: Data?
    /// The recipient's reason code for a rejection, or `expired` / `max-attempts`.
    public var reasonCode: String?
    public var bodyPurgedAt: Date?
    /// Acceptance order, for FIFO delivery per recipient.
    public var sequence: Int64

    public init(
        id: UUID,
        sender: String,
        recipient: String,
        type: String,
        priority: String,
        correlationId: UUID?,
        exploitationForm: String?,
        region: String?,
        digest: String,
        size: Int,
        acceptedAt: Date,
        expiresAt: Date,
        state: MessageState,
        attempts: Int,
        leaseToken: String?,
        leaseUntil: Date?,
        firstDeliveredAt: Date?,
        lastDeliveredAt: Date?,
        completedAt: Date?,
        acceptanceReceipt: Data,
        recipientReceipt: Data?,
        reasonCode: String?,
        bodyPurgedAt: Date?,
        sequence: Int64
    ) {
        self.id = id
        self.sender = sender
        self.recipient = recipient
        self.type = type
        self.priority = priority
        self.correlationId = correlationId
        self.exploitationForm = exploitationForm
        self.region = region
        self.digest = digest
        self.size = size
        self.acceptedAt = acceptedAt
        self.expiresAt = expiresAt
        self.state = state
        self.attempts = attempts
        self.leaseToken = leaseToken
        self.leaseUntil = leaseUntil
        self.firstDeliveredAt = firstDeliveredAt
        self.lastDeliveredAt = lastDeliveredAt
        self.completedAt = completedAt
        self.acceptanceReceipt = acceptanceReceipt
        self.recipientReceipt = recipientReceipt
        self.reasonCode = reasonCode
        self.bodyPurgedAt = bodyPurgedAt
        self.sequence = sequence
    }
}

/// What the relay hands the store after all checks passed.
public struct NewMessage: Sendable, Equatable {
    public var id: UUID
    public var sender: String
    public var recipient: String
    public var type: String
    public var priority: String
    public var correlationId: UUID?
    public var exploitationForm: String?
    public var region: String?
    public var digest: String
    public var body: Data
    public var acceptedAt: Date
    public var expiresAt: Date
    public var acceptanceReceipt: Data

    public init(
        id: UUID,
        sender: String,
        recipient: String,
        type: String,
        priority: String,
        correlationId: UUID? = nil,
        exploitationForm: String? = nil,
        region: String? = nil,
        digest: String,
        body: Data,
        acceptedAt: Date,
        expiresAt: Date,
        acceptanceReceipt: Data
    ) {
        self.id = id
        self.sender = sender
        self.recipient = recipient
        self.type = type
        self.priority = priority
        self.correlationId = correlationId
        self.exploitationForm = exploitationForm
        self.region = region
        self.digest = digest
        self.body = body
        self.acceptedAt = acceptedAt
        self.expiresAt = expiresAt
        self.acceptanceReceipt = acceptanceReceipt
    }
}

public enum SubmitOutcome: Sendable, Equatable {
    /// Stored now (committed and synced to disk before this returns).
    case accepted(StoredMessage)
    /// The same id with the same digest was stored before: nothing new is stored.
    case duplicate(StoredMessage)
    /// The id is taken by a message with other bytes (or another sender).
    case conflict
}

/// A message leased to its recipient.
public struct Lease: Sendable, Equatable {
    public var message: StoredMessage
    /// The sealed bytes as accepted.
    public var body: Data
    public init(message: StoredMessage, body: Data) {
        self.message = message
        self.body = body
    }
}

public enum AcknowledgeOutcome: Sendable, Equatable {
    /// The message is now acknowledged (or rejected) with this receipt.
    case completed(StoredMessage)
    /// The receipt names another message (digest or sender differ from the stored ones).
    case receiptMismatch
    /// It was completed before with exactly this receipt: a retry, nothing changed.
    case alreadyCompleted(StoredMessage)
    /// No message with this id for this recipient.
    case notFound
    /// The token is not the current lease (never leased with it, or leased again since).
    case notLeased
    /// The lease with this token ran out; the message will be (or was) delivered again.
    case leaseExpired
    /// The message is in a final state with another receipt, or expired or dead-lettered.
    case final(StoredMessage)
}

/// What a recipient's receipt says about the message it acknowledges; the store compares it
/// with the stored message inside the acknowledging transaction (no separate read first).
public struct ReceiptClaims: Sendable, Equatable {
    /// The digest of the sealed message as the recipient received it; nil when the receipt
    /// names no message to complete (another kind, id or disposition): it then matches none.
    public var messageDigest: String?
    /// The sender the receipt names.
    public var sender: String
    /// The recipient the receipt names.
    public var recipient: String

    public init(messageDigest: String?, sender: String, recipient: String) {
        self.messageDigest = messageDigest
        self.sender = sender
        self.recipient = recipient
    }

    func match(_ message: StoredMessage) -> Bool {
        messageDigest == message.digest && sender == message.sender && recipient == message.recipient
    }
}

extension MessageStore {
    /// Acknowledges without comparing receipt claims (the caller checked them, or has none).
    public func acknowledge(
        id: UUID,
        recipient: String,
        leaseToken: String,
        receipt: Data,
        rejected: Bool,
        reasonCode: String?,
        now: Date
    ) async throws -> AcknowledgeOutcome {
        try await acknowledge(
            id: id,
            recipient: recipient,
            leaseToken: leaseToken,
            receipt: receipt,
            rejected: rejected,
            reasonCode: reasonCode,
            claims: nil,
            now: now
        )
    }
}

public struct SweepCounts: Sendable, Equatable {
    public var expired: Int
    public var deadLettered: Int
    public var purged: Int
    public init(expired: Int = 0, deadLettered: Int = 0, purged: Int = 0) {
        self.expired = expired
        self.deadLettered = deadLettered
        self.purged = purged
    }
}

/// The durable queue behind the relay. Every backend (SQLite now, PostgreSQL next) passes
/// the same contract tests (`Tests/KetenpostStoreTests`).
///
/// Times are passed in (`now`) rather than read from a clock, so that lease expiry,
/// expiry and retention can be tested without sleeping, and so that several relay
/// instances agree on one notion of time per request.
public protocol MessageStore: Sendable {
    /// Creates or upgrades the schema. Safe at every start and when two instances start at once.
    func migrate() async throws

    /// Stores a message durably (committed and synced before returning), unless its id exists:
    /// same digest → `duplicate` with the stored record (and its original receipt); otherwise `conflict`.
    func submit(_ message: NewMessage) async throws -> SubmitOutcome

    /// In one transaction: marks the recipient's messages whose `expiresAt` passed as `expired`,
    /// marks those whose lease ran out after `maxAttempts` deliveries as `dead-lettered`, then
    /// leases up to `limit` deliverable messages (state accepted or delivered, no running lease)
    /// in acceptance order: a fresh random token, `leaseUntil = now + duration`, attempts + 1,
    /// state `delivered`. Two concurrent callers never get the same message with a running lease.
    /// The batch stops before the message that would take its sealed bytes over `maxBytes`, but
    /// holds at least one message whatever its size: a client that cannot take a large answer
    /// then burns only that message's attempts, not its neighbours'.
    func lease(recipient: String, limit: Int, maxBytes: Int, duration: TimeInterval, maxAttempts: Int, now: Date) async throws -> [Lease]

    /// Completes a message leased to `recipient` with `leaseToken`, if the lease is still running:
    /// state `acknowledged` (or `rejected` with `reasonCode`), the receipt stored, lease cleared.
    /// With `claims`, the message must be the one the receipt names (its digest and sender),
    /// checked right after "not found" and before everything else: `receiptMismatch` otherwise.
    func acknowledge(
        id: UUID,
        recipient: String,
        leaseToken: String,
        receipt: Data,
        rejected: Bool,
        reasonCode: String?,
        claims: ReceiptClaims?,
        now: Date
    ) async throws -> AcknowledgeOutcome

    /// The record (without body), or nil.
    func message(id: UUID) async throws -> StoredMessage?

    /// The stored sealed bytes, or nil when unknown or purged.
    func body(id: UUID) async throws -> Data?

    /// Housekeeping over all recipients: expire, dead-letter (as in `lease`), and purge the bodies of
    /// messages that have been final for at least `retention` (metadata and receipts stay).
    func sweep(now: Date, maxAttempts: Int, retention: TimeInterval) async throws -> SweepCounts

    /// Messages of the recipient that are waiting or leased (not final).
    func pendingCount(recipient: String) async throws -> Int
}

/// What a store shared by several relay instances tells every instance, so that a long poll
/// wakes on the instance that holds it, whichever instance accepted the message.
public enum StoreNotification: Sendable, Equatable {
    /// A message for this recipient was accepted (by any instance).
    case inbox(recipient: String)
    /// The directory changed (by any instance).
    case directory
}

/// What a relay needs from its storage, in one protocol with one lifetime: messages, the
/// partner directory, the audit trail, statistics and reports, and notifications between
/// instances. Every backend passes the same contract tests (Tests/KetenpostStoreTests).
///
/// A store is a `Service`: it is usable while its `run()` runs (PostgreSQL: the connection pool
/// of `PostgresClient`), and `run()` returns at graceful shutdown or cancellation, after which
/// calls fail with `StoreError.closed` or wait. In the relay's `ServiceGroup` it is listed before
/// the HTTP server, so it closes after the server drained. Programs and tests that use a store
/// on its own wrap their work in `withRunning(_:)`.
public protocol RelayStore: MessageStore, DirectoryStore, RevocationStore, AuditStore, StatsStore, ReportStore, Service {
    /// Changes made by any instance, this one included, while the store runs (PostgreSQL:
    /// LISTEN/NOTIFY); nil for a store that lives in one process (SQLite), where the relay
    /// notifies itself.
    func notifications() async throws -> AsyncStream<StoreNotification>?
}

extension RelayStore {
    /// Runs the store around `body` and stops it afterwards: for a store used outside a
    /// `ServiceGroup` (command-line tools, tests).
    public func withRunning<T: Sendable>(_ body: () async throws -> T) async throws -> T {
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.run() }
            defer { group.cancelAll() }
            return try await body()
        }
    }
}

extension MessageStore {
    /// A lease bounded by count only.
    public func lease(recipient: String, limit: Int, duration: TimeInterval, maxAttempts: Int, now: Date) async throws -> [Lease] {
        try await lease(recipient: recipient, limit: limit, maxBytes: .max, duration: duration, maxAttempts: maxAttempts, now: now)
    }
}
