import Foundation

/// The SQLite store's files are for the relay's user alone: the database, its WAL and shared
/// memory hold ciphertext, but also who wrote to whom and when. A new data folder is created
/// 0700 and a new database 0600 (SQLite gives its WAL and shared memory the database's mode);
/// a file that others may read or write stops start-up, and a folder others may enter is
/// reported, because a shared parent (such as /var/lib) can be fine when the files are private.
enum FilePermissions {
    /// Creates what is missing with private modes and checks what exists.
    /// - Returns: warnings for the operator (metadata only: paths and modes).
    static func prepare(database path: String) throws -> [String] {
        let manager = FileManager.default
        let folder = (path as NSString).deletingLastPathComponent.isEmpty ? "." : (path as NSString).deletingLastPathComponent
        if !manager.fileExists(atPath: folder) {
            try manager.createDirectory(atPath: folder, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        }
        if !manager.fileExists(atPath: path) {
            // An empty file is a new database to SQLite; creating it first fixes its mode whatever the umask.
            guard manager.createFile(atPath: path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
                throw StoreError(
                    .permissions,
                    "The database \(path) cannot be created in \(folder): check that the relay's user may write there."
                )
            }
        }
        for file in [path, path + "-wal", path + "-shm"] {
            guard let mode = Self.mode(file) else { continue }
            if mode & 0o077 != 0 {
                throw StoreError(
                    .permissions,
                    """
                    \(file) has mode \(String(mode, radix: 8)), so other users of this machine may read or change it. \
                    Run `chmod 600 \(path) \(path)-wal \(path)-shm` (as the relay's user) and start again.
                    """
                )
            }
        }
        if let mode = Self.mode(folder), mode & 0o077 != 0 {
            return [
                """
                the data folder \(folder) has mode \(String(mode, radix: 8)): other users may list it; `chmod 700 \(folder)` unless \
                it is shared on purpose
                """
            ]
        }
        return []
    }

    /// The permission bits of a file, or nil when it does not exist.
    static func mode(_ path: String) -> Int? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int(info.st_mode) & 0o777
    }
}
