import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostProvisioning
import KetenpostRelay
import KetenpostStore

/// `ketenpost audit verify`: checks the hash chain and the relay's signed checkpoints.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the relay's tamper-evident audit trail.",
        discussion: """
            See `ketenpost help audit verify` and docs/SECURITY.md.
            Examples:
              ketenpost audit verify --store data/ketenpost.sqlite
            """,
        subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the audit trail's hash chain and signed checkpoints; report the first record changed, removed or reordered.",
            discussion: """
                Reads a SQLite store file read-only (a copy is fine), or a PostgreSQL store through \
                --store-url (SELECTs only; a role with read access to audit_log and audit_checkpoints \
                is enough). The URL's password is never printed. Exit status 0: intact; 1: tampered \
                or unreadable. Records older than --checkpoint-interval (plus a minute) that no checkpoint \
                signs count as tampering (checkpoints removed). Keep the last checkpoint you saw with \
                --save-checkpoint and give it next time with --since-checkpoint: the trail must still hold \
                what it signed.
                Examples:
                  ketenpost audit verify --store data/ketenpost.sqlite \\
                    --trust certs/dev/ca/cert.pem
                  ketenpost audit verify \\
                    --store-url 'postgres://auditor@db.internal/ketenpost?sslmode=verify-full'
                  ketenpost audit verify --store-url sqlite:///var/lib/ketenpost/copy.sqlite \\
                    --json
                  ketenpost audit verify --since-checkpoint seen.json --save-checkpoint seen.json
                """
        )

        @Option(
            help: ArgumentHelp("The relay's SQLite store file (default: data/ketenpost.sqlite).", valueName: "path"),
            completion: .file(extensions: ["sqlite"])
        )
        var store: String?
        @Option(
            name: .customLong("store-url"),
            help: ArgumentHelp(
                "The relay's store as a URL: sqlite:///PATH or postgres://USER@HOST:PORT/DATABASE?sslmode=MODE.",
                valueName: "url"
            )
        )
        var storeURL: String?
        @Option(help: "Trust anchors (PEM) for the relay's checkpoint signatures.", completion: .file(extensions: ["pem"]))
        var trust: String = "certs/dev/ca/cert.pem"
        @Option(name: .customLong("relay-id"), help: "The relay's id (commonName of its certificate).") var relayID: String = DevelopmentPKI
            .relayID
        @Flag(help: "Print the report as JSON.") var json = false
        @Option(
            name: .customLong("checkpoint-interval"),
            help: ArgumentHelp(
                "The relay's audit.checkpointInterval (5m, 1h …); older unsigned records are reported. `off`: no such check (an old copy).",
                valueName: "duration"
            )
        )
        var checkpointInterval: String = "5m"
        @Option(
            name: .customLong("since-checkpoint"),
            help: ArgumentHelp("A checkpoint saved by an earlier run (--save-checkpoint): it must still hold.", valueName: "file"),
            completion: .file(extensions: ["json"])
        )
        var sinceCheckpoint: String?
        @Option(
            name: .customLong("save-checkpoint"),
            help: ArgumentHelp("Write the newest valid checkpoint here, for --since-checkpoint next time.", valueName: "file"),
            completion: .file(extensions: ["json"])
        )
        var saveCheckpoint: String?

        func validate() throws {
            if store != nil && storeURL != nil { throw ValidationError("Give either --store or --store-url, not both.") }
            if checkpointInterval != "off" && Drafting.parseDuration(checkpointInterval) == nil {
                throw ValidationError("--checkpoint-interval must be a duration such as 5m or 1h, or off.")
            }
        }

        func run() async throws {
            do {
                let location = try storeLocation()
                // No CRLs: a checkpoint is judged by the certificate's validity when it was signed.
                let anchors = try TrustStore.load(anchorsFile: trust)
                let pinned = try sinceCheckpoint.map(SavedCheckpoint.load)
                let freshness = Drafting.parseDuration(checkpointInterval).map { AuditTrail.Freshness(interval: $0, now: Date()) }
                let opened = try await open(location)
                let report: AuditTrail.Report
                let checkpoints: [AuditCheckpoint]
                do {
                    (report, checkpoints) = try await opened.withRunning {
                        let report = try await AuditTrail.verify(
                            store: opened,
                            trust: anchors,
                            relayID: relayID,
                            freshness: freshness,
                            pinned: pinned
                        )
                        return (report, try await opened.auditCheckpoints())
                    }
                } catch {
                    throw KetenpostError(
                        .storeUnavailable,
                        """
                        The audit trail in \(location.redacted) cannot be read; check that the store is reachable and holds a relay's \
                        tables (\(error)).
                        """
                    )
                }
                if json {
                    printJSON(report)
                } else if report.ok {
                    print(
                        """
                        Audit trail intact: \(report.records) records, \(report.checkpoints) checkpoints; signed up to record \
                        \(report.lastCheckpoint.map(String.init) ?? "none").
                        """
                    )
                } else {
                    print("Audit trail TAMPERED: \(report.records) records, \(report.checkpoints) checkpoints.")
                    for problem in report.problems { print("  record \(problem.sequence): \(problem.kind.rawValue): \(problem.message)") }
                }
                if !report.ok { throw ExitCode(1) }
                if let saveCheckpoint, let newest = checkpoints.last(where: { $0.sequence == report.lastCheckpoint }) {
                    try SavedCheckpoint.save(newest, to: saveCheckpoint)
                }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                throw fail(error)
            }
        }

        func storeLocation() throws -> StoreLocation {
            guard let storeURL else { return .sqlite(path: store ?? "data/ketenpost.sqlite") }
            // The text may hold a password: the message does not repeat it.
            guard let location = StoreLocation.parse(storeURL) else {
                throw KetenpostError(
                    .configInvalid,
                    "--store-url must be sqlite:///PATH or postgres://USER@HOST:PORT/DATABASE?sslmode=MODE."
                )
            }
            return location
        }

        /// SQLite read-only (the factory opens files for writing); PostgreSQL through the factory,
        /// which sends nothing but the SELECTs `verify` makes (no migration).
        func open(_ location: StoreLocation) async throws -> any RelayStore {
            switch location {
            case .sqlite(let path):
                do { return try SQLiteMessageStore(path: path, readOnly: true) } catch {
                    throw KetenpostError(
                        .configInvalid,
                        "\(location.redacted) cannot be opened read-only: \(error). Check the path (a copy of the file is fine)."
                    )
                }
            case .postgres:
                return try await StoreFactory.open(location)
            }
        }
    }
}

/// A checkpoint as an auditor keeps it between runs (JSON; the signature in base64).
enum SavedCheckpoint {
    struct File: Codable {
        var sequence: Int64
        var hash: String
        var at: Int64
        var signature: String
    }

    static func load(_ path: String) throws -> AuditCheckpoint {
        guard let data = FileManager.default.contents(atPath: path),
            let file = try? JSONDecoder().decode(File.self, from: data),
            let signature = Data(base64Encoded: file.signature)
        else {
            throw KetenpostError(
                .configInvalid,
                "--since-checkpoint \(path) is not a checkpoint saved by `ketenpost audit verify --save-checkpoint`."
            )
        }
        return AuditCheckpoint(sequence: file.sequence, hash: file.hash, at: file.at, signature: signature)
    }

    static func save(_ checkpoint: AuditCheckpoint, to path: String) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        let file = File(
            sequence: checkpoint.sequence,
            hash: checkpoint.hash,
            at: checkpoint.at,
            signature: checkpoint.signature.base64EncodedString()
        )
        do { try encoder.encode(file).write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw KetenpostError(.configInvalid, "--save-checkpoint \(path) cannot be written: \(error.localizedDescription)")
        }
    }
}
