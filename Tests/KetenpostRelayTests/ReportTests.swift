import Foundation
import KetenpostRelay
import KetenpostStore
import Testing

/// The extent report counts labels from metadata only and suppresses small counts.
@Suite struct ReportTests {
    func day(_ text: String) -> Date {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withFullDate]
        return formatter.date(from: text)!
    }

    /// A store with: January — 7 labour in GM0935, 3 sexual in GM0935, 5 unlabelled signals;
    /// February — 12 referrals (labour, GM0917); March — 2 signals (outside the period asked for).
    func populated() async throws -> (SQLiteMessageStore, String) {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("report-\(UUID().uuidString).sqlite").path
        let store = try SQLiteMessageStore(path: path)
        try await store.migrate()
        func add(_ n: Int, on date: String, type: String, form: String?, region: String?) async throws {
            for _ in 0..<n {
                let id = UUID()
                _ = try await store.submit(
                    NewMessage(
                        id: id,
                        sender: "gemeente-a",
                        recipient: "zorg-b",
                        type: type,
                        priority: "normal",
                        exploitationForm: form,
                        region: region,
                        digest: (id.uuidString + id.uuidString).lowercased().filter(\.isHexDigit),
                        body: Data("sealed".utf8),
                        acceptedAt: day(date),
                        expiresAt: day(date).addingTimeInterval(86_400 * 30),
                        acceptanceReceipt: Data("r".utf8)
                    )
                )
            }
        }
        try await add(7, on: "2026-01-10", type: "signal", form: "labour", region: "GM0935")
        try await add(3, on: "2026-01-20", type: "signal", form: "sexual", region: "GM0935")
        try await add(5, on: "2026-01-31", type: "signal", form: nil, region: nil)
        try await add(12, on: "2026-02-02", type: "referral", form: "labour", region: "GM0917")
        try await add(2, on: "2026-03-05", type: "signal", form: "labour", region: "GM0917")
        return (store, path)
    }

    @Test func smallCountsAreSuppressedAndTotalsWithheld() async throws {
        let (store, path) = try await populated()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let counts = try await store.labelCounts(from: day("2026-01-01"), to: day("2026-03-01"))
        let byMonthForm = ExtentReport(counts: counts, from: day("2026-01-01"), to: day("2026-03-01"), by: [.month, .form])
        #expect(
            byMonthForm.cells.map(\.labels) == [
                ["2026-01", "labour"], ["2026-01", "sexual"], ["2026-01", "unknown"], ["2026-02", "labour"],
            ]
        )
        #expect(byMonthForm.cells.map(\.shown) == ["7", "<5", "5", "12"])
        #expect(byMonthForm.cells[1].count == nil && byMonthForm.suppressedCells == 1)
        #expect(byMonthForm.total == nil, "a total would reveal the suppressed cell")
        #expect(byMonthForm.table().contains("withheld") && !byMonthForm.table().contains(" 3"))
        // Coarser: nothing small, so the total is given; March is outside the period.
        let byMonth = ExtentReport(counts: counts, from: day("2026-01-01"), to: day("2026-03-01"), by: [.month])
        #expect(byMonth.cells.map(\.shown) == ["15", "12"] && byMonth.total == 27)
        let byRegionType = ExtentReport(counts: counts, from: day("2026-01-01"), to: day("2026-03-01"), by: [.region, .type])
        #expect(
            byRegionType.cells.map { $0.labels + [$0.shown] } == [
                ["GM0917", "referral", "12"], ["GM0935", "signal", "10"], ["unknown", "signal", "5"],
            ]
        )
    }

    @Test func theCommandLineReportsFromTheStoreFile() async throws {
        let (_, path) = try await populated()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let csv = try await shell(
            "'\(ServeProcessTests.binary)' report --store '\(path)' --from 2026-01-01 --to 2026-04-01 --by month,form --format csv"
        )
        #expect(csv.status == 0, "\(csv.stderr)")
        #expect(
            csv.stdout
                == "month,form,messages\n2026-01,labour,7\n2026-01,sexual,<5\n2026-01,unknown,5\n2026-02,labour,12\n2026-03,labour,<5\n"
        )
        let table = try await shell("'\(ServeProcessTests.binary)' report --store '\(path)' --from 2026-01-01 --to 2026-04-01 --by type")
        #expect(table.stdout.contains("signal") && table.stdout.contains("17") && table.stdout.contains("29"), "\(table.stdout)")
        let bad = try await shell("'\(ServeProcessTests.binary)' report --store '\(path)' --from 2026-01-01 --to 2026-04-01 --by person")
        #expect(bad.status == 1 && bad.stderr.contains("request.invalid"))
    }

    /// Start and elapsed time go to stderr with --progress or on a terminal; stdout stays the report.
    @Test func progressGoesToStderr() async throws {
        let (_, path) = try await populated()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let command = "'\(ServeProcessTests.binary)' report --store '\(path)' --from 2026-01-01 --to 2026-04-01 --by month --format csv"
        let quiet = try await shell(command)
        #expect(quiet.status == 0 && quiet.stderr.isEmpty, "stderr is a pipe here: \(quiet.stderr)")
        let loud = try await shell("\(command) --progress")
        #expect(loud.status == 0 && loud.stdout == quiet.stdout)
        #expect(
            loud.stderr.contains("ketenpost report: counting messages accepted from 2026-01-01 to 2026-04-01 in sqlite://\(path)"),
            "\(loud.stderr)"
        )
        #expect(loud.stderr.contains("ketenpost report: counted in "), "\(loud.stderr)")
        // On a terminal (script(1) gives the command one) it is on by default, and --no-progress turns it off.
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/script") else { return }
        let csv = path + ".csv"
        defer { try? FileManager.default.removeItem(atPath: csv) }
        let terminal = try await shell("/usr/bin/script -qec \"\(command) > '\(csv)'\" /dev/null")
        #expect(terminal.status == 0 && terminal.stdout.contains("counted in "), "\(terminal.stdout)\(terminal.stderr)")
        #expect(try String(contentsOfFile: csv, encoding: .utf8) == quiet.stdout)
        let off = try await shell("/usr/bin/script -qec \"\(command) --no-progress > '\(csv)'\" /dev/null")
        #expect(off.status == 0 && !off.stdout.contains("counted in "), "\(off.stdout)")
    }
}
