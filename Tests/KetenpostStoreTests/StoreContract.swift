import Foundation
import KetenpostStore
import KetenpostTestSupport
import Synchronization
import Testing

/// The rules every `MessageStore` backend must keep, one test per rule, each run against
/// every backend (in the style of swift-configuration's `ProviderCompatTest`).
/// To add a backend, add a case to `Backend` with a factory for fresh, empty storage.
/// All times are injected (`at(_:)`): nothing here sleeps.

// MARK: - Backends

enum Backend: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case sqlite
    /// A fresh database per fixture on this process's throwaway server (`PostgresTestServer`).
    case postgres
    /// `MemoryRelayStore`: what handler tests run on (`app.test(.router)`).
    case memory

    var testDescription: String { rawValue }

    /// The backends to test here: PostgreSQL only where its server binaries exist, except under
    /// CI, where a missing server fails every postgres case instead of hiding them.
    static let allCases: [Backend] = {
        switch PostgresTestServer.binaries {
        case .success: return [.sqlite, .postgres, .memory]
        case .failure(let reason):
            if ProcessInfo.processInfo.environment["CI"] != nil { return [.sqlite, .postgres, .memory] }
            print(
                """
                ⚠️  ⚠️  ⚠️  PostgreSQL store tests SKIPPED: \(reason).
                ⚠️  Only the SQLite backend is tested in this run (under CI=… this is a failure).
                """
            )
            return [.sqlite, .memory]
        }
    }()

    /// Fresh, empty storage for one test.
    func makeFixture() async throws -> StoreFixture {
        switch self {
        case .sqlite:
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("ketenpost-store-tests-\(UUID().uuidString)", isDirectory: true)
            // A nested path: the store must create its parent directories.
            let path = directory.appendingPathComponent("data/queue.sqlite").path
            return StoreFixture(
                open: { try SQLiteMessageStore(path: path) },
                remove: { try? FileManager.default.removeItem(at: directory) }
            )
        case .postgres:
            let server = try await PostgresTestServer.shared()
            let database = try await server.createDatabase()
            let url = server.url(database: database)
            return StoreFixture(
                open: { try PostgresMessageStore(url: url, maximumConnections: 10) },
                remove: { server.dropDatabase(database) }
            )
        case .memory:
            // Every instance opened on the fixture shares one storage, as processes share a database.
            let storage = MemoryRelayStore.Storage()
            return StoreFixture(open: { MemoryRelayStore(storage: storage) }, remove: {})
        }
    }
}

/// One storage location; `open` connects a new store instance to it (as a restarted or second
/// relay would) and runs it (its `Service.run()`) until `cleanup`.
final class StoreFixture: Sendable {
    private let make: @Sendable () throws -> any RelayStore
    private let remove: @Sendable () -> Void
    private let running = Mutex<[Task<Void, any Error>]>([])

    init(open: @escaping @Sendable () throws -> any RelayStore, remove: @escaping @Sendable () -> Void) {
        make = open
        self.remove = remove
    }

    /// A new, not yet migrated store on this storage, running.
    func open() throws -> any RelayStore {
        let store = try make()
        running.withLock { $0.append(Task { try await store.run() }) }
        return store
    }

    /// Stops every store opened here, then removes the storage.
    func cleanup() {
        for task in running.withLock({ $0 }) { task.cancel() }
        remove()
    }

    func migrated() async throws -> any RelayStore {
        let store = try open()
        try await store.migrate()
        return store
    }
}

/// Runs `body` with a migrated store on fresh storage, removed afterwards.
func withStore(_ backend: Backend, _ body: (any RelayStore) async throws -> Void) async throws {
    let fixture = try await backend.makeFixture()
    defer { fixture.cleanup() }
    try await body(try await fixture.migrated())
}

// MARK: - Test data

/// A fixed clock: `at(s)` is `s` seconds after the base time.
let base = Date(timeIntervalSince1970: 1_800_000_000)
func at(_ seconds: TimeInterval) -> Date { base.addingTimeInterval(seconds) }

let day: TimeInterval = 86_400
let sender = "gemeente-utrecht"
let recipient = "opvang-noord"
let otherRecipient = "zorg-zuid"

func newMessage(
    id: UUID = UUID(),
    from: String = sender,
    to: String = recipient,
    digest: String? = nil,
    body: Data? = nil,
    receipt: Data? = nil,
    acceptedAt: Date = at(0),
    expiresAt: Date = at(7 * day)
) -> NewMessage {
    let hex = (id.uuidString + id.uuidString).lowercased().filter(\.isHexDigit)
    return NewMessage(
        id: id,
        sender: from,
        recipient: to,
        type: "referral",
        priority: "normal",
        correlationId: UUID(),
        exploitationForm: "labour",
        region: "utrecht",
        digest: digest ?? hex,
        body: body ?? Data("sealed \(id)".utf8),
        acceptedAt: acceptedAt,
        expiresAt: expiresAt,
        acceptanceReceipt: receipt ?? Data("acceptance \(id)".utf8)
    )
}

extension MessageStore {
    /// Submits and requires acceptance.
    @discardableResult
    func accept(_ message: NewMessage) async throws -> StoredMessage {
        let outcome = try await submit(message)
        guard case .accepted(let stored) = outcome else { throw ContractFailure("expected accepted, got \(outcome)") }
        return stored
    }

