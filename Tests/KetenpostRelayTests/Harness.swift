import AsyncHTTPClient
import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostConformance
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import KetenpostStore
import KetenpostTestSupport
import Logging
import NIOSSL
import Synchronization
import Testing

/// A clock the tests move by hand, so that leases, expiry and retention need no sleeping.
final class TestClock: Sendable {
    private let now = Mutex(Date())
    func callAsFunction() -> Date { now.withLock { $0 } }
    func advance(by seconds: TimeInterval) { now.withLock { $0 = $0.addingTimeInterval(seconds) } }
}

enum Root {
    static let url = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static func path(_ relative: String) -> String { url.appendingPathComponent(relative).path }
}

/// One development PKI on disk for the whole test run (key generation is the slow part),
/// with two extra partners: a suspended municipality and a second identity of one partner
/// that is not registered in the directory.
final class SharedPKI: Sendable {
    let directory: URL
    let pki: DevelopmentPKI
    let partnersFile: String
    let evilCA: CertificateIssuer

    static let shared = try! SharedPKI()

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-relay-tests-\(UUID().uuidString.prefix(8))")
        pki = DevelopmentPKI(directory: directory.appendingPathComponent("certs").path)
        var partners = try PartnerDirectoryFile.load(path: Root.path("config/partners.yaml"))
        partners.partners.append(
            PartnerEntry(
                id: "gemeente-geschorst",
                name: "Gemeente Geschorst",
                role: .municipality,
                oin: "00000001000000000099",
                state: .suspended
            )
        )
        partners.partners.append(
            PartnerEntry(
                id: "gemeente-ingetrokken",
                name: "Gemeente Ingetrokken",
                role: .municipality,
                oin: "00000001000000000098"
            )
        )
        try pki.create(partners: partners.partners)
        // One partner whose certificate is on the CA's revocation list.
        let revoked = try Certificate.load(pemFile: pki.partnerDirectory("gemeente-ingetrokken") + "/cert.pem")
        try pki.revoke(serials: revoked.map(\.serialNumberHex))
        // An identity with a valid certificate from the right CA that the directory does not list.
        let ca = try pki.loadCA()
        let key = try PrivateKey.generate(.ecP256)
        let entry = partners.partner("gemeente-maastricht")!
        let certificate = try ca.issue(DevelopmentPKI.partnerProfile(entry, keyKind: .ecP256, now: Date()), for: key)
        let rogue = directory.appendingPathComponent("unregistered-maastricht")
        try FileManager.default.createDirectory(at: rogue, withIntermediateDirectories: true)
        try certificate.pem.write(to: rogue.appendingPathComponent("cert.pem"), atomically: true, encoding: .utf8)
        try key.pem().write(to: rogue.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)
        try pki.chain().map(\.pem).joined().write(to: rogue.appendingPathComponent("chain.pem"), atomically: true, encoding: .utf8)
        // A partner identity from a CA nobody trusts.
        evilCA = try CertificateIssuer.selfSigned(DevelopmentPKI.caProfile(now: Date(), name: "Evil CA"), key: .generate(.ecP256))
        let evilKey = try PrivateKey.generate(.ecP256)
        let evilCert = try evilCA.issue(DevelopmentPKI.partnerProfile(entry, keyKind: .ecP256, now: Date()), for: evilKey)
        let evil = directory.appendingPathComponent("evil-maastricht")
        try FileManager.default.createDirectory(at: evil, withIntermediateDirectories: true)
        try evilCert.pem.write(to: evil.appendingPathComponent("cert.pem"), atomically: true, encoding: .utf8)
        try evilKey.pem().write(to: evil.appendingPathComponent("key.pem"), atomically: true, encoding: .utf8)

        partnersFile = directory.appendingPathComponent("partners.yaml").path
        let yaml =
            try String(contentsOfFile: Root.path("config/partners.yaml"), encoding: .utf8) + """
                  - id: gemeente-geschorst
                    name: Gemeente Geschorst
                    role: municipality
                    oin: "00000001000000000099"
                    state: suspended
                  - id: gemeente-ingetrokken
                    name: Gemeente Ingetrokken
                    role: municipality
                    oin: "00000001000000000098"

                """
        try yaml.write(toFile: partnersFile, atomically: true, encoding: .utf8)
    }

    func identityDirectory(_ id: String) -> String {
        switch id {
        case "unregistered-maastricht", "evil-maastricht": return directory.appendingPathComponent(id).path
        default: return pki.partnerDirectory(id)
        }
    }
}

