import Foundation
import ServiceLifecycle
import Synchronization

/// A store in memory: the same contract as the SQLite and PostgreSQL backends (the shared
/// contract tests run against it), nothing durable. For handler tests through
/// `app.test(.router)` and for demonstrations; never for a relay that accepts real messages,
/// since "accepted" must mean "on disk".
///
/// Several instances made with the same `MemoryRelayStore.Storage` see one store, as several
/// relay processes see one database; every operation is one atomic step on that storage.
public final class MemoryRelayStore: RelayStore {
    /// The data that instances share.
    public final class Storage: Sendable {
        let state = Mutex(State())
        public init() {}
    }

    struct State {
        /// Messages in acceptance order; `sequence` is the index plus one.
        var messages: [StoredMessage] = []
        var bodies: [Data?] = []
        var byID: [UUID: Int] = [:]
        var directoryVersion: Int64 = 0
        var partners: [String: DirectoryPartner] = [:]
        var certificates: [String: DirectoryCertificate] = [:]
        var revocationLists: [String: StoredRevocationList] = [:]
        var audit: [AuditRecord] = []
        var checkpoints: [Int64: AuditCheckpoint] = [:]
        /// Every (type, state) ever seen: one that all its messages left reads 0, as in the other backends.
        var seenTypeStates: Set<[String]> = []
    }

    public let storage: Storage

    /// A new, empty store; pass `storage` to open another instance on the same data.
    public init(storage: Storage = Storage()) {
        self.storage = storage
    }

    // MARK: Lifetime

    /// Nothing to run; returns at graceful shutdown or cancellation, like every store.
    public func run() async throws {
        do { try await gracefulShutdown() } catch {}
    }

    /// One process: the relay notifies itself.
    public func notifications() async throws -> AsyncStream<StoreNotification>? { nil }

    public func migrate() async throws {}

    // MARK: Messages

    public func submit(_ message: NewMessage) async throws -> SubmitOutcome {
        storage.state.withLock { state in
            if let index = state.byID[message.id] {
                let existing = state.messages[index]
                return existing.digest == message.digest && existing.sender == message.sender ? .duplicate(existing) : .conflict
            }
            let stored = StoredMessage(
                id: message.id,
                sender: message.sender,
                recipient: message.recipient,
                type: message.type,
                priority: message.priority,
                correlationId: message.correlationId,
                exploitationForm: message.exploitationForm,
                region: message.region,
                digest: message.digest,
                size: message.body.count,
                acceptedAt: message.acceptedAt,
                expiresAt: message.expiresAt,
                state: .accepted,
                attempts: 0,
                leaseToken: nil,
                leaseUntil: nil,
                firstDeliveredAt: nil,
                lastDeliveredAt: nil,
                completedAt: nil,
                acceptanceReceipt: message.acceptanceReceipt,
                recipientReceipt: nil,
                reasonCode: nil,
                bodyPurgedAt: nil,
                sequence: Int64(state.messages.count + 1)
            )
            state.byID[message.id] = state.messages.count
            state.messages.append(stored)
            state.bodies.append(message.body)
            state.seenTypeStates.insert([stored.type, stored.state.rawValue])
            state.append(
                [
                    AuditEvent(
                        action: "message.accepted",
                        actor: message.sender,
                        messageId: Self.key(message.id),
                        partnerId: message.recipient,
                        detail: "type=\(message.type) size=\(message.body.count) digest=\(message.digest)"
                    )
                ],
                at: message.acceptedAt
            )
            return .accepted(stored)
        }
    }

    public func lease(
        recipient: String,
        limit: Int,
        maxBytes: Int,
        duration: TimeInterval,
        maxAttempts: Int,
        now: Date
    ) async throws -> [Lease] {
        guard limit > 0 else { return [] }
        return storage.state.withLock { state in
            state.expire(recipient: recipient, now: now)
            state.deadLetter(recipient: recipient, now: now, maxAttempts: maxAttempts)
            var leases: [Lease] = []
            var events: [AuditEvent] = []
            var bytes = 0
            for index in state.messages.indices where leases.count < limit {
                var message = state.messages[index]
                guard message.recipient == recipient, let body = state.bodies[index],
                    message.state == .accepted || (message.state == .delivered && (message.leaseUntil ?? .distantFuture) <= now),
                    message.expiresAt > now, message.attempts < maxAttempts
                else { continue }
                // The byte bound stops the batch in order (the next message waits for the next lease).
                if !leases.isEmpty && bytes + body.count > maxBytes { break }
                bytes += body.count
                message.state = .delivered
                message.leaseToken = Self.token()
                message.leaseUntil = now.addingTimeInterval(duration)
                message.attempts += 1
                message.firstDeliveredAt = message.firstDeliveredAt ?? now
                message.lastDeliveredAt = now
                state.update(index, message)
                leases.append(Lease(message: message, body: body))
                events.append(
                    AuditEvent(
                        action: "message.leased",
                        actor: recipient,
                        messageId: Self.key(message.id),
                        partnerId: message.sender,
                        detail: "attempt=\(message.attempts)"
                    )
                )
            }
            state.append(events, at: now)
            return leases
        }
    }

