import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostRelay
import KetenpostStore

/// `ketenpost report`: the extent report from the store's metadata.
struct Report: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Count messages by month, exploitation form, region and type, with small counts suppressed.",
        discussion: """
            Reads only the envelopes' non-identifying labels (type, exploitationForm, region) and the \
            acceptance time from the store; never content, ids or partners. Counts from 1 to 4 are shown \
            as <5, and the total is withheld when a cell is suppressed. Counts are messages, not persons: \
            one case may send several messages (signal, referral, intake), and labels are what senders chose \
            to give. See docs/REPORT.md.
            Counting is one query in the store and can take a while over a large one: a line when \
            it starts and one with the elapsed time go to stderr (stdout carries only the report) \
            when stderr is a terminal, or always with --progress.
            Examples:
              ketenpost report --store data/ketenpost.sqlite --from 2026-01-01 \\
                --to 2027-01-01 --by month,form
              ketenpost report \\
                --store 'postgres://reports@db.internal/ketenpost?sslmode=verify-full' \\
                --from 2026-01-01 --to 2026-04-01 --by region,type --format csv > q1.csv
            """
    )

    @Option(help: "The relay's store: a SQLite file or a store URL.") var store: String = "data/ketenpost.sqlite"
    @Option(help: "First day (inclusive), YYYY-MM-DD (UTC).") var from: String
    @Option(help: "Last day (exclusive), YYYY-MM-DD (UTC).") var to: String
    @Option(help: "Dimensions, comma-separated: month, form, region, type.") var by: String = "month,type"
    @Option(help: "table, csv or json.") var format: String = "table"
    @Flag(inversion: .prefixedNo, help: "Print start and elapsed time on stderr (default: when stderr is a terminal).")
    var progress: Bool?

    func run() async throws {
        do {
            func day(_ text: String, _ option: String) throws -> Date {
                let formatter = ISO8601DateFormatter()
                formatter.formatOptions = [.withFullDate]
                guard let date = formatter.date(from: text) else {
                    throw KetenpostError(.requestInvalid, "\(option) must be a date such as 2026-01-01.")
                }
                return date
            }
            let start = try day(from, "--from")
            let end = try day(to, "--to")
            guard start < end else { throw KetenpostError(.requestInvalid, "--from must be before --to.") }
            var dimensions: [ExtentReport.Dimension] = []
            for name in by.split(separator: ",") {
                guard let dimension = ExtentReport.Dimension(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                    throw KetenpostError(.requestInvalid, "--by takes month, form, region and type.")
                }
                if !dimensions.contains(dimension) { dimensions.append(dimension) }
            }
            guard !dimensions.isEmpty else { throw KetenpostError(.requestInvalid, "--by needs at least one dimension.") }
            guard ["table", "csv", "json"].contains(format) else {
                throw KetenpostError(.requestInvalid, "--format is table, csv or json.")
            }
            // No percentages: the store answers one GROUP BY query, with nothing to report midway.
            let progress = ProgressLines(enabled: self.progress ?? (isatty(STDERR_FILENO) == 1))
            let location = StoreLocation.parse(store) ?? .sqlite(path: store)
            progress.say("counting messages accepted from \(from) to \(to) in \(location.redacted)…")
            let started = ContinuousClock.now
            let source = try await ReportSource.open(store)
            let counts = try await source.withRunning { try await source.labelCounts(from: start, to: end) }
            let elapsed = ContinuousClock.now - started
            progress.say(
                String(format: "counted in %.2f s.", Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
            )
            let report = ExtentReport(counts: counts, from: start, to: end, by: dimensions)
            switch format {
            case "csv": print(report.csv(), terminator: "")
            case "json": printJSON(report)
            default: print(report.table())
            }
        } catch {
            throw fail(error)
        }
    }
}

/// Progress lines on stderr, prefixed like errors; metadata only (dates, the redacted store).
struct ProgressLines {
    let enabled: Bool
    func say(_ line: String) {
        guard enabled else { return }
        var stderr = StandardError()
        print("ketenpost report: \(line)", to: &stderr)
    }
}

/// A store opened for reading aggregates: a SQLite file (read-only) or a store URL.
enum ReportSource {
    static func open(_ text: String) async throws -> any RelayStore {
        let location = StoreLocation.parse(text) ?? .sqlite(path: text)
        if case .sqlite(let path) = location {
            do { return try SQLiteMessageStore(path: path, readOnly: true) } catch {
                throw KetenpostError(.configInvalid, "--store \(path) cannot be opened read-only: \(error)")
            }
        }
        return try await StoreFactory.open(location)
    }
}
