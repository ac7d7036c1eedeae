import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import KetenpostAPI
import KetenpostDesk
import KetenpostProvisioning
import KetenpostRelay
import Logging
import NIOCore
import Synchronization
import Testing

enum Root {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { url.appendingPathComponent(relative).path }
}

/// One development PKI for the desk tests (key generation is the slow part).
final class DeskPKI: Sendable {
    let directory: URL
    let pki: DevelopmentPKI
    static let shared = try! DeskPKI()

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-desk-pki-\(UUID().uuidString.prefix(8))")
        pki = DevelopmentPKI(directory: directory.appendingPathComponent("certs").path)
        try pki.create(partners: try PartnerDirectoryFile.load(path: Root.path("config/partners.yaml")).partners)
    }
}

/// A clock the tests move by hand (idle timeouts, lockouts) without sleeping.
final class DeskClock: Sendable {
    private let now = Mutex(Date())
    func callAsFunction() -> Date { now.withLock { $0 } }
    func advance(minutes: Double) { now.withLock { $0 = $0.addingTimeInterval(minutes * 60) } }
}

/// Captured log lines, to check that nothing personal is logged.
final class DeskLogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

struct DeskLogHandler: LogHandler {
    let lines: DeskLogLines
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        lines.append("\(event.level) \(event.message) \(merged.map { "\($0.key)=\($0.value)" }.sorted().joined(separator: " "))")
    }
}

/// A real relay (TLS on 127.0.0.1, SQLite) and desks for partners, each with its own data folder.
final class DeskHarness: Sendable {
    static let municipality = "gemeente-eijsden-margraten"
    static let shelter = "opvang-zuid-limburg"
    static let coordinator = "zorgcoordinatie-zuid-limburg"
    static let password = "correct horse battery staple"

    let pki = DeskPKI.shared.pki
    let work: URL
    let log = DeskLogLines()
    let relay: RunningRelay
    private let desks = Mutex<[String: DeskServer]>([:])

    init() async throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-desk-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        var c = RelayConfiguration.development(
            pki: pki,
            storePath: work.appendingPathComponent("relay/ketenpost.sqlite").path,
            partnersFile: Root.path("config/partners.yaml"),
            policyFile: Root.path("config/policy.yaml")
        )
        c.developmentPKI.directory = nil
        c.limits.ratePerSecond = 1000
        c.limits.rateBurst = 1000
        let logger = Logger(label: "test.relay", factory: { _ in SwiftLogNoOpLogHandler() })
        relay = try await RunningRelay.start(try await RelayServer.prepare(c, logger: logger), logger: logger)
    }

    func configuration(_ partner: String) -> DeskConfiguration {
        var c = DeskConfiguration.development(
            pki: pki,
            partner: partner,
            relayURL: relay.url.absoluteString,
            dataDirectory: work.appendingPathComponent("desk-\(partner)").path
        )
        c.inbox.urgentAnswerWithin = 3600
        return c
    }

    /// The desk of `partner` (made once per harness), with low-cost bcrypt to keep tests quick.
    func desk(
        _ partner: String,
        clock: @escaping @Sendable () -> Date = { Date() },
        adjust: (inout DeskConfiguration) -> Void = { _ in }
    ) throws -> DeskServer {
        if let existing = desks.withLock({ $0[partner] }) { return existing }
        var c = configuration(partner)
        adjust(&c)
        let log = self.log
        let logger = Logger(label: "test.desk.\(partner)", factory: { _ in DeskLogHandler(lines: log) })
        let server = try DeskServer.open(c, bcryptCost: 4, logger: logger, clock: clock)
        desks.withLock { $0[partner] = server }
        return server
    }

    /// Adds a staff member to a desk; returns the TOTP secret when the account has one.
    @discardableResult
    func addStaff(_ partner: String, _ username: String, role: StaffRole, secondFactor: Bool = false) async throws -> String? {
        let created = try await desk(partner).core.accounts.add(
            username: username,
            displayName: username.capitalized,
            role: role,
            password: Self.password,
            secondFactor: secondFactor
        )
        return created.member.totpSecret
    }

    func example(_ type: String) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Root.path("config/examples/\(type).json")))
    }

    func shutdown() async {
        for desk in desks.withLock({ Array($0.values) }) { try? await desk.core.client.shutdown() }
        await relay.stop()
        try? FileManager.default.removeItem(at: work)
    }
}

