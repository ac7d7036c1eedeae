import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostModel
import KetenpostProvisioning
import Testing

@testable import KetenpostEnvelope

/// Interoperability with the real `openssl` command and the real `ketenpost` executable,
/// using the recipes of docs/FORMAT.md exactly as written there.
@Suite(.serialized) struct InteropTests {
    /// A development PKI on disk, made by `ketenpost pki init`.
    final class Workspace: @unchecked Sendable {
        let dir: URL
        let pki: DevelopmentPKI
        private init(dir: URL, pki: DevelopmentPKI) {
            self.dir = dir
            self.pki = pki
        }

        static func make() async throws -> Workspace {
            let dir = try Paths.temporaryDirectory()
            let certs = dir.appendingPathComponent("certs").path
            let result = try await run(
                Paths.executable.path,
                [
                    "pki", "init", "--dir", certs,
                    "--partners", Paths.root.appendingPathComponent("config/partners.yaml").path,
                ]
            )
            guard result.status == 0 else { throw KetenpostError(.internalError, "pki init failed: \(result.stderr)") }
            return Workspace(dir: dir, pki: DevelopmentPKI(directory: certs))
        }
        deinit { try? FileManager.default.removeItem(at: dir) }

        func scratch() throws -> URL {
            let url = dir.appendingPathComponent(UUID().uuidString)
            try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
            return url
        }
    }

    /// Made once for the suite (serialized), on first use.
    static let workspace = WorkspaceBox()

    actor WorkspaceBox {
        private var made: Workspace?
        func get() async throws -> Workspace {
            if let made { return made }
            let new = try await Workspace.make()
            made = new
            return new
        }
    }

    /// The lines of the fenced block that starts with `# recipe: NAME` in docs/FORMAT.md.
    static func recipe(_ name: String) throws -> String {
        let text = try String(contentsOf: Paths.root.appendingPathComponent("docs/FORMAT.md"), encoding: .utf8)
        let marker = "# recipe: \(name)\n"
        guard let start = text.range(of: marker), let end = text.range(of: "\n```", range: start.upperBound..<text.endIndex) else {
            throw KetenpostError(.internalError, "recipe \(name) not found in docs/FORMAT.md")
        }
        return String(text[start.upperBound..<end.lowerBound])
    }

    func bash(_ script: String, in directory: URL, env: [String: String]) async throws -> ProcessResult {
        let exports = env.map { "export \($0.key)='\($0.value)'" }.sorted().joined(separator: "\n")
        return try await run("/bin/bash", ["-euo", "pipefail", "-c", exports + "\n" + script], directory: directory)
    }

    @Test(arguments: ["zorgcoordinatie-zuid-limburg", "belastingdienst"])
    func messageSealedWithOpenSSLRecipeOpensWithKetenpost(recipient: String) async throws {
        let ws = try await Self.workspace.get()
        let work = try ws.scratch()
        let (from, type) =
            recipient == "belastingdienst"
            ? ("politie-avim-limburg", MessageType.enforcementSignal) : ("gemeente-eijsden-margraten", .signal)
        let sealed = try await bash(
            try Self.recipe("seal"),
            in: work,
            env: [
                "SENDER": ws.pki.partnerDirectory(from), "FROM": from, "TO": recipient,
                "TO_CERT": ws.pki.partnerDirectory(recipient) + "/cert.pem", "TYPE": type.rawValue,
                "PAYLOAD": Paths.root.appendingPathComponent("config/examples/\(type.rawValue).json").path,
            ]
        )
        #expect(sealed.status == 0, "seal recipe failed: \(sealed.stderr)")

        let opened = try await run(
            Paths.executable.path,
            [
                "open", "--identity", ws.pki.partnerDirectory(recipient),
                "--trust", ws.pki.caCertificatePath, "--crl", ws.pki.crlPath,
                // Offline, the sender's OIN comes from the chain's partner list.
                "--partners", Paths.root.appendingPathComponent("config/partners.yaml").path,
                "--in", work.appendingPathComponent("message.der").path,
            ]
        )
        #expect(opened.status == 0, "ketenpost open failed: \(opened.stderr)")
        let content = try SealedContent.decode(from: opened.stdout)
        #expect(content.header.from == from)
        #expect(content.header.to == recipient)
        #expect(content.payload.encoded() == (try Payload.decode(from: try Paths.example(type))).encoded())
    }