    public func acknowledge(
        id: UUID,
        recipient: String,
        leaseToken: String,
        receipt: Data,
        rejected: Bool,
        reasonCode: String?,
        claims: ReceiptClaims?,
        now: Date
    ) async throws -> AcknowledgeOutcome {
        storage.state.withLock { state in
            guard let index = state.byID[id], state.messages[index].recipient == recipient else { return .notFound }
            var message = state.messages[index]
            if let claims, !claims.match(message) { return .receiptMismatch }
            if message.state.isFinal {
                // A retry of the acknowledgement that completed it is answered as before.
                return message.recipientReceipt == receipt ? .alreadyCompleted(message) : .final(message)
            }
            guard message.leaseToken == leaseToken else { return .notLeased }
            guard let until = message.leaseUntil, until > now else { return .leaseExpired }
            message.state = rejected ? .rejected : .acknowledged
            message.recipientReceipt = receipt
            message.reasonCode = rejected ? reasonCode : nil
            message.completedAt = now
            message.leaseToken = nil
            message.leaseUntil = nil
            state.update(index, message)
            state.append(
                [
                    AuditEvent(
                        action: "message.\(message.state.rawValue)",
                        actor: recipient,
                        messageId: Self.key(id),
                        partnerId: message.sender,
                        detail: message.reasonCode.map { "reason=\($0)" }
                    )
                ],
                at: now
            )
            return .completed(message)
        }
    }

    public func message(id: UUID) async throws -> StoredMessage? {
        storage.state.withLock { state in state.byID[id].map { state.messages[$0] } }
    }

    public func body(id: UUID) async throws -> Data? {
        storage.state.withLock { state in state.byID[id].flatMap { state.bodies[$0] } }
    }

    public func sweep(now: Date, maxAttempts: Int, retention: TimeInterval) async throws -> SweepCounts {
        storage.state.withLock { state in
            var counts = SweepCounts()
            counts.expired = state.expire(recipient: nil, now: now)
            counts.deadLettered = state.deadLetter(recipient: nil, now: now, maxAttempts: maxAttempts)
            var events: [AuditEvent] = []
            for index in state.messages.indices {
                var message = state.messages[index]
                guard state.bodies[index] != nil, message.state.isFinal, let completed = message.completedAt,
                    completed <= now.addingTimeInterval(-retention)
                else { continue }
                state.bodies[index] = nil
                message.bodyPurgedAt = now
                state.update(index, message)
                events.append(
                    AuditEvent(action: "message.purged", actor: "relay", messageId: Self.key(message.id), partnerId: message.recipient)
                )
            }
            counts.purged = events.count
            state.append(events, at: now)
            return counts
        }
    }

    public func pendingCount(recipient: String) async throws -> Int {
        storage.state.withLock { state in state.messages.count { $0.recipient == recipient && $0.completedAt == nil } }
    }

    // MARK: Directory

    public func directoryVersion() async throws -> Int64 {
        storage.state.withLock { $0.directoryVersion }
    }

    public func directorySnapshot() async throws -> DirectorySnapshot {
        storage.state.withLock { state in
            DirectorySnapshot(
                version: state.directoryVersion,
                partners: state.partners.values.sorted { $0.id < $1.id },
                certificates: state.certificates.values.sorted {
                    ($0.partnerID, $0.addedAt, $0.fingerprint) < ($1.partnerID, $1.addedAt, $1.fingerprint)
                }
            )
        }
    }

