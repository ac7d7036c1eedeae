import Foundation
import Glibc
import KetenpostAPI
import KetenpostModel
import Logging
import ServiceLifecycle

/// The watched folders (docs/desk-api.md), for case systems that can only write files:
///
/// - `outbox/NAME.json`: the API's request body. Sent with `NAME.json` as the idempotency key,
///   then moved to `sent/NAME.MESSAGEID.json`, or to `failed/` with `NAME….error.json` beside it.
///   Writers write under another name (`.NAME.json` or `NAME.json.tmp`) and rename when done, so
///   a half-written file is never read.
/// - `inbox/TYPE.MESSAGEID.json`: every received message, opened (only with `writeInbox: yes`).
///
/// Crash safety: a file leaves `outbox/` only after its message is stored; picked up again after
/// a crash, the same name and content find that message instead of making a second one.
public struct DeskFolders: Sendable {
    let core: DeskCore
    let root: URL

    static let actor = AccessEvent.Actor(staff: "folder", role: "folder")
    static let maxSize = 512 * 1024

    public init(core: DeskCore, directory: String) {
        self.core = core
        root = URL(fileURLWithPath: directory)
    }

    var outbox: URL { root.appendingPathComponent("outbox") }
    var sent: URL { root.appendingPathComponent("sent") }
    var failed: URL { root.appendingPathComponent("failed") }
    var inbox: URL { root.appendingPathComponent("inbox") }

    /// Makes the four folders (mode 0700: they hold personal data).
    public func prepare() throws(KetenpostError) {
        for folder in [root, outbox, sent, failed, inbox] {
            do {
                try FileManager.default.createDirectory(
                    at: folder,
                    withIntermediateDirectories: true,
                    attributes: [.posixPermissions: 0o700]
                )
            } catch {
                throw KetenpostError(
                    .configInvalid,
                    "The folder \(folder.path) could not be made; check folders.directory and its permissions."
                )
            }
        }
    }

    /// What happened to one file.
    public enum Outcome: Sendable, Equatable {
        case sent(messageID: String)
        case failed(code: String)
        /// Left in `outbox/` for the next scan (the relay is out of reach).
        case waiting
        /// Not a file to read now (a temporary name).
        case skipped
    }

