import Foundation
import KetenpostAPI
import KetenpostStore
import Logging

/// Opens the store a configuration names (not yet migrated, not yet running).
public enum StoreFactory {
    /// - Parameter logger: where the store's own logs go (PostgresNIO's background logs); metadata only.
    public static func open(_ location: StoreLocation, logger: Logger? = nil) async throws(KetenpostError) -> any RelayStore {
        switch location {
        case .sqlite(let path):
            do {
                let store = try SQLiteMessageStore(path: path)
                for warning in store.warnings { (logger ?? Logger(label: "ketenpost.store")).warning("\(warning)") }
                return store
            } catch let error as StoreError where error.code == .permissions {
                throw KetenpostError(.configInvalid, "store \(location.redacted): \(error.reason)")
            } catch {
                throw KetenpostError(.configInvalid, "store \(location.redacted): cannot be opened: \(error)")
            }
        case .postgres(let url):
            do {
                return try PostgresMessageStore(url: url, logger: logger)
            } catch {
                throw KetenpostError(.configInvalid, "store \(location.redacted): \(error)")
            }
        }
    }
}
