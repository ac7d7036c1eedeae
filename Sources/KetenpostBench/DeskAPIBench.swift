import ArgumentParser
import AsyncHTTPClient
import Foundation
import Histogram
import KetenpostDesk
import KetenpostProvisioning
import KetenpostRelay
import Logging
import NIOCore

/// The desk's API for case systems (docs/BENCHMARKS.md, "Desk API"): sends per second through one
/// desk, sealing and the relay's acceptance included, and the inbox route's throughput.
struct DeskAPIBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desk-api",
        abstract: "API sends per second through one desk (sealing included) and the inbox route's throughput.",
        discussion: """
            Starts a relay and two desks (care coordinator, shelter) in this process on loopback. The coordinator's case \
            system posts referrals with idempotency keys from several connections at once; the shelter's desk receives them \
            in the background; then the shelter's case system reads them all through GET /api/v1/inbox.
            Example:
              ketenpost-bench desk-api --messages 2000 --concurrency 8
            """
    )

    @Option(help: "Referrals to send.") var messages = 2000
    @Option(help: "Requests in flight at once.") var concurrency = 8
    @Option(help: "Messages per inbox page.") var page = 100
    @Option(help: "Directory with partners.yaml, policy.yaml and examples/.") var config = "config"

    func run() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-bench-api-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let pki = DevelopmentPKI(directory: work.appendingPathComponent("certs").path)
        var relayConfiguration = RelayConfiguration.development(
            pki: pki,
            storePath: work.appendingPathComponent("relay.sqlite").path,
            partnersFile: config + "/partners.yaml",
            policyFile: config + "/policy.yaml"
        )
        // The desk is measured, not the relay's per-partner request limit (50/s by default).
        relayConfiguration.limits.ratePerSecond = 100_000
        relayConfiguration.limits.rateBurst = 100_000
        var logger = Logger(label: "ketenpost.bench")
        logger.logLevel = .warning
        let relay = try await RunningRelay.start(try await RelayServer.prepare(relayConfiguration, logger: logger), logger: logger)
        func desk(_ partner: String) async throws -> RunningDesk {
            var c = DeskConfiguration.development(
                pki: pki,
                partner: partner,
                relayURL: relay.url.absoluteString,
                dataDirectory: work.appendingPathComponent("desk-\(partner)").path
            )
            c.inbox.pollWait = 1
            return try await RunningDesk.start(try DeskServer.open(c, logger: logger), logger: logger)
        }
        let coordinator = try await desk("zorgcoordinatie-zuid-limburg")
        let shelter = try await desk("opvang-zuid-limburg")
        let sendToken = try coordinator.core.tokens.add(name: "bench-zorg").secret
        let readToken = try shelter.core.tokens.add(name: "bench-opvang").secret
        var payload =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: config + "/examples/referral.json")))
            as? [String: Any] ?? [:]
        do {
            // Sends: `concurrency` requests in flight, each a new referral with its own key.
            var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
            let started = ContinuousClock.now
            var bodies: [Data] = []
            for index in 0..<messages {
                payload["caseReference"] = String(format: "BENCH-2026/%05d", index)
                bodies.append(
                    try JSONSerialization.data(withJSONObject: ["type": "referral", "to": "opvang-zuid-limburg", "payload": payload])
                )
            }
            let base = coordinator.url.absoluteString
            try await withThrowingTaskGroup(of: UInt64.self) { group in
                var next = 0
                func add() {
                    let body = bodies[next]
                    let key = "bench-\(next)"
                    group.addTask { try await Self.post(base + "/api/v1/messages", body: body, key: key, token: sendToken) }
                    next += 1
                }
                while next < min(concurrency, messages) { add() }
                while let micros = try await group.next() {
                    _ = histogram.record(micros)
                    if next < messages { add() }
                }
            }
            let sendSeconds = Self.seconds(ContinuousClock.now - started)
            // The shelter's desk receives in the background; wait until all are stored.
            let arrived = ContinuousClock.now
            while try shelter.core.store.list(.init(direction: .incoming)).total < messages {
                try await Task.sleep(for: .milliseconds(100))
                if ContinuousClock.now - arrived > .seconds(600) { throw ValidationError("the shelter's desk did not receive everything") }
            }
            let receiveSeconds = Self.seconds(ContinuousClock.now - arrived)
            // The inbox route: page after page until every message has been read (each opened).
            let reading = ContinuousClock.now
            var cursor = "0"
            var read = 0
            while read < messages {
                let answer = try await Self.get(
                    shelter.url.absoluteString + "/api/v1/inbox?after=\(cursor)&limit=\(page)",
                    token: readToken
                )
                read += (answer["messages"] as? [Any])?.count ?? 0
                cursor = answer["cursor"] as? String ?? cursor
            }
            let readSeconds = Self.seconds(ContinuousClock.now - reading)
            func ms(_ percentile: Double) -> String { String(format: "%.1f", Double(histogram.valueAtPercentile(percentile)) / 1000) }
            print("")
            print("| phase (\(messages) referrals, \(concurrency) in flight) | per second | p50 ms | p95 ms | p99 ms |")
            print("|---|---:|---:|---:|---:|")
            print(
                "| `POST /api/v1/messages` (validate, seal, store, submit, verify receipt) | "
                    + "\(String(format: "%.0f", Double(messages) / sendSeconds)) | \(ms(50)) | \(ms(95)) | \(ms(99)) |"
            )
            print(
                """
                | shelter desk receives (long polls, stored, acknowledged) | \
                \(String(format: "%.0f", Double(messages) / receiveSeconds)) | | | |
                """
            )
            print(
                """
                | `GET /api/v1/inbox` (\(page) per page, each opened and logged) | \
                \(String(format: "%.0f", Double(read) / readSeconds)) | | | |
                """
            )
        } catch {
            await coordinator.stop()
            await shelter.stop()
            await relay.stop()
            throw error
        }
        await coordinator.stop()
        await shelter.stop()
        await relay.stop()
    }

    static func seconds(_ duration: Duration) -> Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// One send; its latency in microseconds.
    static func post(_ url: String, body: Data, key: String, token: String) async throws -> UInt64 {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        request.headers.add(name: "Idempotency-Key", value: key)
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(bytes: body))
        let started = ContinuousClock.now
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .created else { throw ValidationError("send: HTTP \(response.status.code) \(String(buffer: bytes))") }
        let elapsed = ContinuousClock.now - started
        return UInt64(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
    }

    static func get(_ url: String, token: String) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(60))
        let bytes = try await response.body.collect(upTo: 64 << 20)
        guard response.status == .ok else { throw ValidationError("inbox: HTTP \(response.status.code)") }
        return try JSONSerialization.jsonObject(with: Data(buffer: bytes)) as? [String: Any] ?? [:]
    }
}