    /// One look at `outbox/`, oldest name first.
    @discardableResult
    public func scanOnce() async -> [String: Outcome] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: outbox.path) else { return [:] }
        var outcomes: [String: Outcome] = [:]
        for name in names.sorted() {
            let outcome = await handle(name)
            outcomes[name] = outcome
            // The relay is out of reach: the other files wait for the next scan too, instead of
            // each waiting for its own connection timeout.
            if outcome == .waiting { break }
        }
        return outcomes
    }

    /// Names a case system may give its files: a letter or digit first, then letters, digits,
    /// dots, dashes and underscores; `.json` at the end.
    static func isAcceptedName(_ name: String) -> Bool {
        guard name.hasSuffix(".json"), (6...160).contains(name.utf8.count), let first = name.unicodeScalars.first else { return false }
        let allowed = CharacterSet(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        return CharacterSet.alphanumerics.contains(first) && first.isASCII && name.unicodeScalars.allSatisfy { allowed.contains($0) }
    }

    func handle(_ name: String) async -> Outcome {
        // The write-then-rename convention: a dot file or another suffix is still being written.
        if name.hasPrefix(".") || !name.hasSuffix(".json") { return .skipped }
        guard Self.isAcceptedName(name) else {
            return fail(
                name,
                as: "rejected-\(UUID().uuidString.lowercased().prefix(8)).json",
                KetenpostError(
                    .deskInputInvalid,
                    "File names are letters, digits, dots, dashes and underscores, starting with a letter or digit, ending in .json."
                )
            )
        }
        let body: Data
        do {
            body = try Self.readRegularFile(outbox.appendingPathComponent(name).path)
        } catch {
            return fail(name, as: name, error)
        }
        do {
            switch try await core.sendFromSystem(body: body, key: name, scope: "folder", actor: Self.actor) {
            case .invalid(let problems):
                return fail(
                    name,
                    as: name,
                    KetenpostError(.deskMessageInvalid, "The message breaks the rules of its type; `fields` says where. Nothing was sent."),
                    fields: problems
                )
            case .taken(let message, _):
                let stem = String(name.dropLast(5))
                switch message.state {
                case .sending:
                    return .waiting
                case .failed, .rejected, .expired, .dead:
                    return fail(
                        name,
                        as: "\(stem).\(message.id).json",
                        KetenpostError(
                            KetenpostError.Code(rawValue: message.reasonCode ?? "desk.relay-unavailable"),
                            "The relay refused the message; the code says why. It was not delivered."
                        )
                    )
                default:
                    move(name, to: sent.appendingPathComponent("\(stem).\(message.id).json"))
                    return .sent(messageID: message.id)
                }
            }
        } catch let error as KetenpostError where error.code == .deskRelayUnavailable || error.code == .storeUnavailable {
            core.logger.notice("folder file waits", metadata: ["error.code": "\(error.code)"])
            return .waiting
        } catch let error as KetenpostError {
            return fail(name, as: name, error)
        } catch {
            return fail(name, as: name, .internal(error))
        }
    }

    /// Reads a regular file without following a symbolic link (a link could point anywhere the
    /// desk can read) and without hanging on a FIFO.
    static func readRegularFile(_ path: String) throws(KetenpostError) -> Data {
        let fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC)
        guard fd >= 0 else {
            throw KetenpostError(.deskInputInvalid, "Only plain files are read from outbox/, not links or other kinds of entry.")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else {
            throw KetenpostError(.deskInputInvalid, "Only plain files are read from outbox/, not links or other kinds of entry.")
        }
        guard info.st_size <= maxSize else {
            throw KetenpostError(.requestTooLarge, "The file is larger than 512 KiB; messages are much smaller.")
        }
        var data = Data(count: Int(info.st_size))
        let count = data.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        guard count == Int(info.st_size) else { throw KetenpostError(.deskInputInvalid, "The file could not be read whole.") }
        return data
    }

    /// Moves a file to `failed/` under `target` and writes the error beside it.
    private func fail(_ name: String, as target: String, _ error: KetenpostError, fields: [ValidationIssue] = []) -> Outcome {
        core.logger.notice("folder file failed", metadata: ["error.code": "\(error.code)"])
        var target = target
        if FileManager.default.fileExists(atPath: failed.appendingPathComponent(target).path) {
            target = String(target.dropLast(5)) + ".\(UUID().uuidString.lowercased().prefix(8)).json"
        }
        var detail: [String: Any] = ["code": error.code.rawValue, "message": error.message, "file": target]
        if !fields.isEmpty { detail["fields"] = fields.map { ["path": $0.path, "rule": $0.rule, "message": $0.message] } }
        let errorFile = failed.appendingPathComponent(String(target.dropLast(5)) + ".error.json")
        if let data = try? JSONSerialization.data(withJSONObject: ["error": detail], options: [.sortedKeys, .prettyPrinted]) {
            Self.writeAtomically(data, to: errorFile)
        }
        move(name, to: failed.appendingPathComponent(target))
        return .failed(code: error.code.rawValue)
    }

    /// `rename(2)`: atomic within the folder, and it moves a link itself, never what it points to.
    private func move(_ name: String, to target: URL) {
        if rename(outbox.appendingPathComponent(name).path, target.path) != 0 {
            core.logger.error("folder file could not be moved", metadata: ["errno": "\(errno)"])
        }
    }

    /// Writes a file under a temporary name, mode 0600, then renames it into place.
    static func writeAtomically(_ data: Data, to url: URL) {
        let temporary = url.deletingLastPathComponent().appendingPathComponent(".\(url.lastPathComponent).tmp")
        guard FileManager.default.createFile(atPath: temporary.path, contents: data, attributes: [.posixPermissions: 0o600]) else { return }
        _ = rename(temporary.path, url.path)
    }

    // MARK: inbox/

    /// Writes received messages after the folder's cursor to `inbox/`, then moves the cursor.
    /// A crash in between writes the same files again (same names), never loses one.
    @discardableResult
    public func exportInbox() throws -> Int {
        let cursorFile = root.appendingPathComponent(".inbox-cursor")
        let cursor =
            (try? String(contentsOf: cursorFile, encoding: .utf8)).flatMap { Int64($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
            ?? 0
        let messages = try core.store.inbox(after: cursor, limit: 100)
        for message in messages {
            var item = try APIRoutes.inboxItem(message, core: core, actor: Self.actor, detail: "inbox folder")
            item.removeValue(forKey: "cursor")
            let data = try JSONSerialization.data(withJSONObject: APIRoutes.clean(item), options: [.sortedKeys, .prettyPrinted])
            Self.writeAtomically(data, to: inbox.appendingPathComponent("\(message.type).\(message.id).json"))
        }
        if let last = messages.last?.inboxSeq { Self.writeAtomically(Data(String(last).utf8), to: cursorFile) }
        return messages.count
    }
}

/// Looks at the outbox every `scanEvery` and, when asked, writes the inbox.
struct DeskFolderService: Service {
    let folders: DeskFolders

    func run() async throws {
        try folders.prepare()
        let configuration = folders.core.configuration.folders
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await folders.scanOnce()
                if configuration.writeInbox {
                    do {
                        try folders.exportInbox()
                    } catch {
                        let code = (error as? KetenpostError)?.code.rawValue ?? "internal"
                        folders.core.logger.warning("inbox folder not written", metadata: ["error.code": "\(code)"])
                    }
                }
                try? await Task.sleep(for: .seconds(configuration.scanEvery))
            }
        }
    }
}
