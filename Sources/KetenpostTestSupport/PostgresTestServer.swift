import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A throwaway PostgreSQL server for the tests of this process (store and relay tests).
///
/// - Started on first use (`shared`), from `initdb`/`pg_ctl` found on PATH or under
///   `/usr/lib/postgresql/*/bin` (Debian's `postgresql` package), or in `$KETENPOST_POSTGRES_BIN`,
///   in a fresh temporary folder.
/// - Listens on 127.0.0.1 and a free port only (no Unix socket), trust authentication, `fsync=off`.
/// - Stopped (`pg_ctl stop -m immediate`) and its folder removed when the process exits; a small
///   watchdog shell does the same if the process is killed instead.
/// - As root (CI, containers) the server runs as the `postgres` system user via `runuser`:
///   initdb refuses to run as root.
/// - `createDatabase()` gives each test its own database; `dropDatabase(_:)` removes it.
/// - Where `openssl` exists, TLS is on too (optional for clients) with a self-signed certificate
///   for 127.0.0.1 and localhost, `tlsCertificate`, to use as `sslrootcert`.
public final class PostgresTestServer: Sendable {
    public let port: Int
    public let root: String
    public let binDirectory: String
    /// PEM of the server's self-signed certificate, or nil when TLS is off.
    public let tlsCertificate: String?

    /// The folder holding initdb, pg_ctl, postgres and psql, or why there is none.
    public static let binaries: Result<String, ServerError> = locateBinaries()

    /// The one server of this process (started at the first call; a failure is remembered).
    /// Starting runs initdb and pg_ctl (seconds of blocking work): it happens on a Dispatch
    /// thread, never on the cooperative pool, which the relays under test need.
    public static func shared() async throws -> PostgresTestServer {
        try await offPool { try started.get() }
    }