/// A relay on 127.0.0.1, port 0, with its own SQLite file, and clients for the partners.
final class Harness: Sendable {
    let shared = SharedPKI.shared
    let clock = TestClock()
    /// Every log line of the relay, at trace level, as the tests capture it.
    let log = LogLines()
    let work: URL
    let configuration: RelayConfiguration
    private let running = Mutex<RunningRelay?>(nil)
    private let clients = Mutex<[RelayClient]>([])

    init(_ adjust: (inout RelayConfiguration) -> Void = { _ in }) async throws {
        work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-relay-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        var c = RelayConfiguration.development(
            pki: shared.pki,
            storePath: work.appendingPathComponent("store/ketenpost.sqlite").path,
            partnersFile: shared.partnersFile,
            policyFile: Root.path("config/policy.yaml")
        )
        c.developmentPKI.directory = nil
        c.queue.leaseDuration = 30
        c.queue.maxAttempts = 3
        c.queue.retention = 3600
        c.queue.sweepInterval = 3600  // the tests sweep by hand
        c.limits.ratePerSecond = 1000
        c.limits.rateBurst = 1000
        // Tests make a new client (and connection pool) per step and close them all at the end;
        // the per-partner budget has its own test (ConnectionLimitTests).
        c.limits.maxConnectionsPerPartner = 1000
        adjust(&c)
        configuration = c
        try await start()
    }

    var relay: RunningRelay { running.withLock { $0! } }
    var url: URL { relay.url }
    var store: any MessageStore { relay.core.store }

    func start() async throws {
        let log = self.log
        var logger = Logger(label: "test.relay", factory: { _ in CapturingLogHandler(lines: log) })
        logger.logLevel = .trace
        let clock = self.clock
        let server = try await RelayServer.prepare(
            configuration,
            logger: logger,
            clock: { clock() },
            hostedPartners: ConformanceEcho.hosted(by: configuration)
        )
        let started = try await RunningRelay.start(server, logger: logger)
        running.withLock { $0 = started }
    }

    /// Stops the relay (graceful shutdown) and starts a new one on the same store file.
    func restart() async throws {
        await relay.stop()
        try await start()
    }

    /// The development PKI's anchors and CRLs, with its issuing CA as a path-building intermediate.
    var trust: TrustStore {
        get throws {
            try TrustStore.load(
                anchorsFile: shared.pki.caCertificatePath,
                crlFiles: [shared.pki.crlPath],
                intermediates: shared.pki.chain()
            )
        }
    }

    func client(_ id: String) throws -> RelayClient {
        let client = try RelayClient(
            relay: url,
            identity: try Identity.load(directory: shared.identityDirectory(id)),
            trust: try trust,
            relayID: DevelopmentPKI.relayID
        )
        clients.withLock { $0.append(client) }
        return client
    }

    /// A client with any identity directory, optionally with further keys to open messages with.
    func client(identity directory: String, decryption: [String] = []) throws -> RelayClient {
        let client = try RelayClient(
            relay: url,
            identity: try Identity.load(directory: directory),
            trust: try trust,
            relayID: DevelopmentPKI.relayID,
            decryptionIdentities: try decryption.map { try Identity.load(directory: $0) }
        )
        clients.withLock { $0.append(client) }
        return client
    }

    /// The development PKI's administrator.
    func admin() throws -> RelayClient { try client(identity: shared.pki.adminDirectory) }

    /// Shuts `client` down with the harness.
    func track(_ client: RelayClient) -> RelayClient {
        clients.withLock { $0.append(client) }
        return client
    }

