import Foundation
import Synchronization

/// Wakes long-polling inbox requests when a message for their partner arrives, so that
/// delivery latency does not depend on a polling interval.
///
/// A caller reads `generation(for:)` *before* it queries the store, and then waits for a
/// change of generation: an arrival between the query and the wait is never missed.
actor InboxNotifier {
    private var generations: [String: UInt64] = [:]
    private var waiters: [String: [UUID: CheckedContinuation<Void, Never>]] = [:]
    private var closed = false
    /// Waits released before they suspended (a timeout that fired first): they must not suspend.
    private var released: Set<UUID> = []

    func generation(for recipient: String) -> UInt64 { generations[recipient, default: 0] }

    var closedState: Bool { closed }

    func notify(_ recipient: String) {
        generations[recipient, default: 0] &+= 1
        for continuation in waiters.removeValue(forKey: recipient)?.values ?? [:].values { continuation.resume() }
    }

    /// Ends every wait now and every future wait at once (graceful shutdown).
    func close() {
        closed = true
        for continuation in waiters.values.flatMap(\.values) { continuation.resume() }
        waiters.removeAll()
    }

    /// Returns when the generation moved on from `seen`, after `timeout`, or on cancellation.
    nonisolated func wait(for recipient: String, since seen: UInt64, timeout: Duration) async {
        let id = UUID()
        await withTaskGroup(of: Void.self) { group in
            group.addTask { await self.suspend(recipient, id: id, since: seen) }
            group.addTask {
                try? await Task.sleep(for: timeout)
                await self.release(recipient, id: id)
            }
            await group.next()
            group.cancelAll()
            await self.release(recipient, id: id)
            await group.waitForAll()
            await self.forget(id)
        }
    }

    private func suspend(_ recipient: String, id: UUID, since seen: UInt64) async {
        if closed || generations[recipient, default: 0] != seen || released.contains(id) { return }
        await withCheckedContinuation { continuation in
            waiters[recipient, default: [:]][id] = continuation
        }
    }

    private func release(_ recipient: String, id: UUID) {
        if let continuation = waiters[recipient]?.removeValue(forKey: id) {
            continuation.resume()
        } else {
            released.insert(id)
        }
    }

    private func forget(_ id: UUID) { released.remove(id) }
}

/// A token bucket per partner: `rate` requests per second with bursts up to `burst`.
final class RateLimiter: Sendable {
    private struct Bucket {
        var tokens: Double
        var updated: Date
    }
    private let rate: Double
    private let burst: Double
    private let buckets = Mutex<[String: Bucket]>([:])

    init(rate: Double, burst: Double) {
        self.rate = rate
        self.burst = burst
    }

    /// Takes one token; returns the seconds to wait when there is none.
    func take(_ partner: String, now: Date = Date()) -> TimeInterval? {
        buckets.withLock { buckets in
            var bucket = buckets[partner] ?? Bucket(tokens: burst, updated: now)
            bucket.tokens = min(burst, bucket.tokens + max(0, now.timeIntervalSince(bucket.updated)) * rate)
            bucket.updated = now
            defer { buckets[partner] = bucket }
            if bucket.tokens >= 1 {
                bucket.tokens -= 1
                return nil
            }
            return (1 - bucket.tokens) / rate
        }
    }
}
