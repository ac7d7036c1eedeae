import Foundation
import KetenpostTestSupport
import Testing

@testable import KetenpostStore

/// What only the PostgreSQL backend promises: its connection URL, notifications across
/// instances, index use and shutdown.
@Suite("PostgresMessageStore")
struct PostgresMessageStoreTests {
    static let serverAvailable = Backend.allCases.contains(.postgres)

    private func withPostgres(_ count: Int = 1, _ body: ([PostgresMessageStore]) async throws -> Void) async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.createDatabase()
        defer { server.dropDatabase(database) }
        var stores: [PostgresMessageStore] = []
        var running: [RunningStore] = []
        for _ in 0..<count {
            let store = try PostgresMessageStore(url: server.url(database: database), maximumConnections: 4)
            running.append(RunningStore(store))
            try await store.migrate()
            stores.append(store)
        }
        try await body(stores)
        for store in running { await store.stop() }
    }

    // MARK: URL

    @Test func parsesAFullURL() throws {
        let url = try PostgresConnectionURL(
            "postgres://relay:s%40cret@db.example.nl:6432/keten%20post?sslmode=verify-ca&sslrootcert=/etc/ca.pem"
        )
        #expect(
            url
                == PostgresConnectionURL(
                    host: "db.example.nl",
                    port: 6432,
                    user: "relay",
                    password: "s@cret",
                    database: "keten post",
                    sslMode: .verifyCA,
                    sslRootCertificatePath: "/etc/ca.pem"
                )
        )
        #expect(!url.description.contains("cret"))
        #expect(url.description.contains("relay:***@db.example.nl:6432"))
    }

    @Test func defaultsArePort5432AndVerifyFull() throws {
        let url = try PostgresConnectionURL("postgresql://relay@[::1]/ketenpost")
        #expect(url.host == "::1" && url.port == 5432 && url.password == nil && url.sslMode == .verifyFull)
        #expect(try PostgresConnectionURL("postgres://u@h:1/d?sslmode=disable").sslMode == .disable)
        #expect(try PostgresConnectionURL("postgres://u:@h/d?sslmode=require").password == "")
    }

    @Test(arguments: [
        ("mysql://u@h/d", "scheme"),
        ("postgres://h/d", "no user"),
        ("postgres://u@h", "no database"),
        ("postgres://u@h/d/e", "exactly one database"),
        ("postgres://u@h:99999/d", "port"),
        ("postgres://u@h:x/d", "port"),
        ("postgres://u@/d", "no host"),
        ("postgres://u@h/d?sslmode=prefer", "sslmode prefer"),
        ("postgres://u@h/d?ssl=true", "unknown parameter ssl"),
        ("postgres://u@h/d?sslmode=disable&sslrootcert=/ca.pem", "sslrootcert given with sslmode=disable"),
        ("postgres://u:p%zz@h/d", "password"),
    ])
    func refusesAWrongURLSayingWhy(text: String, reason: String) {
        do {
            _ = try PostgresConnectionURL(text)
            Issue.record("accepted \(text)")
        } catch let error as StoreError {
            #expect(error.code == .invalidURL)
            #expect(error.description.contains(reason), "\(error)")
            #expect(!error.description.contains("p%zz"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func aMissingRootCertificateFailsAtInit() {
        #expect(throws: StoreError.self) {
            _ = try PostgresMessageStore(url: "postgres://u@127.0.0.1/d?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
        }
    }

    // MARK: Server

    @Test(.enabled(if: serverAvailable)) func aSubmitWakesListenersOnEveryInstance() async throws {
        try await withPostgres(2) { stores in
            let heard = try #require(try await stores[0].notifications())
            let heardHere = try #require(try await stores[1].notifications())
            try await stores[1].accept(newMessage(to: "opvang-oost"))
            try await stores[1].applyDirectory(
                [
                    .addPartner(
                        DirectoryPartner(
                            id: "p",
                            name: "P",
                            role: "municipality",
                            oin: "1",
                            state: "active"
                        )
                    )
                ],
                actor: "a",
                at: at(0)
            )
            for stream in [heard, heardHere] {
                // Two channels, two listeners: their order between channels is not promised.
                var iterator = stream.makeAsyncIterator()
                let two = [await iterator.next(), await iterator.next()]
                #expect(two.contains(.inbox(recipient: "opvang-oost")) && two.contains(.directory), "\(two)")
            }
        }
    }

    @Test(.enabled(if: serverAvailable)) func refusedOrDuplicateSubmitsNotifyNobody() async throws {
        try await withPostgres(1) { stores in
            let store = stores[0]
            let first = try await store.accept(newMessage(to: "a"))
            let stream = try #require(try await store.notifications())
            _ = try await store.submit(newMessage(id: first.id, to: "a", digest: first.digest))  // duplicate
            _ = try await store.submit(newMessage(id: first.id, to: "a"))  // conflict
            try await store.accept(newMessage(to: "b"))
            var iterator = stream.makeAsyncIterator()
            #expect(await iterator.next() == .inbox(recipient: "b"))
        }
    }

    @Test(.enabled(if: serverAvailable), .timeLimit(.minutes(1)))
    func listeningResumesAfterItsConnectionIsLost() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.createDatabase()
        defer { server.dropDatabase(database) }
        let store = try PostgresMessageStore(url: server.url(database: database))
        let storeRun = RunningStore(store)
        try await store.migrate()
        let stream = try #require(try await store.notifications())
        // The server ends the listening session (as a restart or a network cut would).
        try await server.psql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '\(database)' AND query LIKE 'LISTEN%'"
        )
        var iterator = stream.makeAsyncIterator()
        // Listening again; what was sent in between is unknown, so the directory is to be reloaded.
        #expect(await iterator.next() == .directory)
        try await store.accept(newMessage(to: "after-reconnect"))
        #expect(await iterator.next() == .inbox(recipient: "after-reconnect"))
        await storeRun.stop()
    }

    @Test(.enabled(if: serverAvailable)) func shutdownEndsNotificationsAndLaterCallsFail() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.createDatabase()
        defer { server.dropDatabase(database) }
        let store = try PostgresMessageStore(url: server.url(database: database))
        let storeRun = RunningStore(store)
        try await store.migrate()
        let stream = try #require(try await store.notifications())
        await storeRun.stop()
        var iterator = stream.makeAsyncIterator()
        #expect(await iterator.next() == nil)
        await #expect(throws: (any Error).self) { _ = try await store.notifications() }
        await #expect(throws: (any Error).self) { _ = try await store.pendingCount(recipient: recipient) }
    }

    /// A lease whose statements could not be prepared (here: the table locked by another
    /// session past the statement timeout) fails, and the leases after it work: PostgresNIO
    /// would answer every later use of that statement on the same connection with the old error.
    @Test(.enabled(if: serverAvailable), .timeLimit(.minutes(1)))
    func aFailedPreparationDoesNotSpoilItsConnection() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.createDatabase()
        defer { server.dropDatabase(database) }
        let holder = try PostgresMessageStore(url: server.url(database: database))
        let holderRun = RunningStore(holder)
        try await holder.migrate()
        for _ in 0..<8 { try await holder.accept(newMessage(to: "r")) }
        // Connections opened from now on give up on a statement after a second.
        try await server.psql("ALTER DATABASE \(database) SET statement_timeout = '1s'")
        let store = try PostgresMessageStore(url: server.url(database: database), maximumConnections: 2)
        let storeRun = RunningStore(store)
        let locked = Task {
            try await holder.transaction { connection in
                try await holder.run(connection, "SET LOCAL statement_timeout = 0")
                try await holder.run(connection, "LOCK TABLE messages IN ACCESS EXCLUSIVE MODE")
                try await holder.run(connection, "SELECT pg_sleep(3)")
            }
        }
        try await Task.sleep(for: .milliseconds(500))
        await #expect(throws: (any Error).self) {
            _ = try await store.lease(recipient: "r", limit: 1, duration: 60, maxAttempts: 5, now: at(1))
        }
        try await locked.value
        for n in 0..<6 {
            #expect(
                try await store.lease(recipient: "r", limit: 1, duration: 60, maxAttempts: 5, now: at(Double(2 + n))).count == 1,
                "lease \(n) after the failed preparation"
            )
        }
        await storeRun.stop()
        await holderRun.stop()
    }

    @Test(.enabled(if: serverAvailable)) func tlsModesEncryptAndDisableDoesNot() async throws {
        let server = try await PostgresTestServer.shared()
        let certificate = try #require(server.tlsCertificate, "the test server has no TLS (openssl missing?)")
        let database = try await server.createDatabase()
        defer { server.dropDatabase(database) }
        let base = "postgres://postgres@127.0.0.1:\(server.port)/\(database)"
        for (query, encrypted) in [
            ("?sslmode=require", true), ("?sslmode=verify-ca&sslrootcert=\(certificate)", true),
            ("?sslmode=verify-full&sslrootcert=\(certificate)", true), ("?sslmode=disable", false),
        ] {
            let store = try PostgresMessageStore(url: base + query)
            let storeRun = RunningStore(store)
            try await store.migrate()
            #expect(try await store.sessionIsEncrypted() == encrypted, "\(query)")
            await storeRun.stop()
        }
    }

    /// A server that cannot be used says why when the store starts, with a code and a sentence,
    /// instead of the pool's "circuit breaker tripped" after half a minute of retries.
    @Test(.enabled(if: serverAvailable), .timeLimit(.minutes(1))) func aFirstConnectionThatFailsSaysWhy() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.createDatabase()
        defer { server.dropDatabase(database) }
        let base = "postgres://postgres@127.0.0.1:\(server.port)/"
        func failure(_ url: String) async -> StoreError? {
            do {
                try await PostgresMessageStore(url: url).checkConnection()
                return nil
            } catch let error as StoreError {
                return error
            } catch {
                Issue.record("\(url): not a StoreError: \(error)")
                return nil
            }
        }
        #expect(await failure(base + database + "?sslmode=disable") == nil)
        // The test server's certificate is self-signed: verify-full (the default) cannot trust it.
        let untrusted = await failure(base + database)
        #expect(untrusted?.code == .tls && untrusted?.reason.contains("sslrootcert") == true, "\(String(describing: untrusted))")
        let missing = await failure(base + "no_such_database?sslmode=disable")
        #expect(missing?.code == .loginRefused && missing?.reason.contains("3D000") == true, "\(String(describing: missing))")
        let closed = await failure("postgres://postgres@127.0.0.1:1/\(database)?sslmode=disable")
        #expect(closed?.code == .unreachable, "\(String(describing: closed))")
        // A user without a connection left gets the same SQLSTATE as a full server (53300).
        let role = "full_\(UUID().uuidString.prefix(8).lowercased())"
        _ = try await server.psql("CREATE ROLE \(role) LOGIN CONNECTION LIMIT 0")
        defer { Task { _ = try? await server.psql("DROP ROLE \(role)") } }
        let full = await failure("postgres://\(role)@127.0.0.1:\(server.port)/\(database)?sslmode=disable")
        #expect(full?.code == .serverFull && full?.reason.contains("max_connections") == true, "\(String(describing: full))")
    }

    /// With the planner's normal settings and real statistics: a recipient whose messages sit at
    /// the end of a large backlog is leased from its waiting index, not by walking the primary
    /// key through everybody else's messages (the plan PostgreSQL 15 picks here for
    /// `ORDER BY sequence`, checked when this test was written).
    @Test(.enabled(if: serverAvailable)) func leaseOfAFewMessagesBehindALargeBacklogUsesTheWaitingIndex() async throws {
        try await withPostgres { stores in
            let plan = try await stores[0].leasePlanBehindBacklog(others: 30_000, waiting: 3_000)
            #expect(plan.contains("messages_waiting_order"), "\(plan)")
            #expect(!plan.contains("messages_pkey") && !plan.contains("Seq Scan"), "\(plan)")
            // The lease runs as a prepared statement: its generic plan must choose the same way.
            let generic = try await stores[0].genericLeasePlan()
            #expect(generic.contains("messages_waiting_order") && !generic.contains("Seq Scan"), "\(generic)")
            // Its expiry and dead-letter steps find due rows by time, never by walking the inbox.
            #expect(!generic.contains("messages_inbox"), "\(generic)")
            #expect(generic.contains("messages_expiry"), "\(generic)")
        }
    }

    @Test(.enabled(if: serverAvailable)) func housekeepingUsesIndexesNotTableScans() async throws {
        try await withPostgres { stores in
            let plans = try await stores[0].queryPlans()
            #expect(plans.count == 9)
            for (name, plan) in plans {
                #expect(!plan.contains("Seq Scan on messages"), "\(name):\n\(plan)")
            }
            #expect(plans["lease"]?.contains("messages_waiting_order") == true, "\(plans["lease"] ?? "")")
            #expect(plans["lease.again"]?.contains("messages_lease") == true, "\(plans["lease.again"] ?? "")")
            // The statement a lease runs: both selections from their indexes, the update by primary key.
            let take = plans["lease.take"] ?? ""
            #expect(take.contains("messages_waiting_order") && take.contains("messages_lease") && take.contains("messages_pkey"), "\(take)")
            #expect(plans["expire.all"]?.contains("messages_expiry") == true, "\(plans["expire.all"] ?? "")")
            #expect(plans["deadLetter.all"]?.contains("messages_lease") == true, "\(plans["deadLetter.all"] ?? "")")
            #expect(plans["purge"]?.contains("messages_purge") == true, "\(plans["purge"] ?? "")")
            // Pending rows only, from either index that holds just those (the planner picks by size).
            let inboxes = plans["stats.inboxes"] ?? ""
            #expect(inboxes.contains("on messages_inbox") || inboxes.contains("on messages_expiry"), "\(inboxes)")
        }
    }

    // MARK: Kept counts (migration 4)

    /// (type, state) pairs where the queue statistics and a full count of the table differ
    /// (states the statistics list with 0 must be absent from the table).
    private func countsDisagreements(_ store: PostgresMessageStore) async throws -> Int {
        let kept = try await store.queueStats().byTypeAndState
        let full = try await store.client.query(
            "SELECT type, state, count(*)::bigint FROM messages GROUP BY type, state",
            logger: store.logger
        )
        .collect().map { try $0.decode((String, String, Int64).self) }
        let keptCounts = Dictionary(uniqueKeysWithValues: kept.map { ("\($0.type)/\($0.state)", $0.count) })
        let fullCounts = Dictionary(uniqueKeysWithValues: full.map { ("\($0.0)/\($0.1)", Int($0.2)) })
        let keys = Set(keptCounts.keys).union(fullCounts.keys)
        let differing = keys.filter { (keptCounts[$0] ?? 0) != (fullCounts[$0] ?? 0) }
        if !differing.isEmpty { Issue.record("kept \(keptCounts), counted \(fullCounts)") }
        return differing.count
    }

    private func changeRows(_ store: PostgresMessageStore) async throws -> Int64 {
        try await store.client.query("SELECT count(*)::bigint FROM message_count_changes", logger: store.logger)
            .collect().first?.decode(Int64.self) ?? -1
    }

    /// The statistics follow every transition (submit, lease, acknowledge, reject, expiry waiting
    /// and leased, dead-letter, purge) without counting the table, and fold the change rows.
    @Test(.enabled(if: serverAvailable)) func keptCountsFollowEveryTransition() async throws {
        try await withPostgres { stores in
            let store = stores[0]
            let start = Date()
            let ids = (0..<7).map { _ in UUID() }
            for (n, id) in ids.enumerated() {
                let expires = n == 2 || n == 3 ? start.addingTimeInterval(60) : start.addingTimeInterval(86_400)
                _ = try await store.submit(newMessage(id: id, to: "r-\(n)", acceptedAt: start, expiresAt: expires))
            }
            #expect(try await changeRows(store) == 7)
            #expect(try await countsDisagreements(store) == 0)
            #expect(try await changeRows(store) == 0, "the statistics did not fold the change rows")
            for n in [0, 1, 3, 4, 5] {
                let leases = try await store.lease(recipient: "r-\(n)", limit: 1, duration: 30, maxAttempts: 1, now: start)
                #expect(leases.count == 1)
                #expect(try await countsDisagreements(store) == 0)
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
                    #expect(try await countsDisagreements(store) == 0)
                }
            }
            let counts = try await store.sweep(now: start.addingTimeInterval(120), maxAttempts: 1, retention: 60)
            #expect(counts.expired == 2 && counts.deadLettered == 1 && counts.purged == 3, "\(counts)")
            #expect(try await changeRows(store) == 0, "the sweep did not fold the change rows")
            #expect(try await countsDisagreements(store) == 0)
            let stats = try await store.queueStats()
            #expect(stats.byTypeAndState.first { $0.state == "delivered" }?.count == 0, "\(stats.byTypeAndState)")
            #expect(stats.byTypeAndState.first { $0.state == "accepted" }?.count == 1)
            #expect(stats.inboxes.map(\.recipient) == ["r-6"] && stats.inboxes.first?.pending == 1)
            #expect(stats.inboxes.first?.oldestAcceptedAt == Date(timeIntervalSince1970: start.timeIntervalSince1970))
        }
    }

    /// A pile of change rows (left by a period in which only older relays ran) is folded in
    /// bounded batches, and the statistics are right before, during and after.
    @Test(.enabled(if: serverAvailable)) func aPileOfChangeRowsIsFoldedInBatches() async throws {
        try await withPostgres { stores in
            let store = stores[0]
            try await store.accept(newMessage(to: "r"))
            let pile = PostgresMessageStore.foldBatch * 2 + 1
            _ = try await store.client.query(
                """
                INSERT INTO message_count_changes (type, state, n)
                SELECT 'referral', 'accepted', CASE WHEN g % 2 = 0 THEN 1 ELSE -1 END FROM generate_series(1, \(pile)) AS g
                """,
                logger: store.logger
            ).collect()
            // One net -1 among them: as if a message had left `accepted` without being counted in.
            #expect(try await store.foldCounts() == PostgresMessageStore.foldBatch)
            #expect(try await changeRows(store) == Int64(pile + 1 - PostgresMessageStore.foldBatch))
            let stats = try await store.queueStats()  // folds another batch
            #expect(stats.byTypeAndState.first { $0.type == "referral" && $0.state == "accepted" }?.count == 0)
            _ = try await store.sweep(now: at(1), maxAttempts: 5, retention: day)
            #expect(try await changeRows(store) == 0)
        }
    }

    /// Two instances writing and reading the statistics at once: no deadlock, no lost or
    /// double-counted change, whichever instance folds.
    @Test(.enabled(if: serverAvailable)) func twoInstancesKeepTheCountsTogether() async throws {
        try await withPostgres(2) { stores in
            let start = Date()
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (i, store) in stores.enumerated() {
                    group.addTask {
                        for n in 0..<60 {
                            _ = try await store.submit(
                                newMessage(to: "r-\(n % 3)", acceptedAt: start, expiresAt: start.addingTimeInterval(86_400))
                            )
                            if n % 4 == i {
                                for lease in try await store.lease(
                                    recipient: "r-\(n % 3)",
                                    limit: 2,
                                    duration: 30,
                                    maxAttempts: 5,
                                    now: start
                                ) {
                                    _ = try await store.acknowledge(
                                        id: lease.message.id,
                                        recipient: lease.message.recipient,
                                        leaseToken: lease.message.leaseToken ?? "",
                                        receipt: Data("r".utf8),
                                        rejected: n % 8 == 0,
                                        reasonCode: n % 8 == 0 ? "not-for-us" : nil,
                                        now: start
                                    )
                                }
                            }
                        }
                    }
                    group.addTask {
                        for _ in 0..<20 { _ = try await store.queueStats() }
                    }
                }
                try await group.waitForAll()
            }
            #expect(try await countsDisagreements(stores[1]) == 0)
            #expect(try await stores[0].queueStats().byTypeAndState.reduce(0) { $0 + $1.count } == 120)
        }
    }

    /// A database of the previous schema (version 3) gets counts of the messages already there.
    @Test(.enabled(if: serverAvailable)) func aVersionThreeDatabaseIsCountedWhenMigrated() async throws {
        let server = try await PostgresTestServer.shared()
        let database = try await server.createDatabase()
        defer { server.dropDatabase(database) }
        let start = Date()
        let old = try PostgresMessageStore(url: server.url(database: database))
        let oldRun = RunningStore(old)
        try await old.migrate(upTo: 3)
        for n in 0..<5 {
            _ = try await old.submit(
                newMessage(to: "r", acceptedAt: start.addingTimeInterval(Double(n)), expiresAt: start.addingTimeInterval(86_400))
            )
        }
        let lease = try #require(try await old.lease(recipient: "r", limit: 2, duration: 30, maxAttempts: 5, now: start).first)
        _ = try await old.acknowledge(
            id: lease.message.id,
            recipient: "r",
            leaseToken: lease.message.leaseToken ?? "",
            receipt: Data("r".utf8),
            rejected: false,
            reasonCode: nil,
            now: start
        )
        await oldRun.stop()
        let store = try PostgresMessageStore(url: server.url(database: database))
        let storeRun = RunningStore(store)
        try await store.migrate()
        #expect(try await countsDisagreements(store) == 0)
        let stats = try await store.queueStats()
        #expect(stats.byTypeAndState.map(\.count).sorted() == [1, 1, 3], "\(stats.byTypeAndState)")
        #expect(stats.inboxes.first?.pending == 4)
        _ = try await store.submit(newMessage(to: "r", acceptedAt: start, expiresAt: start.addingTimeInterval(86_400)))
        #expect(try await countsDisagreements(store) == 0)
        await storeRun.stop()
    }
}

/// A store run (its `Service.run()`) until `stop()`, for tests that drive one by hand.
final class RunningStore: Sendable {
    private let task: Task<Void, any Error>

    init(_ store: some RelayStore) {
        task = Task { try await store.run() }
    }

    /// Ends the store's run (as a `ServiceGroup` would at shutdown) and waits for it.
    func stop() async {
        task.cancel()
        _ = await task.result
    }
}
