import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import Synchronization

/// Kills the relay with SIGKILL at random moments while partners send and receive, and
/// counts what was lost or duplicated. Promise 3: nothing accepted is ever lost.
struct CrashTest: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "crash-test",
        abstract: "Send and receive through a relay process that is SIGKILLed and restarted at random moments.",
        discussion: """
            Runs `ketenpost serve` as a child process on a temporary store and PKI. Senders retry every \
            message that has no verified acceptance receipt yet (same bytes, same id); recipients \
            acknowledge what they get (retrying the same receipt). After the last kill everything is \
            drained, and the report counts: accepted, delivered, acknowledged, lost (accepted but never \
            acknowledged: must be 0), delivered again after a successful acknowledgement (must be 0) and \
            duplicate acceptances (must be 0). Exits with status 1 if any of those is not 0.
            Short run: --kills 3 --messages 60. Long run: --kills 100 --messages 3000.
            """
    )

    @Option(help: "How many times the relay is killed.") var kills: Int = 10
    @Option(help: "Messages to send in total.") var messages: Int = 300
    @Option(help: "Sending partners.") var senders: Int = 4
    @Option(help: "Receiving partners.") var recipients: Int = 2
    @Option(
        help:
            "Relay instances sharing one store; senders and recipients alternate between them, and while one is killed the others carry on."
    ) var instances: Int = 1
    @Option(
        name: .customLong("store-url"),
        help: "The shared store (default: a temporary SQLite file), e.g. postgres://user@127.0.0.1:5432/db."
    ) var storeURL: String?
    @Option(help: "Seed for the kill times (default: random).") var seed: UInt64?
    @Option(help: "Write the report as JSON to this file.") var json: String?

    struct Report: Codable {
        var instances: Int
        var store: String
        var kills: Int
        var messages: Int
        var accepted: Int
        var delivered: Int
        var acknowledged: Int
        var lost: Int
        var deliveredAgainAfterAcknowledgement: Int
        var duplicateAcceptances: Int
        var redeliveries: Int
        var seconds: Double
    }

    /// Shared bookkeeping of the partners (ids only).
    final class Ledger: Sendable {
        struct State {
            var accepted: Set<UUID> = []
            var freshAcceptances: [UUID: Int] = [:]
            var delivered: Set<UUID> = []
            var deliveries = 0
            var acknowledged: Set<UUID> = []
            var deliveredAfterAck = 0
        }
        let state = Mutex(State())
    }

    func run() async throws {
        let started = ContinuousClock.now
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-crash-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let chain = try SyntheticChain(in: work, prefix: "crash", senders: senders, recipients: recipients)
        let (pki, senderIDs, recipientIDs) = (chain.pki, chain.senderIDs, chain.recipientIDs)
        guard (1...8).contains(instances) else { throw ValidationError("--instances must be 1 to 8.") }
        let configFile = try chain.writeRelayConfiguration(
            in: work,
            port: 0,
            storeURL: storeURL,
            queue: "{leaseDuration: 2s, maxAttempts: 100, sweepInterval: 1s, maxLongPoll: 2s}",
            limits: "{ratePerSecond: 100000, rateBurst: 100000}"
        )

        let trust = try TrustStore.load(anchorsFile: pki.caCertificatePath, crlFiles: [pki.crlPath], intermediates: pki.chain())
        let servers = (0..<instances).map { RelayProcess(executable: RelayProcess.relayExecutable(), config: configFile, instance: $0) }
        let probe = try Identity.load(directory: pki.partnerDirectory(senderIDs[0]))
        var listening: [URL] = []
        for server in servers { listening.append(try await server.start(trust: trust, probe: probe)) }
        let relayURLs = listening
        print(
            """
            Crash test: \(messages) messages, \(senders) senders, \(recipients) recipients, \(instances) relay instance(s), \(kills) \
            SIGKILLs; pids \(servers.map(\.pid))
            """
        )

        let recipientCerts = try recipientIDs.map { try Certificate.load(pemFile: pki.partnerDirectory($0) + "/cert.pem") }
        let ledger = Ledger()
        let payload = EnvelopeBench.signalPayload(bytes: 1_024)
        var batches: [[(RoutingHeader, Data)]] = []
        for (index, id) in senderIDs.enumerated() {
            let identity = try Identity.load(directory: pki.partnerDirectory(id))
            batches.append(
                try (0..<(messages / senders)).map { n in
                    let to = (index + n) % recipients
                    let content = try Drafting.content(type: .signal, from: id, to: recipientIDs[to], payload: payload)
                    return (content.header, try Envelope.seal(content, from: identity, to: recipientCerts[to], trust: trust))
                }
            )
        }
        let total = batches.joined().count
        let killCount = max(1, kills)
        let killSeed = seed ?? UInt64.random(in: 1...UInt64.max)

        try await withThrowingTaskGroup(of: Void.self) { group in
            let instances = self.instances
            for (index, id) in senderIDs.enumerated() {
                let batch = batches[index]
                group.addTask {
                    try await withRelayClients(
                        try relayURLs.map {
                            try RelayClient(
                                relay: $0,
                                identity: try Identity.load(directory: pki.partnerDirectory(id)),
                                trust: trust,
                                relayID: DevelopmentPKI.relayID,
                                timeout: .seconds(10)
                            )
                        }
                    ) { clients in
                        for (n, (header, sealed)) in batch.enumerated() {
                            // Alternate between instances; retry the same bytes (on the next instance)
                            // until a verified receipt arrives.
                            var target = n % instances
                            while true {
                                do {
                                    let sent = try await clients[target].submit(sealed: sealed, header: header)
                                    ledger.state.withLock { state in
                                        state.accepted.insert(header.id)
                                        if !sent.response.duplicate { state.freshAcceptances[header.id, default: 0] += 1 }
                                    }
                                    break
                                } catch {
                                    target = (target + 1) % instances
                                    try await Task.sleep(for: .milliseconds(50))
                                }
                            }
                        }
                    }
                }
            }
            for id in recipientIDs {
                group.addTask {
                    try await withRelayClients(
                        try relayURLs.map {
                            try RelayClient(
                                relay: $0,
                                identity: try Identity.load(directory: pki.partnerDirectory(id)),
                                trust: trust,
                                relayID: DevelopmentPKI.relayID,
                                timeout: .seconds(10)
                            )
                        }
                    ) { clients in
                        var receipts: [UUID: Data] = [:]
                        var round = 0
                        while true {
                            let finished = ledger.state.withLock { $0.acknowledged.count >= total }
                            if finished { return }
                            // Each poll goes to the next instance: both serve every inbox.
                            round += 1
                            let client = clients[round % instances]
                            do {
                                for item in try await client.receive(max: 20, wait: 1) {
                                    let opened = try item.result.get()
                                    ledger.state.withLock { state in
                                        state.deliveries += 1
                                        state.delivered.insert(item.id)
                                        if state.acknowledged.contains(item.id) { state.deliveredAfterAck += 1 }
                                    }
                                    // One receipt per message, so a retried acknowledgement is the same bytes.
                                    let receipt =
                                        try receipts[item.id]
                                        ?? SignedReceipt.sign(
                                            Receipt(
                                                kind: .acknowledgement,
                                                messageId: item.id,
                                                messageDigest: opened.digest,
                                                from: opened.header.from,
                                                to: opened.header.to,
                                                issuer: client.identity.partnerID,
                                                disposition: .processed,
                                                time: Date()
                                            ),
                                            as: client.identity
                                        )
                                    receipts[item.id] = receipt
                                    while true {
                                        do {
                                            _ = try await client.acknowledge(id: item.id, leaseToken: item.leaseToken, receipt: receipt)
                                            ledger.state.withLock { _ = $0.acknowledged.insert(item.id) }
                                            break
                                        } catch let error as KetenpostError {
                                            // The lease ran out while the relay was down: it comes again.
                                            if error.code == .leaseExpired || error.code == .leaseInvalid { break }
                                            throw error
                                        } catch {
                                            try await Task.sleep(for: .milliseconds(50))
                                        }
                                    }
                                }
                            } catch let error as KetenpostError {
                                throw error
                            } catch {
                                try await Task.sleep(for: .milliseconds(50))
                            }
                        }
                    }
                }
            }
            group.addTask {
                var generator = SeededGenerator(seed: killSeed)
                for round in 1...killCount {
                    let pause = Double.random(in: 0.1...0.8, using: &generator)
                    try await Task.sleep(for: .milliseconds(Int64(pause * 1000)))
                    let victim = Int.random(in: 0..<instances, using: &generator)
                    servers[victim].kill()
                    if instances > 1 {
                        // The others carry on alone for a while; leases the dead one handed out run out and are delivered again.
                        try await Task.sleep(for: .milliseconds(Int64(Double.random(in: 0.2...1.0, using: &generator) * 1000)))
                    }
                    try await servers[victim].start(trust: trust, probe: probe)
                    print("  kill \(round): instance \(victim) restarted as pid \(servers[victim].pid)")
                }
            }
            try await group.waitForAll()
        }
        for server in servers { server.stop() }

        let report = ledger.state.withLock { state in
            Report(
                instances: instances,
                store: storeURL.flatMap { StoreLocation.parse($0)?.redacted } ?? "sqlite (temporary)",
                kills: kills,
                messages: total,
                accepted: state.accepted.count,
                delivered: state.delivered.count,
                acknowledged: state.acknowledged.count,
                lost: state.accepted.subtracting(state.acknowledged).count,
                deliveredAgainAfterAcknowledgement: state.deliveredAfterAck,
                duplicateAcceptances: state.freshAcceptances.values.filter { $0 > 1 }.count,
                redeliveries: state.deliveries - state.delivered.count,
                seconds: {
                    let d = ContinuousClock.now - started
                    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
                }()
            )
        }
        print(
            """
              accepted \(report.accepted), delivered \(report.delivered), acknowledged \(report.acknowledged), \
            redeliveries \(report.redeliveries)
              lost \(report.lost), delivered again after acknowledgement \(report.deliveredAgainAfterAcknowledgement), \
            duplicate acceptances \(report.duplicateAcceptances)
              \(String(format: "%.1f", report.seconds)) s
            """
        )
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
        let ok =
            report.lost == 0 && report.deliveredAgainAfterAcknowledgement == 0 && report.duplicateAcceptances == 0
            && report.accepted == total && report.acknowledged == total
        print(ok ? "PASS: nothing lost, nothing duplicated" : "FAIL")
        if !ok { throw ExitCode(1) }
    }
}