func withDesks(_ body: (DeskHarness) async throws -> Void) async throws {
    let harness = try await DeskHarness()
    do {
        try await body(harness)
    } catch {
        await harness.shutdown()
        throw error
    }
    await harness.shutdown()
}

/// A browser for `app.test(.router)`: keeps cookies, reads CSRF tokens from the last page.
final class Browser: Sendable {
    let client: any TestClientProtocol
    private let state = Mutex<(cookies: [String: String], page: String)>(([:], ""))

    init(_ client: any TestClientProtocol) { self.client = client }

    var page: String { state.withLock { $0.page } }
    var cookies: [String: String] { state.withLock { $0.cookies } }

    func setCookie(_ name: String, _ value: String) { state.withLock { $0.cookies[name] = value } }
    func forgetCookies() { state.withLock { $0.cookies = [:] } }

    struct Answer: Sendable {
        let status: HTTPResponse.Status
        let location: String?
        let body: String
        let headers: HTTPFields
    }

    @discardableResult
    func get(_ uri: String, headers: HTTPFields = [:]) async throws -> Answer {
        try await request(uri, method: .get, body: nil, headers: headers)
    }

    /// Posts a form; `_csrf` is taken from the last page unless given.
    @discardableResult
    func post(_ uri: String, _ fields: [(String, String)], csrf: String? = nil) async throws -> Answer {
        var all = fields
        if !fields.contains(where: { $0.0 == "_csrf" }) { all.append(("_csrf", csrf ?? self.csrf ?? "")) }
        let body = all.map { "\(Self.encode($0.0))=\(Self.encode($0.1))" }.joined(separator: "&")
        return try await request(uri, method: .post, body: body, headers: [.contentType: "application/x-www-form-urlencoded"])
    }

    var csrf: String? {
        guard let range = page.range(of: #"name="_csrf" value="([0-9a-f]+)""#, options: .regularExpression) else { return nil }
        return String(page[range]).components(separatedBy: "value=\"").last?.replacingOccurrences(of: "\"", with: "")
    }

    static func encode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? ""
    }

    private func request(_ uri: String, method: HTTPRequest.Method, body: String?, headers: HTTPFields) async throws -> Answer {
        var headers = headers
        let cookies = self.cookies
        if !cookies.isEmpty { headers[.cookie] = cookies.map { "\($0.key)=\($0.value)" }.joined(separator: "; ") }
        let answer = try await client.execute(uri: uri, method: method, headers: headers, body: body.map { ByteBuffer(string: $0) }) {
            response in
            Answer(
                status: response.status,
                location: response.headers[.location],
                body: String(buffer: response.body),
                headers: response.headers
            )
        }
        state.withLock { state in
            for value in answer.headers[values: .setCookie] {
                let pair = value.split(separator: ";")[0].split(separator: "=", maxSplits: 1)
                guard pair.count == 2 else { continue }
                if value.contains("Expires=Thu, 01 Jan 1970") || value.contains("Max-Age=0") {
                    state.cookies.removeValue(forKey: String(pair[0]))
                } else {
                    state.cookies[String(pair[0])] = String(pair[1])
                }
            }
            if !answer.body.isEmpty { state.page = answer.body }
        }
        return answer
    }

    /// Signs in and returns the answer of the sign-in post.
    @discardableResult
    func signIn(_ username: String, password: String = DeskHarness.password, code: String = "") async throws -> Answer {
        try await get("/signin")
        return try await post("/signin", [("username", username), ("password", password), ("code", code)])
    }
}

/// Runs `body` with a browser on the desk's router (no sockets; the relay behind it is real).
@discardableResult
func withBrowser<T: Sendable>(_ desk: DeskServer, _ body: @Sendable (Browser) async throws -> T) async throws -> T {
    let app = Application(router: desk.router())
    return try await app.test(.router) { client in
        try await body(Browser(client))
    }
}