    /// Submits `count` messages to `to`, in order.
    @discardableResult
    func acceptMany(_ count: Int, to: String = recipient, acceptedAt: Date = at(0)) async throws -> [StoredMessage] {
        var stored: [StoredMessage] = []
        for _ in 0..<count { stored.append(try await accept(newMessage(to: to, acceptedAt: acceptedAt))) }
        return stored
    }

    func lease(
        _ who: String = recipient,
        limit: Int = 10,
        duration: TimeInterval = 60,
        maxAttempts: Int = 5,
        at now: Date
    ) async throws -> [Lease] {
        try await lease(recipient: who, limit: limit, duration: duration, maxAttempts: maxAttempts, now: now)
    }

    func ack(
        _ lease: Lease,
        by who: String = recipient,
        token: String? = nil,
        receipt: Data = Data("processed".utf8),
        rejected: Bool = false,
        reasonCode: String? = nil,
        claims: ReceiptClaims? = nil,
        at now: Date
    ) async throws -> AcknowledgeOutcome {
        try await acknowledge(
            id: lease.message.id,
            recipient: who,
            leaseToken: token ?? lease.message.leaseToken ?? "",
            receipt: receipt,
            rejected: rejected,
            reasonCode: reasonCode,
            claims: claims,
            now: now
        )
    }

    func state(_ id: UUID) async throws -> MessageState? { try await message(id: id)?.state }
}

struct ContractFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: - Rules

@Suite("MessageStore contract")
struct StoreContract {
    // Submit

    @Test(arguments: Backend.allCases)
    func submitIsAcceptedAndStored(backend: Backend) async throws {
        try await withStore(backend) { store in
            let new = newMessage()
            let stored = try await store.accept(new)
            #expect(stored.id == new.id && stored.sender == new.sender && stored.recipient == new.recipient)
            #expect(stored.type == new.type && stored.priority == new.priority && stored.correlationId == new.correlationId)
            #expect(stored.exploitationForm == "labour" && stored.region == "utrecht")
            #expect(stored.digest == new.digest && stored.size == new.body.count)
            #expect(stored.acceptedAt == new.acceptedAt && stored.expiresAt == new.expiresAt)
            #expect(stored.state == .accepted && stored.attempts == 0 && stored.leaseToken == nil && stored.completedAt == nil)
            #expect(stored.acceptanceReceipt == new.acceptanceReceipt && stored.recipientReceipt == nil)
            #expect(try await store.message(id: new.id) == stored)
            #expect(try await store.body(id: new.id) == new.body)
            #expect(try await store.message(id: UUID()) == nil)
            #expect(try await store.body(id: UUID()) == nil)
            // Optional header fields may be absent.
            var bare = newMessage()
            (bare.correlationId, bare.exploitationForm, bare.region) = (nil, nil, nil)
            let storedBare = try await store.accept(bare)
            #expect(storedBare.correlationId == nil && storedBare.exploitationForm == nil && storedBare.region == nil)
            #expect(storedBare.sequence > stored.sequence)
        }
    }

