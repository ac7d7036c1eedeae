import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

@main
struct KetenpostCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ketenpost",
        abstract: "Ketenpost: a secure relay for referral messages between chain partners.",
        discussion: """
            Partners seal messages with CMS sign-encrypt-sign; the relay checks sender, policy and \
            signatures without reading content, stores them durably and forwards them.

            `ketenpost help <subcommand>` (or `ketenpost <subcommand> --help`) shows a
            subcommand's options and examples.
            Shell completions: `ketenpost --generate-completion-script bash` (or zsh, fish)
            prints a script to install; see "Shell completions" in README.md.
            Examples:
              ketenpost serve --config config/ketenpost.yaml
              ketenpost demo
              ketenpost help send
            """,
        version: "0.1.0",
        subcommands: [
            Serve.self, Send.self, Inbox.self, Status.self, Seal.self, Open.self, Admin.self, Audit.self, Report.self, Conformance.self,
            PKI.self, Demo.self, Desk.self,
        ]
    )

    static func main() async {
        // The relay runs its handlers, store calls and crypto as Swift tasks; on NIO's event loops
        // (which own the connections) instead of a second pool of threads, a request no longer
        // hops between the two: 40 % fewer context switches per message (docs/BENCHMARKS.md,
        // issue 21). Nothing in the relay blocks a thread in a task (SQLite writes run on their own
        // queue, PostgreSQL is NIO). Before anything else, as NIO requires; KETENPOST_EXECUTOR=swift
        // keeps Swift's own pool.
        if CommandLine.arguments.dropFirst().first == "serve", ProcessInfo.processInfo.environment["KETENPOST_EXECUTOR"] != "swift" {
            _ = NIOSingletons.unsafeTryInstallSingletonPosixEventLoopGroupAsConcurrencyGlobalExecutor()
        }
        await main(nil)
    }
}

/// Prints a Ketenpost error as "code: sentence" on stderr and exits non-zero.
func fail(_ error: any Error) -> ExitCode {
    var stderr = StandardError()
    print("ketenpost: \(error)", to: &stderr)
    return ExitCode(1)
}

struct StandardError: TextOutputStream {
    mutating func write(_ string: String) { FileHandle.standardError.write(Data(string.utf8)) }
}

func readInput(_ path: String) throws -> Data {
    if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
    return try Data(contentsOf: URL(fileURLWithPath: path))
}

func writeOutput(_ data: Data, to path: String) throws {
    if path == "-" {
        FileHandle.standardOutput.write(data)
    } else {
        try data.write(to: URL(fileURLWithPath: path), options: .atomic)
    }
}
