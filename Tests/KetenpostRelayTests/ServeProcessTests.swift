import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import Testing

/// `ketenpost serve` as a real process: it starts from a configuration file, answers over
/// mutual TLS, stops on SIGTERM with status 0, and what it accepted is there after a restart.
@Suite struct ServeProcessTests {
    static var binary: String { program("ketenpost") }
    /// Benchmarks and the crash test.
    static var bench: String { program("ketenpost-bench") }

    static func program(_ name: String) -> String {
        let next = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(name)
        return FileManager.default.isExecutableFile(atPath: next.path) ? next.path : Root.path(".build/debug/\(name)")
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
                    if chunk.isEmpty {
                        continuation.resume(returning: nil)
                        return
                    }
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
        let sender = try RelayClient(
            relay: URL(string: "https://127.0.0.1:\(port)")!,
            identity: try Identity.load(directory: pki.partnerDirectory(municipality)),
            trust: trust,
            relayID: DevelopmentPKI.relayID
        )
        let sent = try await sender.send(payload: payload, type: .signal, to: coordinator)
        try await sender.shutdown()
        kill(first.processIdentifier, SIGTERM)
        #expect(await waitForExit(first) == 0, "serve must exit cleanly on SIGTERM")

        let (second, newPort) = try await start(config: configFile, in: dir)
        let recipient = try RelayClient(
            relay: URL(string: "https://127.0.0.1:\(newPort)")!,
            identity: try Identity.load(directory: pki.partnerDirectory(coordinator)),
            trust: trust,
            relayID: DevelopmentPKI.relayID
        )
        let received = try await recipient.receive()
        #expect(received.map(\.id) == [sent.header.id])
        try await recipient.shutdown()
        kill(second.processIdentifier, SIGINT)
        #expect(await waitForExit(second) == 0)
    }

    @Test func sighupReloadsTheRelayCertificateAndAdminWorksFromTheCommandLine() async throws {
        let pki = SharedPKI.shared.pki
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-sighup-\(UUID().uuidString.prefix(8))")
        let live = dir.appendingPathComponent("relay")
        try FileManager.default.createDirectory(at: live, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for file in ["cert.pem", "key.pem"] {
            try FileManager.default.copyItem(atPath: pki.relayDirectory + "/" + file, toPath: live.appendingPathComponent(file).path)
        }
        // File checks only once an hour: what reloads within the test is SIGHUP.
        let config = """
            listen: {host: 127.0.0.1, port: 0}
            store: {path: \(dir.path)/store/ketenpost.sqlite}
            tls: {certificate: \(live.path)/cert.pem, key: \(live.path)/key.pem, trustAnchors: \(pki.caCertificatePath), crls: \
            [\(pki.crlPath)], reloadInterval: 1h}
            directory: {partners: \(SharedPKI.shared.partnersFile), policy: \(Root.path("config/policy.yaml")), certificates: \
            \(pki.directory.path)/partners}
            admin: {certificates: [\(pki.adminDirectory)/cert.pem]}

            """
        let configFile = dir.appendingPathComponent("ketenpost.yaml").path
        try config.write(toFile: configFile, atomically: true, encoding: .utf8)
        let (process, port) = try await start(config: configFile, in: dir)
        defer { if process.isRunning { process.terminate() } }
        let me = pki.partnerDirectory(municipality)
        let probe =
            """
            openssl s_client -connect 127.0.0.1:\(port) -CAfile '\(pki.caCertificatePath)' -cert '\(me)/cert.pem' -key \
            '\(me)/key.pem' </dev/null 2>/dev/null | openssl x509 -noout -serial
            """
        let oldSerial = try Certificate.load(pemFile: live.path + "/cert.pem")[0].serialNumberHex
        #expect(try await shell(probe).stdout.contains(oldSerial))

        let next = dir.appendingPathComponent("next")
        let newCertificate = try pki.issueRelay(into: next.path)
        for file in ["key.pem", "cert.pem"] {
            _ = rename(next.appendingPathComponent(file).path, live.appendingPathComponent(file).path)
        }
        kill(process.processIdentifier, SIGHUP)
        var served = ""
        for _ in 0..<50 where !served.contains(newCertificate.serialNumberHex) {
            try await Task.sleep(for: .milliseconds(100))
            served = try await shell(probe).stdout
        }
        #expect(served.contains(newCertificate.serialNumberHex), "after SIGHUP: \(served)")

        // `ketenpost admin` against the running relay, with the administrator certificate ...
        let common = "--relay https://127.0.0.1:\(port) --trust '\(pki.caCertificatePath)'"
        let list = try await shell("'\(Self.binary)' admin partners list --identity '\(pki.adminDirectory)' \(common)")
        #expect(list.status == 0 && list.stdout.contains(coordinator) && list.stdout.contains("active"), "\(list.stderr)")
        let expiring = try await shell("'\(Self.binary)' admin certs expiring --within 400d --identity '\(pki.adminDirectory)' \(common)")
        #expect(expiring.status == 0 && expiring.stdout.contains(coordinator), "\(expiring.stderr)")
        let suspend = try await shell(
            "'\(Self.binary)' admin partners suspend gemeente-maastricht --identity '\(pki.adminDirectory)' \(common)"
        )
        #expect(suspend.status == 0 && suspend.stdout.contains("suspended"), "\(suspend.stderr)")
        let events = try await shell("'\(Self.binary)' admin events --identity '\(pki.adminDirectory)' \(common)")
        #expect(events.stdout.contains("admin:ketenpost-admin  partner.suspended  gemeente-maastricht"), "\(events.stdout)")
        // ... and refused with a partner's certificate.
        let refused = try await shell("'\(Self.binary)' admin partners list --identity '\(me)' \(common)")
        #expect(refused.status == 1 && refused.stderr.contains("auth.not-administrator"), "\(refused.stderr)")

        kill(process.processIdentifier, SIGTERM)
        #expect(await waitForExit(process) == 0)
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
