import Foundation
import HTTPTypes
import Hummingbird
import KetenpostAPI
import KetenpostDesk
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization
import Testing

/// A case system's webhook endpoint on loopback: records what arrives, answers 500 while told to.
final class WebhookReceiver: Sendable {
    struct Delivery: Sendable {
        var eventID: String
        var signature: String
        var body: Data
        var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    }

    private let state = Mutex<(deliveries: [Delivery], refused: Int, failing: Bool)>(([], 0, true))
    let port: Int
    private let task: Task<Void, any Error>

    var deliveries: [Delivery] { state.withLock { $0.deliveries } }
    var refused: Int { state.withLock { $0.refused } }
    func setFailing(_ failing: Bool) { state.withLock { $0.failing = failing } }

    private init(port: Int, task: Task<Void, any Error>) {
        self.port = port
        self.task = task
    }

    static func start() async throws -> WebhookReceiver {
        let box = ReceiverBox()
        let router = Router()
        router.post("/hook") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 20)
            let delivery = Delivery(
                eventID: request.headers[HTTPField.Name("Ketenpost-Event-Id")!] ?? "",
                signature: request.headers[HTTPField.Name("Ketenpost-Signature")!] ?? "",
                body: Data(buffer: body)
            )
            return Response(status: box.receive(delivery) ? .noContent : .internalServerError)
        }
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = Application(
            router: router,
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { continuation.yield($0.localAddress?.port ?? 0) },
            logger: Logger(label: "test.webhook", factory: { _ in SwiftLogNoOpLogHandler() })
        )
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        let port = await iterator.next() ?? 0
        let receiver = WebhookReceiver(port: port, task: task)
        box.receiver.withLock { $0 = receiver }
        return receiver
    }

    fileprivate func receive(_ delivery: Delivery) -> Bool {
        state.withLock {
            $0.deliveries.append(delivery)
            if $0.failing { $0.refused += 1 }
            return !$0.failing
        }
    }

    func stop() async {
        task.cancel()
        _ = try? await task.value
    }
}

/// Lets the route reach the receiver that is made after the router.
private final class ReceiverBox: Sendable {
    let receiver = Mutex<WebhookReceiver?>(nil)
    func receive(_ delivery: WebhookReceiver.Delivery) -> Bool { receiver.withLock { $0 }?.receive(delivery) ?? false }
}

@Suite(.serialized) struct DeskWebhookTests {
    static let secret = "webhook-geheim-0123456789abcdefghijklmnop"