    @Test func messageSealedByKetenpostOpensWithOpenSSLLayerByLayer() async throws {
        let ws = try await Self.workspace.get()
        let work = try ws.scratch()
        let from = "gemeente-eijsden-margraten"
        let to = "zorgcoordinatie-zuid-limburg"
        let sealed = try await run(
            Paths.executable.path,
            [
                "seal", "--identity", ws.pki.partnerDirectory(from), "--to", to,
                "--to-cert", ws.pki.partnerDirectory(to) + "/cert.pem", "--to-cert", ws.pki.partnerDirectory(to) + "/chain.pem", "--trust",
                ws.pki.caCertificatePath, "--type", "signal",
                "--region", "GM1903", "--exploitation-form", "labour",
                "--in", Paths.root.appendingPathComponent("config/examples/signal.json").path,
                "--out", work.appendingPathComponent("message.der").path,
            ]
        )
        #expect(sealed.status == 0, "ketenpost seal failed: \(sealed.stderr)")

        let opened = try await bash(
            try Self.recipe("open"),
            in: work,
            env: ["ME": ws.pki.partnerDirectory(to), "CA": ws.pki.caCertificatePath, "CRLS": ws.pki.crlPath]
        )
        #expect(opened.status == 0, "open recipe failed: \(opened.stderr)")
        let content = try SealedContent.decode(from: opened.stdout)
        #expect(content.header.from == from)
        #expect(content.header.region == "GM1903")
        // The outer JSON that openssl extracted holds the same header.
        let outer = try JSONSerialization.jsonObject(with: Data(contentsOf: work.appendingPathComponent("outer.json"))) as? [String: Any]
        #expect(
            (outer?["header"] as? [String: Any])?["id"] as? String == content.header.id.uuidString.lowercased()
                || (outer?["header"] as? [String: Any])?["id"] as? String == content.header.id.uuidString
        )
        // A wrong key does not open it with openssl either.
        let wrong = try await bash(
            try Self.recipe("open"),
            in: work,
            env: ["ME": ws.pki.partnerDirectory("opvang-zuid-limburg"), "CA": ws.pki.caCertificatePath, "CRLS": ws.pki.crlPath]
        )
        #expect(wrong.status != 0)
    }

    @Test func openReportsCodeAndSentenceOnFailure() async throws {
        let ws = try await Self.workspace.get()
        let work = try ws.scratch()
        let garbage = work.appendingPathComponent("garbage.der")
        try Data("not a message".utf8).write(to: garbage)
        let result = try await run(
            Paths.executable.path,
            [
                "open", "--identity", ws.pki.partnerDirectory("opvang-zuid-limburg"),
                "--trust", ws.pki.caCertificatePath, "--crl", ws.pki.crlPath, "--in", garbage.path,
            ]
        )
        #expect(result.status == 1)
        #expect(result.stderr.contains("envelope.malformed"))
        #expect(result.stdout.isEmpty)
    }

    @Test func sealRefusesInvalidPayloadWithPath() async throws {
        let ws = try await Self.workspace.get()
        let from = "gemeente-eijsden-margraten"
        let to = "zorgcoordinatie-zuid-limburg"
        let result = try await run(
            Paths.executable.path,
            [
                "seal", "--identity", ws.pki.partnerDirectory(from), "--to", to,
                "--to-cert", ws.pki.partnerDirectory(to) + "/cert.pem", "--to-cert", ws.pki.partnerDirectory(to) + "/chain.pem", "--trust",
                ws.pki.caCertificatePath, "--type", "signal",
            ],
            stdin: Data(#"{"schema":"ketenpost/signal/v1","urgency":"later"}"#.utf8)
        )
        #expect(result.status == 1)
        #expect(result.stderr.contains("payload.invalid"))
        #expect(result.stderr.contains("payload."))
        #expect(result.stdout.isEmpty)
    }

    /// A rotation and a revocation rehearsed with the development PKI commands.
    @Test func pkiIssueAndRevokeRehearseRotationAndRevocation() async throws {
        let ws = try await Self.workspace.get()
        let work = try ws.scratch()
        let partners = Paths.root.appendingPathComponent("config/partners.yaml").path
        let certs = ws.pki.directory.path
        let next = work.appendingPathComponent("next-maastricht").path
        let issued = try await run(
            Paths.executable.path,
            [
                "pki", "issue", "--dir", certs, "--partners", partners,
                "--partner", "gemeente-maastricht", "--out", next,
            ]
        )
        #expect(issued.status == 0, "\(issued.stderr)")
        let identity = try Identity.load(directory: next)
        let old = try Identity.load(directory: ws.pki.partnerDirectory("gemeente-maastricht"))
        #expect(identity.partnerID == "gemeente-maastricht" && identity.certificate != old.certificate)
        let mode = try FileManager.default.attributesOfItem(atPath: next + "/key.pem")[.posixPermissions] as? Int
        #expect(mode == 0o600)
        // Issuing into an existing identity is refused.
        #expect(
            try await run(
                Paths.executable.path,
                [
                    "pki", "issue", "--dir", certs, "--partners", partners,
                    "--partner", "gemeente-maastricht", "--out", next,
                ]
            ).status == 1
        )

        // The new certificate signs a message; once revoked, opening with the CRL refuses it.
        let to = "zorgcoordinatie-zuid-limburg"
        let message = work.appendingPathComponent("m.der").path
        let sealed = try await run(
            Paths.executable.path,
            [
                "seal", "--identity", next, "--to", to, "--to-cert", ws.pki.partnerDirectory(to) + "/cert.pem", "--to-cert",
                ws.pki.partnerDirectory(to) + "/chain.pem",
                "--trust", ws.pki.caCertificatePath, "--type", "signal",
                "--in", Paths.root.appendingPathComponent("config/examples/signal.json").path, "--out", message,
            ]
        )
        #expect(sealed.status == 0, "\(sealed.stderr)")
        let open = [
            "open", "--identity", ws.pki.partnerDirectory(to), "--trust", ws.pki.caCertificatePath, "--crl", ws.pki.crlPath,
            "--partners", partners, "--in", message,
        ]
        #expect(try await run(Paths.executable.path, open).status == 0)
        let revoked = try await run(Paths.executable.path, ["pki", "revoke", "--dir", certs, "--cert", next + "/cert.pem"])
        #expect(revoked.status == 0, "\(revoked.stderr)")
        let refused = try await run(Paths.executable.path, open)
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("certificate.revoked"), "\(refused.stderr)")
        // The old certificate is untouched by it.
        let crls = try RevocationList.loadAll(pemFile: ws.pki.crlPath)
        let store = try TrustStore(anchors: [try Certificate.load(pemFile: ws.pki.caCertificatePath)[0]], revocationLists: crls)
        try store.verify(old.certificate, chain: try ws.pki.chain(), for: .contentSigning)
    }

    /// The benchmark doubles as a leak check: resident memory after thousands of cycles.
    @Test func envelopeBenchRunsAndDoesNotLeak() async throws {
        let ws = try await Self.workspace.get()
        let report = ws.dir.appendingPathComponent("bench.json")
        let result = try await run(Paths.bench.path, ["envelope", "--iterations", "1500", "--warmup", "300", "--json", report.path])
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: report)) as? [String: Any]
        let before = json?["residentBytesAfterWarmup"] as? Int ?? 0
        let after = json?["residentBytesAtEnd"] as? Int ?? .max
        // 1,500 × 5 seal/verify/open cycles: leaking one small object per cycle would show as megabytes.
        #expect(after - before < 3_000_000, "resident memory grew from \(before) to \(after)")
    }
}