/// The relay as a child process that can be killed and started again.
final class RelayProcess: Sendable {
    let executable: String
    let config: String
    /// Names this instance's log files.
    let instance: Int
    private let process = Mutex<Process?>(nil)
    /// The port the first start bound (the configuration asks for port 0); restarts keep it,
    /// so that clients keep one address.
    private let port = Mutex<Int?>(nil)

    init(executable: String, config: String, instance: Int = 0) {
        self.executable = executable
        self.config = config
        self.instance = instance
    }

    /// `ketenpost` from the same build directory as this program.
    static func relayExecutable() -> String {
        let own = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        return URL(fileURLWithPath: own).deletingLastPathComponent().appendingPathComponent("ketenpost").path
    }

    var pid: Int32 { process.withLock { $0?.processIdentifier ?? 0 } }

    /// Starts `serve` and returns its URL once it answers over mutual TLS.
    func start(trust: TrustStore, probe: Identity) async throws -> URL {
        guard FileManager.default.isExecutableFile(atPath: executable) else {
            throw KetenpostError(
                .configInvalid,
                "\(executable) is missing: build the relay too (swift build -c release), then run ketenpost-bench again."
            )
        }
        let child = Process()
        child.executableURL = URL(fileURLWithPath: executable)
        child.arguments = ["serve", "--config", config, "--log-level", "error", "--port", "\(port.withLock { $0 } ?? 0)"]
        // Its error log goes to a file beside the configuration, so that a failed start says why;
        // its standard output says which port it bound.
        let directory = URL(fileURLWithPath: config).deletingLastPathComponent()
        let log = directory.appendingPathComponent("serve-\(instance).log")
        let out = directory.appendingPathComponent("serve-\(instance).out")
        FileManager.default.createFile(atPath: log.path, contents: nil)
        FileManager.default.createFile(atPath: out.path, contents: nil)
        let errHandle = try FileHandle(forWritingTo: log)
        let outHandle = try FileHandle(forWritingTo: out)
        child.standardOutput = outHandle
        child.standardError = errHandle
        try child.run()
        try? errHandle.close()
        try? outHandle.close()
        process.withLock { $0 = child }
        let deadline = ContinuousClock.now + .seconds(20)
        var bound = port.withLock { $0 }
        while bound == nil && ContinuousClock.now < deadline && child.isRunning {
            bound = Self.listeningPort(in: (try? String(contentsOf: out, encoding: .utf8)) ?? "")
            if bound == nil { try await Task.sleep(for: .milliseconds(20)) }
        }
        if let bound {
            port.withLock { $0 = bound }
            let url = URL(string: "https://127.0.0.1:\(bound)")!
            let answered = try await withRelayClient(
                try RelayClient(
                    relay: url,
                    identity: probe,
                    trust: trust,
                    relayID: DevelopmentPKI.relayID,
                    timeout: .seconds(2)
                )
            ) { client in
                while ContinuousClock.now < deadline && child.isRunning {
                    if (try? await client.directory(probe.partnerID)) != nil { return true }
                    try await Task.sleep(for: .milliseconds(50))
                }
                return false
            }
            if answered { return url }
        }
        let said = (try? String(contentsOf: log, encoding: .utf8))?.split(separator: "\n").suffix(3).joined(separator: " | ") ?? ""
        throw KetenpostError(.internalError, "The relay did not come up: \(said)")
    }

    /// The port in serve's "Ketenpost relay listening on https://HOST:PORT" line.
    static func listeningPort(in output: String) -> Int? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains("relay listening on https://") }),
            let url = line.split(separator: " ").first(where: { $0.hasPrefix("https://") }).flatMap({ URL(string: String($0)) })
        else {
            return nil
        }
        return url.port
    }

    /// SIGKILL: no shutdown handlers, no flushing; only what was fsync'd survives.
    func kill() {
        guard let child = process.withLock({ $0 }) else { return }
        Foundation.kill(child.processIdentifier, SIGKILL)
        child.waitUntilExit()
    }

    func stop() {
        guard let child = process.withLock({ $0 }) else { return }
        Foundation.kill(child.processIdentifier, SIGTERM)
        child.waitUntilExit()
    }
}

/// SplitMix64: reproducible kill times from a seed.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
