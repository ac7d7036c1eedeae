import Foundation
import KetenpostStore
import Testing

/// Rules for several store instances on one storage (several relay instances, or processes on
/// one SQLite file): what one instance does, every other one respects.
@Suite("Shared storage contract")
struct SharedStoreContract {
    /// Opens `count` migrated instances on one fresh storage.
    private func withInstances(_ backend: Backend, _ count: Int, _ body: ([any RelayStore]) async throws -> Void) async throws {
        let fixture = try await backend.makeFixture()
        defer { fixture.cleanup() }
        var stores: [any RelayStore] = []
        for _ in 0..<count { stores.append(try await fixture.migrated()) }
        try await body(stores)
    }

    @Test(arguments: Backend.allCases)
    func theSameIdSubmittedThroughTwoInstancesAtOnceIsAcceptedOnce(backend: Backend) async throws {
        try await withInstances(backend, 2) { stores in
            for _ in 0..<5 {
                let message = newMessage()
                let outcomes = try await withThrowingTaskGroup(of: SubmitOutcome.self) { group in
                    for index in 0..<10 { group.addTask { try await stores[index % 2].submit(message) } }
                    return try await group.reduce(into: []) { $0.append($1) }
                }
                let accepted = outcomes.compactMap { if case .accepted(let m) = $0 { m } else { nil } }
                #expect(accepted.count == 1)
                let stored = try #require(accepted.first)
                #expect(outcomes.filter { $0 == .duplicate(stored) }.count == 9)
                #expect(try await stores[1].message(id: message.id) == stored)
            }
            #expect(try await stores[0].pendingCount(recipient: recipient) == 5)
        }
    }

    @Test(arguments: Backend.allCases)
    func twoInstancesLeasingOneInboxNeverShareAMessage(backend: Backend) async throws {
        try await withInstances(backend, 2) { stores in
            let messages = try await stores[0].acceptMany(120)
            let leased = try await withThrowingTaskGroup(of: [Lease].self) { group in
                for index in 0..<6 {
                    group.addTask {
                        var mine: [Lease] = []
                        while true {
                            let batch = try await stores[index % 2].lease(limit: 5, duration: 3600, at: at(1))
                            if batch.isEmpty { return mine }
                            mine += batch
                        }
                    }
                }
                return try await group.reduce(into: []) { $0 += $1 }
            }
            #expect(leased.count == messages.count)
            #expect(Set(leased.map(\.message.id)) == Set(messages.map(\.id)))
            // Each lease is what the storage holds, whichever instance handed it out.
            for lease in leased.prefix(10) { #expect(try await stores[1].message(id: lease.message.id) == lease.message) }
        }
    }

    /// Writers on both instances at once (submits, leases, acknowledgements, directory changes,
    /// sweeps): the audit trail stays one gapless chain.
    @Test(arguments: Backend.allCases)
    func concurrentWritersOnTwoInstancesKeepOneChain(backend: Backend) async throws {
        try await withInstances(backend, 2) { stores in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for index in 0..<4 {
                    let store = stores[index % 2]
                    group.addTask {
                        for _ in 0..<10 { try await store.accept(newMessage(to: "inbox-\(index)")) }
                        for lease in try await store.lease("inbox-\(index)", limit: 4, at: at(1)) {
                            _ = try await store.ack(lease, by: "inbox-\(index)", at: at(2))
                        }
                        _ = try await store.sweep(now: at(3), maxAttempts: 5, retention: 0)
                    }
                }
                group.addTask {
                    try await stores[1].applyDirectory(
                        [
                            .addPartner(
                                DirectoryPartner(
                                    id: "p-x",
                                    name: "X",
                                    role: "municipality",
                                    oin: "1",
                                    state: "active"
                                )
                            )
                        ],
                        actor: "admin:t",
                        at: at(0)
                    )
                }
                try await group.waitForAll()
            }
            let records = try await stores[0].auditRecords(after: 0, limit: 1000)
            // 40 accepted, 16 leased, 16 acknowledged, 16 purged, 1 partner.
            #expect(records.count == 89)
            var previous = AuditRecord.genesis
            for (index, record) in records.enumerated() {
                #expect(record.sequence == Int64(index + 1))
                #expect(record.prevHash == previous)
                #expect(record.computedHash() == record.hash)
                previous = record.hash
            }
            #expect(try await stores[1].auditHead()?.hash == previous)
        }
    }

    @Test(arguments: Backend.allCases)
    func fourInstancesMigratingAtOnce(backend: Backend) async throws {
        let fixture = try await backend.makeFixture()
        defer { fixture.cleanup() }
        let stores = try (0..<4).map { _ in try fixture.open() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for store in stores { group.addTask { try await store.migrate() } }
            try await group.waitForAll()
        }
        let stored = try await stores[3].accept(newMessage())
        #expect(try await stores[0].message(id: stored.id) == stored)
        #expect(try await stores[1].directoryVersion() == 0)
    }
}
