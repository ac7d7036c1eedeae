import Foundation
import KetenpostAPI
import KetenpostEnvelope
import KetenpostProvisioning
import KetenpostModel
import Yams

/// The relay's configuration (`config/ketenpost.yaml`). Relative paths are resolved against
/// the working directory. Every key is optional and has the default shown.
///
/// - `relay.id` (default `ketenpost-relay`): the commonName of the relay certificate; the
///   issuer named in acceptance receipts.
/// - `listen.host` (`127.0.0.1`), `listen.port` (`8443`; 0 picks a free port).
/// - `store.path` (`data/ketenpost.sqlite`): the SQLite file (WAL, synchronous=FULL).
/// - `store.url` (none): the store as a URL, overriding `store.path`: `sqlite:///path/to/file`
///   or `postgres://user[:password]@host:port/database[?sslmode=require|verify-full&sslrootcert=PATH]`
///   (several relay instances share one PostgreSQL database).
/// - `tls.certificate`, `tls.key` (`certs/dev/relay/cert.pem`, `key.pem`): the relay's TLS server
///   certificate, also used to sign acceptance receipts.
/// - `tls.trustAnchors` (`certs/dev/ca/cert.pem`): CAs that issue partner certificates.
/// - `tls.crls` (`[certs/dev/crl.pem]`): CRLs; with CRLs, revocation is checked (fail closed),
///   at every TLS handshake and for every signature.
/// - `tls.reloadInterval` (`10s`): how often the relay's certificate and key, the trust anchors and
///   the CRLs are checked for changes on disk (SIGHUP reloads at once). New handshakes and receipts
///   use a new relay certificate; open connections continue.
/// - `tls.staleCRL` (`refuse`): what a CRL past its next update means. `refuse` closes the door to
///   every certificate of that CA until a fresh CRL arrives; `accept` keeps it open. Either way it
///   is logged as an error and shown by the `ketenpost_crl_stale` metric.
/// - `directory.partners` (`config/partners.yaml`), `directory.policy` (`config/policy.yaml`).
/// - `directory.certificates` (`certs/dev/partners`): where `<id>/cert.pem` is found for partners
///   that list no certificates of their own.
/// - `directory.refreshInterval` (`1s`): how often an instance checks the store for directory changes
///   made by another instance (changes made through this instance apply at once).
/// - `directory.expiryWarning` (`30d`): certificates that expire within this window are logged daily
///   and listed by `ketenpost admin certs expiring`.
/// - `metrics.listen` (none): `HOST:PORT` of a plain-HTTP listener that serves only `GET /metrics`
///   (Prometheus text) for the monitoring system; keep it on loopback or an internal network.
///   Administrators also get `/metrics` on the main port with their certificate.
/// - `admin.listen` (none): `HOST:PORT` of a plain-HTTP status page for administrators, without
///   authentication, so HOST must be a loopback address (reach it through an SSH tunnel).
///   Administrators also get it at `/v1/admin/status` on the main port with their certificate.
/// - `conformance.echo` (none): the partner id of a conformance echo the relay hosts (e.g.
///   `ketenpost-echo`), for `ketenpost conformance`: it answers every signal with a signal back
///   and acknowledges it, or rejects what it cannot open with the failing check's code. It is a
///   partner like any other, with its own key in `conformance.identity` (the development PKI
///   creates `certs/dev/echo`), talking to this relay over mutual TLS; it may exchange signals
///   with every partner whatever the policy says. Leave it off in production regions.
/// - `audit.checkpointInterval` (`5m`): how often the relay signs the head of the audit trail
///   (and once more when it stops); records after the last checkpoint are protected by the
///   hash chain only.
/// - `admin.certificates` (`[certs/dev/admin/cert.pem]`): PEM files with the certificates of the
///   administrators; only their holders may use `/v1/admin/...` and `/metrics`.
/// - `queue.leaseDuration` (`60s`): how long a delivered message stays invisible to other polls.
/// - `queue.maxAttempts` (`5`): deliveries without acknowledgement before dead-lettering.
/// - `queue.retention` (`7d`): how long ciphertext stays after a message became final.
/// - `queue.sweepInterval` (`5s`): how often expiry, dead-letters and purges are applied.
/// - `queue.maxLongPoll` (`30s`, at most `50s`): the longest inbox wait a partner may ask for.
/// - `queue.maxLifetime.TYPE` (signal 14d, referral 30d, intake-notice 3d, intake-response 7d,
///   enforcement-signal 30d, registration 30d): the relay expires a message at the earlier of
///   its header's `expiresAt` and acceptance plus this.
/// - `limits.maxMessageBytes` (`4194304`): larger submissions get 413 before being read.
/// - `limits.ratePerSecond` (`50`), `limits.rateBurst` (`200`): per partner; beyond it, 429.
/// - `limits.idleTimeout` (`60s`): a connection without a request in progress is closed after
///   this; it also cuts off a TLS handshake or request head that trickles in (the clock only
///   restarts when a complete request head or body chunk arrives).
/// - `limits.bodyTimeout` (`60s`): a request body must have arrived completely this long after
///   its head, or the connection is closed (a body trickled in byte by byte).
/// - `limits.maxConnections` (`1024`): open connections at most; further ones wait in the listen
///   backlog until others close (gauge `ketenpost_connections_open`).
/// - `developmentPKI.directory` (`certs/dev`): if set and no CA exists there, the first start
///   creates the development PKI. Remove the key in production.
public struct RelayConfiguration: Sendable {
    public var relayID = DevelopmentPKI.relayID
    public var host = "127.0.0.1"
    public var port = 8443
    public var storePath = "data/ketenpost.sqlite"
    /// `store.url`; nil means SQLite at `storePath`.
    public var storeURL: String?
    public var tlsCertificate = "certs/dev/relay/cert.pem"
    public var tlsKey = "certs/dev/relay/key.pem"
    public var trustAnchors = "certs/dev/ca/cert.pem"
    public var crls = ["certs/dev/crl.pem"]
    public var partnersFile = "config/partners.yaml"
    public var policyFile = "config/policy.yaml"
    public var certificateDirectory = "certs/dev/partners"
    public var reloadInterval: TimeInterval = 10
    public var acceptStaleCRL = false
    public var directoryRefreshInterval: TimeInterval = 1
    public var expiryWarning: TimeInterval = 30 * 86_400
    public var adminCertificates = ["certs/dev/admin/cert.pem"]
    public var checkpointInterval: TimeInterval = 300
    /// `metrics.listen`; nil: no separate metrics listener.
    public var metricsHost: String?
    public var metricsPort = 0
    /// `conformance.echo` and `conformance.identity`.
    public var conformanceEcho: String?
    public var conformanceIdentity = "certs/dev/echo"
    /// `admin.listen`; nil: no loopback status page.
    public var statusHost: String?
    public var statusPort = 0
    public var leaseDuration: TimeInterval = 60
    public var maxAttempts = 5
    public var retention: TimeInterval = 7 * 86_400
    public var sweepInterval: TimeInterval = 5
    public var maxLongPoll: TimeInterval = 30
    public var maxLifetime: [MessageType: TimeInterval] = Dictionary(uniqueKeysWithValues: MessageType.allCases.map { ($0, Drafting.defaultLifetime(for: $0)) })
    public var maxMessageBytes = 4 << 20
    public var ratePerSecond: Double = 50
    public var rateBurst: Double = 200
    public var idleTimeout: TimeInterval = 60
    public var bodyTimeout: TimeInterval = 60
    public var maxConnections = 1024
    public var developmentPKIDirectory: String? = "certs/dev"

