import Foundation

/// Collects submissions that arrive while a transaction is being committed and commits them
/// together in the next one, so that concurrent writers share an fsync (group commit).
///
/// Nobody is answered before the transaction holding their message has committed; a failed
/// transaction fails every submission in it (none of them was stored).
actor GroupCommit<Input: Sendable, Output: Sendable> {
    typealias Runner = @Sendable ([Input]) async throws -> [Output]

    private var pending: [(message: Input, continuation: CheckedContinuation<Output, any Error>)] = []
    private var draining = false
    /// Bounds a transaction, so that one huge batch does not delay its first member for long.
    static var maximumBatch: Int { 256 }

    func submit(_ message: Input, run: @escaping Runner) async throws -> Output {
        try await withCheckedThrowingContinuation { continuation in
            pending.append((message, continuation))
            if !draining {
                draining = true
                Task { await self.drain(run) }
            }
        }
    }

    private func drain(_ run: Runner) async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(Self.maximumBatch))
            pending.removeFirst(batch.count)
            do {
                let outcomes = try await run(batch.map(\.message))
                for (item, outcome) in zip(batch, outcomes) { item.continuation.resume(returning: outcome) }
            } catch {
                for item in batch { item.continuation.resume(throwing: error) }
            }
        }
        draining = false
    }
}
