import Foundation
@testable import KetenpostStore
import Testing

/// What only the SQLite backend promises: its connection settings and index use.
@Suite("SQLiteMessageStore")
struct SQLiteMessageStoreTests {
    private func withSQLite(_ body: (SQLiteMessageStore) async throws -> Void) async throws {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ketenpost-sqlite-tests-\(UUID().uuidString)", isDirectory: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let store = try SQLiteMessageStore(path: directory.appendingPathComponent("a/b/queue.sqlite").path)
        try await store.migrate()
        try await body(store)
    }

    @Test func commitsAreDurableWAL() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            #expect(try await store.writerPragma("journal_mode") == "wal")
            #expect(try await store.writerPragma("synchronous") == "2") // FULL
            #expect(try await store.writerPragma("foreign_keys") == "1")
            #expect(try await store.writerPragma("busy_timeout") == "5000")
        }
    }

    /// Waiting messages come from the waiting index in order (no sort, no stepping over running
    /// leases); redeliveries from the lease index; nothing scans the table.
    @Test func leaseQueryWalksTheWaitingAndLeaseIndexes() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            let plan = try await store.leaseQueryPlan()
            #expect(plan.contains { $0.contains("USING INDEX messages_waiting (recipient=?)") }, "\(plan)")
            #expect(plan.contains { $0.contains("USING INDEX messages_lease (state=? AND lease_until<?)") }, "\(plan)")
            #expect(!plan.contains { $0.contains("SCAN messages") && !$0.contains("INDEX") }, "\(plan)")
        }
    }

    /// The expiry and dead-letter checks a lease runs for one recipient visit only what has
    /// expired or run out, not every pending message of that recipient (flat with the backlog).
    @Test func leaseHousekeepingSearchesTheExpiryAndLeaseIndexes() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            let plans = try await store.leaseHousekeepingPlans()
            #expect(plans.contains { $0.contains("USING INDEX messages_expiry (state=? AND expires_at<?)") }, "\(plans)")
            #expect(plans.contains { $0.contains("USING INDEX messages_lease (state=? AND lease_until<?)") }, "\(plans)")
            #expect(!plans.contains { $0.contains("messages_inbox") }, "\(plans)")
        }
    }

    /// Group commit: one write that fails inside a shared transaction is rolled back alone (its
    /// savepoint) and answered with its error; the other writes of the batch commit, each with
    /// its audit record, and the chain stays gapless. The failure comes from the audit insert,
    /// after the message row was written: only the savepoint takes that row back.
    @Test func oneFailingWriteInABatchLeavesTheOthersCommitted() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            let poisoned = UUID()
            try await store.executeOnWriter("""
                CREATE TEMP TRIGGER refuse_one BEFORE INSERT ON audit_log WHEN NEW.message_id = '\(poisoned.uuidString.lowercased())'
                BEGIN SELECT RAISE(ABORT, 'injected failure'); END
                """)
            let messages = (0..<20).map { _ in newMessage() } + [newMessage(id: poisoned)] + (0..<20).map { _ in newMessage() }
            // The writer is busy while the submissions arrive, so they queue and share a transaction.
            let batchesBefore = store.writeBatches
            async let busy: Void = store.occupyWriter(seconds: 0.3)
            try await Task.sleep(for: .milliseconds(50))
            let outcomes = await withTaskGroup(of: (UUID, Bool).self) { group in
                for message in messages {
                    group.addTask {
                        do { _ = try await store.submit(message); return (message.id, true) } catch { return (message.id, false) }
                    }
                }
                return await group.reduce(into: [UUID: Bool]()) { $0[$1.0] = $1.1 }
            }
            try await busy
            // Far fewer transactions than writes: the poisoned one shared its transaction with others.
            #expect(store.writeBatches - batchesBefore <= 3, "\(store.writeBatches - batchesBefore) transactions for \(messages.count) writes")
            #expect(outcomes[poisoned] == false)
            #expect(outcomes.filter { $0.value }.count == messages.count - 1)
            #expect(try await store.message(id: poisoned) == nil)
            for message in messages where message.id != poisoned {
                #expect(try await store.message(id: message.id)?.state == .accepted)
            }
            let records = try await store.auditRecords(after: 0, limit: 100)
            #expect(records.count == messages.count - 1)
            #expect(!records.contains { $0.messageId == poisoned.uuidString.lowercased() })
            var previous = AuditRecord.genesis
            for (index, record) in records.enumerated() {
                #expect(record.sequence == Int64(index + 1) && record.prevHash == previous && record.computedHash() == record.hash)
                previous = record.hash
            }
        }
    }
}
