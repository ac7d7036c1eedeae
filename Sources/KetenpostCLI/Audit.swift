import ArgumentParser
import Foundation
import Ketenpost
import KetenpostCrypto
import KetenpostRelay
import KetenpostStore

/// `ketenpost audit verify`: checks the hash chain and the relay's signed checkpoints.
struct Audit: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check the relay's tamper-evident audit trail.",
        subcommands: [Verify.self])

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Verify the audit trail's hash chain and signed checkpoints; report the first record changed, removed or reordered.",
            discussion: """
                Reads the store file read-only (a copy is fine). Exit status 0: intact; 1: tampered or unreadable.
                Example:
                  ketenpost audit verify --store data/ketenpost.sqlite --trust certs/dev/ca/cert.pem
                """)

        @Option(help: "The relay's SQLite store file.") var store: String = "data/ketenpost.sqlite"
        @Option(help: "Trust anchors (PEM) for the relay's checkpoint signatures.") var trust: String = "certs/dev/ca/cert.pem"
        @Option(name: .customLong("relay-id"), help: "The relay's id (commonName of its certificate).") var relayID: String = DevelopmentPKI.relayID
        @Flag(help: "Print the report as JSON.") var json = false

        func run() async throws {
            do {
                let opened: SQLiteMessageStore
                do { opened = try SQLiteMessageStore(path: store, readOnly: true) } catch {
                    throw KetenpostError(.configInvalid, "--store \(store) cannot be opened read-only: \(error)")
                }
                // No CRLs: a checkpoint is judged by the certificate's validity when it was signed.
                let anchors = try TrustStore.load(anchorsFile: trust)
                let report = try await AuditTrail.verify(store: opened, trust: anchors, relayID: relayID)
                if json {
                    printJSON(report)
                } else if report.ok {
                    print("Audit trail intact: \(report.records) records, \(report.checkpoints) checkpoints; signed up to record \(report.lastCheckpoint.map(String.init) ?? "none").")
                } else {
                    print("Audit trail TAMPERED: \(report.records) records, \(report.checkpoints) checkpoints.")
                    for problem in report.problems { print("  record \(problem.sequence): \(problem.kind.rawValue): \(problem.message)") }
                }
                if !report.ok { throw ExitCode(1) }
            } catch let exit as ExitCode {
                throw exit
            } catch {
                throw fail(error)
            }
        }
    }
}
