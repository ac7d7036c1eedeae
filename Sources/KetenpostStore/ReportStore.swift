import Foundation

/// Messages counted by their non-identifying envelope labels (no ids, no partners, no content).
public struct LabelCount: Sendable, Equatable {
    /// `YYYY-MM` of acceptance (UTC).
    public var month: String
    public var type: String
    /// `exploitationForm` from the header, or nil when the sender gave none.
    public var form: String?
    /// `region` (a CBS municipality or region code), or nil.
    public var region: String?
    public var count: Int

    public init(month: String, type: String, form: String?, region: String?, count: Int) {
        self.month = month
        self.type = type
        self.form = form
        self.region = region
        self.count = count
    }
}

/// Aggregates for the extent report, computed in the store from metadata only.
public protocol ReportStore: Sendable {
    /// Accepted messages with `from <= acceptedAt < to`, grouped by month, type, form and region.
    func labelCounts(from: Date, to: Date) async throws -> [LabelCount]
}
