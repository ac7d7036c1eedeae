import Foundation
import GRDB

/// Group commit for every write on the hot path (submit, lease, acknowledge): writes that
/// arrive while a transaction is being committed wait and run together in the next one, so
/// that N concurrent partners share one fsync instead of queueing for N.
///
/// Each write runs in its own savepoint inside the shared transaction, so one that fails is
/// rolled back alone and answered with its error while the others commit. Nobody is answered
/// before the transaction holding their write has committed; if the commit fails, everybody in
/// it gets the error (none of their writes happened).
actor SQLiteWriteBatcher {
    private struct Item: @unchecked Sendable {   // its closures only touch the continuation and the database
        /// Runs the write; returns how to answer the caller once the transaction has committed.
        let run: (Database) -> (() -> Void)
        let fail: (any Error) -> Void
    }

    private let pool: DatabasePool
    private var pending: [Item] = []
    private var draining = false
    /// Bounds a transaction, so that one huge batch does not delay its first member for long.
    static let maximumBatch = 256

    init(pool: DatabasePool) { self.pool = pool }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            pending.append(Item(
                run: { db in
                    do {
                        var result: T?
                        try db.inSavepoint {
                            result = try body(db)
                            return .commit
                        }
                        guard let result else { throw DatabaseError(message: "write produced no result") }
                        return { continuation.resume(returning: result) }
                    } catch {
                        return { continuation.resume(throwing: error) }
                    }
                },
                fail: { continuation.resume(throwing: $0) }))
            if !draining {
                draining = true
                Task { await self.drain() }
            }
        }
    }

    private func drain() async {
        while !pending.isEmpty {
            let batch = Array(pending.prefix(Self.maximumBatch))
            pending.removeFirst(batch.count)
            do {
                let answers = try await pool.writeWithoutTransaction { db in
                    var answers: [() -> Void] = []
                    // BEGIN IMMEDIATE: the write lock up front, so that a read-then-write never
                    // fails half-way with SQLITE_BUSY when another process writes the same file.
                    try db.inTransaction(.immediate) {
                        answers = batch.map { $0.run(db) }
                        return .commit
                    }
                    return UncheckedAnswers(answers)
                }
                for answer in answers.answers { answer() }
            } catch {
                for item in batch { item.fail(error) }
            }
        }
        draining = false
    }

    /// The closures only resume continuations, which is safe from any thread.
    private struct UncheckedAnswers: @unchecked Sendable {
        let answers: [() -> Void]
        init(_ answers: [() -> Void]) { self.answers = answers }
    }
}
