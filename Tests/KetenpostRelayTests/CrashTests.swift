import Foundation
import KetenpostTestSupport
import Testing

/// Promise 3 under SIGKILL: the short mode of `ketenpost-bench crash-test` (the long mode is run by
/// hand; figures in docs/BENCHMARKS.md).
@Suite struct CrashTests {
    @Test func nothingAcceptedIsLostWhenTheRelayIsKilled() async throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: report) }
        let result = try await shell(
            "timeout 900 '\(ServeProcessTests.bench)' crash-test --kills 5 --messages 160 --seed 7 --json '\(report.path)'"
        )
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any]
        #expect(json?["lost"] as? Int == 0)
        #expect(json?["deliveredAgainAfterAcknowledgement"] as? Int == 0)
        #expect(json?["duplicateAcceptances"] as? Int == 0)
        #expect(json?["acknowledged"] as? Int == 160)
        #expect(json?["kills"] as? Int == 5)
    }

    /// Two relay processes on one SQLite file (WAL, several processes): partners alternate
    /// between them while one at a time is SIGKILLed; the other carries on.
    @Test func twoInstancesOnOneSQLiteFileLoseNothing() async throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("crash-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: report) }
        let result = try await shell(
            "timeout 900 '\(ServeProcessTests.bench)' crash-test --instances 2 --kills 2 --messages 200 --seed 11 --json '\(report.path)'"
        )
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any]
        #expect(json?["instances"] as? Int == 2)
        #expect(json?["lost"] as? Int == 0 && json?["deliveredAgainAfterAcknowledgement"] as? Int == 0)
        #expect(json?["duplicateAcceptances"] as? Int == 0 && json?["acknowledged"] as? Int == 200)
    }

    /// Two relay processes on one PostgreSQL database, 2,000 messages from four senders to two
    /// recipients alternating between them; one instance at a time is SIGKILLed mid-run and the
    /// other carries on. Every message is acknowledged exactly once, none is lost, none is
    /// delivered after its acknowledgement.
    @Test func twoInstancesOnOnePostgreSQLDatabaseLoseNothing() async throws {
        try await withPostgresDatabase { server, database in
            let report = FileManager.default.temporaryDirectory.appendingPathComponent("crash-pg-\(UUID().uuidString).json")
            defer { try? FileManager.default.removeItem(at: report) }
            let result = try await shell(
                """
                timeout 900 '\(ServeProcessTests.bench)' crash-test --instances 2 --kills 2 --messages 2000 --seed 5 --store-url \
                '\(server.url(database: database))' --json '\(report.path)'
                """
            )
            #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
            let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any]
            #expect(json?["instances"] as? Int == 2 && (json?["store"] as? String)?.hasPrefix("postgres://") == true)
            #expect(json?["lost"] as? Int == 0 && json?["deliveredAgainAfterAcknowledgement"] as? Int == 0)
            #expect(json?["duplicateAcceptances"] as? Int == 0 && json?["acknowledged"] as? Int == 2000)
        }
    }

    /// The backlog benchmark keeps working (a smoke run: two small sizes, no figures asserted).
    @Test func backlogBenchSmoke() async throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("backlog-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: report) }
        let result = try await shell("'\(ServeProcessTests.bench)' backlog --sizes 50,200 --probe 20 --json '\(report.path)'")
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let rows = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [[String: Any]]
        #expect(rows?.map { $0["backlog"] as? Int } == [50, 200])
        #expect(rows?.allSatisfy { ($0["leasePerSecond"] as? Double ?? 0) > 0 && ($0["residentKiB"] as? Int ?? 0) > 0 } == true)
        #expect(rows?.allSatisfy { $0["pattern"] as? String == "spread" && $0["statsSeconds"] is Double } == true)

        // A kept store is topped up, not filled again; the single-inbox pattern runs too.
        let kept = FileManager.default.temporaryDirectory.appendingPathComponent("backlog-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: kept) }
        let url = "sqlite://\(kept.appendingPathComponent("store.sqlite").path)"
        let first = try await shell("'\(ServeProcessTests.bench)' backlog --sizes 100 --probe 10 --store-url '\(url)'")
        #expect(first.status == 0, "\(first.stdout)\n\(first.stderr)")
        #expect(!first.stdout.contains("already holds"))
        let again = try await shell(
            "'\(ServeProcessTests.bench)' backlog --sizes 100 --probe 10 --pattern one --store-url '\(url)' --json '\(report.path)'"
        )
        #expect(again.status == 0, "\(again.stdout)\n\(again.stderr)")
        // 100 filled, 10 enqueued and 10 acknowledged by the probes, one more by the start-up check.
        #expect(again.stdout.contains("already holds 99 pending messages"), "\(again.stdout)")
        let topped = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [[String: Any]]
        #expect(topped?.first?["pattern"] as? String == "one")
        #expect((topped?.first?["fillSeconds"] as? Double ?? 1) < 0.5)
    }

    /// The relay benchmark keeps working (a smoke run: seconds, no figures asserted).
    @Test func relayBenchSmoke() async throws {
        let report = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString).json")
        defer { try? FileManager.default.removeItem(at: report) }
        let result = try await shell(
            "'\(ServeProcessTests.bench)' relay --senders 2 --recipients 1 --messages 10 --flow-messages 4 --json '\(report.path)'"
        )
        #expect(result.status == 0, "\(result.stdout)\n\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any]
        let phases = (json?["runs"] as? [[String: Any]])?.first?["phases"] as? [[String: Any]]
        #expect(phases?.map { $0["name"] as? String } == ["submit", "drain", "flow"])
        #expect(phases?.first?["messages"] as? Int == 10)
        #expect((phases?.first?["relayCPUMillisecondsPerMessage"] as? Double ?? 0) > 0)
        // The fixed-rate mode runs too (5 messages/s: the 10 messages take about 2 s).
        let paced = try await shell("'\(ServeProcessTests.bench)' relay --senders 2 --recipients 1 --messages 10 --phases submit --rate 5")
        #expect(paced.status == 0, "\(paced.stdout)\n\(paced.stderr)")
        #expect(paced.stdout.contains("fixed rate 5 msg/s"))
    }
}