    @discardableResult
    public func applyDirectory(_ changes: [DirectoryChange], actor: String, at: Date) async throws -> Int64 {
        try storage.state.withLock { state in
            // On a copy: a refused change leaves nothing of the batch behind.
            var next = state
            var events: [AuditEvent] = []
            for change in changes {
                var partnerID: String?
                var fingerprint: String?
                switch change {
                case .addPartner(let partner):
                    guard next.partners[partner.id] == nil else { throw StoreError(.partnerExists, subject: partner.id) }
                    next.partners[partner.id] = partner
                    partnerID = partner.id
                case .setPartnerState(let id, let newState):
                    guard next.partners[id] != nil else { throw StoreError(.partnerNotFound, subject: id) }
                    next.partners[id]?.state = newState
                    partnerID = id
                case .addCertificate(let certificate):
                    guard next.partners[certificate.partnerID] != nil else {
                        throw StoreError(.partnerNotFound, subject: certificate.partnerID)
                    }
                    guard next.certificates[certificate.fingerprint] == nil else {
                        throw StoreError(.certificateExists, subject: certificate.fingerprint)
                    }
                    next.certificates[certificate.fingerprint] = certificate
                    partnerID = certificate.partnerID
                    fingerprint = certificate.fingerprint
                case .retireCertificate(let fp, let until):
                    partnerID = try next.livePartner(fingerprint: fp)
                    // Only ever earlier: a second rotation cannot extend an overlap already running.
                    let retiresAt = min(next.certificates[fp]?.retiresAt ?? until, until)
                    next.certificates[fp]?.retiresAt = retiresAt
                    fingerprint = fp
                case .revokeCertificate(let fp, let when, let reason):
                    partnerID = try next.livePartner(fingerprint: fp)
                    next.certificates[fp]?.revokedAt = when
                    next.certificates[fp]?.revocationReason = reason
                    fingerprint = fp
                }
                events.append(
                    AuditEvent(
                        action: change.action,
                        actor: actor,
                        partnerId: partnerID,
                        fingerprint: fingerprint,
                        detail: change.auditDetail
                    )
                )
            }
            next.append(events, at: at)
            next.directoryVersion += 1
            state = next
            return state.directoryVersion
        }
    }

    // MARK: Revocation lists

    public func revocationLists() async throws -> [StoredRevocationList] {
        storage.state.withLock { state in state.revocationLists.values.sorted { $0.issuerFingerprint < $1.issuerFingerprint } }
    }

    @discardableResult
    public func saveRevocationList(_ list: StoredRevocationList) async throws -> Bool {
        storage.state.withLock { state in
            if let held = state.revocationLists[list.issuerFingerprint], let heldUpdate = held.thisUpdate,
                let newUpdate = list.thisUpdate, heldUpdate > newUpdate
            {
                return false
            }
            var kept = list
            kept.lastError = nil
            state.revocationLists[list.issuerFingerprint] = kept
            return true
        }
    }

    public func recordRevocationFailure(issuerFingerprint: String, issuer: String, source: String, error: String, at: Date) async throws {
        storage.state.withLock { state in
            var list =
                state.revocationLists[issuerFingerprint]
                ?? StoredRevocationList(issuerFingerprint: issuerFingerprint, issuer: issuer, source: source)
            list.lastError = error
            list.lastAttemptAt = at
            state.revocationLists[issuerFingerprint] = list
        }
    }

    // MARK: Audit

    public func auditHead() async throws -> (sequence: Int64, hash: String)? {
        storage.state.withLock { state in state.audit.last.map { ($0.sequence, $0.hash) } }
    }

    public func auditRecords(after sequence: Int64, limit: Int) async throws -> [AuditRecord] {
        storage.state.withLock { state in Array(state.audit.drop { $0.sequence <= sequence }.prefix(max(0, limit))) }
    }

    public func addAuditCheckpoint(_ checkpoint: AuditCheckpoint) async throws {
        storage.state.withLock { state in
            if state.checkpoints[checkpoint.sequence] == nil { state.checkpoints[checkpoint.sequence] = checkpoint }
        }
    }

    public func auditCheckpoints() async throws -> [AuditCheckpoint] {
        storage.state.withLock { state in state.checkpoints.values.sorted { $0.sequence < $1.sequence } }
    }

    // MARK: Statistics and reports

    public func pendingBytesBySender() async throws -> [String: Int] {
        storage.state.withLock { state in
            var bytes: [String: Int] = [:]
            for message in state.messages where message.completedAt == nil { bytes[message.sender, default: 0] += message.size }
            return bytes
        }
    }

    public func queueStats() async throws -> QueueStats {
        storage.state.withLock { state in
            var pending: [String: (count: Int, oldest: Date)] = [:]
            var counts: [[String]: Int] = [:]
            for message in state.messages {
                counts[[message.type, message.state.rawValue], default: 0] += 1
                guard message.completedAt == nil else { continue }
                // Acceptance order: the first pending message of an inbox is its oldest.
                pending[message.recipient, default: (0, message.acceptedAt)].count += 1
            }
            let inboxes = pending.keys.sorted().map {
                QueueStats.Inbox(recipient: $0, pending: pending[$0]!.count, oldestAcceptedAt: pending[$0]!.oldest)
            }
            let states = state.seenTypeStates.sorted { ($0[0], $0[1]) < ($1[0], $1[1]) }
                .map { QueueStats.StateCount(type: $0[0], state: $0[1], count: counts[$0] ?? 0) }
            return QueueStats(inboxes: inboxes, byTypeAndState: states)
        }
    }

