import ArgumentParser
import Foundation
import Histogram
import Ketenpost
import KetenpostClient
import KetenpostCrypto
import KetenpostModel
import KetenpostRelay
import Logging
import Synchronization

/// Submit throughput and submit→acknowledge latency through a real relay over mutual TLS.
struct RelayBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "relay",
        abstract: "Measure submit throughput and end-to-end latency against an in-process relay on loopback.",
        discussion: """
            Starts a relay on a free port with a temporary SQLite store and PKI, with --senders synthetic \
            municipalities and --recipients care coordinators, each with its own mutual-TLS client. \
            Messages are sealed before the timed phases (sealing is the partner's cost). Phase 1 submits \
            --messages messages as fast as the senders can; phase 2 drains them (lease, open, acknowledge); \
            phase 3 runs senders and recipients together and measures submit→acknowledged latency. \
            Everything runs in this one process on the same cores, so the figures include the load generator.
            """)

    @Option(help: "Concurrent sending partners.") var senders: Int = 32
    @Option(help: "Receiving partners.") var recipients: Int = 4
    @Option(help: "Messages in the submit phase.") var messages: Int = 4_000
    @Option(name: .customLong("flow-messages"), help: "Messages in the end-to-end phase.") var flowMessages: Int = 2_000
    @Option(name: .customLong("payload-size"), help: "Payload JSON bytes.") var payloadSize: Int = 4_096
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Option(help: "Phases to run, comma-separated: submit, drain, flow (drain needs submit).") var phases: String = "submit,drain,flow"

    struct Phase: Codable {
        var name: String
        var messages: Int
        var seconds: Double
        var messagesPerSecond: Double
        var latencyMicroseconds: [String: UInt64]
        var cpuSecondsPerMessage: Double
    }

    func validate() throws {
        guard senders >= 1, recipients >= 1, messages >= senders, flowMessages >= senders else {
            throw ValidationError("Need at least one sender and recipient, and at least one message per sender.")
        }
    }

    func run() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-bench-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let chain = try SyntheticChain(in: work, prefix: "bench", senders: senders, recipients: recipients)
        let (pki, senderIDs, recipientIDs, partnersFile, policyFile) = (chain.pki, chain.senderIDs, chain.recipientIDs, chain.partnersFile, chain.policyFile)

        var configuration = RelayConfiguration.development(
            pki: pki, storePath: work.appendingPathComponent("store/ketenpost.sqlite").path,
            partnersFile: partnersFile.path, policyFile: policyFile.path)
        configuration.developmentPKIDirectory = nil
        configuration.ratePerSecond = 1_000_000
        configuration.rateBurst = 1_000_000
        var logger = Logger(label: "ketenpost.bench")
        logger.logLevel = .error
        let relay = try await RunningRelay.start(try await RelayServer.prepare(configuration, logger: logger), logger: logger)
        let trust = try TrustStore.load(anchorsFile: pki.caCertificatePath, crlFiles: [pki.crlPath])
        let senderClients = try senderIDs.map { try RelayClient(relay: relay.url, identity: try Identity.load(directory: pki.partnerDirectory($0)), trust: trust) }
        let recipientClients = try recipientIDs.map { try RelayClient(relay: relay.url, identity: try Identity.load(directory: pki.partnerDirectory($0)), trust: trust) }
        let recipientCerts = try recipientIDs.map { try Certificate.load(pemFile: pki.partnerDirectory($0) + "/cert.pem") }
        print("Relay benchmark: \(senders) senders, \(recipients) recipients, \(payloadSize) B payloads, relay at \(relay.url.absoluteString)")

        func sealAll(_ count: Int) throws -> [[Data]] {
            let payload = EnvelopeBench.signalPayload(bytes: payloadSize)
            return try senderClients.enumerated().map { index, client in
                try (0..<(count / senders)).map { n in
                    let to = (index + n) % recipients
                    let content = try Drafting.content(type: .signal, from: client.identity.partnerID, to: recipientIDs[to], payload: payload)
                    return try Envelope.seal(content, from: client.identity, to: recipientCerts[to], trust: trust)
                }
            }
        }
        let selected = Set(self.phases.split(separator: ",").map(String.init))
        var phases: [Phase] = []
        if selected.contains("submit") {

        // Phase 1: submit only.
        print("  sealing \(messages) messages …")
        let batch = try sealAll(messages)
        let submitted = try await measure("submit (\(senders) concurrent partners)", count: batch.joined().count) { record in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (index, client) in senderClients.enumerated() {
                    group.addTask {
                        for sealed in batch[index] {
                            let start = ContinuousClock.now
                            _ = try await client.submit(sealed)
                            record(ContinuousClock.now - start)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        phases.append(submitted)
        if selected.contains("drain") {

        // Phase 2: drain what phase 1 left: lease, open, acknowledge.
        let drained = try await measure("lease + open + acknowledge (\(recipients) recipients)", count: batch.joined().count) { record in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in recipientClients {
                    group.addTask {
                        while true {
                            let start = ContinuousClock.now
                            let items = try await client.receive(max: 50, wait: 0)
                            if items.isEmpty { return }
                            for item in items { try await client.acknowledge(item) }
                            let each = (ContinuousClock.now - start) / items.count
                            for _ in items { record(each) }
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        phases.append(drained)
        }
        }
        if selected.contains("flow") {

        // Phase 3: the whole flow at once, latency from submit to acknowledged.
        print("  sealing \(flowMessages) messages …")
        let flow = try sealAll(flowMessages)
        let total = flow.joined().count
        let shared = FlowState(remaining: total)
        let endToEnd = try await measure("end to end: submit → deliver → acknowledged", count: total) { record in
            try await withThrowingTaskGroup(of: Void.self) { group in
                for client in recipientClients {
                    group.addTask {
                        while shared.remaining.withLock({ $0 }) > 0 {
                            let items = try await client.receive(max: 50, wait: 1)
                            for item in items {
                                try await client.acknowledge(item)
                                if let start = shared.started.withLock({ $0.removeValue(forKey: item.id) }) {
                                    record(ContinuousClock.now - start)
                                }
                                shared.remaining.withLock { $0 -= 1 }
                            }
                        }
                    }
                }
                for (index, client) in senderClients.enumerated() {
                    group.addTask {
                        for sealed in flow[index] {
                            let id = try Envelope.readOuter(sealed, trust: trust).header.id
                            shared.started.withLock { $0[id] = ContinuousClock.now }
                            _ = try await client.submit(sealed)
                        }
                    }
                }
                try await group.waitForAll()
            }
        }
        phases.append(endToEnd)
        }

        for client in senderClients + recipientClients { try? await client.shutdown() }
        await relay.stop()
        print("  peak resident memory of the process: \(Self.peakResidentKiB()) KiB")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(phases).write(to: URL(fileURLWithPath: json))
        }
    }

    /// Runs `body`, which records one latency per message, and prints the phase's figures.
    private func measure(_ name: String, count: Int,
                         _ body: (@escaping @Sendable (Duration) -> Void) async throws -> Void) async throws -> Phase {
        let histogram = Mutex(Histogram<UInt64>(highestTrackableValue: 600_000_000, numberOfSignificantValueDigits: .three))
        let cpuBefore = Self.cpuSeconds()
        let start = ContinuousClock.now
        try await body { duration in
            let micros = UInt64(max(1, duration.components.seconds * 1_000_000 + duration.components.attoseconds / 1_000_000_000_000))
            _ = histogram.withLock { $0.record(micros) }
        }
        let elapsed = ContinuousClock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        let cpu = Self.cpuSeconds() - cpuBefore
        let percentiles = histogram.withLock { h in
            ["p50": h.valueAtPercentile(50), "p90": h.valueAtPercentile(90), "p99": h.valueAtPercentile(99), "max": h.max]
        }
        let phase = Phase(name: name, messages: count, seconds: seconds, messagesPerSecond: Double(count) / seconds,
                          latencyMicroseconds: percentiles, cpuSecondsPerMessage: cpu / Double(count))
        print(String(format: "  %@: %d messages in %.2f s = %.0f msg/s; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; process CPU %.2f ms/msg",
                     name, count, seconds, phase.messagesPerSecond, Double(percentiles["p50"]!) / 1000,
                     Double(percentiles["p99"]!) / 1000, Double(percentiles["max"]!) / 1000, phase.cpuSecondsPerMessage * 1000))
        return phase
    }

    /// What the end-to-end phase's tasks share: when each message was submitted, and how many are left.
    final class FlowState: Sendable {
        let started = Mutex<[UUID: ContinuousClock.Instant]>([:])
        let remaining: Mutex<Int>
        init(remaining: Int) { self.remaining = Mutex(remaining) }
    }

    static func cpuSeconds() -> Double {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) + Double(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6
    }

    static func peakResidentKiB() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return usage.ru_maxrss
    }
}
