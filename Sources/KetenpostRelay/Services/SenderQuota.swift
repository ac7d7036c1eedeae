import Foundation
import KetenpostAPI
import KetenpostStore
import Logging

/// The per-sender storage quota (`limits.maxPendingBytesPerSender`, issue 20): one partner
/// submitting without pause cannot fill the relay's disk for everyone. Counted from the store
/// (every sender's messages that are not final) at most every `refreshInterval`, plus what
/// this instance accepted since; so on several instances a sender may pass the quota by what
/// the others accepted within one interval.
actor SenderQuota {
    let limit: Int
    let refreshInterval: Duration
    private let store: any RelayStore
    private let metrics: RelayMetrics
    private var held: [String: Int] = [:]
    private var refreshed: ContinuousClock.Instant?

    init(limit: Int, store: any RelayStore, metrics: RelayMetrics, refreshInterval: Duration = .seconds(5)) {
        self.limit = limit
        self.store = store
        self.metrics = metrics
        self.refreshInterval = refreshInterval
    }

    /// Counts `bytes` in for `sender`, or refuses with `quota.exceeded`.
    func admit(sender: String, bytes: Int, logger: Logger) async throws(KetenpostError) {
        let now = ContinuousClock.now
        if refreshed.map({ now - $0 >= refreshInterval }) ?? true {
            do {
                held = try await store.pendingBytesBySender()
            } catch {
                throw .storeUnavailable(error, logger: logger)
            }
            refreshed = now
        }
        let pending = held[sender, default: 0]
        guard pending + bytes <= limit else {
            metrics.quotaRefused(sender: sender)
            logger.notice("submission refused: storage quota", metadata: ["partner.from": "\(sender)", "quota.bytes": "\(limit)"])
            throw KetenpostError(
                .quotaExceeded,
                """
                \(sender) has \(Self.megabytes(pending)) MB of messages waiting for delivery, and the relay keeps at most \
                \(Self.megabytes(limit)) MB per sender (limits.maxPendingBytesPerSender). Send again once recipients have fetched \
                messages, or ask the relay administrators.
                """
            )
        }
        held[sender, default: 0] += bytes
    }

    static func megabytes(_ bytes: Int) -> String { String(format: "%.1f", Double(bytes) / 1_048_576) }
}
