import ArgumentParser
import Foundation

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