    @Test func notificationsAreSignedRetriedAndShownOnTheStatusPage() async throws {
        try await withDesks { h in
            let receiver = try await WebhookReceiver.start()
            let secretFile = h.work.appendingPathComponent("webhook-secret")
            try (Self.secret + "\n").write(to: secretFile, atomically: true, encoding: .utf8)
            let lines = h.log
            let logger = Logger(label: "test.desk", factory: { _ in DeskLogHandler(lines: lines) })
            let coordinator = try await RunningDesk.start(
                try h.desk(
                    DeskHarness.coordinator,
                    adjust: {
                        $0.inbox.pollWait = 1
                        $0.webhooks.url = "http://127.0.0.1:\(receiver.port)/hook"
                        $0.webhooks.secretFile = secretFile.path
                    }
                ),
                logger: logger
            )
            let shelter = try await RunningDesk.start(try h.desk(DeskHarness.shelter, adjust: { $0.inbox.pollWait = 1 }), logger: logger)
            do {
                try await h.addStaff(DeskHarness.coordinator, "t.leider", role: .teamLead)
                let zorg = CaseSystem(base: coordinator.url.absoluteString, token: try coordinator.core.tokens.add(name: "zorg").secret)
                let opvang = CaseSystem(base: shelter.url.absoluteString, token: try shelter.core.tokens.add(name: "opvang").secret)
                let sent = try await zorg.call(.POST, "/api/v1/messages", body: try DeskAPITests.referral(), key: "webhook-1")
                let id = try #require(sent.json["id"] as? String)
                // The receiver refuses at first: the desk retries, and the status page says so.
                for _ in 0..<100 where receiver.refused < 2 { try await Task.sleep(for: .milliseconds(50)) }
                #expect(receiver.refused >= 2)
                try await withBrowser(coordinator.server) { (browser: Browser) async throws in
                    try await browser.signIn("t.leider")
                    let page = try await browser.get("/status").body
                    #expect(page.contains("(webhook)") && page.contains("mislukt") && page.contains("http-500"), "\(page)")
                }
                // What a team lead sees, in Chromium: the failing webhook in red, with what to do.
                let chromium = try await WebDriver.start()
                do {
                    let base = coordinator.url.absoluteString
                    try await chromium.open("\(base)/signin")
                    try await chromium.type("#username", "t.leider")
                    try await chromium.type("#password", DeskHarness.password)
                    try await chromium.submit("form.narrow button[type=submit]")
                    try await chromium.open("\(base)/status")
                    #expect(try await chromium.text.contains("Het zaaksysteem neemt meldingen niet aan"))
                    let folder = DeskBrowserTests.screenshots
                    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
                    try await chromium.screenshot("12-status-webhook-failing", into: folder)
                } catch {
                    await chromium.quit()
                    throw error
                }
                await chromium.quit()
                receiver.setFailing(false)
                // The shelter answers; the coordinator's case system hears of every step.
                let inbox = try await opvang.call(.GET, "/api/v1/inbox?after=0&wait=30")
                #expect((inbox.json["messages"] as? [Any])?.count == 1)
                let answer = try DeskAPITests.body(["payload": try DeskAPITests.example("referral-response")])
                #expect(try await opvang.call(.POST, "/api/v1/inbox/\(id)/answer", body: answer, key: "a-1").status == 201)
                func states() -> [String] {
                    receiver.deliveries.filter { $0.json["messageId"] as? String == id }.map {
                        "\($0.json["event"] as? String ?? ""):\($0.json["state"] as? String ?? "")"
                    }
                }
                for _ in 0..<200 where !states().contains(where: { $0.hasPrefix("message.answered") }) {
                    try await Task.sleep(for: .milliseconds(100))
                }
                let seen = states()
                #expect(seen.contains("message.state:queued") && seen.contains("message.state:accepted"), "\(seen)")
                #expect(seen.contains { $0.hasPrefix("message.answered") }, "\(seen)")
                // In order, every one signed: checked with the openssl command, not our own code.
                let ids = receiver.deliveries.compactMap { Int($0.eventID) }
                #expect(ids == ids.sorted(), "out of order: \(ids)")
                for delivery in receiver.deliveries.suffix(3) {
                    let parts = Dictionary(
                        uniqueKeysWithValues: delivery.signature.split(separator: ",").compactMap { part -> (String, String)? in
                            let pair = part.split(separator: "=", maxSplits: 1)
                            return pair.count == 2 ? (String(pair[0]), String(pair[1])) : nil
                        }
                    )
                    let stamp = try #require(parts["t"])
                    let file = h.work.appendingPathComponent("signed-\(delivery.eventID)")
                    try (Data("\(stamp).".utf8) + delivery.body).write(to: file)
                    let output = try EvidenceCheck.run("openssl dgst -sha256 -hmac '\(Self.secret)' -r '\(file.path)'", in: h.work)
                    #expect(output.split(separator: " ").first.map(String.init) == parts["v1"], "\(output)")
                    #expect(abs(Double(stamp)! - Date().timeIntervalSince1970) < 120)
                    // Ids and states only: nothing of the message's content.
                    #expect(!delivery.body.contains(Data("ZCZL".utf8)) && !delivery.body.contains(Data("Kovalenko".utf8)))
                }
                try await withBrowser(coordinator.server) { (browser: Browser) async throws in
                    try await browser.signIn("t.leider")
                    for _ in 0..<50 where try coordinator.core.store.webhookSummary().failing > 0 {
                        try await Task.sleep(for: .milliseconds(100))
                    }
                    let page = try await browser.get("/status").body
                    #expect(page.contains("werkt"), "\(page)")
                }
            } catch {
                await coordinator.stop()
                await shelter.stop()
                await receiver.stop()
                throw error
            }
            await coordinator.stop()
            await shelter.stop()
            await receiver.stop()
        }
    }

    @Test func aShortOrMissingSecretStopsStartUp() async throws {
        try await withDesks { h in
            let file = h.work.appendingPathComponent("short-secret")
            try "too short\n".write(to: file, atomically: true, encoding: .utf8)
            let desk = try h.desk(
                DeskHarness.coordinator,
                adjust: {
                    $0.webhooks.url = "http://127.0.0.1:9/hook"
                    $0.webhooks.secretFile = file.path
                }
            )
            #expect(throws: KetenpostError.self) { _ = try desk.services() }
            #expect(throws: KetenpostError.self) {
                _ = try DeskConfiguration.parse(
                    "identity:\n  directory: x\nwebhooks:\n  url: https://case.example/hook\n",
                    file: "desk.yaml"
                )
            }
            #expect(throws: KetenpostError.self) {
                _ = try DeskConfiguration.parse(
                    "identity:\n  directory: x\nwebhooks:\n  url: http://case.example/hook\n",
                    file: "desk.yaml"
                )
            }
        }
    }
}
