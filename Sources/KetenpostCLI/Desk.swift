import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostDesk
import Logging
import ServiceLifecycle

struct Desk: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "The partner desk: the web app for caseworkers and intake staff (docs/desk.md).",
        discussion: """
            Examples:
              ketenpost desk users add --config config/desk.yaml --username a.jansen --name "Anna Jansen" \\
                --role desk-admin --password-file /run/secrets/first-password
              ketenpost desk serve --config config/desk.yaml
              ketenpost desk log verify --config config/desk.yaml
            """,
        subcommands: [DeskServe.self, DeskUsers.self, DeskTokens.self, DeskLog.self]
    )
}

struct DeskOptions: ParsableArguments {
    @Option(help: "Desk configuration file.") var config: String = "config/desk.yaml"

    func load() throws -> DeskConfiguration { try DeskConfiguration.load(path: config) }

    /// The store alone: account commands need neither the relay nor the partner's key.
    func store() throws -> DeskStore {
        let configuration = try load()
        do {
            return try DeskStore(directory: configuration.data.directory)
        } catch {
            throw KetenpostError(
                .storeUnavailable,
                "The desk's data folder \(configuration.data.directory) could not be opened; check that it is writable."
            )
        }
    }
}

struct DeskServe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the desk for one partner identity (loopback and plain HTTP by default; TLS otherwise).",
        discussion: """
            The first staff account is made on the command line (`ketenpost desk users add`); there are no default \
            credentials. Stops gracefully on SIGTERM or SIGINT.
            """
    )

    @OptionGroup var options: DeskOptions
    @Option(help: "Override listen.port (0 picks a free port).") var port: Int?

    func run() async throws {
        do {
            var configuration = try options.load()
            if let port { configuration.listen.port = port }
            LoggingSystem.bootstrap { label in
                var handler = StreamLogHandler.standardError(label: label)
                handler.logLevel = .info
                return handler
            }
            let logger = Logger(label: "ketenpost.desk")
            let server = try DeskServer.open(configuration, logger: logger)
            if try server.core.store.allStaff().isEmpty {
                print(
                    """
                    No staff accounts yet: add the first one with `ketenpost desk users add --config \(options.config) --role \
                    desk-admin …`.
                    """
                )
            }
            let scheme = configuration.listen.certificate == nil ? "http" : "https"
            let host = configuration.listen.host
            let services = try server.services { port in
                print("Ketenpost desk for \(server.core.partnerID) on \(scheme)://\(host):\(port)/ (Ctrl-C stops it)")
                fflush(nil)
            }
            try await ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [.sigterm, .sigint], logger: logger))
                .run()
        } catch {
            throw fail(error)
        }
    }
}

