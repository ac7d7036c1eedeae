import ArgumentParser
import AsyncHTTPClient
import Foundation
import Histogram
import KetenpostDesk
import KetenpostProvisioning
import KetenpostRelay
import Logging
import NIOCore

/// Page loads of a desk that holds many messages (docs/BENCHMARKS.md, "Desk").
struct DeskBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "desk",
        abstract: "Inbox and sent-view page loads (p50/p95/p99) of a desk holding many messages.",
        discussion: """
            Starts a relay and a desk in this process (temporary folder, development PKI), stores the messages \
            directly in the desk's SQLite file, signs in over HTTP and loads each page in turn.
            Example:
              ketenpost-bench desk --messages 10000 --requests 200
            """
    )

    @Option(help: "Messages in the desk (half received, half sent).") var messages = 10_000
    @Option(help: "Loads of each page.") var requests = 200
    @Option(help: "Directory with partners.yaml and policy.yaml.") var config = "config"

    func run() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-bench-desk-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: work) }
        let pki = DevelopmentPKI(directory: work.appendingPathComponent("certs").path)
        let relayConfiguration = RelayConfiguration.development(
            pki: pki,
            storePath: work.appendingPathComponent("relay.sqlite").path,
            partnersFile: config + "/partners.yaml",
            policyFile: config + "/policy.yaml"
        )
        var logger = Logger(label: "ketenpost.bench")
        logger.logLevel = .warning
        let relay = try await RunningRelay.start(try await RelayServer.prepare(relayConfiguration, logger: logger), logger: logger)
        let partner = "gemeente-eijsden-margraten"
        let c = DeskConfiguration.development(
            pki: pki,
            partner: partner,
            relayURL: relay.url.absoluteString,
            dataDirectory: work.appendingPathComponent("desk").path
        )
        let server = try DeskServer.open(c, logger: logger)
        let password = "benchmark password 1234"
        _ = try await server.core.accounts.add(username: "b.team", displayName: "Bench Team Lead", role: .teamLead, password: password)
        _ = try await server.core.accounts.add(username: "b.werker", displayName: "Bench Caseworker", role: .caseworker, password: password)
        let filled = ContinuousClock.now
        try fill(server.core.store, count: messages)
        print("stored \(messages) messages in \(ContinuousClock.now - filled)")
        let desk = try await RunningDesk.start(server, logger: logger)
        let base = desk.url.absoluteString.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        do {
            let lead = try await signIn(base: base, username: "b.team", password: password)
            let caseworker = try await signIn(base: base, username: "b.werker", password: password)
            // A team lead sees the whole team's lists; a caseworker's are filtered to her own.
            let pages: [(path: String, who: String, cookie: String)] =
                [
                    "/inbox", "/inbox?page=50", "/inbox?state=new&type=intake-notice&priority=urgent", "/sent", "/sent?state=failed",
                    "/sent?partner=opvang-zuid-limburg&page=20",
                ].map { ($0, "team lead", lead) } + ["/inbox", "/inbox?mine=1", "/sent"].map { ($0, "caseworker", caseworker) }
            print("")
            print("| page (\(messages) messages, \(requests) loads each) | as | p50 ms | p95 ms | p99 ms | bytes |")
            print("|---|---|---:|---:|---:|---:|")
            for page in pages {
                var histogram = Histogram<UInt64>(highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: .three)
                var bytes = 0
                for _ in 0..<requests {
                    let started = ContinuousClock.now
                    bytes = try await load(base + page.path, cookie: page.cookie)
                    let elapsed = ContinuousClock.now - started
                    _ = histogram.record(
                        UInt64(elapsed.components.seconds * 1_000_000 + elapsed.components.attoseconds / 1_000_000_000_000)
                    )
                }
                func ms(_ percentile: Double) -> String { String(format: "%.2f", Double(histogram.valueAtPercentile(percentile)) / 1000) }
                print("| `\(page.path)` | \(page.who) | \(ms(50)) | \(ms(95)) | \(ms(99)) | \(bytes) |")
            }
        } catch {
            await desk.stop()
            await relay.stop()
            throw error
        }
        await desk.stop()
        await relay.stop()
        try? await Self.client.shutdown()
    }

    /// Half received, half sent; types, states, partners and priorities spread like a busy desk's.
    private func fill(_ store: DeskStore, count: Int) throws {
        let types = ["signal", "referral", "intake-notice", "intake-response", "referral-response"]
        let partners = ["opvang-zuid-limburg", "zorgcoordinatie-zuid-limburg", "zorgaanbieder-mondriaan", "politie-avim-limburg"]
        let incoming: [DeskState] = [.new, .opened, .answered, .refused]
        let outgoing: [DeskState] = [.accepted, .delivered, .acknowledged, .rejected, .expired, .failed]
        let sealed = Data((0..<4096).map { _ in UInt8.random(in: 0...255) })
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        let digest = String(repeating: "0", count: 64)
        var batch: [DeskMessage] = []
        for index in 0..<count {
            let received = index % 2 == 0
            let created: Int64 = now - Int64(index) * 60_000
            let state: DeskState = received ? incoming[index % incoming.count] : outgoing[index % outgoing.count]
            let outcome: String? = index % 3 == 0 ? "accepted" : nil
            let creator: String? = received ? nil : index % 4 == 1 ? "b.werker" : "b.team"
            let assignee: String? = received && index % 3 != 0 ? (index % 3 == 1 ? "b.werker" : "c.collega") : nil
            let id: String = UUID().uuidString.lowercased()
            let direction: Direction = received ? .incoming : .outgoing
            let type: String = types[index % types.count]
            let counterpart: String = partners[index % partners.count]
            let priority: String = index % 7 == 0 ? "urgent" : "normal"
            let expires: Int64 = now + 86_400_000
            batch.append(
                DeskMessage(
                    id: id,
                    direction: direction,
                    type: type,
                    counterpart: counterpart,
                    priority: priority,
                    createdAt: created,
                    updatedAt: now,
                    sentAt: created,
                    expiresAt: expires,
                    state: state,
                    sealed: sealed,
                    digest: digest,
                    outcome: outcome,
                    createdBy: creator,
                    assignedTo: assignee,
                    submitAttempts: 1
                )
            )
        }
        try store.insertAll(batch)
    }

    /// Redirects not followed: the sign-in answers with one, and its cookie is what we need.
    static let client = HTTPClient(
        eventLoopGroup: HTTPClient.defaultEventLoopGroup,
        configuration: HTTPClient.Configuration(redirectConfiguration: .disallow)
    )

    private func signIn(base: String, username: String, password: String) async throws -> String {
        let page = try await Self.client.execute(HTTPClientRequest(url: base + "/signin"), timeout: .seconds(30))
        let preSession = page.headers["Set-Cookie"].first?.split(separator: ";").first.map(String.init) ?? ""
        let html = String(buffer: try await page.body.collect(upTo: 1 << 20))
        guard let range = html.range(of: #"name="_csrf" value="[0-9a-f]+""#, options: .regularExpression) else {
            throw ValidationError("no sign-in form")
        }
        let token = html[range].split(separator: "\"").last.map(String.init) ?? ""
        var request = HTTPClientRequest(url: base + "/signin")
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded")
        request.headers.add(name: "Cookie", value: preSession)
        let body = "_csrf=\(token)&username=\(username)&password=\(password.replacingOccurrences(of: " ", with: "+"))"
        request.body = .bytes(ByteBuffer(string: body))
        let answer = try await Self.client.execute(request, timeout: .seconds(30))
        guard let session = answer.headers["Set-Cookie"].first(where: { $0.hasPrefix("ketenpost_desk_") }) else {
            throw ValidationError("sign-in failed: HTTP \(answer.status.code)")
        }
        return String(session.split(separator: ";")[0])
    }

    private func load(_ url: String, cookie: String) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.headers.add(name: "Cookie", value: cookie)
        let response = try await Self.client.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 16 << 20)
        guard response.status == .ok else { throw ValidationError("\(url): HTTP \(response.status.code)") }
        return body.readableBytes
    }
}
