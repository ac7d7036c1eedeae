import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostModel
import KetenpostProvisioning
import Testing

@testable import KetenpostEnvelope

/// A throwaway PKI in memory: a CA, an unrelated "evil" CA, and partner identities on demand.
final class TestPKI: @unchecked Sendable {
    let now = Date()
    let ca: CertificateIssuer
    let evilCA: CertificateIssuer
    let trust: TrustStore
    private let directory: PartnerDirectoryFile
    private let lock = NSLock()
    private var cache: [String: Identity] = [:]

    static let shared = try! TestPKI()

    init() throws {
        ca = try CertificateIssuer.selfSigned(DevelopmentPKI.caProfile(now: now, name: "Test CA"), key: .generate(.ecP256))
        evilCA = try CertificateIssuer.selfSigned(DevelopmentPKI.caProfile(now: now, name: "Test CA"), key: .generate(.ecP256))
        trust = try TrustStore(anchors: [ca.certificate])
        directory = try PartnerDirectoryFile.load(path: Paths.root.appendingPathComponent("config/partners.yaml").path)
    }

    func entry(_ id: String) -> PartnerEntry {
        directory.partner(id) ?? PartnerEntry(id: id, name: "Test \(id)", role: .municipality, oin: "00000009000000000001")
    }

    /// A fresh identity (not cached) with the given options.
    func makeIdentity(
        _ id: String,
        key kind: PrivateKey.Kind = .ecP256,
        issuer: CertificateIssuer? = nil,
        notBefore: Date? = nil,
        notAfter: Date? = nil
    ) throws -> Identity {
        let key = try PrivateKey.generate(kind)
        let profile = DevelopmentPKI.partnerProfile(entry(id), keyKind: kind, now: now, notBefore: notBefore, notAfter: notAfter)
        let certificate = try (issuer ?? ca).issue(profile, for: key)
        return try Identity(certificate: certificate, key: key)
    }

    /// A cached EC (or RSA) identity per partner id, for tests that only need "a valid partner".
    func identity(_ id: String, key kind: PrivateKey.Kind = .ecP256) throws -> Identity {
        let cacheKey = "\(id)/\(kind)"
        lock.lock()
        defer { lock.unlock() }
        if let found = cache[cacheKey] { return found }
        let made = try makeIdentity(id, key: kind)
        cache[cacheKey] = made
        return made
    }
}

enum Paths {
    /// The package root, found from this file's path.
    static let root: URL = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()

    static func example(_ type: MessageType) throws -> Data {
        try Data(contentsOf: root.appendingPathComponent("config/examples/\(type.rawValue).json"))
    }

    /// The `ketenpost` executable built next to the test bundle.
    static var executable: URL { program("ketenpost") }
    /// Benchmarks and the crash test.
    static var bench: URL { program("ketenpost-bench") }

    static func program(_ name: String) -> URL {
        let bin = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
        for candidate in [bin, bin.deletingLastPathComponent()] {
            let url = candidate.appendingPathComponent(name)
            if FileManager.default.isExecutableFile(atPath: url.path) { return url }
        }
        return root.appendingPathComponent(".build/debug/\(name)")
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}

struct ProcessResult {
    let status: Int32
    let stdout: Data
    let stderr: String
    var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
}

/// Runs a real command (openssl, the ketenpost CLI) and collects its output, on a Dispatch
/// thread: blocking the cooperative pool would starve other suites' in-process relays.
@discardableResult
func run(_ executable: String, _ arguments: [String], stdin: Data? = nil, directory: URL? = nil) async throws -> ProcessResult {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            do {
                continuation.resume(returning: try runBlocking(executable, arguments, stdin: stdin, directory: directory))
            } catch {
                continuation.resume(throwing: error)
            }
        }
    }
}

private func runBlocking(_ executable: String, _ arguments: [String], stdin: Data?, directory: URL?) throws -> ProcessResult {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = directory }
    let out = Pipe()
    let err = Pipe()
    let input = Pipe()
    process.standardOutput = out
    process.standardError = err
    process.standardInput = input
    try process.run()
    if let stdin { input.fileHandleForWriting.write(stdin) }
    try input.fileHandleForWriting.close()
    // Read both pipes before waiting, so that a large output cannot block the child.
    let group = DispatchGroup()
    nonisolated(unsafe) var outData = Data()
    nonisolated(unsafe) var errData = Data()
    group.enter()
    DispatchQueue.global().async {
        outData = out.fileHandleForReading.readDataToEndOfFile()
        group.leave()
    }
    errData = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    process.waitUntilExit()
    return ProcessResult(status: process.terminationStatus, stdout: outData, stderr: String(decoding: errData, as: UTF8.self))
}

let opensslPath: String = {
    for path in ["/usr/bin/openssl", "/usr/local/bin/openssl"] where FileManager.default.isExecutableFile(atPath: path) { return path }
    return "openssl"
}()

/// Draft content from the shipped example of `type`.
func exampleContent(_ type: MessageType, from: String, to: String, correlation: UUID? = nil) throws -> SealedContent {
    var options = Drafting.Options()
    options.correlationID = correlation ?? (type.answers != nil ? UUID() : nil)
    options.region = "GM1903"
    options.exploitationForm = .labour
    return try Drafting.content(type: type, from: from, to: to, payload: try Paths.example(type), options: options)
}

/// Expects `body` to throw a KetenpostError with `code`, and returns it.
@discardableResult
func expectCode(
    _ code: KetenpostError.Code,
    sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) -> KetenpostError? {
    do {
        try body()
        Issue.record("expected \(code), but nothing was thrown", sourceLocation: sourceLocation)
    } catch let error as KetenpostError {
        #expect(error.code == code, "got \(error)", sourceLocation: sourceLocation)
        return error
    } catch {
        Issue.record("expected \(code), got \(error)", sourceLocation: sourceLocation)
    }
    return nil
}
