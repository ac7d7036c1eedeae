import Foundation
import KetenpostStore
import Testing

/// The audit trail every backend keeps: each state change appends a hash-chained record in
/// the same transaction, metadata only.
@Suite("AuditStore contract")
struct AuditContract {
    @Test(arguments: Backend.allCases)
    func everyStateChangeIsChained(backend: Backend) async throws {
        try await withStore(backend) { store in
            #expect(try await store.auditHead() == nil)
            let a = try await store.accept(newMessage())
            let b = try await store.accept(newMessage(expiresAt: at(100)))
            let c = try await store.accept(newMessage())
            let leases = try await store.lease(limit: 1, at: at(1))
            _ = try await store.ack(leases[0], at: at(2))
            let second = try await store.lease(limit: 5, maxAttempts: 1, at: at(3))  // b and c, one attempt each
            #expect(second.count == 2)
            _ = try await store.ack(second[1], rejected: true, reasonCode: "payload.invalid", at: at(4))
            // b expires under a lapsed lease; then all three bodies are purged (two sweeps: retention).
            _ = try await store.sweep(now: at(200), maxAttempts: 1, retention: 10)
            _ = try await store.sweep(now: at(400), maxAttempts: 1, retention: 10)
            let records = try await store.auditRecords(after: 0, limit: 100)
            let actions = records.map(\.action)
            #expect(actions.prefix(3) == ["message.accepted", "message.accepted", "message.accepted"])
            #expect(actions.contains("message.leased") && actions.contains("message.acknowledged") && actions.contains("message.rejected"))
            #expect(actions.contains("message.expired"))
            #expect(actions.filter { $0 == "message.purged" }.count == 3)
            // Gapless, chained, each hash matching its content.
            var previous = AuditRecord.genesis
            for (index, record) in records.enumerated() {
                #expect(record.sequence == Int64(index + 1))
                #expect(record.prevHash == previous)
                #expect(record.computedHash() == record.hash)
                previous = record.hash
            }
            #expect(try await store.auditHead()?.hash == previous)
            // Metadata only: ids and codes, never bodies or receipts.
            let accepted = records[0]
            #expect(accepted.actor == sender && accepted.partnerId == recipient && accepted.messageId == a.id.uuidString.lowercased())
            #expect(accepted.detail?.contains("type=referral") == true)
            let text = records.map { "\($0)" }.joined()
            for message in [a, b, c] { #expect(!text.contains("sealed \(message.id)") && !text.contains("acceptance \(message.id)")) }
            // Checkpoints: stored once per sequence.
            let checkpoint = AuditCheckpoint(
                sequence: previous.isEmpty ? 0 : Int64(records.count),
                hash: previous,
                at: 5,
                signature: Data([1, 2])
            )
            try await store.addAuditCheckpoint(checkpoint)
            try await store.addAuditCheckpoint(AuditCheckpoint(sequence: checkpoint.sequence, hash: "other", at: 6, signature: Data([3])))
            #expect(try await store.auditCheckpoints() == [checkpoint])
        }
    }

    @Test(arguments: Backend.allCases)
    func deadLetteringIsRecorded(backend: Backend) async throws {
        try await withStore(backend) { store in
            let message = try await store.accept(newMessage())
            _ = try await store.lease(maxAttempts: 1, at: at(1))
            _ = try await store.sweep(now: at(100), maxAttempts: 1, retention: day)
            let last = try #require(try await store.auditRecords(after: 0, limit: 10).last)
            #expect(last.action == "message.dead-lettered" && last.actor == "relay")
            #expect(last.messageId == message.id.uuidString.lowercased() && last.partnerId == recipient && last.at == 1_800_000_100_000)
        }
    }

    /// A lease expires and dead-letters what is due in its inbox before it takes anything: each
    /// of those changes is recorded too, in that order, with the lease's time. A message due for
    /// both (attempts spent and expired) expires, once.
    @Test(arguments: Backend.allCases)
    func expiryAndDeadLetteringAtALeaseAreRecorded(backend: Backend) async throws {
        try await withStore(backend) { store in
            let dying = try await store.accept(newMessage())
            let both = try await store.accept(newMessage(expiresAt: at(100)))
            #expect(try await store.lease(limit: 2, maxAttempts: 1, at: at(1)).map(\.message.id) == [dying.id, both.id])
            let expiring = try await store.accept(newMessage(expiresAt: at(100)))
            let fresh = try await store.accept(newMessage())
            let before = try #require(try await store.auditHead()).sequence
            // At 700 the first leases have run out (their one attempt spent) and two messages have expired.
            #expect(try await store.lease(limit: 5, maxAttempts: 1, at: at(700)).map(\.message.id) == [fresh.id])
            let records = try await store.auditRecords(after: before, limit: 10)
            #expect(records.map(\.action) == ["message.expired", "message.expired", "message.dead-lettered", "message.leased"])
            #expect(records.map(\.messageId) == [both, expiring, dying, fresh].map { $0.id.uuidString.lowercased() })
            for record in records.prefix(3) {
                #expect(record.actor == "relay" && record.partnerId == recipient && record.at == 1_800_000_700_000)
            }
            #expect(try await store.message(id: both.id)?.reasonCode == "expired")
            #expect(try await store.message(id: dying.id)?.reasonCode == "max-attempts")
        }
    }

    @Test(arguments: Backend.allCases)
    func refusedChangesLeaveNoRecord(backend: Backend) async throws {
        try await withStore(backend) { store in
            let message = try await store.accept(newMessage())
            _ = try await store.submit(newMessage(id: message.id))  // conflict
            _ = try await store.submit(newMessage(id: message.id, digest: message.digest))  // duplicate
            _ = try await store.acknowledge(
                id: message.id,
                recipient: recipient,
                leaseToken: "nope",
                receipt: Data(),
                rejected: false,
                reasonCode: nil,
                now: at(1)
            )
            #expect(try await store.auditRecords(after: 0, limit: 10).map(\.action) == ["message.accepted"])
        }
    }
}
