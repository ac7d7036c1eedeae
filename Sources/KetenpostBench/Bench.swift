import ArgumentParser
import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning

@main
struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ketenpost-bench",
        abstract: "Ketenpost's benchmarks and crash test (docs/BENCHMARKS.md).",
        discussion: """
            Run them from a release build, next to the `ketenpost` they start as relay processes:
              swift build -c release && .build/release/ketenpost-bench envelope
              .build/release/ketenpost-bench relay --runs 3 --json sat.json
              .build/release/ketenpost-bench crash-test --kills 100 --messages 3000
            """,
        subcommands: [EnvelopeBench.self, RelayBench.self, BacklogBench.self, DeskBench.self, DeskAPIBench.self, CrashTest.self]
    )
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}

/// Seal, relay-side outer check and open of one payload size, on one core and on all cores.
struct EnvelopeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "envelope",
        abstract: "Measure seal, the relay's outer verification, and open of a sealed message.",
        discussion: """
            Creates a throwaway PKI in memory (EC P-256 unless --rsa), builds a signal payload of \
            --payload-size bytes, and times each operation over --iterations rounds after a warm-up. \
            Also reports resident memory after the warm-up and at the end, so that leaks show.
            """
    )

    @Option(help: "Timed rounds per operation.") var iterations: Int = 2_000
    @Option(help: "Untimed rounds first.") var warmup: Int = 200
    @Option(name: .customLong("payload-size"), help: "Payload JSON size in bytes.") var payloadSize: Int = 4_096
    @Option(help: "Recipient certificates per message (rotation overlap seals to two).") var recipients: Int = 1
    @Flag(help: "Use RSA-2048 keys instead of EC P-256.") var rsa = false
    @Option(help: "Write the results as JSON to this file.") var json: String?
    @Option(help: "Run only the operations whose name contains this text (for profiling).") var only: String?

    struct Result: Codable {
        var operation: String
        var iterations: Int
        var microsecondsPerOperation: Double
        var operationsPerSecond: Double
    }

    struct Report: Codable {
        var payloadBytes: Int
        var sealedBytes: Int
        var keyType: String
        var recipients: Int
        var results: [Result]
        var residentBytesAfterWarmup: Int
        var residentBytesAtEnd: Int
        var openssl: String
    }

    func run() async throws {
        let now = Date()
        let kind: PrivateKey.Kind = rsa ? .rsa(bits: 2048) : .ecP256
        let ca = try CertificateIssuer.selfSigned(DevelopmentPKI.caProfile(now: now, name: "Bench CA"), key: .generate(.ecP256))
        func identity(_ id: String) throws -> Identity {
            let key = try PrivateKey.generate(kind)
            let entry = PartnerEntry(id: id, name: id, role: .municipality, oin: "00000009000000000001")
            return try Identity(certificate: ca.issue(DevelopmentPKI.partnerProfile(entry, keyKind: kind, now: now), for: key), key: key)
        }
        let sender = try identity("gemeente-eijsden-margraten")
        let recipientIdentities = try (0..<max(1, recipients)).map { _ in try identity("zorgcoordinatie-zuid-limburg") }
        let recipient = recipientIdentities[0]
        let trust = try TrustStore(anchors: [ca.certificate])
        let payload = Self.signalPayload(bytes: payloadSize)
        let content = try Drafting.content(type: .signal, from: sender.partnerID, to: recipient.partnerID, payload: payload)
        let certificates = recipientIdentities.map(\.certificate)
        let sealed = try Envelope.seal(content, from: sender, to: certificates, trust: trust)

        // The same CMS work without any of ours (JSON, validation, checks): the floor that
        // OpenSSL's CMS sets, to tell our overhead apart from the library's.
        let innerBytes = content.encoded()
        let rawSeal = {
            let inner = try CMS.sign(innerBytes, signer: sender.certificate, key: sender.key)
            let encrypted = try CMS.encrypt(inner, for: certificates)
            return try CMS.sign(encrypted.base64EncodedData(), signer: sender.certificate, key: sender.key)
        }
        let rawSealed = try rawSeal()
        let rawOpen = {
            let outer = try CMS.verifySignature(rawSealed)
            try trust.verify(outer.signer, for: .contentSigning)
            let inner = try CMS.decrypt(Data(base64Encoded: outer.content)!, certificate: recipient.certificate, key: recipient.key)
            _ = try CMS.verifySignature(inner)
        }
        let operations: [(String, () throws -> Void)] = [
            ("raw CMS: sign + encrypt + sign", { _ = try rawSeal() }),
            ("raw CMS: verify outer", { _ = try CMS.verifySignature(rawSealed) }),
            ("raw CMS: verify + decrypt + verify", { try rawOpen() }),
            ("seal", { _ = try Envelope.seal(content, from: sender, to: certificates, trust: trust) }),
            ("relay outer verification", { _ = try Envelope.readOuter(sealed, trust: trust) }),
            ("open", { _ = try Envelope.open(sealed, as: recipient, trust: trust) }),
            (
                "seal + outer verification + open",
                {
                    let message = try Envelope.seal(content, from: sender, to: certificates, trust: trust)
                    _ = try Envelope.readOuter(message, trust: trust)
                    _ = try Envelope.open(message, as: recipient, trust: trust)
                }
            ),
        ]
        let selected = operations.filter { only == nil || $0.0.contains(only!) }
        for (_, body) in selected { for _ in 0..<warmup { try body() } }
        let rssAfterWarmup = Self.residentBytes()
        var results: [Result] = []
        for (name, body) in selected {
            let clock = ContinuousClock()
            let elapsed = try clock.measure { for _ in 0..<iterations { try body() } }
            results.append(Self.result(name, iterations, elapsed))
        }
        // All cores: the same full cycle from one task per core.
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let perTask = iterations / cores
        let clock = ContinuousClock()
        let start = clock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<cores {
                group.addTask {
                    for _ in 0..<perTask {
                        let message = try Envelope.seal(content, from: sender, to: certificates, trust: trust)
                        _ = try Envelope.readOuter(message, trust: trust)
                        _ = try Envelope.open(message, as: recipient, trust: trust)
                    }
                }
            }
            try await group.waitForAll()
        }
        results.append(Self.result("seal + outer verification + open, \(cores) tasks", perTask * cores, clock.now - start))

        let report = Report(
            payloadBytes: payload.count,
            sealedBytes: sealed.count,
            keyType: rsa ? "rsa-2048" : "ec-p256",
            recipients: certificates.count,
            results: results,
            residentBytesAfterWarmup: rssAfterWarmup,
            residentBytesAtEnd: Self.residentBytes(),
            openssl: OpenSSLInfo.version
        )
        print(
            """
            Envelope benchmark: \(report.keyType), payload \(report.payloadBytes) B, sealed \(report.sealedBytes) B, \
            \(report.recipients) recipient(s), \(OpenSSLInfo.version)
            """
        )
        for result in results {
            let name = result.operation.padding(toLength: 44, withPad: " ", startingAt: 0)
            print(
                """
                  \(name) \(String(format: "%9.1f", result.microsecondsPerOperation)) µs/op  \
                \(String(format: "%9.0f", result.operationsPerSecond)) op/s
                """
            )
        }
        print("  resident memory: \(rssAfterWarmup / 1024) KiB after warm-up, \(report.residentBytesAtEnd / 1024) KiB at the end")
        if let json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(report).write(to: URL(fileURLWithPath: json))
        }
    }

    static func result(_ name: String, _ count: Int, _ elapsed: Duration) -> Result {
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return Result(
            operation: name,
            iterations: count,
            microsecondsPerOperation: seconds / Double(max(count, 1)) * 1e6,
            operationsPerSecond: Double(count) / seconds
        )
    }

    /// A valid signal whose JSON is about `bytes` long (notes pad it out).
    static func signalPayload(bytes: Int) -> Data {
        let base = """
            {"schema":"ketenpost/signal/v1","observedOn":"2026-11-20","place":{"description":"Bedrijventerrein","municipality":"GM1903"},\
            "exploitationForms":["labour"],"indicators":["Geen eigen identiteitsbewijs","Woont op het werkadres"],"urgency":"urgent",\
            "person":{"alias":"Bench"},\
            "reporter":{"organisation":"gemeente-eijsden-margraten","name":"Wijkteam","phone":"+31 43 458 8488"},\
            "consent":"not-asked","legalBasis":"legal-task","notes":"
            """
        let padding = max(0, min(bytes - base.utf8.count - 2, 10_000))
        return Data((base + String(repeating: "x", count: padding) + "\"}").utf8)
    }

    static func residentBytes() -> Int {
        guard let text = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
        let fields = text.split(separator: " ")
        guard fields.count > 1, let pages = Int(fields[1]) else { return 0 }
        return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}
