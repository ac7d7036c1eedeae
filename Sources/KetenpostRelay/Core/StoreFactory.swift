import Foundation
import Ketenpost
import KetenpostStore

/// Opens the store a configuration names (not yet migrated).
public enum StoreFactory {
    public static func open(_ location: StoreLocation) async throws(KetenpostError) -> any RelayStore {
        switch location {
        case .sqlite(let path):
            do {
                return try SQLiteMessageStore(path: path)
            } catch {
                throw KetenpostError(.configInvalid, "store \(location.redacted): cannot be opened: \(error)")
            }
        case .postgres(let url):
            do {
                return try PostgresMessageStore(url: url)
            } catch {
                throw KetenpostError(.configInvalid, "store \(location.redacted): \(error)")
            }
        }
    }
}
