import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostProvisioning

struct PKI: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pki",
        abstract: "Development PKI: a CA, the relay's certificate and one identity per partner.",
        discussion: """
            For development and rehearsals only. `ketenpost serve` creates it on first start when \
            the configuration asks for it (docs/OPERATIONS.md rehearses rotation and revocation with it).
            Examples:
              ketenpost pki init
              ketenpost pki issue --partner gemeente-maastricht \\
                --out certs/dev/next/gemeente-maastricht
            """,
        subcommands: [Init.self, Issue.self, Revoke.self]
    )

    struct Init: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create the development PKI (idempotent: existing identities are kept).",
            discussion: """
                Never use the development CA in production: its key lies next to the certificates.
                Examples:
                  ketenpost pki init
                  ketenpost pki init --dir /tmp/pki --partners config/partners.yaml
                """
        )

        @Option(help: "Directory to write to.") var dir: String = "certs/dev"
        @Option(help: "Partner directory file.") var partners: String = "config/partners.yaml"

        func run() async throws {
            do {
                let file = try PartnerDirectoryFile.load(path: partners)
                let summary = try DevelopmentPKI(directory: dir).create(partners: file.partners)
                print(
                    """
                    Development PKI in \(dir): created \(summary.created.count) (\(summary.created.joined(separator: ", "))), kept \
                    \(summary.kept.count).
                    """
                )
                print("Trust anchor: \(DevelopmentPKI(directory: dir).caCertificatePath)")
            } catch {
                throw fail(error)
            }
        }
    }

    struct Issue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Issue another certificate and key for a partner from the development issuing CA (to rehearse a rotation).",
            discussion: """
                Examples:
                  ketenpost pki issue --partner zorgcoordinatie-zuid-limburg \\
                    --out certs/dev/next/zorgcoordinatie-zuid-limburg
                  ketenpost pki issue --partner belastingdienst --rsa --out certs/dev/next/belastingdienst
                  ketenpost pki issue --relay --out certs/dev/next/relay
                The new directory holds cert.pem, key.pem and chain.pem (the issuing CA): register \
                cert.pem followed by chain.pem.
                """
        )

        @Option(help: "Development PKI directory.") var dir: String = "certs/dev"
        @Option(help: "Partner directory file.") var partners: String = "config/partners.yaml"
        @Option(help: "Partner id.") var partner: String?
        @Flag(help: "Issue a new certificate for the relay itself (TLS server, receipt signing) instead.") var relay = false
        @Option(help: "Identity directory to create (cert.pem, key.pem).") var out: String
        @Option(help: "Key type: ec-p256, rsa-2048 or rsa-3072 (default: the partner's).") var key: String?
        @Flag(help: "An RSA-3072 key (the same as --key rsa-3072), as many care providers' CAs issue.") var rsa = false
        @Option(name: .customLong("valid-days"), help: "Validity in days.") var validDays: Int = 365
        @Option(name: .customLong("not-before"), help: "Start of validity, RFC 3339 (default: now).") var notBefore: String?

        func run() async throws {
            do {
                if relay {
                    guard partner == nil else { throw KetenpostError(.configInvalid, "Give either --partner or --relay.") }
                    let certificate = try DevelopmentPKI(directory: dir).issueRelay(into: out)
                    print(
                        """
                        Issued \(out)/cert.pem for the relay: serial \(certificate.serialNumberHex), valid \(certificate.notBefore) – \
                        \(certificate.notAfter)
                        """
                    )
                    return
                }
                guard let partner else { throw KetenpostError(.configInvalid, "Give --partner ID (or --relay).") }
                guard let entry = try PartnerDirectoryFile.load(path: partners).partner(partner) else {
                    throw KetenpostError(.configInvalid, "\(partners) has no partner \(partner).")
                }
                if rsa && key != nil && key != "rsa-3072" { throw KetenpostError(.configInvalid, "Give --rsa or --key, not both.") }
                let keyType = try (rsa ? "rsa-3072" : key).map { text -> PartnerEntry.KeyType in
                    guard let type = PartnerEntry.KeyType(rawValue: text) else {
                        throw KetenpostError(.configInvalid, "--key must be ec-p256, rsa-2048 or rsa-3072.")
                    }
                    return type
                }
                let start = try notBefore.map { text -> Date in
                    guard let date = ISO8601DateFormatter().date(from: text) else {
                        throw KetenpostError(.configInvalid, "--not-before must be an RFC 3339 time such as 2026-12-01T00:00:00Z.")
                    }
                    return date
                }
                guard validDays > 0 else { throw KetenpostError(.configInvalid, "--valid-days must be positive.") }
                let certificate = try DevelopmentPKI(directory: dir).issue(
                    for: entry,
                    key: keyType,
                    notBefore: start,
                    validity: TimeInterval(validDays) * 86_400,
                    into: out
                )
                print(
                    """
                    Issued \(out)/cert.pem for \(partner): serial \(certificate.serialNumberHex), valid \(certificate.notBefore) – \
                    \(certificate.notAfter)
                    """
                )
            } catch {
                throw fail(error)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke certificates of the development CA: writes a fresh crl.pem.",
            discussion: """
                Relays re-read the CRL within tls.reloadInterval, or at once after `ketenpost admin reload`.
                Examples:
                  ketenpost pki revoke --cert certs/dev/partners/gemeente-maastricht/cert.pem
                """
        )

        @Option(help: "Development PKI directory.") var dir: String = "certs/dev"
        @Option(help: "Certificate (PEM) to revoke; repeatable.") var cert: [String] = []
        @Option(help: "Serial number (hex) to revoke; repeatable.") var serial: [String] = []
        @Option(name: .customLong("next-update"), help: "When the CRL says a newer one is due, e.g. 30d.") var nextUpdate: String = "30d"

        func run() async throws {
            do {
                guard let interval = Drafting.parseDuration(nextUpdate) else {
                    throw KetenpostError(.configInvalid, "--next-update must be a duration such as 12h or 30d.")
                }
                let serials = try cert.flatMap { try Certificate.load(pemFile: $0).map(\.serialNumberHex) } + serial
                let crl = try DevelopmentPKI(directory: dir).revoke(serials: serials, nextUpdate: interval)
                print(
                    """
                    Wrote \(DevelopmentPKI(directory: dir).crlPath): \(serials.count) serial(s) added; next update \
                    \(crl.nextUpdate.map { "\($0)" } ?? "none")
                    """
                )
            } catch {
                throw fail(error)
            }
        }
    }
}