    /// Issues a new certificate and key for a partner from the development CA, into this harness's folder.
    func issue(
        _ partner: String,
        validDays: Double = 365,
        name: String = UUID().uuidString
    ) throws -> (directory: String, certificate: Certificate) {
        let entry =
            try PartnerDirectoryFile.load(path: shared.partnersFile).partner(partner)
            ?? PartnerEntry(id: partner, name: partner, role: .municipality, oin: "00000001000000000097")
        let directory = work.appendingPathComponent("issued/\(name)").path
        let certificate = try shared.pki.issue(for: entry, validity: validDays * 86_400, into: directory)
        return (directory, certificate)
    }

    func example(_ type: MessageType) throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: Root.path("config/examples/\(type.rawValue).json")))
    }

    func shutdown() async {
        for client in clients.withLock({ $0 }) { try? await client.shutdown() }
        await relay.stop()
        try? FileManager.default.removeItem(at: work)
    }
}

/// Runs `body` with a fresh harness and always shuts it down.
func withRelay(_ adjust: (inout RelayConfiguration) -> Void = { _ in }, _ body: (Harness) async throws -> Void) async throws {
    let harness = try await Harness(adjust)
    do {
        try await body(harness)
    } catch {
        await harness.shutdown()
        throw error
    }
    await harness.shutdown()
}

/// Expects a relay error with `code`.
func expectRelayError(
    _ code: KetenpostError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () async throws -> Void
) async {
    do {
        try await body()
        Issue.record("expected \(code), but the call succeeded", sourceLocation: sourceLocation)
    } catch let error as KetenpostError {
        #expect(error.code == code, "got \(error)", sourceLocation: sourceLocation)
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
}

/// Expects the TLS handshake to fail: no HTTP answer at all.
func expectHandshakeFailure(sourceLocation: SourceLocation = #_sourceLocation, _ body: () async throws -> Void) async {
    await expectRelayError(.tlsHandshakeFailed, sourceLocation: sourceLocation, body)
}

struct Shell {
    let status: Int32
    let stdout: String
    let stderr: String
}

/// Runs a shell script (curl, openssl, the ketenpost binary) on a Dispatch thread, never on
/// the cooperative pool: blocking it would starve the in-process relay the script talks to.
@discardableResult
func shell(_ script: String, in directory: URL? = nil, env: [String: String] = [:]) async throws -> Shell {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                continuation.resume(returning: try shellBlocking(script, in: directory, env: env))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

private func shellBlocking(_ script: String, in directory: URL?, env: [String: String]) throws -> Shell {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: "/bin/bash")
    process.arguments = ["-c", script]
    if let directory { process.currentDirectoryURL = directory }
    process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
    let out = Pipe()
    let err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data()
    group.enter()
    DispatchQueue.global().async {
        outData = out.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return Shell(
        status: process.terminationStatus,
        stdout: String(decoding: outData, as: UTF8.self),
        stderr: String(decoding: errData, as: UTF8.self)
    )
}

/// Collected log output, for tests that check what the relay writes to its logs.
final class LogLines: Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: [String] { lines.withLock { $0 } }
}

/// A swift-log handler that renders lines as the stream handler would (message and metadata).
struct CapturingLogHandler: LogHandler {
    let lines: LogLines
    var logLevel: Logger.Level = .trace
    var metadata: Logger.Metadata = [:]
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }
    func log(event: LogEvent) {
        let all = self.metadata.merging(event.metadata ?? [:]) { $1 }
        lines.append("\(event.level) \(event.message) \(all.map { "\($0)=\($1)" }.sorted().joined(separator: " "))")
    }
}

/// A throwaway database on the shared test server for `body`, dropped afterwards. Without
/// PostgreSQL binaries the test is skipped loudly, or fails in CI (where `.ci/run` installs them).
func withPostgresDatabase(
    _ test: String = #function,
    _ body: (PostgresTestServer, String) async throws -> Void
) async throws {
    let server: PostgresTestServer
    switch PostgresTestServer.binaries {
    case .success:
        server = try await PostgresTestServer.shared()
    case .failure(let error):
        if ProcessInfo.processInfo.environment["CI"] != nil {
            Issue.record("PostgreSQL is required in CI: \(error)")
        } else {
            print("⚠️  SKIPPED \(test): \(error)")
        }
        return
    }
    let database = try await server.createDatabase()
    defer { server.dropDatabase(database) }
    try await body(server, database)
}
