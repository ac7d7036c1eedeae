import Foundation
import Ketenpost
import KetenpostClient
import KetenpostCrypto
import KetenpostModel
import Testing

/// `ketenpost serve` as a real process: it starts from a configuration file, answers over
/// mutual TLS, stops on SIGTERM with status 0, and what it accepted is there after a restart.
@Suite struct ServeProcessTests {
    static var binary: String {
        let next = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ketenpost")
        return FileManager.default.isExecutableFile(atPath: next.path) ? next.path : Root.path(".build/debug/ketenpost")
    }

    /// Starts `serve` and returns the process and the port it printed.
    func start(config: String, in directory: URL) async throws -> (Process, Int) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Self.binary)
        process.arguments = ["serve", "--config", config, "--log-level", "warning"]
        process.currentDirectoryURL = directory
        let out = Pipe()
        process.standardOutput = out
        process.standardError = FileHandle.nullDevice
        try process.run()
        let port: Int? = await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                var text = ""
                while true {
                    let chunk = out.fileHandleForReading.availableData
                    if chunk.isEmpty { continuation.resume(returning: nil); return }
                    text += String(decoding: chunk, as: UTF8.self)
                    if let range = text.range(of: #"https://127\.0\.0\.1:(\d+)"#, options: .regularExpression) {
                        continuation.resume(returning: Int(text[range].split(separator: ":").last!))
                        return
                    }
                }
            }
        }
        guard let port else {
            process.terminate()
            throw KetenpostError(.internalError, "serve did not print its address")
        }
        return (process, port)
    }

    func waitForExit(_ process: Process) async -> Int32 {
        await withCheckedContinuation { continuation in
            DispatchQueue.global().async {
                process.waitUntilExit()
                continuation.resume(returning: process.terminationStatus)
            }
        }
    }

    @Test func serveStopsGracefullyOnSIGTERMAndKeepsWhatItAccepted() async throws {
        let pki = SharedPKI.shared.pki
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-serve-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        let config = """
            listen: {host: 127.0.0.1, port: 0}
            store: {path: \(dir.path)/store/ketenpost.sqlite}
            tls:
              certificate: \(pki.relayDirectory)/cert.pem
              key: \(pki.relayDirectory)/key.pem
              trustAnchors: \(pki.caCertificatePath)
              crls: [\(pki.crlPath)]
            directory:
              partners: \(Root.path("config/partners.yaml"))
              policy: \(Root.path("config/policy.yaml"))
              certificates: \(pki.directory.path)/partners
            admin:
              certificates: [\(pki.adminDirectory)/cert.pem]

            """
        let configFile = dir.appendingPathComponent("ketenpost.yaml").path
        try config.write(toFile: configFile, atomically: true, encoding: .utf8)
        let trust = try TrustStore.load(anchorsFile: pki.caCertificatePath)
        let payload = try Data(contentsOf: URL(fileURLWithPath: Root.path("config/examples/signal.json")))

        let (first, port) = try await start(config: configFile, in: dir)
        let sender = try RelayClient(relay: URL(string: "https://127.0.0.1:\(port)")!,
                                     identity: try Identity.load(directory: pki.partnerDirectory(municipality)), trust: trust)
        let sent = try await sender.send(payload: payload, type: .signal, to: coordinator)
        try await sender.shutdown()
        kill(first.processIdentifier, SIGTERM)
        #expect(await waitForExit(first) == 0, "serve must exit cleanly on SIGTERM")

        let (second, newPort) = try await start(config: configFile, in: dir)
        let recipient = try RelayClient(relay: URL(string: "https://127.0.0.1:\(newPort)")!,
                                        identity: try Identity.load(directory: pki.partnerDirectory(coordinator)), trust: trust)
        let received = try await recipient.receive()
        #expect(received.map(\.id) == [sent.header.id])
        try await recipient.shutdown()
        kill(second.processIdentifier, SIGINT)
        #expect(await waitForExit(second) == 0)
    }

    @Test func serveRefusesAnInvalidConfiguration() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-serve-bad-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        try "queue:\n  maxAttempts: many\n".write(to: dir.appendingPathComponent("bad.yaml"), atomically: true, encoding: .utf8)
        let result = try await shell("'\(Self.binary)' serve --config bad.yaml", in: dir)
        #expect(result.status == 1)
        #expect(result.stderr.contains("config.invalid"))
        #expect(result.stderr.contains("bad.yaml"))
        #expect(result.stderr.contains("maxAttempts"))
    }
}
