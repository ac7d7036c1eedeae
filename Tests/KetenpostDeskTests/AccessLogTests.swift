import Foundation
import GRDB
import KetenpostDesk
import Testing

/// The desk's access log (NEN 7513) in a real SQLite file: every entry chained to the one
/// before, so that a changed, removed or inserted entry shows.
@Suite struct AccessLogTests {
    func withLog(_ body: (SQLiteAccessLog, String) throws -> Void) throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-desk-log-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let path = folder.appendingPathComponent("desk.sqlite").path
        try body(try SQLiteAccessLog(path: path), path)
    }

    @Test func entriesAreChainedAndFiltered() throws {
        try withLog { log, path in
            let message = UUID().uuidString.lowercased()
            try log.record(AccessEvent(staff: "a.jansen", role: "caseworker", action: .signIn))
            try log.record(AccessEvent(staff: "a.jansen", role: "caseworker", action: .view, messageId: message))
            try log.record(AccessEvent(staff: "b.smit", role: "log-reader", action: .logRead, detail: "message"))
            try log.record(AccessEvent(staff: "b.smit", role: "caseworker", action: .signInFailed))
            #expect(try log.verify() == AccessLogVerification(entries: 4, firstBroken: nil))
            #expect(try log.entries(message: message).map(\.staff) == ["a.jansen"])
            #expect(try log.entries(staff: "b.smit").map(\.action) == ["log-read", "sign-in-failed"])
            let all = try log.entries()
            #expect(all.map(\.sequence) == [1, 2, 3, 4])
            #expect(all[0].prevHash == AccessEntry.genesis && all[1].prevHash == all[0].hash)
            // Reopening the file keeps the chain going.
            let again = try SQLiteAccessLog(path: path)
            #expect(try again.record(AccessEvent(staff: "a.jansen", role: "caseworker", action: .signOut)).prevHash == all[3].hash)
            #expect(try again.verify().intact)
        }
    }

    @Test(arguments: [
        "UPDATE access_log SET staff = 'someone-else' WHERE sequence = 2",
        "DELETE FROM access_log WHERE sequence = 2",
        "UPDATE access_log SET at = at + 1 WHERE sequence = 3",
        "UPDATE access_log SET detail = 'x' WHERE sequence = 2",
    ])
    func tamperingShows(sql: String) throws {
        try withLog { log, path in
            for n in 1...4 { try log.record(AccessEvent(staff: "s\(n)", role: "caseworker", action: .view, messageId: "m\(n)")) }
            let database = try DatabaseQueue(path: path)
            try database.write { try $0.execute(sql: sql) }
            try database.close()
            let verification = try log.verify()
            #expect(!verification.intact)
            #expect(verification.firstBroken == 2 || verification.firstBroken == 3, "\(verification)")
        }
    }

    @Test func csvKeepsSpreadsheetsFromRunningCells() throws {
        try withLog { log, _ in
            try log.record(AccessEvent(staff: "=HYPERLINK(\"x\")", role: "caseworker", action: .export, detail: "a, \"b\"\nc"))
            let csv = SQLiteAccessLog.csv(try log.entries())
            let lines = csv.components(separatedBy: "\r\n")
            #expect(lines[0] == "sequence,time,staff,role,action,message,detail,hash")
            #expect(lines[1].hasPrefix("1,\"") && lines[1].contains("\"'=HYPERLINK(\"\"x\"\")\""), "\(lines[1])")
            #expect(csv.contains("\"a, \"\"b\"\"\nc\""))
        }
    }
}
