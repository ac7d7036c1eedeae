import Foundation
import Glibc
import KetenpostDesk
import Logging
import Testing

/// The watched folders: files in, files out, every refusal beside its file; and SIGKILL of a
/// desk process while it works through a folder of files.
@Suite(.serialized) struct DeskFolderTests {
    static let coordinator = DeskHarness.coordinator
    static let shelter = DeskHarness.shelter

    static func referral(_ caseReference: String, to: String = DeskHarness.shelter, bsn: String? = nil) throws -> Data {
        var payload = try DeskAPITests.example("referral")
        payload["caseReference"] = caseReference
        if let bsn {
            var person = payload["person"] as? [String: Any] ?? [:]
            person["bsn"] = bsn
            payload["person"] = person
        }
        return try DeskAPITests.body(["type": "referral", "to": to, "payload": payload])
    }

    /// Writes as a case system should: under a dot name, then renamed.
    static func drop(_ data: Data, as name: String, in outbox: URL) throws {
        let temporary = outbox.appendingPathComponent(".\(name)")
        try data.write(to: temporary)
        #expect(rename(temporary.path, outbox.appendingPathComponent(name).path) == 0)
    }

    static func files(_ folder: URL) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: folder.path)) ?? []).sorted()
    }

    static func error(_ url: URL) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any]
        return object?["error"] as? [String: Any] ?? [:]
    }

    @Test func filesAreSentOrRefusedAndReceivedMessagesWritten() async throws {
        try await withDesks { h in
            let root = h.work.appendingPathComponent("folders-coordinator")
            let desk = try h.desk(Self.coordinator)
            let folders = DeskFolders(core: desk.core, directory: root.path)
            try folders.prepare()
            let outbox = root.appendingPathComponent("outbox")
            let failed = root.appendingPathComponent("failed")
            try Self.drop(try Self.referral("ZCZL-2026/0001"), as: "zaak-0001.json", in: outbox)
            // Still being written: a dot name and a temporary suffix.
            try Data("{\"type\": \"refer".utf8).write(to: outbox.appendingPathComponent(".zaak-0002.json"))
            try Data("{\"type\": \"refer".utf8).write(to: outbox.appendingPathComponent("zaak-0003.json.tmp"))
            // Refused: a broken BSN (its value must not show in the error file), a recipient the
            // policy refuses, a link, a FIFO, a name with a space, a file that is not JSON.
            try Self.drop(try Self.referral("ZCZL-2026/0004", bsn: "123456789"), as: "zaak-0004.json", in: outbox)
            try Self.drop(try Self.referral("ZCZL-2026/0005", to: DeskHarness.municipality), as: "zaak-0005.json", in: outbox)
            try FileManager.default.createSymbolicLink(
                atPath: outbox.appendingPathComponent("link.json").path,
                withDestinationPath: "/etc/passwd"
            )
            #expect(mkfifo(outbox.appendingPathComponent("fifo.json").path, 0o600) == 0)
            try Self.drop(try Self.referral("ZCZL-2026/0006"), as: "zaak 0006.json", in: outbox)
            try Self.drop(try Self.referral("ZCZL-2026/0008"), as: "x..%2F..%2Fsent%2Fzaak.json", in: outbox)
            try Self.drop(Data("not json".utf8), as: "zaak-0007.json", in: outbox)

            let outcomes = await folders.scanOnce()
            guard case .sent(let id) = outcomes["zaak-0001.json"] else {
                Issue.record("zaak-0001.json: \(String(describing: outcomes["zaak-0001.json"]))")
                return
            }
            #expect(Self.files(root.appendingPathComponent("sent")) == ["zaak-0001.\(id).json"])
            #expect(Self.files(outbox) == [".zaak-0002.json", "zaak-0003.json.tmp"])
            #expect(outcomes[".zaak-0002.json"] == .skipped && outcomes["zaak-0003.json.tmp"] == .skipped)
            let bsn = try Self.error(failed.appendingPathComponent("zaak-0004.error.json"))
            #expect(bsn["code"] as? String == "desk.message-invalid")
            #expect((bsn["fields"] as? [[String: Any]])?.first?["path"] as? String == "payload.person.bsn")
            #expect(!(try String(contentsOf: failed.appendingPathComponent("zaak-0004.error.json"), encoding: .utf8)).contains("123456789"))
            let policy = try Self.error(failed.appendingPathComponent("zaak-0005.error.json"))
            #expect((policy["fields"] as? [[String: Any]])?.contains { $0["path"] as? String == "to" } == true)
            #expect(
                outcomes["link.json"] == .failed(code: "desk.input-invalid") && outcomes["fifo.json"] == .failed(code: "desk.input-invalid")
            )
            #expect(
                try FileManager.default.destinationOfSymbolicLink(atPath: failed.appendingPathComponent("link.json").path) == "/etc/passwd"
            )
            #expect(outcomes["zaak 0006.json"] == .failed(code: "desk.input-invalid"))
            // A name that tries to climb out: refused, moved under a name of the desk's making.
            #expect(outcomes["x..%2F..%2Fsent%2Fzaak.json"] == .failed(code: "desk.input-invalid"))
            #expect(
                !Self.files(failed).contains { $0.contains("%2F") } && Self.files(root).sorted() == ["failed", "inbox", "outbox", "sent"]
            )
            #expect(Self.files(failed).filter { $0.hasPrefix("rejected-") && $0.hasSuffix(".error.json") }.count == 2)
            #expect(outcomes["zaak-0007.json"] == .failed(code: "desk.message-invalid"))
            // The name is the idempotency key: the same name with other content is refused.
            try Self.drop(try Self.referral("ZCZL-2026/0099"), as: "zaak-0001.json", in: outbox)
            #expect(await folders.scanOnce()["zaak-0001.json"] == .failed(code: "desk.idempotency-conflict"))
            #expect(try desk.core.store.list(.init(direction: .outgoing)).total == 1)
            #expect(try desk.core.store.accessLog.entries(message: id).contains { $0.staff == "folder" && $0.action == "send" })

            // The shelter's desk receives it; its inbox folder gets it once, opened, mode 0600.
            let shelterDesk = try h.desk(Self.shelter)
            for _ in 0..<20 where try shelterDesk.core.store.message(id) == nil { _ = try await shelterDesk.core.receiveOnce(wait: 1) }
            let shelterRoot = h.work.appendingPathComponent("folders-shelter")
            let shelterFolders = DeskFolders(core: shelterDesk.core, directory: shelterRoot.path)
            try shelterFolders.prepare()
            #expect(try shelterFolders.exportInbox() == 1)
            #expect(try shelterFolders.exportInbox() == 0)
            let written = shelterRoot.appendingPathComponent("inbox/referral.\(id).json")
            let attributes = try FileManager.default.attributesOfItem(atPath: written.path)
            #expect((attributes[.posixPermissions] as? Int) == 0o600)
            let item = try JSONSerialization.jsonObject(with: Data(contentsOf: written)) as? [String: Any]
            #expect((item?["payload"] as? [String: Any])?["caseReference"] as? String == "ZCZL-2026/0001")
            #expect(try shelterDesk.core.store.accessLog.entries(message: id).contains { $0.staff == "folder" && $0.action == "view" })
        }
    }

    /// With the relay out of reach nothing is refused for it: the file waits, the API says 503.
    @Test func aRelayOutOfReachLeavesFilesWaiting() async throws {
        try await withDesks { h in
            let desk = try h.desk(Self.coordinator, adjust: { $0.relay.url = "https://127.0.0.1:9" })
            let root = h.work.appendingPathComponent("folders-offline")
            let folders = DeskFolders(core: desk.core, directory: root.path)
            try folders.prepare()
            let outbox = root.appendingPathComponent("outbox")
            try Self.drop(try Self.referral("ZCZL-2026/0300"), as: "zaak-0300.json", in: outbox)
            #expect(await folders.scanOnce()["zaak-0300.json"] == .waiting)
            #expect(Self.files(outbox) == ["zaak-0300.json"] && Self.files(root.appendingPathComponent("failed")).isEmpty)
            let token = try desk.core.tokens.add(name: "offline").secret
            let running = try await RunningDesk.start(desk, logger: Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() }))
            let answer = try await CaseSystem(base: running.url.absoluteString, token: token)
                .call(.POST, "/api/v1/messages", body: try Self.referral("ZCZL-2026/0301"), key: "offline-1")
            await running.stop()
            #expect(answer.status == 503 && answer.errorCode == "desk.relay-unavailable", "\(answer.text)")
            #expect(try desk.core.store.list(.init(direction: .outgoing)).total == 0)
        }
    }

    /// A desk process working through 40 files is SIGKILLed four times while it works and
    /// started again: every file ends in `sent/`, and the shelter gets each referral exactly once.
    @Test func sigkillWhileSendingLosesAndDoublesNothing() async throws {
        try await withDesks { h in
            let root = h.work.appendingPathComponent("folders-kill")
            let data = h.work.appendingPathComponent("desk-kill-data")
            var configuration = h.configuration(Self.coordinator)
            configuration.inbox.pollWait = 1
            let yaml = """
                identity:
                  directory: \(configuration.identity.directory)
                relay:
                  url: \(configuration.relay.url)
                  id: \(configuration.relay.id)
                  trustAnchors: \(configuration.relay.trustAnchors)
                  crls: [\(configuration.relay.crls.joined(separator: ", "))]
                listen:
                  port: 0
                data:
                  directory: \(data.path)
                inbox:
                  pollWait: 1s
                folders:
                  directory: \(root.path)
                  scanEvery: 1s
                """
            let file = h.work.appendingPathComponent("desk-kill.yaml")
            try yaml.write(to: file, atomically: true, encoding: .utf8)
            let outbox = root.appendingPathComponent("outbox")
            try FileManager.default.createDirectory(at: outbox, withIntermediateDirectories: true)
            let count = 40
            for index in 0..<count {
                try Self.drop(
                    try Self.referral(String(format: "KILL-2026/%04d", index)),
                    as: String(format: "kill-%04d.json", index),
                    in: outbox
                )
            }
            // Each run is killed the moment it has moved a few more files: the next file is then
            // somewhere between pick-up, storing, submitting and moving.
            var progress: [String] = []
            for round in 1...4 {
                let process = try DeskProcess.start(config: file.path)
                let target = round * count / 5
                for _ in 0..<3000 where Self.files(root.appendingPathComponent("sent")).count < target {
                    try await Task.sleep(for: .milliseconds(2))
                }
                process.kill()
                let moved = Self.files(root.appendingPathComponent("sent")).count
                let stored = try DeskStore(directory: data.path).list(.init(direction: .outgoing)).total
                progress.append("\(moved) moved/\(stored) stored")
            }
            let last = try DeskProcess.start(config: file.path)
            for _ in 0..<300 where !Self.files(outbox).isEmpty { try await Task.sleep(for: .milliseconds(100)) }
            last.kill()
            #expect(Self.files(outbox).isEmpty, "left: \(Self.files(outbox))")
            #expect(Self.files(root.appendingPathComponent("failed")).isEmpty)
            let sent = Self.files(root.appendingPathComponent("sent"))
            #expect(sent.count == count, "sent after each kill: \(progress)")
            #expect(progress.first.map { !$0.hasPrefix("\(count) moved") } == true, "the first kill came after the work: \(progress)")
            // The shelter receives each referral once: as many messages as files, every case once.
            let shelterDesk = try h.desk(Self.shelter)
            var received: [DeskMessage] = []
            for _ in 0..<60 where received.count < count {
                _ = try await shelterDesk.core.receiveOnce(wait: 1)
                received = try shelterDesk.core.store.list(.init(direction: .incoming)).messages
            }
            _ = try await shelterDesk.core.receiveOnce(wait: 1)  // one more look, for a doubled message
            received = try shelterDesk.core.store.list(.init(direction: .incoming)).messages
            #expect(received.count == count)
            var cases = Set<String>()
            for listed in received {
                let message = try #require(try shelterDesk.core.store.message(listed.id))  // lists leave the sealed bytes out
                if case .referral(let referral) = try shelterDesk.core.content(of: message).payload { cases.insert(referral.caseReference) }
            }
            #expect(cases.count == count)
        }
    }
}

/// `ketenpost desk serve` as its own process, to be killed.
struct DeskProcess {
    let process: Process

    static var binary: String {
        let next = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("ketenpost")
        return FileManager.default.isExecutableFile(atPath: next.path) ? next.path : Root.path(".build/debug/ketenpost")
    }

    static func start(config: String) throws -> DeskProcess {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["desk", "serve", "--config", config]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        return DeskProcess(process: process)
    }

    func kill() {
        Glibc.kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
