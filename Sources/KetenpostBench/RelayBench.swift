import ArgumentParser
import Foundation
import Histogram
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import Synchronization

/// The load benchmark: submit throughput and latency, drain, and the end-to-end flow through
/// real relay processes over mutual TLS, with the relay's own CPU time and memory.
struct RelayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Load-test relay processes on loopback: submit, drain and end-to-end flow, saturation or fixed rate.",
        discussion: """
            Starts --instances `ketenpost serve` processes on free ports with a temporary PKI and store \
            (SQLite, or the empty database of --store-url), with --senders synthetic municipalities and \
            --recipients care coordinators, each with its own mutual-TLS client. Messages are sealed \
            before the timed phases: sealing (and opening, unless --open) is the partners' cost, \
            measured by `bench envelope`.

            Phases: submit (as fast as the senders go, or at --rate messages/s), drain (lease 50 at a \
            time, acknowledge each with a signed receipt the relay verifies), flow (senders and \
            recipients together; latency from submit to acknowledged). With --rate, latencies are \
            measured from each message's scheduled send time (coordinated-omission correction), so a \
            relay that falls behind shows it.

            "relay CPU" is the user + system time of the relay processes (from /proc) per message; \
            "generator CPU" is this process's. Progress goes to standard error, one line a second.

            Examples:
              ketenpost-bench relay
              ketenpost-bench relay --rate 1000 --phases submit,flow --runs 3 --json bench.json
              ketenpost-bench relay --instances 2 --store-url postgres://ketenpost@127.0.0.1:5432/bench
            """
    )

    @Option(help: "Concurrent sending partners.") var senders: Int = 32
    @Option(help: "Receiving partners.") var recipients: Int = 4
    @Option(help: "Messages in the submit phase (drained in the drain phase).") var messages: Int = 8_000
    @Option(name: .customLong("flow-messages"), help: "Messages in the end-to-end phase.") var flowMessages: Int = 4_000
    @Option(name: .customLong("payload-size"), help: "Payload JSON bytes.") var payloadSize: Int = 4_096
    @Option(help: "Fixed rate in messages/s for the submit and flow phases (default: saturation).") var rate: Double?
    @Option(help: "Phases to run, comma-separated: submit, drain, flow (drain needs submit).") var phases: String = "submit,drain,flow"
    @Option(help: "Relay processes sharing one store; senders and recipients alternate between them.") var instances: Int = 1
    @Option(
        name: .customLong("store-url"),
        help: "An empty store to use (sqlite:///path or postgres://…) instead of a temporary SQLite file."
    ) var storeURL: String?
    @Flag(help: "Recipients open every message (all three layers) before acknowledging it.") var open = false
    @Option(
        help: "How recipients read the inbox: multipart (the binary form, as RelayClient.receive does) or json (base64 in JSON, as curl)."
    )
    var inbox: InboxFormat = .multipart
    @Option(help: "Repeat the whole measurement this many times (fresh relay and store each time); figures are medians.") var runs: Int = 1
    @Option(help: "Write the results as JSON to this file.") var json: String?

    struct Phase: Codable {
        var name: String
        var messages: Int
        var seconds: Double
        var messagesPerSecond: Double
        /// Corrected for coordinated omission when the phase ran at a fixed rate.
        var latencyMicroseconds: [String: UInt64]
        var relayCPUMillisecondsPerMessage: Double
        var generatorCPUMillisecondsPerMessage: Double
        /// Context switches of all the relay processes' threads per message (voluntary ones are
        /// wake-ups: a thread that waited for work, a lock or I/O); nil in reports from before.
        var relayContextSwitchesPerMessage: Double?
    }

    struct Run: Codable {
        var phases: [Phase]
        var relayPeakResidentKiB: [Int]
        var relayStartSeconds: Double
    }

    struct Summary: Codable {
        var phase: String
        var messagesPerSecond: Spread
        var p50Milliseconds: Spread
        var p99Milliseconds: Spread
        var relayCPUMillisecondsPerMessage: Spread
        var generatorCPUMillisecondsPerMessage: Spread
        var relayContextSwitchesPerMessage: Spread
    }

    struct Spread: Codable {
        var median: Double
        var min: Double
        var max: Double
        init(_ values: [Double]) {
            let sorted = values.sorted()
            median =
                sorted.isEmpty
                ? 0 : sorted.count % 2 == 1 ? sorted[sorted.count / 2] : (sorted[sorted.count / 2 - 1] + sorted[sorted.count / 2]) / 2
            min = sorted.first ?? 0
            max = sorted.last ?? 0
        }
        var text: String { min == max ? format(median) : "\(format(median)) [\(format(min))–\(format(max))]" }
        private func format(_ value: Double) -> String { value >= 100 ? String(format: "%.0f", value) : String(format: "%.2f", value) }
    }

    struct Report: Codable {
        var senders: Int
        var recipients: Int
        var instances: Int
        var payloadBytes: Int
        var mode: String
        var rate: Double?
        var store: String
        var recipientsOpen: Bool
        /// nil in reports from before the binary inbox (JSON then).
        var inboxFormat: String?
        var cores: Int
        var openssl: String
        var runs: [Run]
        var summary: [Summary]
    }

    func validate() throws {
        guard senders >= 1, recipients >= 1, messages >= senders, flowMessages >= senders else {
            throw ValidationError("Need at least one sender and recipient, and at least one message per sender.")
        }
        guard (1...8).contains(instances) else { throw ValidationError("--instances must be 1 to 8.") }
        guard (1...20).contains(runs) else { throw ValidationError("--runs must be 1 to 20.") }
        if let rate {
            guard rate.isFinite, rate > 0, rate <= 1_000_000 else {
                throw ValidationError("--rate must be a number of messages per second above 0.")
            }
        }
        guard storeURL == nil || runs == 1 else {
            throw ValidationError("--store-url needs an empty store per run: give --runs 1 and repeat with a fresh database.")
        }
        let known: Set<String> = ["submit", "drain", "flow"]
        let selected = Set(phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        guard !selected.isEmpty, selected.isSubset(of: known) else { throw ValidationError("--phases takes submit, drain and flow.") }
        guard !selected.contains("drain") || selected.contains("submit") else {
            throw ValidationError("The drain phase drains what the submit phase sent: add submit.")
        }
    }

    func run() async throws {
        let selected = Set(phases.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) })
        let mode = rate.map { "fixed rate \(Int($0)) msg/s" } ?? "saturation"
        print(
            """
            Relay benchmark: \(senders) senders, \(recipients) recipients, \(instances) relay instance(s), \(payloadSize) B payloads, \
            \(mode), recipients \(open ? "open" : "do not open") messages, inbox as \(inbox.rawValue), \(runs) run(s)
            """
        )
        var results: [Run] = []
        for number in 1...runs {
            if runs > 1 { print("run \(number) of \(runs)") }
            results.append(try await measureOnce(selected))
        }
        let names = results[0].phases.map(\.name)
        let summary = names.map { name in
            let all = results.compactMap { $0.phases.first { $0.name == name } }
            return Summary(
                phase: name,
                messagesPerSecond: Spread(all.map(\.messagesPerSecond)),
                p50Milliseconds: Spread(all.map { Double($0.latencyMicroseconds["p50"] ?? 0) / 1000 }),
                p99Milliseconds: Spread(all.map { Double($0.latencyMicroseconds["p99"] ?? 0) / 1000 }),
                relayCPUMillisecondsPerMessage: Spread(all.map(\.relayCPUMillisecondsPerMessage)),
                generatorCPUMillisecondsPerMessage: Spread(all.map(\.generatorCPUMillisecondsPerMessage)),
                relayContextSwitchesPerMessage: Spread(all.map { $0.relayContextSwitchesPerMessage ?? 0 })
            )
        }
        print("\nSummary (median [min–max] over \(runs) run(s)):")
        for row in summary {
            print(
                """
                  \(row.phase): \(row.messagesPerSecond.text) msg/s; p50 \(row.p50Milliseconds.text) ms, p99 \
                \(row.p99Milliseconds.text) ms; relay CPU \(row.relayCPUMillisecondsPerMessage.text) ms/msg, generator CPU \
                \(row.generatorCPUMillisecondsPerMessage.text) ms/msg; relay context switches \
                \(row.relayContextSwitchesPerMessage.text)/msg
                """
            )
        }
        let peaks = results.flatMap(\.relayPeakResidentKiB).map(Double.init)
        print("  relay peak resident memory: \(Spread(peaks).text) KiB; relay start-up \(Spread(results.map(\.relayStartSeconds)).text) s")
        if let json {
            let report = Report(
                senders: senders,
                recipients: recipients,
                instances: instances,
                payloadBytes: payloadSize,
                mode: rate == nil ? "saturation" : "fixed-rate",
                rate: rate,
                store: storeURL.flatMap(StoreLocation.parse)?.redacted ?? "sqlite (temporary file)",
                recipientsOpen: open,
                inboxFormat: inbox.rawValue,
                cores: ProcessInfo.processInfo.activeProcessorCount,
                openssl: OpenSSLInfo.version,
                runs: results,
                summary: summary
            )
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }

    // MARK: One run

    private func measureOnce(_ selected: Set<String>) async throws -> Run {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-bench-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let chain = try SyntheticChain(in: work, prefix: "bench", senders: senders, recipients: recipients)
        let pki = chain.pki
        let configFile = try chain.writeRelayConfiguration(
            in: work,
            port: 0,
            storeURL: storeURL,
            queue: "{leaseDuration: 60s, maxAttempts: 10, maxLongPoll: 2s}",
            limits: "{ratePerSecond: 1000000, rateBurst: 1000000, maxConnections: 4096}"
        )
        let trust = try TrustStore.load(anchorsFile: pki.caCertificatePath, crlFiles: [pki.crlPath], intermediates: pki.chain())
        let servers = (0..<instances).map { RelayProcess(executable: RelayProcess.relayExecutable(), config: configFile, instance: $0) }
        let probe = try Identity.load(directory: pki.partnerDirectory(chain.senderIDs[0]))
        let startClock = ContinuousClock.now
        var started: [URL] = []
        for server in servers { started.append(try await server.start(trust: trust, probe: probe)) }
        let urls = started
        let startSeconds = Self.seconds(ContinuousClock.now - startClock)
        defer { for server in servers { server.stop() } }
        print(
            """
              relay pid(s) \(servers.map(\.pid)) at \(urls.map(\.absoluteString).joined(separator: ", ")), up in \
            \(String(format: "%.2f", startSeconds)) s
            """
        )

        let senderClients = try chain.senderIDs.enumerated().map { index, id in
            try RelayClient(
                relay: urls[index % instances],
                identity: try Identity.load(directory: pki.partnerDirectory(id)),
                trust: trust,
                relayID: DevelopmentPKI.relayID
            )
        }
        let recipientClients = try chain.recipientIDs.enumerated().map { index, id in
            try RelayClient(
                relay: urls[index % instances],
                identity: try Identity.load(directory: pki.partnerDirectory(id)),
                trust: trust,
                relayID: DevelopmentPKI.relayID
            )
        }
        // Every client is shut down when the run ends, also when it fails.
        return try await withRelayClients(senderClients + recipientClients) { _ in
            let recipientCerts = try chain.recipientIDs.map { try Certificate.load(pemFile: pki.partnerDirectory($0) + "/cert.pem") }
            let recipientIDs = chain.recipientIDs

            /// Sealed messages per sender: sender s sends global message k·S + s.
            func sealAll(_ count: Int) throws -> [[(id: UUID, sealed: Data)]] {
                print("  sealing \(count) messages …")
                let payload = EnvelopeBench.signalPayload(bytes: payloadSize)
                return try senderClients.enumerated().map { index, client in
                    try (0..<(count / senders)).map { n in
                        let to = (index + n) % recipients
                        let content = try Drafting.content(
                            type: .signal,
                            from: client.identity.partnerID,
                            to: recipientIDs[to],
                            payload: payload
                        )
                        return (content.header.id, try Envelope.seal(content, from: client.identity, to: recipientCerts[to], trust: trust))
                    }
                }
            }

            var phases: [Phase] = []
            if selected.contains("submit") {
                let batch = try sealAll(messages)
                phases.append(
                    try await measure("submit", count: batch.joined().count, servers: servers) { record, progress in
                        try await Self.submitAll(batch, clients: senderClients, rate: rate, progress: progress) { _, scheduled, done in
                            record(done - scheduled)
                        }
                    }
                )
                if selected.contains("drain") {
                    let total = batch.joined().count
                    phases.append(
                        try await measure("drain", count: total, servers: servers) { record, progress in
                            let left = Shared(total)
                            let open = self.open
                            try await withThrowingTaskGroup(of: Void.self) { group in
                                for client in recipientClients {
                                    group.addTask {
                                        while left.count.load(ordering: .relaxed) > 0 {
                                            let started = ContinuousClock.now
                                            let acknowledged = try await Self.receiveAndAcknowledge(
                                                client,
                                                wait: 0,
                                                open: open,
                                                format: inbox
                                            )
                                            if acknowledged.isEmpty { break }
                                            let each = (ContinuousClock.now - started) / acknowledged.count
                                            for _ in acknowledged {
                                                record(each)
                                                progress()
                                            }
                                            left.count.subtract(acknowledged.count, ordering: .relaxed)
                                        }
                                    }
                                }
                                try await group.waitForAll()
                            }
                        }
                    )
                }
            }
            if selected.contains("flow") {
                let flow = try sealAll(flowMessages)
                let total = flow.joined().count
                let left = Shared(total)
                let (open, rate) = (self.open, self.rate)
                phases.append(
                    try await measure("flow", count: total, servers: servers) { record, progress in
                        try await withThrowingTaskGroup(of: Void.self) { group in
                            for client in recipientClients {
                                group.addTask {
                                    while left.count.load(ordering: .relaxed) > 0 {
                                        for id in try await Self.receiveAndAcknowledge(client, wait: 1, open: open, format: inbox) {
                                            let done = ContinuousClock.now
                                            // Only this phase's messages count: with submit and no drain
                                            // before it, the inboxes still hold the submit phase's.
                                            guard let start = left.scheduledAt.withLock({ $0.removeValue(forKey: id) }) else { continue }
                                            record(done - start)
                                            progress()
                                            left.count.subtract(1, ordering: .relaxed)
                                        }
                                    }
                                }
                            }
                            group.addTask {
                                try await Self.submitAll(
                                    flow,
                                    clients: senderClients,
                                    rate: rate,
                                    progress: {},
                                    done: { _, _, _ in },
                                    beforeSend: { id, scheduled in left.scheduledAt.withLock { $0[id] = scheduled } }
                                )
                            }
                            try await group.waitForAll()
                        }
                    }
                )
            }
            let peaks = servers.map { Self.peakResidentKiB(pid: $0.pid) }
            return Run(phases: phases, relayPeakResidentKiB: peaks, relayStartSeconds: startSeconds)
        }
    }

    /// Submits every sender's messages, each sender on its own task; at --rate, each message waits
    /// for its scheduled time (start + index / rate) and `done` is reported against that time.
    private static func submitAll(
        _ batch: [[(id: UUID, sealed: Data)]],
        clients: [RelayClient],
        rate: Double?,
        progress: @escaping @Sendable () -> Void,
        done: @escaping @Sendable (UUID, ContinuousClock.Instant, ContinuousClock.Instant) -> Void,
        beforeSend: (@Sendable (UUID, ContinuousClock.Instant) -> Void)? = nil
    ) async throws {
        let start = ContinuousClock.now
        let senders = clients.count
        try await withThrowingTaskGroup(of: Void.self) { group in
            for (index, client) in clients.enumerated() {
                let mine = batch[index]
                group.addTask {
                    for (n, message) in mine.enumerated() {
                        var scheduled = ContinuousClock.now
                        if let rate {
                            scheduled = start + .nanoseconds(Int64(Double(n * senders + index) / rate * 1e9))
                            if scheduled > ContinuousClock.now { try await Task.sleep(until: scheduled, clock: .continuous) }
                        }
                        beforeSend?(message.id, scheduled)
                        _ = try await client.submit(message.sealed)
                        done(message.id, scheduled, ContinuousClock.now)
                        progress()
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    /// Leases up to 50 messages and acknowledges them concurrently, each with a signed receipt
    /// (opening them first with --open); returns the ids acknowledged.
    private static func receiveAndAcknowledge(
        _ client: RelayClient,
        wait: TimeInterval,
        open: Bool,
        format: InboxFormat
    ) async throws -> [UUID] {
        let items: [(id: UUID, from: String, leaseToken: String, sealed: Data)]
        switch format {
        case .multipart:
            items = try await client.deliveries(max: 50, wait: wait).map { ($0.id, $0.from, $0.leaseToken, $0.message) }
        case .json:
            items = try await client.inbox(max: 50, wait: wait).messages.map { item in
                guard let sealed = Data(base64Encoded: item.message) else {
                    throw KetenpostError(.envelopeMalformed, "The relay delivered a message that is not base64.")
                }
                return (item.id, item.from, item.leaseToken, sealed)
            }
        }
        return try await withThrowingTaskGroup(of: UUID.self) { group in
            for item in items {
                group.addTask {
                    let sealed = item.sealed
                    if open { _ = try client.open(sealed) }
                    let receipt = Receipt(
                        kind: .acknowledgement,
                        messageId: item.id,
                        messageDigest: Digest.sha256(sealed).hexString,
                        from: item.from,
                        to: client.identity.partnerID,
                        issuer: client.identity.partnerID,
                        disposition: .processed,
                        time: Date()
                    )
                    _ = try await client.acknowledge(
                        id: item.id,
                        leaseToken: item.leaseToken,
                        receipt: try SignedReceipt.sign(receipt, as: client.identity)
                    )
                    return item.id
                }
            }
            return try await group.reduce(into: []) { $0.append($1) }
        }
    }

    /// Runs `body`, which records one latency per message and calls `progress` per message done,
    /// and prints the phase's figures; a progress line goes to standard error every second.
    private func measure(
        _ name: String,
        count: Int,
        servers: [RelayProcess],
        _ body: (@escaping @Sendable (Duration) -> Void, @escaping @Sendable () -> Void) async throws -> Void
    ) async throws -> Phase {
        let histogram = Mutex(Histogram<UInt64>(highestTrackableValue: 3_600_000_000, numberOfSignificantValueDigits: .three))
        let done = Atomic<Int>(0)
        let relayBefore = servers.map { Self.processCPUSeconds(pid: $0.pid) }.reduce(0, +)
        let generatorBefore = Self.ownCPUSeconds()
        let switchesBefore = servers.map { Self.contextSwitches(pid: $0.pid) }.reduce(0, +)
        let start = ContinuousClock.now
        let reporter = Task {
            var stderr = StandardError()
            var last = 0
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(1))
                let now = done.load(ordering: .relaxed)
                print("  [\(name)] \(now)/\(count) messages, \(now - last) msg/s", to: &stderr)
                last = now
            }
        }
        defer { reporter.cancel() }
        try await body(
            { duration in
                let micros = UInt64(max(1, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
                _ = histogram.withLock { $0.record(micros) }
            },
            { done.add(1, ordering: .relaxed) }
        )
        let seconds = Self.seconds(ContinuousClock.now - start)
        let relayCPU = servers.map { Self.processCPUSeconds(pid: $0.pid) }.reduce(0, +) - relayBefore
        let generatorCPU = Self.ownCPUSeconds() - generatorBefore
        let switches = servers.map { Self.contextSwitches(pid: $0.pid) }.reduce(0, +) - switchesBefore
        let percentiles = histogram.withLock { h in
            ["p50": h.valueAtPercentile(50), "p90": h.valueAtPercentile(90), "p99": h.valueAtPercentile(99), "max": h.max]
        }
        let phase = Phase(
            name: name,
            messages: count,
            seconds: seconds,
            messagesPerSecond: Double(count) / seconds,
            latencyMicroseconds: percentiles,
            relayCPUMillisecondsPerMessage: relayCPU * 1000 / Double(count),
            generatorCPUMillisecondsPerMessage: generatorCPU * 1000 / Double(count),
            relayContextSwitchesPerMessage: Double(switches) / Double(count)
        )
        print(
            String(
                format:
                    """
                      %@: %d messages in %.2f s = %.0f msg/s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; relay CPU %.2f ms/msg, \
                    generator CPU %.2f ms/msg; relay context switches %.2f/msg
                    """,
                name,
                count,
                seconds,
                phase.messagesPerSecond,
                Double(percentiles["p50"]!) / 1000,
                Double(percentiles["p99"]!) / 1000,
                Double(percentiles["max"]!) / 1000,
                phase.relayCPUMillisecondsPerMessage,
                phase.generatorCPUMillisecondsPerMessage,
                phase.relayContextSwitchesPerMessage ?? 0
            )
        )
        return phase
    }

    /// What a phase's tasks share: messages left, and when each in-flight message was scheduled.
    final class Shared: Sendable {
        let count: Atomic<Int>
        let scheduledAt = Mutex<[UUID: ContinuousClock.Instant]>([:])
        init(_ count: Int) { self.count = Atomic(count) }
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    static func ownCPUSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    /// User + system CPU seconds of another process, from /proc/PID/stat (fields 14 and 15).
    static func processCPUSeconds(pid: Int32) -> Double {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return 0 }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 12, let user = Double(fields[11]), let system = Double(fields[12]) else { return 0 }
        return (user + system) / Double(sysconf(Int32(_SC_CLK_TCK)))
    }

    /// Voluntary + involuntary context switches of all of a process's threads, from
    /// /proc/PID/task/*/status (a thread that ended meanwhile is not counted).
    static func contextSwitches(pid: Int32) -> Int {
        guard let threads = try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/task") else { return 0 }
        return threads.reduce(0) { total, thread in
            guard let text = try? String(contentsOfFile: "/proc/\(pid)/task/\(thread)/status", encoding: .utf8) else { return total }
            return total
                + text.split(separator: "\n").reduce(0) { sum, line in
                    guard line.hasPrefix("voluntary_ctxt_switches:") || line.hasPrefix("nonvoluntary_ctxt_switches:") else { return sum }
                    return sum + (Int(line.split(separator: "\t", omittingEmptySubsequences: true).last ?? "") ?? 0)
                }
        }
    }

    /// Peak resident memory of a process (VmHWM), in KiB.
    static func peakResidentKiB(pid: Int32) -> Int {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
            let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") })
        else { return 0 }
        return Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "") ?? 0
    }
}

/// How the benchmark's recipients read the inbox.
enum InboxFormat: String, ExpressibleByArgument, CaseIterable {
    case multipart, json
}
