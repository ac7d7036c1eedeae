import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope

/// `ketenpost admin …`: the administration API with an administrator certificate.
struct Admin: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Administer partners and certificates on a running relay (administrator certificate).",
        discussion: """
            Every change is applied on all relay instances and recorded as an audit event. \
            --identity defaults to the development PKI's administrator (certs/dev/admin). See docs/OPERATIONS.md.
            Examples:
              ketenpost admin partners list
              ketenpost admin certs rotate --partner gemeente-maastricht \\
                --cert certs/dev/next/gemeente-maastricht/cert.pem --overlap 7d
              ketenpost admin certs expiring --within 30d
            """,
        subcommands: [Partners.self, Certs.self, CRLs.self, Events.self, Reload.self]
    )

    struct Options: ParsableArguments {
        @Option(help: "Administrator identity directory (cert.pem, key.pem).") var identity: String = "certs/dev/admin"
        @Option(help: "Relay base URL.") var relay: String = "https://127.0.0.1:8443"
        @Option(help: "Trust anchors (PEM): the CA of the relay.") var trust: String = "certs/dev/ca/cert.pem"
        @Flag(help: "Print the relay's JSON answer instead of a summary.") var json = false

        func client() throws -> RelayClient {
            try PartnerOptions.client(relay: relay, identity: identity, trust: trust, crl: [])
        }

        /// Runs `body` with a client that is always shut down; errors print as "code: sentence".
        func run<T: Encodable & Sendable>(_ body: (RelayClient) async throws -> T, summary: (T) -> String) async throws {
            do {
                let value = try await withRelayClient(try client()) { client in try await body(client) }
                if json { printJSON(value) } else { print(summary(value)) }
            } catch {
                throw fail(error)
            }
        }
    }

    static func describe(_ partner: API.AdminPartner) -> String {
        var lines = ["\(partner.id)  \(partner.role)  \(partner.state)  OIN \(partner.oin)  \(partner.name)"]
        for c in partner.certificates {
            var line =
                """
                  \(c.fingerprint.prefix(16))…  \(c.state)  \(c.uses.joined(separator: ","))  serial \(c.serial)  until \
                \(RFC3339Text.format(c.notAfter)) (\(c.daysLeft)d)
                """
            if let retiresAt = c.retiresAt { line += "  retires \(RFC3339Text.format(retiresAt))" }
            if let reason = c.revocationReason { line += "  revoked: \(reason)" }
            lines.append(line)
        }
        return lines.joined(separator: "\n")
    }

    static func duration(_ text: String, _ option: String) throws -> TimeInterval {
        if text == "0" || text == "0s" { return 0 }
        guard let value = Drafting.parseDuration(text) else {
            throw KetenpostError(.requestInvalid, "\(option) must be a duration such as 12h, 7d or 0s.")
        }
        return value
    }

    static func certificateInput(_ path: String, uses: [String], activatesAt: String?) throws -> API.AdminCertificateInput {
        let pem: String
        do { pem = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KetenpostError(.requestInvalid, "--cert \(path) cannot be read.")
        }
        let start = try activatesAt.map { text -> Date in
            guard let date = ISO8601DateFormatter().date(from: text) else {
                throw KetenpostError(.requestInvalid, "--activates-at must be an RFC 3339 time such as 2026-12-01T00:00:00Z.")
            }
            return date
        }
        return API.AdminCertificateInput(pem: pem, uses: uses.isEmpty ? nil : uses, activatesAt: start)
    }

    struct Partners: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List, show, add, suspend and resume partners.",
            discussion: """
                Examples:
                  ketenpost admin partners list
                  ketenpost admin partners show gemeente-maastricht
                  ketenpost admin partners suspend gemeente-maastricht
                """,
            subcommands: [List.self, Show.self, Add.self, Suspend.self, Resume.self]
        )

        struct List: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List the partners with their state and certificates.",
                discussion: """
                    Examples:
                      ketenpost admin partners list
                      ketenpost admin partners list --relay https://relay.example.nl:8443 \\
                        --identity /etc/ketenpost/admin
                    """
            )
            @OptionGroup var options: Options
            func run() async throws {
                try await options.run({ try await $0.adminPartners() }) { list in
                    (["directory version \(list.version)"] + list.partners.map(Admin.describe)).joined(separator: "\n")
                }
            }
        }

        struct Show: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Show one partner: state, role, OIN and every certificate with its fingerprint and state.",
                discussion: """
                    Examples:
                      ketenpost admin partners show gemeente-maastricht
                    """
            )
            @OptionGroup var options: Options
            @Argument(help: "Partner id.") var partner: String
            func run() async throws {
                try await options.run({ try await $0.adminPartner(partner) }, summary: Admin.describe)
            }
        }

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Onboard a partner with its certificate.",
                discussion: """
                    The relay refuses a certificate for another commonName or OIN, one that does not chain \
                    to its trust anchors, and an id that exists already.
                    Examples:
                      ketenpost admin partners add --id gemeente-voerendaal \\
                        --name "Gemeente Voerendaal" --role municipality \\
                        --oin 00000001000000000042 --cert voerendaal-cert.pem
                    """
            )
            @OptionGroup var options: Options
            @Option(help: "Partner id (the certificate's commonName).") var id: String
            @Option(help: "Organisation name.") var name: String
            @Option(help: "Role: municipality, care-coordinator, shelter, care-provider, police, tax-office, …") var role: String
            @Option(help: "OIN, 20 digits.") var oin: String
            @Option(help: "Certificate (PEM) of the partner; repeatable.") var cert: [String] = []
            @Option(help: "Uses of the certificates: signing, encryption, tls-client (repeatable; default all).") var use: [String] = []
            func run() async throws {
                try await options.run(
                    { client in
                        let inputs = try cert.map { try Admin.certificateInput($0, uses: use, activatesAt: nil) }
                        return try await client.adminAddPartner(
                            API.AdminNewPartner(id: id, name: name, role: role, oin: oin, certificates: inputs)
                        )
                    },
                    summary: Admin.describe
                )
            }
        }

        struct Suspend: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Suspend a partner: it can neither send nor receive until resumed.",
                discussion: """
                    Messages waiting for it stay queued. Undo with `ketenpost admin partners resume`.
                    Examples:
                      ketenpost admin partners suspend gemeente-maastricht
                    """
            )
            @OptionGroup var options: Options
            @Argument(help: "Partner id.") var partner: String
            func run() async throws {
                try await options.run({ try await $0.adminSuspend(partner) }, summary: Admin.describe)
            }
        }

        struct Resume: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Resume a suspended partner.",
                discussion: """
                    Examples:
                      ketenpost admin partners resume gemeente-maastricht
                    """
            )
            @OptionGroup var options: Options
            @Argument(help: "Partner id.") var partner: String
            func run() async throws {
                try await options.run({ try await $0.adminResume(partner) }, summary: Admin.describe)
            }
        }
    }

    struct Certs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "certs",
            abstract: "Add, rotate, revoke and watch certificates.",
            discussion: """
                Examples:
                  ketenpost admin certs rotate --partner zorgcoordinatie-zuid-limburg \\
                    --cert new-cert.pem --overlap 7d
                  ketenpost admin certs revoke --fingerprint 3f1c… --reason key-compromise
                  ketenpost admin certs expiring --within 30d
                """,
            subcommands: [Add.self, Rotate.self, Revoke.self, Expiring.self]
        )

        struct Add: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Register another certificate, active from --activates-at (default now).",
                discussion: """
                    Examples:
                      ketenpost admin certs add --partner zorgcoordinatie-zuid-limburg \\
                        --cert new-cert.pem --activates-at 2026-12-01T06:00:00Z
                    """
            )
            @OptionGroup var options: Options
            @Option(help: "Partner id.") var partner: String
            @Option(help: "Certificate (PEM).") var cert: String
            @Option(help: "Uses: signing, encryption, tls-client (repeatable; default all).") var use: [String] = []
            @Option(name: .customLong("activates-at"), help: "Activation time, RFC 3339 (default now).") var activatesAt: String?
            func run() async throws {
                try await options.run(
                    { client in
                        try await client.adminAddCertificate(partner, try Admin.certificateInput(cert, uses: use, activatesAt: activatesAt))
                    },
                    summary: Admin.describe
                )
            }
        }

        struct Rotate: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Activate a new certificate now; the old one keeps working for --overlap, then retires by itself.",
                discussion: """
                    Examples:
                      ketenpost admin certs rotate --partner zorgcoordinatie-zuid-limburg \\
                        --cert new-cert.pem --overlap 7d
                      ketenpost admin certs rotate --partner zorgcoordinatie-zuid-limburg \\
                        --cert new-cert.pem --overlap 0s
                    """
            )
            @OptionGroup var options: Options
            @Option(help: "Partner id.") var partner: String
            @Option(help: "The new certificate (PEM).") var cert: String
            @Option(help: "How long the old certificate keeps working, e.g. 7d (0s: none).") var overlap: String = "7d"
            @Option(help: "Uses: signing, encryption, tls-client (repeatable; default all).") var use: [String] = []
            func run() async throws {
                try await options.run(
                    { client in
                        let input = try Admin.certificateInput(cert, uses: use, activatesAt: nil)
                        return try await client.adminRotate(
                            partner,
                            API.AdminRotation(certificate: input, overlapSeconds: try Admin.duration(overlap, "--overlap"))
                        )
                    },
                    summary: Admin.describe
                )
            }
        }

        struct Revoke: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "Revoke a certificate at once, on every relay instance.",
                discussion: """
                    Give --fingerprint (as `admin partners show` lists it) or --cert.
                    Examples:
                      ketenpost admin certs revoke --fingerprint 3f1c… --reason key-compromise
                      ketenpost admin certs revoke --cert compromised-cert.pem \\
                        --reason key-compromise
                    """
            )
            @OptionGroup var options: Options
            @Option(help: "SHA-256 fingerprint (hex) of the certificate, as `partners show` lists it.") var fingerprint: String?
            @Option(help: "Or the certificate (PEM) itself.") var cert: String?
            @Option(help: "Reason code, e.g. key-compromise, superseded, cessation-of-operation.") var reason: String
            func run() async throws {
                try await options.run(
                    { client in
                        let target: String
                        if let fingerprint {
                            target = fingerprint
                        } else if let cert, let certificate = try Certificate.load(pemFile: cert).first {
                            target = certificate.fingerprint
                        } else {
                            throw KetenpostError(.requestInvalid, "Give --fingerprint or --cert.")
                        }
                        return try await client.adminRevoke(fingerprint: target, reason: reason)
                    },
                    summary: Admin.describe
                )
            }
        }

        struct Expiring: AsyncParsableCommand {
            static let configuration = CommandConfiguration(
                abstract: "List certificates that expire within a window.",
                discussion: """
                    Examples:
                      ketenpost admin certs expiring --within 30d
                    """
            )
            @OptionGroup var options: Options
            @Option(help: "Window, e.g. 30d.") var within: String = "30d"
            func run() async throws {
                try await options.run({ client in
                    try await client.adminExpiring(withinDays: Int((try Admin.duration(within, "--within") / 86_400).rounded(.up)))
                }) { list in
                    list.certificates.isEmpty
                        ? "No certificate expires within \(list.withinDays) days."
                        : list.certificates.map {
                            """
                            \($0.partner)  \($0.certificate.fingerprint.prefix(16))…  \($0.certificate.state)  expires \
                            \(RFC3339Text.format($0.certificate.notAfter)) (\($0.certificate.daysLeft)d)
                            """
                        }.joined(separator: "\n")
                }
            }
        }
    }

    struct CRLs: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "crls",
            abstract: "The relay's CRL per CA: source, this and next update, revoked serials, last fetch error.",
            discussion: """
                Lists fetched from CAs' distribution points (revocation.fetch) and the tls.crls files; per CA the newest \
                is in effect. A stale or missing list follows tls.staleCRL. See docs/OPERATIONS.md, "Revocation".
                Examples:
                  ketenpost admin crls
                """
        )
        @OptionGroup var options: Options
        func run() async throws {
            try await options.run({ try await $0.adminRevocationLists() }) { answer in
                guard !answer.lists.isEmpty else { return "The relay holds no CRL (tls.staleCRL: \(answer.staleCRL))." }
                return answer.lists.map { list in
                    let next = list.nextUpdate.map(RFC3339Text.format) ?? "-"
                    let this = list.thisUpdate.map(RFC3339Text.format) ?? "-"
                    return """
                        \(list.ca)  \(list.state)\(list.inEffect ? " (in effect)" : "")  this \(this)  next \(next)  \
                        \(list.revokedCount) revoked  \(list.source)\(list.lastError.map { "\n    last fetch failed: \($0)" } ?? "")
                        """
                }.joined(separator: "\n") + "\n(tls.staleCRL: \(answer.staleCRL))"
            }
        }
    }

    struct Events: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The directory's audit events (who changed what, when).",
            discussion: """
                To check that the trail was not tampered with, use `ketenpost audit verify`.
                Examples:
                  ketenpost admin events
                  ketenpost admin events --after 1200
                """
        )
        @OptionGroup var options: Options
        @Option(help: "Show events after this sequence number.") var after: Int64 = 0
        func run() async throws {
            try await options.run({ try await $0.adminEvents(after: after, limit: 1000) }) { list in
                list.events.map {
                    """
                    \($0.sequence)  \(RFC3339Text.format($0.at))  \($0.actor)  \($0.action)  \($0.partner ?? "-")  \
                    \($0.fingerprint.map { String($0.prefix(16)) } ?? "-")  \($0.detail ?? "")
                    """
                }
                .joined(separator: "\n")
            }
        }
    }

    struct Reload: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make the relay re-read its certificate, key, trust anchors, CRLs and directory now.",
            discussion: """
                The same as sending the relay SIGHUP. A set of files that does not load is logged and \
                ignored; the previous set stays in use.
                Examples:
                  ketenpost admin reload
                """
        )
        @OptionGroup var options: Options
        func run() async throws {
            try await options.run({ try await $0.adminReload() }) { "Relay: \($0.status)." }
        }
    }
}

enum RFC3339Text {
    static func format(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime]
        return formatter.string(from: date)
    }
}
