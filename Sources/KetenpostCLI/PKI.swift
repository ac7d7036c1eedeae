import ArgumentParser
import Foundation
import Ketenpost

struct PKI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki",
        abstract: "Development PKI: a CA, the relay's certificate and one identity per partner.",
        subcommands: [Init.self])

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the development PKI (idempotent: existing identities are kept).",
            discussion: "Never use the development CA in production: its key lies next to the certificates.")

        @Option(help: "Directory to write to.") var dir: String = "certs/dev"
        @Option(help: "Partner directory file.") var partners: String = "config/partners.yaml"

        func run() async throws {
            do {
                let file = try PartnerDirectoryFile.load(path: partners)
                let summary = try DevelopmentPKI(directory: dir).create(partners: file.partners)
                print("Development PKI in \(dir): created \(summary.created.count) (\(summary.created.joined(separator: ", "))), kept \(summary.kept.count).")
                print("Trust anchor: \(DevelopmentPKI(directory: dir).caCertificatePath)")
            } catch {
                throw fail(error)
            }
        }
    }
}