    public init() {}

    /// Where the store lives.
    public var storeLocation: StoreLocation {
        storeURL.flatMap(StoreLocation.parse) ?? .sqlite(path: storePath)
    }

    /// A configuration for a development PKI in `pki` (as `ketenpost pki init` lays it out),
    /// listening on a free port: the demo, the benchmarks and the tests use it.
    public static func development(pki: DevelopmentPKI, storePath: String, partnersFile: String, policyFile: String) -> RelayConfiguration {
        var c = RelayConfiguration()
        c.port = 0
        c.storePath = storePath
        c.developmentPKIDirectory = pki.directory.path
        c.tlsCertificate = pki.relayDirectory + "/cert.pem"
        c.tlsKey = pki.relayDirectory + "/key.pem"
        c.trustAnchors = pki.caCertificatePath
        c.crls = [pki.crlPath]
        c.partnersFile = partnersFile
        c.policyFile = policyFile
        c.certificateDirectory = pki.directory.appendingPathComponent("partners").path
        c.adminCertificates = [pki.adminDirectory + "/cert.pem"]
        return c
    }

    /// Reads and checks the file. Errors name the file, the key and what is wrong.
    public static func load(path: String) throws(KetenpostError) -> RelayConfiguration {
        let text: String
        do { text = try String(contentsOfFile: path, encoding: .utf8) } catch {
            throw KetenpostError(.configInvalid, "\(path): cannot be read (\(error.localizedDescription)).")
        }
        return try parse(text, file: path)
    }