    public func labelCounts(from: Date, to: Date) async throws -> [LabelCount] {
        let months = DateFormatter()
        months.locale = Locale(identifier: "en_US_POSIX")
        months.timeZone = TimeZone(identifier: "UTC")
        months.dateFormat = "yyyy-MM"
        return storage.state.withLock { state in
            var counts: [[String?]: Int] = [:]
            for message in state.messages where message.acceptedAt >= from && message.acceptedAt < to {
                let month = months.string(from: Date(timeIntervalSince1970: message.acceptedAt.timeIntervalSince1970.rounded(.towardZero)))
                counts[[month, message.type, message.exploitationForm, message.region], default: 0] += 1
            }
            return counts.map { LabelCount(month: $0.key[0]!, type: $0.key[1]!, form: $0.key[2], region: $0.key[3], count: $0.value) }
                .sorted { ($0.month, $0.type, $0.form ?? "", $0.region ?? "") < ($1.month, $1.type, $1.form ?? "", $1.region ?? "") }
        }
    }

    // MARK: Helpers

    private static func key(_ id: UUID) -> String { id.uuidString.lowercased() }

    /// 128 random bits as 32 lowercase hex characters, as the other backends make them.
    private static func token() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<2).map { _ in
            let hex = String(generator.next() as UInt64, radix: 16)
            return String(repeating: "0", count: 16 - hex.count) + hex
        }.joined()
    }
}

extension MemoryRelayStore.State {
    mutating func update(_ index: Int, _ message: StoredMessage) {
        messages[index] = message
        seenTypeStates.insert([message.type, message.state.rawValue])
    }

    /// Appends hash-chained records, as the other backends do inside their transactions.
    mutating func append(_ events: [AuditEvent], at date: Date) {
        var previous = audit.last?.hash ?? AuditRecord.genesis
        let at = AuditRecord.milliseconds(date)
        for event in events {
            let record = AuditRecord(sequence: Int64(audit.count + 1), at: at, event: event, prevHash: previous)
            audit.append(record)
            previous = record.hash
        }
    }

    /// Pending messages whose `expiresAt` passed become `expired`, except under a running lease.
    @discardableResult
    mutating func expire(recipient: String?, now: Date) -> Int {
        finish(recipient: recipient, now: now, as: .expired, reason: "expired", action: "message.expired") { message in
            message.completedAt == nil && message.expiresAt <= now
                && (message.state == .accepted || (message.state == .delivered && (message.leaseUntil.map { $0 <= now } ?? true)))
        }
    }

    /// Delivered messages whose last lease ran out after `maxAttempts` deliveries become `dead-lettered`.
    @discardableResult
    mutating func deadLetter(recipient: String?, now: Date, maxAttempts: Int) -> Int {
        finish(recipient: recipient, now: now, as: .deadLettered, reason: "max-attempts", action: "message.dead-lettered") { message in
            message.state == .delivered && (message.leaseUntil.map { $0 <= now } ?? false) && message.attempts >= maxAttempts
        }
    }

    /// Makes every message of `recipient` (or all) that `isDue` final in `state`, with one audit event each.
    private mutating func finish(
        recipient: String?,
        now: Date,
        as state: MessageState,
        reason: String,
        action: String,
        isDue: (StoredMessage) -> Bool
    ) -> Int {
        var events: [AuditEvent] = []
        for index in messages.indices {
            var message = messages[index]
            guard recipient == nil || message.recipient == recipient, isDue(message) else { continue }
            message.state = state
            message.completedAt = now
            message.reasonCode = reason
            message.leaseToken = nil
            message.leaseUntil = nil
            update(index, message)
            events.append(
                AuditEvent(action: action, actor: "relay", messageId: message.id.uuidString.lowercased(), partnerId: message.recipient)
            )
        }
        append(events, at: now)
        return events.count
    }

    /// The partner of a certificate that is not revoked (a revoked certificate never changes again).
    func livePartner(fingerprint: String) throws -> String {
        guard let certificate = certificates[fingerprint] else { throw StoreError(.certificateNotFound, subject: fingerprint) }
        guard certificate.revokedAt == nil else { throw StoreError(.certificateRevoked, subject: fingerprint) }
        return certificate.partnerID
    }
}