    /// Runs blocking work (subprocesses) on a Dispatch thread.
    static func offPool<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async { continuation.resume(with: Result { try work() }) }
        }
    }
    private static let started: Result<PostgresTestServer, any Error> = Result { try start() }

    public struct ServerError: Error, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    private init(port: Int, root: String, binDirectory: String, tlsCertificate: String?) {
        self.port = port
        self.root = root
        self.binDirectory = binDirectory
        self.tlsCertificate = tlsCertificate
    }

    /// A connection URL for a database on this server.
    public func url(database: String) -> String { "postgres://postgres@127.0.0.1:\(port)/\(database)?sslmode=disable" }

    /// Creates an empty database with a fresh name and returns the name.
    public func createDatabase() async throws -> String {
        let name = "ketenpost_test_" + UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16)
        try await psql("CREATE DATABASE \(name)")
        return name
    }

    /// Drops a database, closing the connections a test left open. Returns at once: the drop
    /// runs on a Dispatch thread (callers clean up in `defer`, where nothing can be awaited).
    public func dropDatabase(_ name: String) {
        DispatchQueue.global().async { _ = try? self.psqlBlocking("DROP DATABASE IF EXISTS \(name) WITH (FORCE)") }
    }

    @discardableResult
    public func psql(_ sql: String) async throws -> String {
        try await Self.offPool { try self.psqlBlocking(sql) }
    }

    private func psqlBlocking(_ sql: String) throws -> String {
        try Self.run(
            binDirectory + "/psql",
            [
                "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", "\(port)", "-U", "postgres",
                "-d", "postgres", "-c", sql,
            ],
            asServerUser: false,
            in: root
        )
    }

    // MARK: - Starting and stopping

    private static func locateBinaries() -> Result<String, ServerError> {
        let fileManager = FileManager.default
        var candidates: [String] = []
        // KETENPOST_POSTGRES_BIN names the one folder to use (another version; or a wrong one to rehearse a skip).
        if let chosen = ProcessInfo.processInfo.environment["KETENPOST_POSTGRES_BIN"] {
            candidates = [chosen]
        } else {
            candidates = searchPath()
        }
        guard
            let directory = candidates.first(where: { directory in
                ["initdb", "pg_ctl", "postgres", "psql"].allSatisfy { fileManager.isExecutableFile(atPath: "\(directory)/\($0)") }
            })
        else {
            return .failure(
                ServerError(
                    """
                    no PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) in \
                    \(candidates.isEmpty ? "PATH or /usr/lib/postgresql/*/bin" : candidates.joined(separator: ", ")); install \
                    Debian's postgresql package
                    """
                )
            )
        }
        if geteuid() == 0 {
            guard getpwnam("postgres") != nil else {
                return .failure(ServerError("running as root, but there is no postgres system user to run the server as"))
            }
            guard runuser != nil else { return .failure(ServerError("running as root, but runuser (util-linux) is missing")) }
        }
        return .success(directory)
    }

    /// Folders that may hold the server binaries, best first.
    private static func searchPath() -> [String] {
        let fileManager = FileManager.default
        var candidates: [String] = []
        for directory in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
            let initdb = "\(directory)/initdb"
            guard fileManager.isExecutableFile(atPath: initdb) else { continue }
            // /usr/local/bin/initdb may be a link into the real bin folder, which also holds psql.
            candidates.append(URL(fileURLWithPath: initdb).resolvingSymlinksInPath().deletingLastPathComponent().path)
        }
        let versions = (try? fileManager.contentsOfDirectory(atPath: "/usr/lib/postgresql")) ?? []
        for version in versions.sorted(by: { (Int($0) ?? 0) > (Int($1) ?? 0) }) {
            candidates.append("/usr/lib/postgresql/\(version)/bin")
        }
        return candidates
    }

    private static let openssl: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    private static let runuser: String? = ["/usr/sbin/runuser", "/sbin/runuser", "/usr/bin/runuser"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    private static func start() throws -> PostgresTestServer {
        let bin = try binaries.get()
        var template = Array("/tmp/ketenpost-pg-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw ServerError("mkdtemp failed: errno \(errno)") }
        let root = String(cString: made)
        if geteuid() == 0 {
            guard let user = getpwnam("postgres") else { throw ServerError("no postgres user") }
            guard chown(root, user.pointee.pw_uid, user.pointee.pw_gid) == 0 else {
                throw ServerError("chown \(root) failed: errno \(errno)")
            }
        }
        let data = root + "/data"
        // Before anything that can leave a server running: a kill from here on still stops it.
        startWatchdog(bin: bin, root: root)
        do {
            try run(
                bin + "/initdb",
                ["-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"],
                asServerUser: true,
                in: root
            )
            let settings = """

                # ketenpost tests: loopback only, no socket file, speed over durability
                listen_addresses = '127.0.0.1'
                unix_socket_directories = ''
                fsync = off
                synchronous_commit = off
                full_page_writes = off
                max_connections = 400
                """
            // The key is made by the server user: the server refuses a key file it does not own.
            let tlsCertificate: String? = openssl.flatMap { openssl in
                let made = try? run(
                    openssl,
                    [
                        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                        "-keyout", data + "/server.key", "-out", data + "/server.crt", "-days", "2",
                        "-subj", "/CN=ketenpost-test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    ],
                    asServerUser: true,
                    in: root
                )
                return made == nil ? nil : data + "/server.crt"
            }
            let tlsSettings = tlsCertificate == nil ? "" : "\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n"
            let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: data + "/postgresql.conf"))
            try handle.seekToEnd()
            try handle.write(contentsOf: Data((settings + tlsSettings).utf8))
            try handle.close()
            var lastError: (any Error)?
            // A port found free can be taken before the server binds it: try a few.
            for _ in 0..<5 {
                let port = try freePort()
                do {
                    try run(
                        bin + "/pg_ctl",
                        ["-D", data, "-l", root + "/server.log", "-w", "-t", "60", "-o", "-p \(port)", "start"],
                        asServerUser: true,
                        in: root
                    )
                } catch {
                    lastError = error
                    continue
                }
                let server = PostgresTestServer(port: port, root: root, binDirectory: bin, tlsCertificate: tlsCertificate)
                running.withLock { $0 = (bin, root) }
                atexit { PostgresTestServer.stopAtExit() }
                return server
            }
            throw lastError ?? ServerError("pg_ctl start failed")
        } catch {
            let log = (try? String(contentsOfFile: root + "/server.log", encoding: .utf8)) ?? ""
            _ = try? run(bin + "/pg_ctl", ["-D", data, "-m", "immediate", "stop"], asServerUser: true, in: root)
            try? FileManager.default.removeItem(atPath: root)
            throw ServerError("could not start a PostgreSQL test server: \(error)\(log.isEmpty ? "" : "\nserver.log:\n\(log)")")
        }
    }

    private static let running = Mutex<(bin: String, root: String)?>(nil)

    private static func stopAtExit() {
        guard let (bin, root) = running.withLock({ $0 }) else { return }
        _ = try? run(bin + "/pg_ctl", ["-D", root + "/data", "-m", "immediate", "stop"], asServerUser: true, in: root)
        try? FileManager.default.removeItem(atPath: root)
    }

    /// Stops the server once this process is gone, however it ended (killed, crashed).
    private static func startWatchdog(bin: String, root: String) {
        let stop = (geteuid() == 0 ? "\(runuser ?? "runuser") -u postgres -- " : "") + "'\(bin)/pg_ctl' -D '\(root)/data' -m immediate stop"
        let script = "while kill -0 \(getpid()) 2>/dev/null; do sleep 1; done; \(stop); rm -rf '\(root)'"
        _ = try? spawn("/bin/sh", ["-c", script], output: "/dev/null", in: "/")
    }

    private static func freePort() throws -> Int {
        #if canImport(Glibc)
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        #else
        let fd = socket(AF_INET, SOCK_STREAM, 0)
        #endif
        guard fd >= 0 else { throw ServerError("socket failed: errno \(errno)") }
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = 0
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer in
                bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
            }
        }
        guard bound else { throw ServerError("could not find a free port: errno \(errno)") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    /// Runs a command to its end (as the `postgres` user when root and `asServerUser`); its output
    /// goes to a file, never a pipe, so that a server it leaves running cannot hold our read open.
    @discardableResult
    private static func run(_ executable: String, _ arguments: [String], asServerUser: Bool, in directory: String) throws -> String {
        var executable = executable
        var arguments = arguments
        if asServerUser, geteuid() == 0, let runuser {
            arguments = ["-u", "postgres", "--", executable] + arguments
            executable = runuser
        }
        // In the server's folder, so that whatever removes the folder also removes a leftover.
        let output = "\(directory)/command-\(UUID().uuidString).out"
        defer { try? FileManager.default.removeItem(atPath: output) }
        let pid = try spawn(executable, arguments, output: output, in: directory)
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1 {
            guard errno == EINTR else { throw ServerError("waitpid failed: errno \(errno)") }
        }
        let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
        // Exited normally with 0 (WIFEXITED && WEXITSTATUS == 0, spelled out: the C macros are not imported).
        guard status & 0x7f == 0, (status >> 8) & 0xff == 0 else {
            throw ServerError("\((executable as NSString).lastPathComponent) \(arguments.last ?? "") failed (status \(status)): \(text)")
        }
        return text
    }

    /// glibc's `posix_spawn_file_actions_addclosefrom_np` (2.34+), looked up at run time: Swift's
    /// Glibc module does not import GNU extensions.
    #if canImport(Glibc)
    private typealias CloseFrom = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, Int32) -> Int32
    private static let addCloseFrom: CloseFrom? = dlsym(nil, "posix_spawn_file_actions_addclosefrom_np")
        .map { unsafeBitCast($0, to: CloseFrom.self) }
    #endif

    /// posix_spawn with stdin from /dev/null and stdout and stderr to `output`. Not Foundation's
    /// `Process`, whose `waitUntilExit()` was seen to miss the child's exit on Linux (a zombie, a hung test).
    private static func spawn(_ executable: String, _ arguments: [String], output: String, in directory: String) throws -> pid_t {
        #if canImport(Glibc)
        var actions = posix_spawn_file_actions_t()
        #else
        var actions: posix_spawn_file_actions_t?
        #endif
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, output, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        // Nothing else of ours: the server runs for the whole test process, and an inherited write
        // end of another test's pipe would keep that test reading forever (a hang seen in CI runs).
        #if canImport(Glibc)
        guard let closeFrom = Self.addCloseFrom, closeFrom(&actions, 3) == 0 else {
            throw ServerError(
                "cannot start \(executable) without our open descriptors (posix_spawn_file_actions_addclosefrom_np, glibc 2.34+)"
            )
        }
        #endif
        // In `directory` (the server user may not enter ours): through sh, as addchdir_np is not imported everywhere.
        let command = ["/bin/sh", "-c", #"cd "$0" && exec "$@""#, directory, executable] + arguments
        let argv = command.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, "/bin/sh", &actions, nil, argv, environ)
        guard result == 0 else { throw ServerError("cannot start \(executable): errno \(result)") }
        return pid
    }
}
