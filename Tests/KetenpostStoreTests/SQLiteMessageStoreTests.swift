import Foundation
import Testing

@testable import KetenpostStore

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
            #expect(try await store.writerPragma("synchronous") == "2")  // FULL
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
            #expect(plan.contains { $0.contains("USING INDEX messages_leased (lease_until<?)") }, "\(plan)")
            #expect(!plan.contains { $0.contains("SCAN messages") && !$0.contains("INDEX") }, "\(plan)")
        }
    }

    /// The expiry and dead-letter checks a lease runs for one recipient visit only what has
    /// expired or run out, not every pending message of that recipient (flat with the backlog).
    @Test func leaseHousekeepingSearchesTheExpiryAndLeaseIndexes() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            let plans = try await store.leaseHousekeepingPlans()
            #expect(plans.contains { $0.contains("USING INDEX messages_pending_expiry (expires_at<?)") }, "\(plans)")
            #expect(plans.contains { $0.contains("USING INDEX messages_leased (lease_until<?)") }, "\(plans)")
            #expect(!plans.contains { $0.contains("messages_pending ") }, "\(plans)")
        }
    }

    /// The pending, expiry and purge indexes are filtered by `completed_at` instead of `state`
    /// (so that a lease does not rewrite them): that is only right while `completed_at` is set
    /// exactly when a message becomes final. Every transition is walked and the two compared.
    @Test func completedAtIsSetExactlyWhenAMessageBecomesFinal() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            let start = Date()
            // Also checks the kept counts (migration v5) against a full count, at every step.
            func disagreements() async throws -> Int {
                try await store.countOnWriter(
                    """
                    SELECT count(*) FROM messages WHERE (completed_at IS NULL) != (state IN ('accepted', 'delivered'))
                    """
                ) + countsDisagreements(store)
            }
            // acknowledged, rejected, expired (waiting and after a lease), dead-lettered, purged, and still pending.
            let ids = (0..<7).map { _ in UUID() }
            for (n, id) in ids.enumerated() {
                let expires = n == 2 || n == 3 ? start.addingTimeInterval(60) : start.addingTimeInterval(86_400)
                _ = try await store.submit(newMessage(id: id, to: "r-\(n)", acceptedAt: start, expiresAt: expires))
            }
            #expect(try await disagreements() == 0)
            for n in [0, 1, 3, 4, 5] {
                let leases = try await store.lease(recipient: "r-\(n)", limit: 1, duration: 30, maxAttempts: 1, now: start)
                #expect(leases.count == 1)
                #expect(try await disagreements() == 0)
                if n == 0 || n == 1 || n == 5 {
                    _ = try await store.acknowledge(
                        id: ids[n],
                        recipient: "r-\(n)",
                        leaseToken: leases[0].message.leaseToken ?? "",
                        receipt: Data("receipt".utf8),
                        rejected: n == 1,
                        reasonCode: n == 1 ? "not-for-us" : nil,
                        now: start.addingTimeInterval(1)
                    )
                }
            }
            #expect(try await store.pendingCount(recipient: "r-0") == 0)
            #expect(try await store.pendingCount(recipient: "r-6") == 1)
            // r-2 expires waiting, r-3 once its lease ran out, r-4 is dead-lettered (one attempt allowed), the three completed bodies are
            // purged.
            let counts = try await store.sweep(now: start.addingTimeInterval(120), maxAttempts: 1, retention: 60)
            #expect(counts.expired == 2 && counts.deadLettered == 1 && counts.purged == 3, "\(counts)")
            #expect(try await disagreements() == 0)
            let states = try await store.countOnWriter("SELECT count(*) FROM messages WHERE completed_at IS NULL")
            #expect(states == 1)
            let final = try await store.countOnWriter("SELECT count(DISTINCT state) FROM messages WHERE completed_at IS NOT NULL")
            #expect(final == 4)  // acknowledged, rejected, expired, dead-lettered
            // The kept counts (migration v5) followed every transition; states left behind read 0.
            #expect(try await countsDisagreements(store) == 0)
            let stats = try await store.queueStats()
            #expect(stats.byTypeAndState.first { $0.state == "delivered" }?.count == 0, "\(stats.byTypeAndState)")
            #expect(stats.byTypeAndState.first { $0.state == "accepted" }?.count == 1)
            #expect(stats.inboxes.map(\.recipient) == ["r-6"] && stats.inboxes.first?.pending == 1)
            #expect(stats.inboxes.first?.oldestAcceptedAt == Date(timeIntervalSince1970: start.timeIntervalSince1970))
        }
    }

    /// A store made by the previous schema (version 3) is migrated in place: the messages stay,
    /// the replaced indexes are gone, and leasing, counting and sweeping use the new ones. Its
    /// bodies stay inline in their rows (migration v8 copies nothing) and are handed out and
    /// purged like those in message_bodies.
    @Test func aVersionThreeStoreIsMigratedWithItsMessages() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-sqlite-v3-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let path = directory.appendingPathComponent("queue.sqlite").path
        let start = Date()
        let t = start.timeIntervalSince1970
        let ids = (0..<10).map { _ in UUID().uuidString.lowercased() }
        do {
            let old = try SQLiteMessageStore(path: path)
            try await old.migrate(upTo: "v3-waiting")
            // As version 3 wrote them (its queries name the old indexes, so the rows are set
            // directly): bodies inline; the first message acknowledged, the second under a lease
            // that runs out at start + 30 s.
            for (n, id) in ids.enumerated() {
                try await old.executeOnWriter(
                    """
                    INSERT INTO messages (id, sender, recipient, type, priority, digest, size, accepted_at, expires_at, state,
                        attempts, acceptance_receipt, body)
                    VALUES ('\(id)', 's', 'r', 'referral', 'normal', 'digest-\(n)', 9, \(t + Double(n)), \(t + 7 * 86_400), 'accepted',
                        0, x'00', CAST('inline \(n)' AS BLOB))
                    """
                )
            }
            try await old.executeOnWriter(
                """
                UPDATE messages SET state = 'acknowledged', completed_at = \(t), recipient_receipt = x'00', attempts = 1 WHERE sequence = 1;
                UPDATE messages SET state = 'delivered', lease_token = 'token', lease_until = \(t + 30), attempts = 1,
                    first_delivered_at = \(t), last_delivered_at = \(t) WHERE sequence = 2;
                """
            )
            #expect(try await old.indexNames().contains("messages_lease"))
        }
        let store = try SQLiteMessageStore(path: path)
        try await store.migrate()
        let indexes = try await store.indexNames()
        #expect(
            indexes.isSuperset(of: [
                "messages_pending", "messages_pending_expiry", "messages_leased", "messages_purgeable", "messages_waiting",
            ])
        )
        #expect(indexes.isDisjoint(with: ["messages_inbox", "messages_expiry", "messages_lease", "messages_purge"]), "\(indexes)")
        #expect(try await store.pendingCount(recipient: "r") == 9)
        // Counts kept from the rows already there (v5), and from then on by the triggers.
        #expect(try await countsDisagreements(store) == 0)
        #expect(try await store.queueStats().byTypeAndState.reduce(0) { $0 + $1.count } == 10)
        // The one still leased comes back once its lease ran out, before the eight waiting ones.
        let later = start.addingTimeInterval(60)
        let again = try await store.lease(recipient: "r", limit: 10, duration: 30, maxAttempts: 5, now: later)
        #expect(again.count == 9)
        #expect(again.first?.message.attempts == 2)
        #expect(again.map { String(decoding: $0.body, as: UTF8.self) } == (1..<10).map { "inline \($0)" })
        // A message accepted after the upgrade keeps its body in message_bodies and its receipts in
        // their tables (v9); both kinds are read and purged alike.
        let new = newMessage(to: "r", acceptedAt: later, expiresAt: later.addingTimeInterval(60))
        _ = try await store.submit(new)
        #expect(try await store.body(id: new.id) == new.body)
        #expect(try await store.body(id: try #require(UUID(uuidString: ids[0]))) == Data("inline 0".utf8))
        #expect(try await store.countOnWriter("SELECT count(*) FROM message_bodies") == 1)
        let firstID = try #require(UUID(uuidString: ids[0]))
        let acknowledgedBefore = try #require(try await store.message(id: firstID))
        #expect(acknowledgedBefore.acceptanceReceipt == Data([0]) && acknowledgedBefore.recipientReceipt == Data([0]))
        let leasedNew = try #require(
            try await store.lease(recipient: "r", limit: 1, duration: 30, maxAttempts: 5, now: later.addingTimeInterval(1)).first
        )
        #expect(leasedNew.message.id == new.id && leasedNew.message.acceptanceReceipt == new.acceptanceReceipt)
        let recipientReceipt = Data("recipient receipt".utf8)
        let outcome = try await store.acknowledge(
            id: new.id,
            recipient: "r",
            leaseToken: try #require(leasedNew.message.leaseToken),
            receipt: recipientReceipt,
            rejected: false,
            reasonCode: nil,
            now: later.addingTimeInterval(2)
        )
        guard case .completed = outcome else {
            Issue.record("acknowledgement: \(outcome)")
            return
        }
        let acknowledgedAfter = try #require(try await store.message(id: new.id))
        #expect(acknowledgedAfter.acceptanceReceipt == new.acceptanceReceipt && acknowledgedAfter.recipientReceipt == recipientReceipt)
        #expect(try await store.countOnWriter("SELECT count(*) FROM acceptance_receipts") == 1)
        #expect(try await store.countOnWriter("SELECT count(*) FROM recipient_receipts") == 1)
        #expect(try await store.countOnWriter("SELECT count(*) FROM messages WHERE length(acceptance_receipt) = 0") == 1)
        let counts = try await store.sweep(now: start.addingTimeInterval(30 * 86_400), maxAttempts: 5, retention: 0)
        #expect(counts.expired == 9 && counts.purged == 11, "\(counts)")
        #expect(try await countsDisagreements(store) == 0)
        #expect(try await store.body(id: new.id) == nil)
        #expect(try await store.body(id: try #require(UUID(uuidString: ids[1]))) == nil)
        #expect(try await store.countOnWriter("SELECT count(*) FROM message_bodies") == 0)
    }

    /// (type, state) pairs where the kept counts and a full count of the table differ, and
    /// senders whose kept pending bytes (migration v7) differ from a sum over their pending rows.
    private func countsDisagreements(_ store: SQLiteMessageStore) async throws -> Int {
        try await store.countOnWriter(
            """
            SELECT count(*) FROM (
              SELECT * FROM (SELECT type, state, n FROM message_counts WHERE n != 0
                             EXCEPT SELECT type, state, count(*) FROM messages GROUP BY type, state)
              UNION ALL
              SELECT * FROM (SELECT type, state, count(*) FROM messages GROUP BY type, state
                             EXCEPT SELECT type, state, n FROM message_counts))
            """
        )
            + store.countOnWriter(
                """
                SELECT count(*) FROM (
                  SELECT * FROM (SELECT sender, bytes FROM sender_pending_bytes WHERE bytes != 0
                                 EXCEPT SELECT sender, sum(size) FROM messages WHERE completed_at IS NULL GROUP BY sender)
                  UNION ALL
                  SELECT * FROM (SELECT sender, sum(size) FROM messages WHERE completed_at IS NULL GROUP BY sender
                                 EXCEPT SELECT sender, bytes FROM sender_pending_bytes))
                """
            )
    }

    /// An older relay refuses a store that a newer one migrated (it may have dropped indexes the
    /// older one names), with a code and a sentence, instead of failing at its first lease.
    @Test func aStoreFromANewerVersionIsRefused() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            try await store.executeOnWriter("INSERT INTO grdb_migrations (identifier) VALUES ('v99-from-the-future')")
            await #expect(throws: StoreError(.newerSchema, "")) { try await store.migrate() }
        }
    }

    /// Group commit: one write that fails inside a shared transaction is rolled back alone (its
    /// savepoint) and answered with its error; the other writes of the batch commit, each with
    /// its audit record, and the chain stays gapless. The failure comes from the audit insert,
    /// after the message row was written: only the savepoint takes that row back.
    @Test func oneFailingWriteInABatchLeavesTheOthersCommitted() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            let poisoned = UUID()
            try await store.executeOnWriter(
                """
                CREATE TEMP TRIGGER refuse_one BEFORE INSERT ON audit_log WHEN NEW.message_id = '\(poisoned.uuidString.lowercased())'
                BEGIN SELECT RAISE(ABORT, 'injected failure'); END
                """
            )
            let messages = (0..<20).map { _ in newMessage() } + [newMessage(id: poisoned)] + (0..<20).map { _ in newMessage() }
            // The writer is busy while the submissions arrive, so they queue and share a transaction.
            let batchesBefore = store.writeBatches
            async let busy: Void = store.occupyWriter(seconds: 0.3)
            try await Task.sleep(for: .milliseconds(50))
            let outcomes = await withTaskGroup(of: (UUID, Bool).self) { group in
                for message in messages {
                    group.addTask {
                        do {
                            _ = try await store.submit(message)
                            return (message.id, true)
                        } catch { return (message.id, false) }
                    }
                }
                return await group.reduce(into: [UUID: Bool]()) { $0[$1.0] = $1.1 }
            }
            try await busy
            // Far fewer transactions than writes: the poisoned one shared its transaction with others.
            #expect(
                store.writeBatches - batchesBefore <= 3,
                "\(store.writeBatches - batchesBefore) transactions for \(messages.count) writes"
            )
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
            // The failed write's count went with its savepoint.
            #expect(try await countsDisagreements(store) == 0)
            #expect(try await store.queueStats().byTypeAndState.reduce(0) { $0 + $1.count } == messages.count - 1)
        }
    }
    /// A write whose failure ends the whole transaction (here a trigger's `RAISE(ROLLBACK)`, as a
    /// full disk would) fails its whole batch: the writes before it were rolled back with it, and
    /// the ones after it have no transaction left to run in. Every member is answered with an
    /// error, none is stored, and sending them again stores them as new (not as duplicates of
    /// something the relay said it refused).
    @Test func aWriteThatEndsTheTransactionFailsItsWholeBatch() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            let poisoned = UUID()
            try await store.executeOnWriter(
                """
                CREATE TEMP TRIGGER end_all BEFORE INSERT ON audit_log WHEN NEW.message_id = '\(poisoned.uuidString.lowercased())'
                BEGIN SELECT RAISE(ROLLBACK, 'injected rollback'); END
                """
            )
            let messages = (0..<15).map { _ in newMessage() } + [newMessage(id: poisoned)] + (0..<15).map { _ in newMessage() }
            // A write through the batcher holds the writer; everything sent meanwhile waits for the
            // next transaction, the poisoned write among the others.
            let batchesBefore = store.writeBatches
            async let busy: Void = store.occupyWriteQueue(seconds: 1)
            try await Task.sleep(for: .milliseconds(100))
            let outcomes = await withTaskGroup(of: Bool.self) { group in
                for message in messages {
                    group.addTask {
                        do {
                            _ = try await store.submit(message)
                            return true
                        } catch { return false }
                    }
                }
                return await group.reduce(into: [Bool]()) { $0.append($1) }
            }
            try await busy
            // Committed: only the occupying write's transaction.
            #expect(store.writeBatches - batchesBefore == 1)
            #expect(outcomes.filter { $0 }.isEmpty, "\(outcomes.filter { $0 }.count) writes reported stored")
            for message in messages {
                #expect(try await store.message(id: message.id) == nil)
            }
            #expect(try await store.auditRecords(after: 0, limit: 100).isEmpty)
            #expect(try await countsDisagreements(store) == 0)
            // Nothing was half-stored: sending them again stores each as new.
            for message in messages where message.id != poisoned {
                guard case .accepted = try await store.submit(message) else {
                    Issue.record("a message refused in the rolled-back batch was stored after all")
                    continue
                }
            }
            #expect(try await store.auditRecords(after: 0, limit: 100).count == messages.count - 1)
        }
    }
    /// A write that fails and whose savepoint cannot be rolled back (here it released the
    /// savepoint itself, so `ROLLBACK TO` finds none) while the transaction is still open: its
    /// changes cannot be taken back alone, so the whole batch fails rather than committing them
    /// behind an error.
    @Test func aWriteThatCannotBeRolledBackFailsItsWholeBatch() async throws {
        try await withSQLite { (store: SQLiteMessageStore) async throws in
            try await store.executeOnWriter("CREATE TABLE probe (x INTEGER)")
            let messages = (0..<10).map { _ in newMessage() }
            async let busy: Void = store.occupyWriteQueue(seconds: 1)
            try await Task.sleep(for: .milliseconds(100))
            struct Injected: Error {}
            let (outcomes, misbehaved) = await withTaskGroup(of: (Bool, Bool).self) { group in
                for message in messages {
                    group.addTask {
                        do {
                            _ = try await store.submit(message)
                            return (false, true)
                        } catch { return (false, false) }
                    }
                }
                group.addTask {
                    do {
                        try await store.writeThroughBatcher { db in
                            try db.execute(sql: "INSERT INTO probe (x) VALUES (1)")
                            try db.execute(sql: "RELEASE SAVEPOINT ketenpost_write")
                            throw Injected()
                        }
                        return (true, true)
                    } catch { return (true, false) }
                }
                return await group.reduce(into: ([Bool](), false)) { result, item in
                    if item.0 { result.1 = item.1 } else { result.0.append(item.1) }
                }
            }
            try await busy
            #expect(!misbehaved)
            #expect(outcomes.filter { $0 }.isEmpty, "\(outcomes.filter { $0 }.count) writes reported stored")
            #expect(try await store.countOnWriter("SELECT count(*) FROM probe") == 0)
            for message in messages {
                #expect(try await store.message(id: message.id) == nil)
            }
            #expect(try await store.auditRecords(after: 0, limit: 100).isEmpty)
        }
    }
}