    public static func parse(_ text: String, file: String) throws(KetenpostError) -> RelayConfiguration {
        func fail(_ key: String, _ why: String) -> KetenpostError {
            KetenpostError(.configInvalid, "\(file): \(key) \(why)")
        }
        // A misspelt key would otherwise be ignored silently and its default used. Checked on the
        // composed node tree, first: constructing plain values (Yams.load) traps on a complex key
        // such as `? [x]` and expands every alias (found by the config-relay fuzz target).
        if let node = try? Yams.compose(yaml: text), case .mapping(let sections) = node {
            for (sectionNode, value) in sections {
                guard let section = sectionNode.string else { throw fail("a key", "is not text; keys are plain names such as listen or store.") }
                guard let allowed = knownKeys[section] else { throw fail(section, "is not a known key.") }
                if case .mapping(let keys) = value {
                    for (keyNode, _) in keys {
                        guard let key = keyNode.string else { throw fail("\(section): a key", "is not text.") }
                        guard allowed.contains(key) else { throw fail("\(section).\(key)", "is not a known key.") }
                    }
                }
            }
        }
        let raw: FileShape
        do {
            raw = try YAMLDecoder().decode(FileShape.self, from: text)
        } catch let error as DecodingError {
            throw KetenpostError(.configInvalid, "\(file): \(ConfigErrors.describe(error))")
        } catch {
            throw KetenpostError(.configInvalid, "\(file): not valid YAML (\(error)).")
        }
        func duration(_ text: String?, _ key: String, _ current: TimeInterval) throws(KetenpostError) -> TimeInterval {
            guard let text else { return current }
            guard let value = Drafting.parseDuration(text) else { throw fail(key, "must be a duration such as 30s, 5m, 12h or 7d.") }
            return value
        }
        var c = RelayConfiguration()
        if let id = raw.relay?.id {
            guard PartnerID.isValid(id) else { throw fail("relay.id", "must be a partner-style id (lowercase letters, digits, dashes).") }
            c.relayID = id
        }
        if let host = raw.listen?.host { c.host = host }
        if let port = raw.listen?.port {
            guard (0...65_535).contains(port) else { throw fail("listen.port", "must be between 0 and 65535.") }
            c.port = port
        }
        if let path = raw.store?.path { c.storePath = path }
        if let url = raw.store?.url {
            switch StoreLocation.parse(url) {
            case .sqlite(let path)?: c.storePath = path
            case .postgres?: c.storeURL = url
            case nil: throw fail("store.url", "must be sqlite:///path/to/file or postgres://user@host:port/database.")
            }
        }
        if let v = raw.tls?.certificate { c.tlsCertificate = v }
        if let v = raw.tls?.key { c.tlsKey = v }
        if let v = raw.tls?.trustAnchors { c.trustAnchors = v }
        if let v = raw.tls?.crls { c.crls = v }
        if let v = raw.directory?.partners { c.partnersFile = v }
        if let v = raw.directory?.policy { c.policyFile = v }
        if let v = raw.directory?.certificates { c.certificateDirectory = v }
        c.directoryRefreshInterval = try duration(raw.directory?.refreshInterval, "directory.refreshInterval", c.directoryRefreshInterval)
        c.expiryWarning = try duration(raw.directory?.expiryWarning, "directory.expiryWarning", c.expiryWarning)
        c.reloadInterval = try duration(raw.tls?.reloadInterval, "tls.reloadInterval", c.reloadInterval)
        if let v = raw.tls?.staleCRL {
            switch v {
            case "refuse": c.acceptStaleCRL = false
            case "accept": c.acceptStaleCRL = true
            default: throw fail("tls.staleCRL", "must be refuse or accept.")
            }
        }
        if let v = raw.admin?.certificates { c.adminCertificates = v }
        c.checkpointInterval = try duration(raw.audit?.checkpointInterval, "audit.checkpointInterval", c.checkpointInterval)
        func hostPort(_ text: String, _ key: String) throws(KetenpostError) -> (String, Int) {
            guard let colon = text.lastIndex(of: ":"), let port = Int(text[text.index(after: colon)...]), (0...65_535).contains(port),
                  colon != text.startIndex else {
                throw fail(key, "must be HOST:PORT, such as 127.0.0.1:9464.")
            }
            return (String(text[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]")), port)
        }
        if let listen = raw.metrics?.listen { (c.metricsHost, c.metricsPort) = try hostPort(listen, "metrics.listen") }
        if let echo = raw.conformance?.echo {
            guard PartnerID.isValid(echo) else { throw fail("conformance.echo", "must be a partner id (lowercase letters, digits, dashes).") }
            c.conformanceEcho = echo
        }
        if let identity = raw.conformance?.identity { c.conformanceIdentity = identity }
        if let listen = raw.admin?.listen {
            let (host, port) = try hostPort(listen, "admin.listen")
            // The page has no authentication of its own: only this machine may reach it.
            guard ["127.0.0.1", "::1", "localhost"].contains(host) else {
                throw fail("admin.listen", "must be on a loopback address (127.0.0.1, ::1 or localhost): the page has no authentication.")
            }
            (c.statusHost, c.statusPort) = (host, port)
        }
        guard c.directoryRefreshInterval >= 0.1, c.reloadInterval >= 1 else {
            throw fail("directory.refreshInterval/tls.reloadInterval", "must be at least 0.1s and 1s respectively.")
        }
        c.leaseDuration = try duration(raw.queue?.leaseDuration, "queue.leaseDuration", c.leaseDuration)
        c.retention = try duration(raw.queue?.retention, "queue.retention", c.retention)
        c.sweepInterval = try duration(raw.queue?.sweepInterval, "queue.sweepInterval", c.sweepInterval)
        c.maxLongPoll = try duration(raw.queue?.maxLongPoll, "queue.maxLongPoll", c.maxLongPoll)
        if let attempts = raw.queue?.maxAttempts {
            guard (1...100).contains(attempts) else { throw fail("queue.maxAttempts", "must be between 1 and 100.") }
            c.maxAttempts = attempts
        }
        for (key, value) in raw.queue?.maxLifetime ?? [:] {
            guard let type = MessageType(rawValue: key) else {
                throw fail("queue.maxLifetime.\(key)", "is not a message type (\(MessageType.allCases.map(\.rawValue).joined(separator: ", "))).")
            }
            c.maxLifetime[type] = try duration(value, "queue.maxLifetime.\(key)", 0)
        }
        if let bytes = raw.limits?.maxMessageBytes {
            guard (1_024...Envelope.maximumSize).contains(bytes) else {
                throw fail("limits.maxMessageBytes", "must be between 1024 and \(Envelope.maximumSize).")
            }
            c.maxMessageBytes = bytes
        }
        if let rate = raw.limits?.ratePerSecond {
            // Below one request a day the Retry-After arithmetic leaves every sane range.
            guard rate.isFinite, rate >= 0.001, rate <= 1_000_000 else { throw fail("limits.ratePerSecond", "must be between 0.001 and 1000000.") }
            c.ratePerSecond = rate
        }
        if let burst = raw.limits?.rateBurst {
            guard burst.isFinite, burst >= 1, burst <= 1_000_000 else { throw fail("limits.rateBurst", "must be between 1 and 1000000.") }
            c.rateBurst = burst
        }
        c.idleTimeout = try duration(raw.limits?.idleTimeout, "limits.idleTimeout", c.idleTimeout)
        c.bodyTimeout = try duration(raw.limits?.bodyTimeout, "limits.bodyTimeout", c.bodyTimeout)
        if let connections = raw.limits?.maxConnections {
            guard (1...1_000_000).contains(connections) else { throw fail("limits.maxConnections", "must be between 1 and 1000000.") }
            c.maxConnections = connections
        }
        c.developmentPKIDirectory = raw.developmentPKI?.directory
        guard c.leaseDuration >= 1 else { throw fail("queue.leaseDuration", "must be at least 1s.") }
        // Below the server's 60 s idle timeout and the client library's 60 s request timeout,
        // so that a long poll never outlives the connection it would deliver to.
        guard c.maxLongPoll <= 50 else { throw fail("queue.maxLongPoll", "must be at most 50s.") }
        return c
    }

    static let knownKeys: [String: Set<String>] = [
        "relay": ["id"], "listen": ["host", "port"], "store": ["path", "url"],
        "tls": ["certificate", "key", "trustAnchors", "crls", "reloadInterval", "staleCRL"],
        "directory": ["partners", "policy", "certificates", "refreshInterval", "expiryWarning"],
        "admin": ["certificates", "listen"], "audit": ["checkpointInterval"], "metrics": ["listen"], "conformance": ["echo", "identity"],
        "queue": ["leaseDuration", "maxAttempts", "retention", "sweepInterval", "maxLongPoll", "maxLifetime"],
        "limits": ["maxMessageBytes", "ratePerSecond", "rateBurst", "idleTimeout", "bodyTimeout", "maxConnections"], "developmentPKI": ["directory"],
    ]

    /// The file as written: every key optional (unknown keys are refused above).
    struct FileShape: Decodable {
        struct Relay: Decodable { var id: String? }
        struct Listen: Decodable { var host: String?; var port: Int? }
        struct Store: Decodable { var path: String?; var url: String? }
        struct TLS: Decodable {
            var certificate: String?; var key: String?; var trustAnchors: String?; var crls: [String]?
            var reloadInterval: String?; var staleCRL: String?
        }
        struct Directory: Decodable {
            var partners: String?; var policy: String?; var certificates: String?; var refreshInterval: String?; var expiryWarning: String?
        }
        struct Admin: Decodable { var certificates: [String]?; var listen: String? }
        struct Audit: Decodable { var checkpointInterval: String? }
        struct Metrics: Decodable { var listen: String? }
        struct Conformance: Decodable { var echo: String?; var identity: String? }
        struct Queue: Decodable {
            var leaseDuration: String?; var maxAttempts: Int?; var retention: String?; var sweepInterval: String?
            var maxLongPoll: String?; var maxLifetime: [String: String]?
        }
        struct Limits: Decodable {
            var maxMessageBytes: Int?; var ratePerSecond: Double?; var rateBurst: Double?
            var idleTimeout: String?; var bodyTimeout: String?; var maxConnections: Int?
        }
        struct DevelopmentPKI: Decodable { var directory: String? }
        var relay: Relay?
        var listen: Listen?
        var store: Store?
        var tls: TLS?
        var directory: Directory?
        var queue: Queue?
        var limits: Limits?
        var developmentPKI: DevelopmentPKI?
        var admin: Admin?
        var audit: Audit?
        var metrics: Metrics?
        var conformance: Conformance?
    }
}

/// A store location from `store.url` (or `store.path`).
public enum StoreLocation: Sendable, Equatable {
    case sqlite(path: String)
    /// The URL as given (user, password, host, port, database, TLS parameters).
    case postgres(url: String)

    public static func parse(_ text: String) -> StoreLocation? {
        if text.hasPrefix("sqlite://") {
            let path = String(text.dropFirst("sqlite://".count))
            return path.isEmpty ? nil : .sqlite(path: path)
        }
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            guard let url = URLComponents(string: text), url.host?.isEmpty == false, url.path.count > 1 else { return nil }
            return .postgres(url: text)
        }
        return nil
    }

    /// The location without a password, for logs.
    public var redacted: String {
        switch self {
        case .sqlite(let path): return "sqlite://\(path)"
        case .postgres(let text):
            guard var url = URLComponents(string: text) else { return "postgres://…" }
            if url.password != nil { url.password = "…" }
            return url.string ?? "postgres://…"
        }
    }
}
