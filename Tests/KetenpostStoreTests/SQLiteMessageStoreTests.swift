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
}
