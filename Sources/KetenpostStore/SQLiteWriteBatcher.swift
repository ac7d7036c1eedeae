import Foundation
import GRDB
import Synchronization

/// Group commit for every write on the hot path (submit, lease, acknowledge): writes that
/// arrive while a transaction is being committed wait and run together in the next one, so
/// that N concurrent partners share one fsync instead of queueing for N.
///
/// Each write runs in its own savepoint inside the shared transaction, so one that fails is
/// rolled back alone and answered with its error while the others commit. Nobody is answered
/// before the transaction holding their write has committed; if the commit fails, everybody in
/// it gets the error (none of their writes happened).
///
/// Batches run on one serial dispatch queue that calls GRDB's synchronous write (which runs on
/// the calling thread): a write costs one thread wake-up to get there and one to answer,
/// instead of also hopping through an actor, a drain task and GRDB's asynchronous API. Blocking
/// on the fsync there keeps it off the Swift concurrency pool.
final class SQLiteWriteBatcher: Sendable {
    private struct Item: @unchecked Sendable {  // its closures only touch the continuation and the database
        /// Runs the write; returns how to answer the caller once the transaction has committed.
        /// Throws only `Aborted`: the batch's transaction is gone, so the batch fails as a whole.
        let run: (Database) throws -> (() -> Void)
        let fail: (any Error) -> Void
    }

    private struct State {
        var pending: [Item] = []
        /// A drain is scheduled or running on `queue`; it takes everything that arrives meanwhile.
        var draining = false
    }

    private let pool: DatabasePool
    private let state = Mutex(State())
    /// Transactions run so far (tests: that concurrent writes shared one).
    let batches = Atomic<Int>(0)
    private let queue = DispatchQueue(label: "ketenpost.sqlite.writes")
    /// Bounds a transaction, so that one huge batch does not delay its first member for long.
    static let maximumBatch = 256

    init(pool: DatabasePool) { self.pool = pool }

    func write<T: Sendable>(_ body: @escaping @Sendable (Database) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            let item = Item(
                run: { db in
                    do {
                        let result = try Self.inSavepoint(db) { try body(db) }
                        return { continuation.resume(returning: result) }
                    } catch let aborted as Aborted {
                        throw aborted
                    } catch {
                        return { continuation.resume(throwing: error) }
                    }
                },
                fail: { continuation.resume(throwing: $0) }
            )
            let start = state.withLock { state in
                state.pending.append(item)
                defer { state.draining = true }
                return !state.draining
            }
            if start { queue.async { self.drain() } }
        }
    }

    /// Runs `body` in a savepoint of the batch's transaction: rolled back alone if it throws.
    ///
    /// Not GRDB's `inSavepoint`, which parses and prepares its `SAVEPOINT` and `RELEASE` text on
    /// every call: two statement compilations (and their allocations) per message on the hot
    /// path. These are compiled once per connection and reused.
    ///
    /// If SQLite ended the whole transaction (a failure that aborts it rather than the statement,
    /// e.g. a full disk), the write fails with `Aborted`, which `drain` turns into a failure of
    /// the whole batch at once, answered with that write's error: the writes before it were
    /// rolled back with it, and the ones after it have no transaction to run in.
    static func inSavepoint<T>(_ db: Database, _ body: () throws -> T) throws -> T {
        guard db.isInsideTransaction else { throw Aborted(cause: nil) }
        try db.cachedStatement(sql: "SAVEPOINT ketenpost_write").execute()
        do {
            let result = try body()
            try db.cachedStatement(sql: "RELEASE SAVEPOINT ketenpost_write").execute()
            return result
        } catch {
            guard db.isInsideTransaction else { throw Aborted(cause: error) }
            do {
                // ROLLBACK TO keeps the savepoint open; RELEASE then pops it (nothing left to write).
                try db.cachedStatement(sql: "ROLLBACK TO SAVEPOINT ketenpost_write").execute()
                try db.cachedStatement(sql: "RELEASE SAVEPOINT ketenpost_write").execute()
            } catch let rollback {
                // The write could not be taken back alone: its changes must not commit with the
                // others while it is answered as failed, so the whole batch fails.
                throw Aborted(cause: rollback)
            }
            throw error
        }
    }

    /// SQLite rolled back the batch's whole transaction while one of its writes ran.
    struct Aborted: Error {
        /// What the write that ended the transaction failed with: every member of the batch gets it.
        let error: any Error
        init(cause: (any Error)?) {
            error = cause ?? DatabaseError(resultCode: .SQLITE_ABORT, message: "the write transaction was rolled back")
        }
    }

    /// On `queue`: commits batches until nothing is pending.
    private func drain() {
        while true {
            let batch: [Item] = state.withLock { state in
                let batch = Array(state.pending.prefix(Self.maximumBatch))
                state.pending.removeFirst(batch.count)
                if batch.isEmpty { state.draining = false }
                return batch
            }
            if batch.isEmpty { return }
            do {
                var answers: [() -> Void] = []
                try pool.writeWithoutTransaction { db in
                    // BEGIN IMMEDIATE: the write lock up front, so that a read-then-write never
                    // fails half-way with SQLITE_BUSY when another process writes the same file.
                    try db.inTransaction(.immediate) {
                        answers = try batch.map { try $0.run(db) }
                        return .commit
                    }
                }
                batches.add(1, ordering: .relaxed)
                for answer in answers { answer() }
            } catch {
                let error = (error as? Aborted)?.error ?? error
                for item in batch { item.fail(error) }
            }
        }
    }
}
