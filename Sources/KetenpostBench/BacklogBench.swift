import ArgumentParser
import Foundation
import Histogram
import KetenpostAPI
import KetenpostRelay
import KetenpostStore
import Synchronization

/// How enqueue, lease and acknowledge rates change as the backlog grows: with the right
/// indexes they stay nearly flat (no scans over pending or completed rows).
struct BacklogBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backlog",
        abstract: "Measure store enqueue, lease and acknowledge rates at growing backlogs (store level, no TLS or crypto).",
        discussion: """
            Fills the store with pending messages for --recipients recipients up to each size of --sizes, \
            then times --probe submissions, --probe leases (one message each) and their acknowledgements \
            (every recipient in turn, or one with --pattern one), from --concurrency tasks. Bodies are --body-bytes of random bytes. \
            With --store-url the store is kept, and a later run on it fills only what is missing.
            Example: swift run -c release ketenpost-bench backlog --sizes 1000,10000,100000,1000000
            """
    )

    @Option(help: "Backlog sizes, comma-separated.") var sizes: String = "1000,10000,100000"
    @Option(help: "Recipients the backlog is spread over.") var recipients: Int = 100
    @Option(help: "Operations timed at each size.") var probe: Int = 2_000
    @Option(help: "Concurrent tasks.") var concurrency: Int = 16
    @Option(name: .customLong("body-bytes"), help: "Size of each stored body.") var bodyBytes: Int = 256
    @Option(name: .customLong("store-url"), help: "Store URL (default: a temporary SQLite file).") var storeURL: String?
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Option(
        help:
            """
            Whose messages the probes enqueue and lease: 'spread' (every recipient in turn, as the backlog was filled) or 'one' (one \
            recipient, deep in the backlog).
            """
    )
    var pattern: Pattern = .spread

    /// The probes' access pattern. With `one`, the messages leased at a small backlog are the ones
    /// the enqueue probe just wrote, side by side on disk, while at a large one they are old rows a
    /// hundred apart, so that pattern measures locality as much as backlog size.
    enum Pattern: String, ExpressibleByArgument, Codable {
        case spread, one
    }

    struct Row: Codable {
        var backlog: Int
        var pattern: Pattern
        var enqueuePerSecond: Double
        var leasePerSecond: Double
        var acknowledgePerSecond: Double
        var leaseP99Milliseconds: Double
        var fillSeconds: Double
        /// Opening the store again at this backlog: open, migrate, count the probed inbox, first lease.
        var startSeconds: Double
        /// Reading the queue statistics once (what every metrics scrape and the status page do), if the store has them.
        var statsSeconds: Double?
        /// This process's resident memory after the probes (the store's caches and the bench together).
        var residentKiB: Int
    }

    func run() async throws {
        let targets = sizes.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }.sorted()
        guard !targets.isEmpty, recipients >= 2, probe > 0, concurrency > 0 else {
            throw ValidationError("--sizes needs numbers, --recipients at least 2, --probe and --concurrency positive.")
        }
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-backlog-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let location: StoreLocation
        if let storeURL {
            guard let parsed = StoreLocation.parse(storeURL) else {
                throw ValidationError("--store-url must be sqlite:///path or postgres://…")
            }
            location = parsed
        } else {
            location = .sqlite(path: work.appendingPathComponent("backlog.sqlite").path)
        }
        let store = try await StoreFactory.open(location)
        try await store.withRunning { try await measure(store, location: location, targets: targets) }
    }

    /// The benchmark proper, on a running store.
    private func measure(_ store: any RelayStore, location: StoreLocation, targets: [Int]) async throws {
        try await store.migrate()
        print(
            """
            Backlog benchmark on \(location.redacted): probe \(probe) operations \
            (\(pattern == .spread ? "spread over the recipients" : "one recipient")), \(concurrency) tasks, \(bodyBytes)-byte bodies
            """
        )
        print("backlog      enqueue/s   lease/s   ack/s   lease p99 ms   fill s   start s   stats s   RSS MiB")

        let body = Data((0..<bodyBytes).map { _ in UInt8.random(in: 0...255) })
        let now = Date()
        // A store given by --store-url may already hold a backlog (a kept file from an earlier run):
        // fill only what is missing, so a large backlog can be measured (or profiled) again without refilling.
        var pending = try await store.queueStats().inboxes.reduce(0) { $0 + $1.pending }
        if pending > 0 { print("The store already holds \(pending) pending messages; filling only up to each size.") }
        var rows: [Row] = []
        // The probed recipient is "r-0"; the backlog is spread over the others as well.
        @Sendable func message(to recipient: String) -> NewMessage {
            let id = UUID()
            return NewMessage(
                id: id,
                sender: "bench-sender",
                recipient: recipient,
                type: "signal",
                priority: "normal",
                digest: (id.uuidString + id.uuidString).lowercased().filter(\.isHexDigit),
                body: body,
                acceptedAt: now,
                expiresAt: now.addingTimeInterval(30 * 86_400),
                acceptanceReceipt: body.prefix(64)
            )
        }
        let recipientCount = recipients
        let tasks = concurrency
        for target in targets {
            let fillStart = ContinuousClock.now
            let missing = max(0, target - pending)
            // Filled by many tasks, so that group commit packs the inserts into large transactions.
            let filled = Counter()
            let already = pending
            let reporter = Task {
                var stderr = StandardError()
                while !Task.isCancelled {
                    try? await Task.sleep(for: .seconds(2))
                    if Task.isCancelled { break }
                    print("  filling: \(already + filled.current) of \(target)", to: &stderr)
                }
            }
            try await parallel(missing, tasks: 256) { n in
                _ = try await store.submit(message(to: "r-\(n % recipientCount)"))
                _ = filled.take(below: .max)
            }
            reporter.cancel()
            pending += missing
            let fillSeconds = seconds(ContinuousClock.now - fillStart)

            // The probed recipient of the n-th operation.
            let spread = pattern == .spread
            @Sendable func probed(_ n: Int) -> String { spread ? "r-\(n % recipientCount)" : "r-0" }
            // Enqueue: new messages for the probed recipients.
            let enqueueStart = ContinuousClock.now
            try await parallel(probe, tasks: tasks) { n in _ = try await store.submit(message(to: probed(n))) }
            let enqueue = Double(probe) / seconds(ContinuousClock.now - enqueueStart)

            // Lease one at a time from the probed recipients' inboxes (the oldest first, deep inside the backlog).
            let histogram = LeaseTimes()
            let leases = LeaseBox()
            let leaseStart = ContinuousClock.now
            try await parallel(probe, tasks: tasks) { n in
                let started = ContinuousClock.now
                let got = try await store.lease(recipient: probed(n), limit: 1, duration: 600, maxAttempts: 5, now: now)
                histogram.record(ContinuousClock.now - started)
                leases.add(got)
            }
            let lease = Double(probe) / seconds(ContinuousClock.now - leaseStart)

            let acknowledged = leases.all
            let ackStart = ContinuousClock.now
            try await parallel(acknowledged.count, tasks: tasks) { n in
                let item = acknowledged[n]
                _ = try await store.acknowledge(
                    id: item.message.id,
                    recipient: item.message.recipient,
                    leaseToken: item.message.leaseToken ?? "",
                    receipt: Data("receipt".utf8),
                    rejected: false,
                    reasonCode: nil,
                    now: now
                )
            }
            let acknowledge = Double(max(1, acknowledged.count)) / seconds(ContinuousClock.now - ackStart)
            // Start-up at this backlog: a second store object on the same data, as a restarted relay opens it.
            let startClock = ContinuousClock.now
            let reopened = try await StoreFactory.open(location)
            let startSeconds = try await reopened.withRunning {
                try await reopened.migrate()
                _ = try await reopened.pendingCount(recipient: "r-0")
                let first = try await reopened.lease(recipient: "r-0", limit: 1, duration: 600, maxAttempts: 5, now: now)
                let startSeconds = seconds(ContinuousClock.now - startClock)
                for item in first {
                    _ = try await reopened.acknowledge(
                        id: item.message.id,
                        recipient: "r-0",
                        leaseToken: item.message.leaseToken ?? "",
                        receipt: Data("receipt".utf8),
                        rejected: false,
                        reasonCode: nil,
                        now: now
                    )
                }
                return startSeconds
            }
            let statsClock = ContinuousClock.now
            _ = try await store.queueStats()
            let statsSeconds: Double? = seconds(ContinuousClock.now - statsClock)
            let resident = Self.residentKiB()
            let row = Row(
                backlog: target,
                pattern: pattern,
                enqueuePerSecond: enqueue,
                leasePerSecond: lease,
                acknowledgePerSecond: acknowledge,
                leaseP99Milliseconds: histogram.p99,
                fillSeconds: fillSeconds,
                startSeconds: startSeconds,
                statsSeconds: statsSeconds,
                residentKiB: resident
            )
            rows.append(row)
            print(
                String(
                    format: "%9d   %9.0f %9.0f %7.0f   %12.2f   %6.1f   %7.2f   %7.3f   %7.1f",
                    target,
                    enqueue,
                    lease,
                    acknowledge,
                    row.leaseP99Milliseconds,
                    fillSeconds,
                    startSeconds,
                    statsSeconds ?? .nan,
                    Double(resident) / 1024
                )
            )
        }
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(rows).write(to: URL(fileURLWithPath: json))
        }
    }

    /// Runs `operation(0..<count)` on `tasks` concurrent tasks.
    private func parallel(_ count: Int, tasks: Int, _ operation: @escaping @Sendable (Int) async throws -> Void) async throws {
        let next = Counter()
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<max(1, min(tasks, count)) {
                group.addTask {
                    while let n = next.take(below: count) { try await operation(n) }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Current resident memory of this process (VmRSS), in KiB.
    static func residentKiB() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") })
        else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }

    private func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }
}

/// Hands out 0, 1, 2, … to concurrent tasks.
private final class Counter: Sendable {
    private let value = Mutex(0)
    var current: Int { value.withLock { $0 } }
    func take(below limit: Int) -> Int? {
        value.withLock { v in
            guard v < limit else { return nil }
            defer { v += 1 }
            return v
        }
    }
}

private final class LeaseBox: Sendable {
    private let leases = Mutex<[Lease]>([])
    func add(_ more: [Lease]) { leases.withLock { $0 += more } }
    var all: [Lease] { leases.withLock { $0 } }
}

private final class LeaseTimes: Sendable {
    private let histogram = Mutex(Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three))
    func record(_ duration: Duration) {
        let micros = UInt64(max(0, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
        histogram.withLock { _ = $0.record(micros) }
    }
    var p99: Double { histogram.withLock { Double($0.valueAtPercentile(99)) / 1000 } }
}