    /// Issue 20: a batch is bounded by bytes, in order, and always holds at least one message;
    /// what did not fit stays for the next lease. Pending bytes are counted per sender.
    @Test(arguments: Backend.allCases)
    func leasesAreBoundedByBytesAndPendingBytesAreCountedPerSender(backend: Backend) async throws {
        try await withStore(backend) { store in
            let sizes = [3000, 2000, 4000, 1000]
            var ids: [UUID] = []
            for size in sizes {
                let message = newMessage(body: Data(repeating: 0x30, count: size))
                ids.append(try await store.accept(message).id)
            }
            _ = try await store.accept(newMessage(from: "other-sender", to: "other-recipient", body: Data(count: 700)))
            #expect(try await store.pendingBytesBySender() == [sender: 10_000, "other-sender": 700])
            // 3000 + 2000 fit into 5500; the 4000 would not.
            let first = try await store.lease(recipient: recipient, limit: 10, maxBytes: 5500, duration: 60, maxAttempts: 5, now: at(1))
            #expect(first.map(\.message.id) == Array(ids[0..<2]))
            #expect(first.map(\.body.count) == [3000, 2000])
            // One message larger than the bound still comes, alone.
            let second = try await store.lease(recipient: recipient, limit: 10, maxBytes: 10, duration: 60, maxAttempts: 5, now: at(2))
            #expect(second.map(\.message.id) == [ids[2]] && second.first?.body.count == 4000)
            let third = try await store.lease(recipient: recipient, limit: 10, maxBytes: 5500, duration: 60, maxAttempts: 5, now: at(3))
            #expect(third.map(\.message.id) == [ids[3]])
            // Acknowledged messages no longer count.
            for lease in first { #expect(try await store.ack(lease, at: at(4)) != .notFound) }
            #expect(try await store.pendingBytesBySender()[sender] == 5000)
        }
    }

    @Test(arguments: Backend.allCases)
    func duplicateReturnsTheStoredRecordUnchanged(backend: Backend) async throws {
        try await withStore(backend) { store in
            let first = newMessage()
            let stored = try await store.accept(first)
            // A resubmission: same id and digest, but the relay made a new receipt at a later time.
            var again = first
            again.acceptanceReceipt = Data("another acceptance".utf8)
            again.acceptedAt = at(30)
            again.body = Data("different bytes, same claimed digest".utf8)
            #expect(try await store.submit(again) == .duplicate(stored))
            #expect(try await store.message(id: first.id) == stored)
            #expect(try await store.body(id: first.id) == first.body)
            #expect(try await store.pendingCount(recipient: recipient) == 1)
            // Also once delivered: the answer is the record as it stands now.
            let leased = try await store.lease(at: at(40))
            #expect(try await store.submit(again) == .duplicate(leased[0].message))
        }
    }

    @Test(arguments: Backend.allCases)
    func sameIdWithOtherBytesOrSenderIsAConflict(backend: Backend) async throws {
        try await withStore(backend) { store in
            let first = newMessage()
            let stored = try await store.accept(first)
            var otherDigest = first
            otherDigest.digest = String(repeating: "0", count: 64)
            otherDigest.body = Data("other bytes".utf8)
            #expect(try await store.submit(otherDigest) == .conflict)
            var otherSender = first
            otherSender.sender = "politie-midden"
            #expect(try await store.submit(otherSender) == .conflict)
            #expect(try await store.message(id: first.id) == stored)
            #expect(try await store.body(id: first.id) == first.body)
            #expect(try await store.pendingCount(recipient: recipient) == 1)
        }
    }

    // Lease

    @Test(arguments: Backend.allCases)
    func leaseIsFIFOPerRecipientAndOnlyTheirs(backend: Backend) async throws {
        try await withStore(backend) { store in
            var mine: [NewMessage] = []
            var theirs: [NewMessage] = []
            for i in 0..<6 {
                // Interleaved, with acceptance times out of order: acceptance order (sequence) rules.
                let message = newMessage(to: i.isMultiple(of: 2) ? recipient : otherRecipient, acceptedAt: at(Double(10 - i)))
                try await store.accept(message)
                if i.isMultiple(of: 2) { mine.append(message) } else { theirs.append(message) }
            }
            let leases = try await store.lease(at: at(20))
            #expect(leases.map(\.message.id) == mine.map(\.id))
            #expect(leases.map(\.body) == mine.map(\.body))
            #expect(leases.allSatisfy { $0.message.recipient == recipient })
            for lease in leases {
                #expect(lease.message.state == .delivered && lease.message.attempts == 1)
                #expect(lease.message.leaseUntil == at(80) && lease.message.firstDeliveredAt == at(20))
                #expect(lease.message.lastDeliveredAt == at(20))
                #expect(lease.message.leaseToken?.count == 32)
                // What lease returns is what is stored.
                #expect(try await store.message(id: lease.message.id) == lease.message)
            }
            #expect(Set(leases.compactMap(\.message.leaseToken)).count == leases.count)
            let others = try await store.lease(otherRecipient, at: at(20))
            #expect(others.map(\.message.id) == theirs.map(\.id))
            #expect(try await store.lease("nobody", at: at(20)).isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func aLeasedMessageIsNotLeasedAgainWhileTheLeaseRuns(backend: Backend) async throws {
        try await withStore(backend) { store in
            let messages = try await store.acceptMany(2)
            let first = try await store.lease(limit: 1, at: at(0))
            #expect(first.map(\.message.id) == [messages[0].id])
            let second = try await store.lease(limit: 10, at: at(59.9))
            #expect(second.map(\.message.id) == [messages[1].id])
            #expect(try await store.lease(at: at(59.95)).isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func leaseRespectsTheLimit(backend: Backend) async throws {
        try await withStore(backend) { store in
            let messages = try await store.acceptMany(5)
            var leased: [UUID] = []
            for expected in [2, 2, 1, 0] {
                let batch = try await store.lease(limit: 2, at: at(1))
                #expect(batch.count == expected)
                leased += batch.map(\.message.id)
            }
            #expect(leased == messages.map(\.id))
            #expect(try await store.lease(limit: 0, at: at(100)).isEmpty)
        }
    }

    // Acknowledge

    @Test(arguments: Backend.allCases)
    func ackWithinTheLeaseCompletesForGood(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.acceptMany(1)
            let lease = try #require(try await store.lease(at: at(0)).first)
            let receipt = Data("signed processed receipt".utf8)
            let outcome = try await store.ack(lease, receipt: receipt, at: at(59))
            guard case .completed(let done) = outcome else { throw ContractFailure("expected completed, got \(outcome)") }
            #expect(done.state == .acknowledged && done.recipientReceipt == receipt && done.completedAt == at(59))
            #expect(done.leaseToken == nil && done.leaseUntil == nil && done.reasonCode == nil && done.attempts == 1)
            #expect(try await store.message(id: lease.message.id) == done)
            #expect(try await store.pendingCount(recipient: recipient) == 0)
            // Never leased again, not even long after the lease would have run out.
            #expect(try await store.lease(at: at(61)).isEmpty)
            #expect(try await store.lease(at: at(6 * day)).isEmpty)
            #expect(try await store.state(lease.message.id) == .acknowledged)
            // The body stays until retention purges it.
            #expect(try await store.body(id: lease.message.id) == lease.body)
        }
    }

    @Test(arguments: Backend.allCases)
    func ackRetryWithTheSameReceiptIsAlreadyCompleted(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.acceptMany(1)
            let lease = try #require(try await store.lease(at: at(0)).first)
            let receipt = Data("receipt".utf8)
            guard case .completed(let done) = try await store.ack(lease, receipt: receipt, at: at(1)) else {
                throw ContractFailure("expected completed")
            }
            // Retried after the lease ran out (the answer to the first call was lost): the same answer.
            #expect(try await store.ack(lease, receipt: receipt, at: at(120)) == .alreadyCompleted(done))
            #expect(try await store.message(id: lease.message.id) == done)
        }
    }

    @Test(arguments: Backend.allCases)
    func ackWithAnotherReceiptAfterCompletionIsFinal(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.acceptMany(1)
            let lease = try #require(try await store.lease(at: at(0)).first)
            guard case .completed(let done) = try await store.ack(lease, receipt: Data("first".utf8), at: at(1)) else {
                throw ContractFailure("expected completed")
            }
            #expect(try await store.ack(lease, receipt: Data("second".utf8), at: at(2)) == .final(done))
            #expect(
                try await store.ack(lease, receipt: Data("rejection".utf8), rejected: true, reasonCode: "x", at: at(2))
                    == .final(done)
            )
            #expect(try await store.message(id: lease.message.id) == done)
        }
    }

    /// The receipt's claims (digest, sender) are compared inside the acknowledging transaction:
    /// after "not found" (nothing about others' messages leaks) and before the lease and final checks.
    @Test(arguments: Backend.allCases)
    func ackWhoseReceiptNamesAnotherMessageIsAMismatch(backend: Backend) async throws {
        try await withStore(backend) { store in
            let message = try #require(try await store.acceptMany(1).first)
            let lease = try #require(try await store.lease(at: at(0)).first)
            let right = ReceiptClaims(messageDigest: message.digest, sender: message.sender, recipient: recipient)
            let otherDigest = ReceiptClaims(messageDigest: String(repeating: "0", count: 64), sender: message.sender, recipient: recipient)
            let otherSender = ReceiptClaims(messageDigest: message.digest, sender: "gemeente-elders", recipient: recipient)
            let otherRecipientNamed = ReceiptClaims(messageDigest: message.digest, sender: message.sender, recipient: otherRecipient)
            let namesNone = ReceiptClaims(messageDigest: nil, sender: message.sender, recipient: recipient)
            for claims in [otherDigest, otherSender, otherRecipientNamed, namesNone] {
                #expect(try await store.ack(lease, claims: claims, at: at(1)) == .receiptMismatch)
            }
            // Before the token check too, and "not found" first for somebody else's message.
            #expect(try await store.ack(lease, token: "wrong", claims: otherDigest, at: at(1)) == .receiptMismatch)
            #expect(try await store.ack(lease, by: otherRecipient, claims: otherDigest, at: at(1)) == .notFound)
            // Nothing changed: still leased, no audit record of a completion; the right claims complete it.
            #expect(try await store.state(message.id) == .delivered)
            guard case .completed(let done) = try await store.ack(lease, claims: right, at: at(2)) else {
                throw ContractFailure("expected completed")
            }
            #expect(try await store.ack(lease, claims: otherDigest, at: at(3)) == .receiptMismatch)
            #expect(try await store.ack(lease, claims: right, at: at(3)) == .alreadyCompleted(done))
            let actions = try await store.auditRecords(after: 0, limit: 10).map(\.action)
            #expect(actions == ["message.accepted", "message.leased", "message.acknowledged"])
        }
    }

    @Test(arguments: Backend.allCases)
    func ackWithAWrongTokenIsNotLeased(backend: Backend) async throws {
        try await withStore(backend) { store in
            let waiting = try await store.acceptMany(2)
            let lease = try #require(try await store.lease(limit: 1, at: at(0)).first)
            #expect(try await store.ack(lease, token: String(repeating: "0", count: 32), at: at(1)) == .notLeased)
            #expect(try await store.ack(lease, token: "", at: at(1)) == .notLeased)
            // Never leased: no token is right.
            let unleased = Lease(message: waiting[1], body: Data())
            #expect(try await store.ack(unleased, token: lease.message.leaseToken, at: at(1)) == .notLeased)
            #expect(try await store.state(waiting[1].id) == .accepted)
            // The wrong attempts changed nothing: the right token still completes.
            #expect(try await store.state(lease.message.id) == .delivered)
            guard case .completed = try await store.ack(lease, at: at(2)) else { throw ContractFailure("expected completed") }
        }
    }

    @Test(arguments: Backend.allCases)
    func ackByAnotherRecipientIsNotFound(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.acceptMany(1)
            let lease = try #require(try await store.lease(at: at(0)).first)
            #expect(try await store.ack(lease, by: otherRecipient, at: at(1)) == .notFound)
            var unknown = lease
            unknown.message.id = UUID()
            #expect(try await store.ack(unknown, at: at(1)) == .notFound)
            #expect(try await store.state(lease.message.id) == .delivered)
            // Not even a completed message is revealed to someone else.
            guard case .completed = try await store.ack(lease, at: at(2)) else { throw ContractFailure("expected completed") }
            #expect(try await store.ack(lease, by: otherRecipient, at: at(3)) == .notFound)
        }
    }

    @Test(arguments: Backend.allCases)
    func ackAfterLeaseExpiryIsLeaseExpired(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.acceptMany(1)
            let lease = try #require(try await store.lease(duration: 60, at: at(0)).first)
            // The lease runs until, not through, leaseUntil.
            #expect(try await store.ack(lease, at: at(60)) == .leaseExpired)
            #expect(try await store.ack(lease, at: at(500)) == .leaseExpired)
            #expect(try await store.state(lease.message.id) == .delivered)
        }
    }

    @Test(arguments: Backend.allCases)
    func leaseExpiryMakesTheMessageDeliverableAgain(backend: Backend) async throws {
        try await withStore(backend) { store in
            let stored = try await store.acceptMany(1)[0]
            let first = try #require(try await store.lease(duration: 60, at: at(0)).first)
            let second = try #require(try await store.lease(duration: 60, at: at(60)).first)
            #expect(second.message.id == stored.id && second.body == first.body)
            #expect(second.message.attempts == 2)
            #expect(second.message.leaseToken != first.message.leaseToken)
            #expect(second.message.firstDeliveredAt == at(0) && second.message.lastDeliveredAt == at(60))
            #expect(second.message.leaseUntil == at(120))
            #expect(try await store.message(id: stored.id) == second.message)
            // The old token no longer counts, even though its holder is early.
            #expect(try await store.ack(first, at: at(61)) == .notLeased)
            guard case .completed = try await store.ack(second, at: at(61)) else { throw ContractFailure("expected completed") }
        }
    }

    @Test(arguments: Backend.allCases)
    func tooManyDeliveriesDeadLetter(backend: Backend) async throws {
        try await withStore(backend) { store in
            let stored = try await store.acceptMany(1)[0]
            var last: Lease?
            for attempt in 0..<3 {
                last = try #require(try await store.lease(maxAttempts: 3, at: at(Double(attempt) * 60)).first)
            }
            #expect(last?.message.attempts == 3)
            // Not while the last lease runs.
            #expect(try await store.lease(maxAttempts: 3, at: at(179)).isEmpty)
            #expect(try await store.state(stored.id) == .delivered)
            // Once it ran out: dead-lettered, never delivered again.
            #expect(try await store.lease(maxAttempts: 3, at: at(180)).isEmpty)
            let dead = try #require(try await store.message(id: stored.id))
            #expect(dead.state == .deadLettered && dead.reasonCode == "max-attempts" && dead.completedAt == at(180))
            #expect(dead.leaseToken == nil && dead.attempts == 3)
            #expect(try await store.lease(maxAttempts: 10, at: at(500)).isEmpty)
            #expect(try await store.pendingCount(recipient: recipient) == 0)
            if let last { #expect(try await store.ack(last, at: at(181)) == .final(dead)) }
        }
    }

    @Test(arguments: Backend.allCases)
    func sweepDeadLettersAcrossRecipients(backend: Backend) async throws {
        try await withStore(backend) { store in
            let a = try await store.acceptMany(1)[0]
            let b = try await store.acceptMany(1, to: otherRecipient)[0]
            _ = try await store.lease(maxAttempts: 1, at: at(0))
            _ = try await store.lease(otherRecipient, duration: 600, maxAttempts: 1, at: at(0))
            #expect(try await store.sweep(now: at(60), maxAttempts: 1, retention: day) == SweepCounts(deadLettered: 1))
            #expect(try await store.state(a.id) == .deadLettered)
            #expect(try await store.message(id: a.id)?.reasonCode == "max-attempts")
            #expect(try await store.state(b.id) == .delivered)
            #expect(try await store.sweep(now: at(600), maxAttempts: 1, retention: day) == SweepCounts(deadLettered: 1))
            #expect(try await store.state(b.id) == .deadLettered)
        }
    }

    @Test(arguments: Backend.allCases)
    func expiryViaLease(backend: Backend) async throws {
        try await withStore(backend) { store in
            let waiting = try await store.accept(newMessage(expiresAt: at(100)))
            let leasedThenExpiring = try await store.accept(newMessage(expiresAt: at(200)))
            let fresh = try await store.accept(newMessage(expiresAt: at(7 * day)))
            // At 100 the first has expired (expiresAt is exclusive); the others are delivered.
            let leases = try await store.lease(duration: 600, at: at(100))
            #expect(leases.map(\.message.id) == [leasedThenExpiring.id, fresh.id])
            let expired = try #require(try await store.message(id: waiting.id))
            #expect(expired.state == .expired && expired.reasonCode == "expired" && expired.completedAt == at(100))
            #expect(expired.attempts == 0)
            // A delivered message whose expiresAt passed expires at the next lease; the other is delivered again.
            #expect(try await store.lease(at: at(700)).map(\.message.id) == [fresh.id])
            let second = try #require(try await store.message(id: leasedThenExpiring.id))
            #expect(second.state == .expired && second.reasonCode == "expired" && second.leaseToken == nil)
            #expect(second.completedAt == at(700))
            #expect(try await store.pendingCount(recipient: recipient) == 1)
            // Nothing left for the sweep to expire.
            #expect(try await store.sweep(now: at(700), maxAttempts: 5, retention: day).expired == 0)
        }
    }

    @Test(arguments: Backend.allCases)
    func expiryViaSweep(backend: Backend) async throws {
        try await withStore(backend) { store in
            let mine = try await store.accept(newMessage(expiresAt: at(100)))
            let theirs = try await store.accept(newMessage(to: otherRecipient, expiresAt: at(100)))
            let later = try await store.accept(newMessage(expiresAt: at(101)))
            #expect(try await store.sweep(now: at(99), maxAttempts: 5, retention: day) == SweepCounts())
            #expect(try await store.sweep(now: at(100), maxAttempts: 5, retention: day) == SweepCounts(expired: 2))
            for id in [mine.id, theirs.id] {
                let message = try #require(try await store.message(id: id))
                #expect(message.state == .expired && message.reasonCode == "expired" && message.completedAt == at(100))
            }
            #expect(try await store.state(later.id) == .accepted)
            #expect(try await store.lease(at: at(100)).map(\.message.id) == [later.id])
            #expect(try await store.lease(otherRecipient, at: at(100)).isEmpty)
        }
    }

    @Test(arguments: Backend.allCases)
    func rejectionKeepsItsReasonCode(backend: Backend) async throws {
        try await withStore(backend) { store in
            try await store.acceptMany(1)
            let lease = try #require(try await store.lease(at: at(0)).first)
            let receipt = Data("signed rejected receipt".utf8)
            let outcome = try await store.ack(lease, receipt: receipt, rejected: true, reasonCode: "no-capacity", at: at(5))
            guard case .completed(let done) = outcome else { throw ContractFailure("expected completed, got \(outcome)") }
            #expect(done.state == .rejected && done.reasonCode == "no-capacity" && done.recipientReceipt == receipt)
            #expect(done.completedAt == at(5))
            #expect(try await store.message(id: lease.message.id) == done)
            #expect(try await store.lease(at: at(100)).isEmpty)
            #expect(
                try await store.ack(lease, receipt: receipt, rejected: true, reasonCode: "no-capacity", at: at(6))
                    == .alreadyCompleted(done)
            )
        }
    }

    // Retention

    @Test(arguments: Backend.allCases)
    func retentionPurgesBodiesOfFinalMessagesOnly(backend: Backend) async throws {
        try await withStore(backend) { store in
            let retention: TimeInterval = 3600
            let messages = try await store.acceptMany(3)
            let expiring = try await store.accept(newMessage(expiresAt: at(50)))
            let leases = try await store.lease(limit: 2, duration: 30 * day, at: at(0))
            guard case .completed(let done) = try await store.ack(leases[0], at: at(10)) else {
                throw ContractFailure("expected completed")
            }
            // Not before completion + retention.
            #expect(
                try await store.sweep(now: at(10 + retention - 1), maxAttempts: 5, retention: retention)
                    == SweepCounts(expired: 1)
            )
            #expect(try await store.body(id: done.id) == leases[0].body)
            // Then the acknowledged body goes; the expired one (final since 3609) waits for its own retention.
            #expect(try await store.sweep(now: at(10 + retention), maxAttempts: 5, retention: retention) == SweepCounts(purged: 1))
            #expect(try await store.body(id: done.id) == nil)
            let purged = try #require(try await store.message(id: done.id))
            #expect(purged.bodyPurgedAt == at(10 + retention))
            // Metadata and receipts stay.
            var expected = done
            expected.bodyPurgedAt = at(10 + retention)
            #expect(purged == expected)
            #expect(try await store.sweep(now: at(2 * retention + 10), maxAttempts: 5, retention: retention) == SweepCounts(purged: 1))
            #expect(try await store.body(id: expiring.id) == nil)
            // Pending messages (leased, or never leased) keep their bodies, however long they wait.
            #expect(try await store.sweep(now: at(6 * day), maxAttempts: 5, retention: 0) == SweepCounts())
            #expect(try await store.body(id: messages[1].id) == leases[1].body)
            #expect(try await store.body(id: messages[2].id) != nil)
            #expect(try await store.pendingCount(recipient: recipient) == 2)
            // A purged message is final: acknowledging again changes nothing.
            #expect(try await store.ack(leases[0], at: at(6 * day)) == .alreadyCompleted(expected))
        }
    }

    @Test(arguments: Backend.allCases)
    func pendingCountCountsWaitingAndLeasedMessagesOfTheRecipient(backend: Backend) async throws {
        try await withStore(backend) { store in
            #expect(try await store.pendingCount(recipient: recipient) == 0)
            try await store.acceptMany(4)
            try await store.acceptMany(2, to: otherRecipient)
            try await store.accept(newMessage(expiresAt: at(10)))
            #expect(try await store.pendingCount(recipient: recipient) == 5)
            #expect(try await store.pendingCount(recipient: otherRecipient) == 2)
            let leases = try await store.lease(limit: 2, at: at(0))
            #expect(try await store.pendingCount(recipient: recipient) == 5)
            _ = try await store.ack(leases[0], at: at(1))
            #expect(try await store.pendingCount(recipient: recipient) == 4)
            _ = try await store.sweep(now: at(10), maxAttempts: 5, retention: day)
            #expect(try await store.pendingCount(recipient: recipient) == 3)
        }
    }

    // Concurrency

    @Test(arguments: Backend.allCases)
    func concurrentLeasersNeverShareAMessage(backend: Backend) async throws {
        try await withStore(backend) { store in
            let messages = try await store.acceptMany(200)
            let leased = try await withThrowingTaskGroup(of: [UUID].self) { group in
                for _ in 0..<8 {
                    group.addTask {
                        var mine: [UUID] = []
                        while true {
                            let batch = try await store.lease(limit: 7, duration: 3600, at: at(1))
                            if batch.isEmpty { return mine }
                            mine += batch.map(\.message.id)
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(leased.count == 200)
            #expect(Set(leased) == Set(messages.map(\.id)))
        }
    }

    @Test(arguments: Backend.allCases)
    func concurrentIdenticalSubmitsStoreOneCopy(backend: Backend) async throws {
        try await withStore(backend) { store in
            let message = newMessage()
            let outcomes = try await withThrowingTaskGroup(of: SubmitOutcome.self) { group in
                for _ in 0..<50 { group.addTask { try await store.submit(message) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let accepted = outcomes.compactMap { if case .accepted(let m) = $0 { m } else { nil } }
            #expect(accepted.count == 1)
            let stored = try #require(accepted.first)
            #expect(outcomes.filter { $0 == .duplicate(stored) }.count == 49)
            #expect(try await store.pendingCount(recipient: recipient) == 1)
        }
    }

    // Durability and schema

    @Test(arguments: Backend.allCases)
    func dataSurvivesARestart(backend: Backend) async throws {
        let fixture = try await backend.makeFixture()
        defer { fixture.cleanup() }
        let new = newMessage()
        var lease: Lease?
        do {
            let store = try await fixture.migrated()
            try await store.accept(new)
            lease = try await store.lease(at: at(0)).first
        }  // The store is gone here, as after a restart.
        let reopened = try await fixture.migrated()
        let stored = try #require(try await reopened.message(id: new.id))
        #expect(stored == lease?.message)
        #expect(try await reopened.body(id: new.id) == new.body)
        #expect(try await reopened.submit(new) == .duplicate(stored))
        // The running lease is still in force after the restart.
        #expect(try await reopened.lease(at: at(1)).isEmpty)
        if let lease { guard case .completed = try await reopened.ack(lease, at: at(2)) else { throw ContractFailure("ack") } }
    }

    @Test(arguments: Backend.allCases)
    func migratingAgainIsHarmless(backend: Backend) async throws {
        let fixture = try await backend.makeFixture()
        defer { fixture.cleanup() }
        // Two instances starting at once on fresh storage.
        let first = try fixture.open()
        let second = try fixture.open()
        async let a: Void = first.migrate()
        async let b: Void = second.migrate()
        _ = try await (a, b)
        let stored = try await first.accept(newMessage())
        try await first.migrate()
        try await second.migrate()
        try await fixture.migrated().migrate()
        #expect(try await second.message(id: stored.id) == stored)
        #expect(try await first.pendingCount(recipient: recipient) == 1)
    }
}

@Suite struct GroupCommitContract {
    /// Many concurrent submissions of distinct messages (which a backend may commit together):
    /// every one is answered as accepted, stored once, and each answer is what a later read returns.
    @Test(arguments: Backend.allCases)
    func concurrentDistinctSubmissionsAreEachStoredOnce(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let messages = (0..<300).map { _ in newMessage() }
            let answers = try await withThrowingTaskGroup(of: StoredMessage.self) { group in
                for message in messages { group.addTask { try await store.accept(message) } }
                var all: [StoredMessage] = []
                for try await stored in group { all.append(stored) }
                return all
            }
            #expect(Set(answers.map(\.id)) == Set(messages.map(\.id)))
            #expect(Set(answers.map(\.sequence)).count == messages.count)
            for stored in answers.prefix(20) {
                #expect(try await store.message(id: stored.id) == stored)
            }
            #expect(try await store.pendingCount(recipient: recipient) == messages.count)
        }
    }
}

extension GroupCommitContract {
    /// The same id submitted several times at once (so possibly within one batch: PostgreSQL
    /// inserts a batch in one statement): exactly one copy is accepted; an identical copy is
    /// answered as a duplicate with the stored record, one with another digest as a conflict.
    @Test(arguments: Backend.allCases)
    func concurrentCopiesOfOneIdAreAcceptedOnce(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let originals = (0..<40).map { _ in newMessage() }
            let copies = originals.flatMap { original -> [NewMessage] in
                var other = original
                other.digest = String(original.digest.reversed())
                return [original, original, other]
            }
            let outcomes = try await withThrowingTaskGroup(of: (NewMessage, SubmitOutcome).self) { group in
                for copy in copies { group.addTask { (copy, try await store.submit(copy)) } }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            for original in originals {
                let mine = outcomes.filter { $0.0.id == original.id }
                let accepted = mine.compactMap { copy, outcome -> StoredMessage? in
                    if case .accepted(let stored) = outcome { return stored } else { return nil }
                }
                #expect(accepted.count == 1, "\(mine.map(\.1))")
                guard let stored = accepted.first else { continue }
                #expect(try await store.message(id: original.id) == stored)
                for (copy, outcome) in mine {
                    switch outcome {
                    case .accepted: #expect(copy.digest == stored.digest)
                    case .duplicate(let existing): #expect(existing == stored && copy.digest == stored.digest)
                    case .conflict: #expect(copy.digest != stored.digest)
                    }
                }
            }
            #expect(try await store.pendingCount(recipient: recipient) == originals.count)
        }
    }

    /// Many concurrent acknowledgements (which a backend may commit together): each completes its
    /// own message; the same acknowledgement sent twice at once completes it once and is then
    /// answered as already completed.
    @Test(arguments: Backend.allCases)
    func concurrentAcknowledgementsEachCompleteTheirMessage(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            _ = try await store.acceptMany(120)
            let leases =
                try await store.lease(recipient: recipient, limit: 100, duration: 60, maxAttempts: 5, now: at(1))
                + store.lease(recipient: recipient, limit: 100, duration: 60, maxAttempts: 5, now: at(1))
            #expect(leases.count == 120)
            let twice = try #require(leases.first)
            let outcomes = try await withThrowingTaskGroup(of: (UUID, AcknowledgeOutcome).self) { group in
                for lease in leases + [twice] {
                    group.addTask {
                        (
                            lease.message.id,
                            try await store.acknowledge(
                                id: lease.message.id,
                                recipient: recipient,
                                leaseToken: lease.message.leaseToken ?? "",
                                receipt: Data("receipt \(lease.message.id)".utf8),
                                rejected: false,
                                reasonCode: nil,
                                now: at(2)
                            )
                        )
                    }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            let completed = outcomes.filter { if case .completed = $0.1 { return true } else { return false } }
            let repeated = outcomes.filter { if case .alreadyCompleted = $0.1 { return true } else { return false } }
            #expect(completed.count == 120 && Set(completed.map(\.0)).count == 120)
            #expect(repeated.count == 1 && repeated.first?.0 == twice.message.id)
            #expect(try await store.pendingCount(recipient: recipient) == 0)
            for lease in leases.prefix(10) {
                #expect(try await store.message(id: lease.message.id)?.state == .acknowledged)
            }
        }
    }
}

extension GroupCommitContract {
    /// Many concurrent leases over several inboxes, several at once on the same inbox (which a
    /// backend may commit together): each message goes to exactly one lease, of its own
    /// recipient, in inbox order within each lease; a run-out lease's message is handed out again.
    @Test(arguments: Backend.allCases)
    func concurrentLeasesEachGetTheirOwnMessages(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let inboxes = ["inbox-a", "inbox-b", "inbox-c"]
            var stored: [String: [StoredMessage]] = [:]
            for inbox in inboxes { stored[inbox] = try await store.acceptMany(30, to: inbox) }
            // One message of inbox-a was leased before and its lease has run out by at(100).
            let earlier = try await store.lease("inbox-a", limit: 1, duration: 10, at: at(1))
            #expect(earlier.count == 1)
            let results = try await withThrowingTaskGroup(of: (String, [Lease]).self) { group in
                for n in 0..<60 {
                    let inbox = inboxes[n % inboxes.count]
                    group.addTask { (inbox, try await store.lease(inbox, limit: 2, duration: 60, at: at(100))) }
                }
                return try await group.reduce(into: []) { $0.append($1) }
            }
            var seen = Set<UUID>()
            for (inbox, leases) in results {
                #expect(leases.allSatisfy { $0.message.recipient == inbox })
                #expect(leases.map(\.message.sequence) == leases.map(\.message.sequence).sorted())
                for lease in leases {
                    #expect(seen.insert(lease.message.id).inserted, "a message was leased twice")
                    // What the lease handed out (its token above all) is what the store holds.
                    #expect(try await store.message(id: lease.message.id) == lease.message)
                }
            }
            #expect(seen == Set(stored.values.flatMap { $0.map(\.id) }))
            let again = try #require(results.flatMap(\.1).first { $0.message.id == earlier[0].message.id })
            #expect(again.message.attempts == 2 && again.message.leaseToken != earlier[0].message.leaseToken)
            for inbox in inboxes { #expect(try await store.lease(inbox, at: at(101)).isEmpty) }
            // Every one can be acknowledged with the token it came with.
            let some = Array(results.flatMap(\.1).filter { $0.message.id != again.message.id }.prefix(12)) + [again]
            for lease in some {
                guard case .completed = try await store.ack(lease, by: lease.message.recipient, at: at(102)) else {
                    Issue.record("the token of \(lease.message.id) was refused")
                    continue
                }
            }
        }
    }
}

@Suite struct ExpiryUnderLeaseContract {
    /// A message leased just before its expiry stays the recipient's until the lease ends:
    /// an acknowledgement within the lease completes it, and a sweep meanwhile does not expire it.
    @Test(arguments: Backend.allCases)
    func acknowledgementWithinTheLeaseWinsOverExpiry(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let message = newMessage(expiresAt: at(100))
            try await store.accept(message)
            let lease = try await store.lease(recipient: recipient, limit: 1, duration: 60, maxAttempts: 5, now: at(90))
            #expect(lease.count == 1)
            let swept = try await store.sweep(now: at(120), maxAttempts: 5, retention: day)
            #expect(swept.expired == 0)
            let token = try #require(lease.first?.message.leaseToken)
            let outcome = try await store.acknowledge(
                id: message.id,
                recipient: recipient,
                leaseToken: token,
                receipt: Data("r".utf8),
                rejected: false,
                reasonCode: nil,
                now: at(130)
            )
            guard case .completed(let done) = outcome else {
                Issue.record("expected completed, got \(outcome)")
                return
            }
            #expect(done.state == .acknowledged)
        }
    }

    /// Once the lease has run out, the expired message is expired and not delivered again.
    @Test(arguments: Backend.allCases)
    func expiryAppliesWhenTheLeaseEnds(_ backend: Backend) async throws {
        try await withStore(backend) { store in
            let message = newMessage(expiresAt: at(100))
            try await store.accept(message)
            _ = try await store.lease(recipient: recipient, limit: 1, duration: 60, maxAttempts: 5, now: at(90))
            #expect(try await store.lease(recipient: recipient, limit: 1, duration: 60, maxAttempts: 5, now: at(160)).isEmpty)
            #expect(try await store.message(id: message.id)?.state == .expired)
        }
    }
}
