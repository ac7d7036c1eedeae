import Foundation
import KetenpostStore

/// The extent report: how many messages, by month, exploitation form, region and type, from
/// the envelopes' non-identifying labels only, with small counts suppressed.
///
/// Method: every message the relay accepted in the period counts once, in the month of its
/// acceptance (UTC), under the labels its sender put in the routing header; a message without
/// a label counts under `unknown`. Any count from 1 to 4 is shown as `<5`. The total is
/// withheld when any cell is suppressed (otherwise total minus the shown cells would give the
/// suppressed ones away).
public struct ExtentReport: Sendable, Codable, Equatable {
    public enum Dimension: String, Sendable, Codable, CaseIterable {
        case month, form, region, type
    }

    public struct Cell: Sendable, Codable, Equatable {
        /// One value per dimension, in the order asked for.
        public var labels: [String]
        /// The count, or nil when suppressed.
        public var count: Int?
        /// `"<5"` when suppressed, else the count.
        public var shown: String
    }

    public var from: Date
    public var to: Date
    public var dimensions: [Dimension]
    public var cells: [Cell]
    /// Nil when withheld.
    public var total: Int?
    public var suppressedCells: Int

    public static let threshold = 5

    public init(counts: [LabelCount], from: Date, to: Date, by dimensions: [Dimension]) {
        var grouped: [[String]: Int] = [:]
        for row in counts {
            let key = dimensions.map { dimension -> String in
                switch dimension {
                case .month: return row.month
                case .form: return row.form ?? "unknown"
                case .region: return row.region ?? "unknown"
                case .type: return row.type
                }
            }
            grouped[key, default: 0] += row.count
        }
        let cells = grouped.sorted { $0.key.lexicographicallyPrecedes($1.key) }.map { key, count -> Cell in
            let suppressed = count > 0 && count < Self.threshold
            return Cell(labels: key, count: suppressed ? nil : count, shown: suppressed ? "<\(Self.threshold)" : String(count))
        }
        let suppressed = cells.filter { $0.count == nil }.count
        self.from = from
        self.to = to
        self.dimensions = dimensions
        self.cells = cells
        self.suppressedCells = suppressed
        self.total = suppressed == 0 ? grouped.values.reduce(0, +) : nil
    }

    public func table() -> String {
        let header = dimensions.map(\.rawValue) + ["messages"]
        var rows = cells.map { $0.labels + [$0.shown] }
        rows.append(Array(repeating: "", count: max(0, dimensions.count - 1)) + ["total", total.map(String.init) ?? "withheld"])
        let widths = header.indices.map { i in max(header[i].count, rows.map { $0[i].count }.max() ?? 0) }
        func line(_ values: [String]) -> String {
            values.enumerated().map { i, v in
                i == values.count - 1
                    ? String(repeating: " ", count: widths[i] - v.count) + v
                    : v + String(repeating: " ", count: widths[i] - v.count)
            }
            .joined(separator: "  ")
        }
        return ([line(header), widths.map { String(repeating: "-", count: $0) }.joined(separator: "  ")] + rows.map(line))
            .joined(separator: "\n")
    }

    public func csv() -> String {
        func field(_ text: String) -> String {
            text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" })
                ? "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : text
        }
        var lines = [(dimensions.map(\.rawValue) + ["messages"]).joined(separator: ",")]
        lines += cells.map { ($0.labels + [$0.shown]).map(field).joined(separator: ",") }
        return lines.joined(separator: "\n") + "\n"
    }
}
