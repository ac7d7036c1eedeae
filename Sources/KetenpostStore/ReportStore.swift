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

/// The queue as administrators watch it.
public struct QueueStats: Sendable, Equatable {
    public struct Inbox: Sendable, Equatable {
        public var recipient: String
        /// Waiting or leased (not final).
        public var pending: Int
        public var oldestAcceptedAt: Date?
        public init(recipient: String, pending: Int, oldestAcceptedAt: Date?) {
            self.recipient = recipient
            self.pending = pending
            self.oldestAcceptedAt = oldestAcceptedAt
        }
    }
    public struct StateCount: Sendable, Equatable {
        public var type: String
        public var state: String
        public var count: Int
        public init(type: String, state: String, count: Int) {
            self.type = type
            self.state = state
            self.count = count
        }
    }
    public var inboxes: [Inbox]
    /// Messages in the store by type and state (final states included: the store keeps them).
    public var byTypeAndState: [StateCount]
    public init(inboxes: [Inbox], byTypeAndState: [StateCount]) {
        self.inboxes = inboxes
        self.byTypeAndState = byTypeAndState
    }
}

public protocol StatsStore: Sendable {
    func queueStats() async throws -> QueueStats
    /// Sealed bytes of each sender's messages that are not final yet (waiting or leased): what
    /// the per-sender storage quota counts.
    func pendingBytesBySender() async throws -> [String: Int]
}