struct DeskUsers: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "users",
        abstract: "Staff accounts: add, list, disable, enable, reset.",
        subcommands: [Add.self, List.self, Disable.self, Enable.self, Reset.self]
    )

    /// The password from a file (first line) or, interactively, from a prompt without echo: never
    /// from an argument, which would end up in the shell history and in `ps`.
    static func password(file: String?) throws -> String {
        if let file {
            guard let text = try? String(contentsOfFile: file, encoding: .utf8) else {
                throw KetenpostError(.deskInputInvalid, "The password file \(file) could not be read.")
            }
            return String(text.split(separator: "\n", omittingEmptySubsequences: false).first ?? "")
        }
        guard isatty(STDIN_FILENO) == 1 else {
            throw KetenpostError(.deskInputInvalid, "Give --password-file, or run the command in a terminal to type the password.")
        }
        guard let first = getpass("Password (at least 12 characters): ").map({ String(cString: $0) }),
            let second = getpass("The same password again: ").map({ String(cString: $0) })
        else {
            throw KetenpostError(.deskInputInvalid, "No password was typed.")
        }
        guard first == second else { throw KetenpostError(.deskInputInvalid, "The two passwords differ; nothing was changed.") }
        return first
    }

    static func printSecondFactor(_ url: String?) {
        guard let url else { return }
        print("Second factor: add this address to the authenticator app (it is shown only now):")
        print("  \(url)")
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add a staff account.")
        @OptionGroup var options: DeskOptions
        @Option(help: "Username: lowercase letters, digits, dots, dashes, underscores.") var username: String
        @Option(help: "The person's name as the desk shows it.") var name: String
        @Option(help: "caseworker, team-lead, desk-admin or log-reader.") var role: String
        @Option(name: .customLong("password-file"), help: "Read the password from this file's first line (else: prompt).")
        var passwordFile: String?
        @Flag(name: .customLong("second-factor"), help: "Also give a caseworker or team lead a TOTP second factor.")
        var secondFactor = false

        func run() async throws {
            do {
                guard let role = StaffRole(rawValue: role) else {
                    throw KetenpostError(.deskInputInvalid, "The role must be caseworker, team-lead, desk-admin or log-reader.")
                }
                let configuration = try options.load()
                let accounts = StaffAccounts(store: try options.store(), sessions: configuration.sessions)
                let created = try await accounts.add(
                    username: username,
                    displayName: name,
                    role: role,
                    password: try DeskUsers.password(file: passwordFile),
                    secondFactor: secondFactor
                )
                print("Added \(created.member.username) (\(role.rawValue)).")
                DeskUsers.printSecondFactor(created.authenticatorURL)
            } catch {
                throw fail(error)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the staff accounts (never passwords or secrets).")
        @OptionGroup var options: DeskOptions

        func run() async throws {
            do {
                let now = Date()
                for member in try options.store().allStaff() {
                    let state = member.disabled ? "disabled" : member.isLocked(at: now) ? "locked" : "active"
                    let factor = member.totpSecret == nil ? "password" : "password+totp"
                    print("\(member.username)\t\(member.role.rawValue)\t\(state)\t\(factor)\t\(member.displayName)")
                }
            } catch {
                throw fail(error)
            }
        }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an account (its sessions end at their next request).")
        @OptionGroup var options: DeskOptions
        @Option(help: "Username.") var username: String

        func run() async throws {
            do {
                let configuration = try options.load()
                try StaffAccounts(store: try options.store(), sessions: configuration.sessions).setDisabled(username, true)
                print("Disabled \(username).")
            } catch {
                throw fail(error)
            }
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable a disabled account again.")
        @OptionGroup var options: DeskOptions
        @Option(help: "Username.") var username: String

        func run() async throws {
            do {
                let configuration = try options.load()
                try StaffAccounts(store: try options.store(), sessions: configuration.sessions).setDisabled(username, false)
                print("Enabled \(username).")
            } catch {
                throw fail(error)
            }
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Set a new password; unlocks and enables the account.")
        @OptionGroup var options: DeskOptions
        @Option(help: "Username.") var username: String
        @Option(name: .customLong("password-file"), help: "Read the password from this file's first line (else: prompt).")
        var passwordFile: String?
        @Flag(name: .customLong("new-second-factor"), help: "Also make a new TOTP secret (a lost phone).")
        var newSecondFactor = false

        func run() async throws {
            do {
                let configuration = try options.load()
                let accounts = StaffAccounts(store: try options.store(), sessions: configuration.sessions)
                let result = try await accounts.reset(
                    username: username,
                    password: try DeskUsers.password(file: passwordFile),
                    newSecondFactor: newSecondFactor
                )
                print("Reset \(result.member.username).")
                DeskUsers.printSecondFactor(result.authenticatorURL)
            } catch {
                throw fail(error)
            }
        }
    }
}

struct DeskTokens: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokens",
        abstract: "API tokens for case systems (docs/desk-api.md): add, list, revoke.",
        subcommands: [Add.self, List.self, Revoke.self]
    )

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token. It is shown once (or written to --out with mode 0600); the desk keeps only its hash."
        )
        @OptionGroup var options: DeskOptions
        @Option(help: "The case system's name, as the access log shows it: lowercase letters, digits, dots, dashes, underscores.")
        var name: String
        @Option(help: "Write the token to this new file (mode 0600) instead of printing it.") var out: String?
        @Option(help: "What it may do: send, read, answer (repeat the option; all three when not given).") var scope: [String] = []

        func run() async throws {
            do {
                _ = try options.load()
                if let out, FileManager.default.fileExists(atPath: out) {
                    throw KetenpostError(.deskInputInvalid, "\(out) exists already; the token file must be new. Nothing was made.")
                }
                var scopes = Set(APIToken.allScopes)
                if !scope.isEmpty {
                    scopes = []
                    for name in scope.flatMap({ $0.split(separator: ",") }) {
                        guard let value = APIToken.Scope(rawValue: String(name)) else {
                            throw KetenpostError(.deskInputInvalid, "A scope is send, read or answer; nothing was made.")
                        }
                        scopes.insert(value)
                    }
                }
                let created = try APITokens(store: try options.store()).add(name: name, scopes: scopes)
                if let out {
                    guard
                        FileManager.default.createFile(
                            atPath: out,
                            contents: Data((created.secret + "\n").utf8),
                            attributes: [.posixPermissions: 0o600]
                        )
                    else {
                        throw KetenpostError(
                            .deskInputInvalid,
                            "The token file \(out) could not be written; the token \(name) exists, revoke it and try again."
                        )
                    }
                    print("Added token \(name); written to \(out).")
                } else {
                    print("Added token \(name). Give it to the case system now; it is not shown again:")
                    print(created.secret)
                }
            } catch {
                throw fail(error)
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List the tokens (names and dates, never the tokens).")
        @OptionGroup var options: DeskOptions

        func run() async throws {
            do {
                func day(_ milliseconds: Int64?) -> String {
                    milliseconds.map { Date(timeIntervalSince1970: Double($0) / 1000).formatted(.iso8601) } ?? "-"
                }
                for token in try options.store().tokens() {
                    let state = token.revokedAt == nil ? "active" : "revoked"
                    print("\(token.name)\t\(state)\t\(token.scopes)\tcreated \(day(token.createdAt))\tlast used \(day(token.lastUsedAt))")
                }
            } catch {
                throw fail(error)
            }
        }
    }

    struct Revoke: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Revoke a token: its next request is refused.")
        @OptionGroup var options: DeskOptions
        @Option(help: "The token's name.") var name: String

        func run() async throws {
            do {
                try options.store().revokeToken(named: name, actor: .commandLine)
                print("Revoked token \(name).")
            } catch {
                throw fail(error)
            }
        }
    }
}

struct DeskLog: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "The desk's access log (NEN 7513).",
        subcommands: [Verify.self]
    )

    struct Verify: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check the access log's hash chain from the first entry to the last; exit 1 when it was changed."
        )
        @OptionGroup var options: DeskOptions

        func run() async throws {
            let result: AccessLogVerification
            do {
                result = try options.store().accessLog.verify()
            } catch {
                throw fail(error)
            }
            if let broken = result.firstBroken {
                var stderr = StandardError()
                print("ketenpost: desk.log-broken: the access log was changed, removed or reordered from entry \(broken) on.", to: &stderr)
                throw ExitCode(1)
            }
            print("The access log is intact: \(result.entries) entries.")
        }
    }
}
