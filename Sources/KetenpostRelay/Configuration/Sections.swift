import Foundation
import KetenpostAPI
import KetenpostConfiguration
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning

// Each section of `config/ketenpost.yaml`: its keys (declared once, with default and meaning)
// and the values the relay runs with. docs/OPERATIONS.md's reference is generated from these.

/// The durations and limits the relay checks against each other are checked here, key by key.
private func partnerStyleID(_ text: String) -> String? {
    PartnerID.isValid(text) ? nil : "must be a partner-style id (lowercase letters, digits, dashes)."
}

extension RelayConfiguration {
    /// `relay`: who the relay is.
    public struct Relay: ConfigurationSection {
        public static let name = "relay"
        static let idKey = ConfigurationKey.text(
            "id",
            DevelopmentPKI.relayID,
            "The commonName of the relay certificate: the issuer named in acceptance receipts.",
            check: partnerStyleID
        )
        public static let keys: [any DocumentedKey] = [idKey]

        public var id = idKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.idKey, into: &id)
        }
    }

    /// `listen`: the mutual-TLS port partners connect to.
    public struct Listen: ConfigurationSection {
        public static let name = "listen"
        static let hostKey = ConfigurationKey.text("host", "127.0.0.1", "The address the relay listens on.")
        static let portKey = ConfigurationKey.integer(
            "port",
            8443,
            in: 0...65_535,
            "The port; 0 picks a free one (the relay logs and prints it)."
        )
        public static let keys: [any DocumentedKey] = [hostKey, portKey]

        public var host = hostKey.defaultValue
        public var port = portKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.hostKey, into: &host)
            try reader.read(Self.portKey, into: &port)
        }
    }

    /// `store`: where accepted messages, the directory and the audit trail live.
    public struct Store: ConfigurationSection {
        public static let name = "store"
        static let pathKey = ConfigurationKey.text(
            "path",
            "data/ketenpost.sqlite",
            "The SQLite file (WAL; every commit fsync'd before the relay answers)."
        )
        static let urlKey = ConfigurationKey.optionalText(
            "url",
            """
            The store as a URL, overriding `path`: `sqlite:///path/to/file` or \
            `postgres://user[:password]@host:port/database[?sslmode=require&sslrootcert=PATH]`; several relay instances share one \
            PostgreSQL database.
            """,
            check: { StoreLocation.parse($0) == nil ? "must be sqlite:///path/to/file or postgres://user@host:port/database." : nil }
        )
        public static let keys: [any DocumentedKey] = [pathKey, urlKey]

        public var path = pathKey.defaultValue
        /// A PostgreSQL URL; nil means SQLite at `path` (a `sqlite://` URL sets `path`).
        public var url = urlKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.pathKey, into: &path)
            try reader.read(Self.urlKey, into: &url)
            if let given = url, case .sqlite(let file)? = StoreLocation.parse(given) {
                path = file
                url = nil
            }
        }
    }

    /// `tls`: the relay's certificate and key, and what it trusts.
    public struct TLS: ConfigurationSection {
        public static let name = "tls"
        static let certificateKey = ConfigurationKey.text(
            "certificate",
            "certs/dev/relay/cert.pem",
            "The relay's TLS server certificate (PEM, leaf first); it also signs acceptance receipts."
        )
        static let keyKey = ConfigurationKey.text("key", "certs/dev/relay/key.pem", "The relay's private key (PEM).")
        static let trustAnchorsKey = ConfigurationKey.text(
            "trustAnchors",
            "certs/dev/ca/cert.pem",
            "The CAs that issue partner certificates (PEM)."
        )
        static let crlsKey = ConfigurationKey.list(
            "crls",
            ["certs/dev/crl.pem"],
            "CRLs (PEM); with CRLs, revocation is checked at every TLS handshake and for every signature (fail closed)."
        )
        static let reloadIntervalKey = ConfigurationKey.duration(
            "reloadInterval",
            "10s",
            atLeast: "1s",
            """
            How often the certificate, key, trust anchors and CRLs are checked for changes on disk (SIGHUP: at once); open \
            connections continue.
            """
        )
        static let staleCRLKey = ConfigurationKey.choice(
            "staleCRL",
            false,
            yes: "accept",
            no: "refuse",
            """
            What a CRL past its next update, or a CA whose CRL could not be fetched at all, means: `refuse` closes the door to \
            that CA's certificates until a fresh CRL arrives, `accept` keeps it open; logged as an error and shown by \
            `ketenpost_crl_stale` either way.
            """
        )
        public static let keys: [any DocumentedKey] = [certificateKey, keyKey, trustAnchorsKey, crlsKey, reloadIntervalKey, staleCRLKey]

        public var certificate = certificateKey.defaultValue
        public var key = keyKey.defaultValue
        public var trustAnchors = trustAnchorsKey.defaultValue
        public var crls = crlsKey.defaultValue
        public var reloadInterval = reloadIntervalKey.defaultValue
        /// `staleCRL: accept`.
        public var acceptStaleCRL = staleCRLKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.certificateKey, into: &certificate)
            try reader.read(Self.keyKey, into: &key)
            try reader.read(Self.trustAnchorsKey, into: &trustAnchors)
            try reader.read(Self.crlsKey, into: &crls)
            try reader.read(Self.reloadIntervalKey, into: &reloadInterval)
            try reader.read(Self.staleCRLKey, into: &acceptStaleCRL)
        }
    }

    /// `revocation`: the CRL of every CA that issued a registered certificate, fetched from the
    /// certificate's CRL distribution point and kept in the store for every instance.
    public struct Revocation: ConfigurationSection {
        public static let name = "revocation"
        static let fetchKey = ConfigurationKey.choice(
            "fetch",
            true,
            yes: "on",
            no: "off",
            """
            `on`: fetch the CRL of every CA that issued a registered certificate or intermediate from the certificate's CRL \
            distribution point (http), check its signature against the CA and keep it in the store; `tls.crls` files stay as a \
            fallback, and the newest list per CA counts. `off`: only `tls.crls`.
            """
        )
        static let proxyKey = ConfigurationKey.optionalText(
            "proxy",
            "An HTTP proxy for CRL fetches (`http://host:port`); leave it out to fetch directly."
        )
        static let timeoutKey = ConfigurationKey.duration(
            "timeout",
            "10s",
            atLeast: "1s",
            atMost: "5m",
            "How long one CRL fetch may take, connection and download together."
        )
        static let maxBytesKey = ConfigurationKey.integer(
            "maxBytes",
            50_000_000,
            in: 1_000...1_000_000_000,
            "The largest CRL accepted, in bytes; a larger answer is refused and counts as a failed fetch."
        )
        static let refreshIntervalKey = ConfigurationKey.duration(
            "refreshInterval",
            "1h",
            atLeast: "1s",
            """
            How often each CRL is fetched again; a list is also fetched once half its validity has passed, so that a fresh one \
            is in the store well before its nextUpdate.
            """
        )
        static let ocspKey = ConfigurationKey.choice(
            "ocsp",
            false,
            yes: "on",
            no: "off",
            """
            `on`: also ask the OCSP responder a certificate names (authorityInfoAccess), at registration and every \
            `ocspInterval`; a certificate the responder calls revoked is revoked in the directory (actor `ocsp`). No answer \
            follows `tls.staleCRL` at registration and raises the alarm later. CRLs are checked either way.
            """
        )
        static let ocspIntervalKey = ConfigurationKey.duration(
            "ocspInterval",
            "1h",
            atLeast: "1s",
            "How often registered certificates with an OCSP responder are checked again (`ocsp: on`)."
        )
        public static let keys: [any DocumentedKey] = [
            fetchKey, proxyKey, timeoutKey, maxBytesKey, refreshIntervalKey, ocspKey, ocspIntervalKey,
        ]

        public var fetch = fetchKey.defaultValue
        public var proxy = proxyKey.defaultValue
        public var timeout = timeoutKey.defaultValue
        public var maxBytes = maxBytesKey.defaultValue
        public var refreshInterval = refreshIntervalKey.defaultValue
        public var ocsp = ocspKey.defaultValue
        public var ocspInterval = ocspIntervalKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.fetchKey, into: &fetch)
            try reader.read(Self.proxyKey, into: &proxy)
            try reader.read(Self.timeoutKey, into: &timeout)
            try reader.read(Self.maxBytesKey, into: &maxBytes)
            try reader.read(Self.refreshIntervalKey, into: &refreshInterval)
            try reader.read(Self.ocspKey, into: &ocsp)
            try reader.read(Self.ocspIntervalKey, into: &ocspInterval)
        }
    }

    /// `directory`: partners, policy and their certificates.
    public struct Directory: ConfigurationSection {
        public static let name = "directory"
        static let partnersKey = ConfigurationKey.text(
            "partners",
            "config/partners.yaml",
            "The partner file; at start, what the store lacks is imported (changes made through the admin API stay)."
        )
        static let policyKey = ConfigurationKey.text(
            "policy",
            "config/policy.yaml",
            "Which role may send which message type to which role."
        )
        static let certificatesKey = ConfigurationKey.text(
            "certificates",
            "certs/dev/partners",
            "Where `<id>/cert.pem` is found for partners that list no certificates of their own."
        )
        static let refreshIntervalKey = ConfigurationKey.duration(
            "refreshInterval",
            "1s",
            atLeast: "0.1s",
            "How often an instance checks the store for directory changes made by another instance (its own apply at once)."
        )
        static let expiryWarningKey = ConfigurationKey.duration(
            "expiryWarning",
            "30d",
            "Certificates that expire within this are logged daily and listed by `ketenpost admin certs expiring`."
        )
        public static let keys: [any DocumentedKey] = [partnersKey, policyKey, certificatesKey, refreshIntervalKey, expiryWarningKey]

        public var partners = partnersKey.defaultValue
        public var policy = policyKey.defaultValue
        public var certificates = certificatesKey.defaultValue
        public var refreshInterval = refreshIntervalKey.defaultValue
        public var expiryWarning = expiryWarningKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.partnersKey, into: &partners)
            try reader.read(Self.policyKey, into: &policy)
            try reader.read(Self.certificatesKey, into: &certificates)
            try reader.read(Self.refreshIntervalKey, into: &refreshInterval)
            try reader.read(Self.expiryWarningKey, into: &expiryWarning)
        }
    }

    /// `metrics`: a plain-HTTP listener for the monitoring system.
    public struct Metrics: ConfigurationSection {
        public static let name = "metrics"
        static let listenKey = ConfigurationKey.address(
            "listen",
            """
            `HOST:PORT` of a plain-HTTP listener that serves only `GET /metrics` (Prometheus text); keep it on loopback or an \
            internal network. Administrators also get `/metrics` on the main port. A non-loopback address needs `network: open`.
            """
        )
        static let networkKey = ConfigurationKey.choice(
            "network",
            false,
            yes: "open",
            no: "loopback",
            """
            `loopback`: `listen` must be 127.0.0.1, ::1 or localhost (the listener has no authentication, and the figures show \
            traffic per partner). `open`: any address, for a monitoring network you have firewalled.
            """
        )
        public static let keys: [any DocumentedKey] = [listenKey, networkKey]

        public var listen = listenKey.defaultValue
        /// True when `listen` may be a non-loopback address.
        public var openToNetwork = networkKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.listenKey, into: &listen)
            try reader.read(Self.networkKey, into: &openToNetwork)
            if let listen, !openToNetwork, !HostPort.loopbackHosts.contains(listen.host) {
                throw reader.fail(
                    Self.listenKey.name,
                    """
                    is \(listen.host), not a loopback address: the metrics listener has no authentication. Use 127.0.0.1, or \
                    set metrics.network: open for a firewalled monitoring network.
                    """
                )
            }
        }
    }

    /// `conformance`: the echo partner for `ketenpost conformance`.
    public struct Conformance: ConfigurationSection {
        public static let name = "conformance"
        static let echoKey = ConfigurationKey.optionalText(
            "echo",
            """
            The partner id of a conformance echo the relay hosts (e.g. `ketenpost-echo`): it answers every signal with a signal back, \
            or rejects what it cannot open with the failing check's code. `serve --conformance-echo` sets `ketenpost-echo`. \
            Test relays only: its key lives on the relay host and its signals pass outside the policy.
            """,
            check: partnerStyleID
        )
        static let identityKey = ConfigurationKey.text(
            "identity",
            "certs/dev/echo",
            "The echo's own certificate and key (the development PKI creates them); it talks to the relay over mutual TLS like any partner."
        )
        public static let keys: [any DocumentedKey] = [echoKey, identityKey]

        public var echo = echoKey.defaultValue
        public var identity = identityKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.echoKey, into: &echo)
            try reader.read(Self.identityKey, into: &identity)
        }
    }

    /// `audit`: the signed checkpoints of the audit trail.
    public struct Audit: ConfigurationSection {
        public static let name = "audit"
        static let checkpointIntervalKey = ConfigurationKey.duration(
            "checkpointInterval",
            "5m",
            atLeast: "1s",
            "How often the relay signs the head of the hash-chained audit trail (and once more when it stops)."
        )
        public static let keys: [any DocumentedKey] = [checkpointIntervalKey]

        public var checkpointInterval = checkpointIntervalKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.checkpointIntervalKey, into: &checkpointInterval)
        }
    }

    /// `admin`: who administers, and the loopback status page.
    public struct Admin: ConfigurationSection {
        public static let name = "admin"
        static let certificatesKey = ConfigurationKey.list(
            "certificates",
            ["certs/dev/admin/cert.pem"],
            "PEM files with the administrators' certificates; only their holders may use `/v1/admin/...` and `/metrics`."
        )
        static let listenKey = ConfigurationKey.address(
            "listen",
            """
            `HOST:PORT` of the status page for administrators, without authentication, so on a loopback address only (reach it \
            through an SSH tunnel); administrators also get it at `/v1/admin/status`.
            """,
            check: {
                HostPort.loopbackHosts.contains($0.host)
                    ? nil
                    : "must be on a loopback address (127.0.0.1, ::1 or localhost): the page has no authentication."
            }
        )
        public static let keys: [any DocumentedKey] = [certificatesKey, listenKey]

        public var certificates = certificatesKey.defaultValue
        /// The status page's address; nil: no status listener.
        public var listen = listenKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.certificatesKey, into: &certificates)
            try reader.read(Self.listenKey, into: &listen)
        }
    }

    /// `queue`: leases, attempts, expiry and retention.
    public struct Queue: ConfigurationSection {
        public static let name = "queue"
        static let leaseDurationKey = ConfigurationKey.duration(
            "leaseDuration",
            "60s",
            atLeast: "1s",
            "How long a delivered message stays invisible to other polls."
        )
        static let maxAttemptsKey = ConfigurationKey.integer(
            "maxAttempts",
            5,
            in: 1...100,
            "Deliveries without acknowledgement before dead-lettering."
        )
        static let retentionKey = ConfigurationKey.duration(
            "retention",
            "7d",
            "How long ciphertext stays after a message became final (receipts stay)."
        )
        static let sweepIntervalKey = ConfigurationKey.duration(
            "sweepInterval",
            "5s",
            atLeast: "0.01s",
            atMost: "1d",
            "How often expiry, dead-letters and purges are applied."
        )
        // Below the server's 60 s idle timeout and the client library's 60 s request timeout,
        // so that a long poll never outlives the connection it would deliver to.
        static let maxLongPollKey = ConfigurationKey.duration(
            "maxLongPoll",
            "30s",
            atMost: "50s",
            "The longest inbox wait a partner may ask for."
        )
        static let maxLifetimeKey = ConfigurationKey<[MessageType: TimeInterval]>(
            "maxLifetime",
            default: Dictionary(uniqueKeysWithValues: MessageType.allCases.map { ($0, Drafting.defaultLifetime(for: $0)) }),
            documented: MessageType.allCases.map { "\($0.rawValue) \(Int(Drafting.defaultLifetime(for: $0) / 86_400))d" }.joined(
                separator: ", "
            ),
            "Per message type: the relay expires a message at the earlier of its header's `expiresAt` and acceptance plus this."
        ) { node throws(ConfigurationRefusal) in
            guard let mapping = node.mapping else { throw ConfigurationRefusal("must be a mapping from message type to duration.") }
            var lifetimes = Dictionary(uniqueKeysWithValues: MessageType.allCases.map { ($0, Drafting.defaultLifetime(for: $0)) })
            for (keyNode, valueNode) in mapping {
                let key = keyNode.scalar?.string ?? "?"
                guard let type = MessageType(rawValue: key) else {
                    throw ConfigurationRefusal(
                        "is not a message type (\(MessageType.allCases.map(\.rawValue).joined(separator: ", "))).",
                        subkey: key
                    )
                }
                guard let text = valueNode.scalar?.string, let value = Drafting.parseDuration(text), value.isFinite else {
                    throw ConfigurationRefusal("must be a duration such as 30s, 5m, 12h or 7d.", subkey: key)
                }
                lifetimes[type] = value
            }
            return lifetimes
        }
        public static let keys: [any DocumentedKey] = [
            leaseDurationKey, maxAttemptsKey, retentionKey, sweepIntervalKey, maxLongPollKey, maxLifetimeKey,
        ]

        public var leaseDuration = leaseDurationKey.defaultValue
        public var maxAttempts = maxAttemptsKey.defaultValue
        public var retention = retentionKey.defaultValue
        public var sweepInterval = sweepIntervalKey.defaultValue
        public var maxLongPoll = maxLongPollKey.defaultValue
        public var maxLifetime = maxLifetimeKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.leaseDurationKey, into: &leaseDuration)
            try reader.read(Self.maxAttemptsKey, into: &maxAttempts)
            try reader.read(Self.retentionKey, into: &retention)
            try reader.read(Self.sweepIntervalKey, into: &sweepInterval)
            try reader.read(Self.maxLongPollKey, into: &maxLongPoll)
            try reader.read(Self.maxLifetimeKey, into: &maxLifetime)
        }
    }

    /// `limits`: what one partner or connection may take.
    public struct Limits: ConfigurationSection {
        public static let name = "limits"
        static let maxMessageBytesKey = ConfigurationKey.integer(
            "maxMessageBytes",
            4 << 20,
            in: 1_024...Envelope.maximumSize,
            "Larger submissions get 413 before they are read."
        )
        // Below one request a day the Retry-After arithmetic leaves every sane range.
        static let ratePerSecondKey = ConfigurationKey.number(
            "ratePerSecond",
            50,
            in: 0.001...1_000_000,
            "Requests per second per partner, with bursts up to `rateBurst`; beyond it 429 with Retry-After."
        )
        static let rateBurstKey = ConfigurationKey.number(
            "rateBurst",
            200,
            in: 1...1_000_000,
            "The burst a partner may use above its rate."
        )
        static let idleTimeoutKey = ConfigurationKey.duration(
            "idleTimeout",
            "60s",
            atLeast: "0.1s",
            """
            A connection without a request in progress is closed after this; it also cuts off a TLS handshake or request head that \
            trickles in.
            """
        )
        static let bodyTimeoutKey = ConfigurationKey.duration(
            "bodyTimeout",
            "60s",
            atLeast: "0.1s",
            "A request body must be complete this long after its head, or the connection is closed."
        )
        static let maxConnectionsKey = ConfigurationKey.integer(
            "maxConnections",
            1024,
            in: 1...1_000_000,
            "Open connections at most; more wait in the listen backlog (gauge `ketenpost_connections_open`)."
        )
        static let maxConnectionsPerPartnerKey = ConfigurationKey.integer(
            "maxConnectionsPerPartner",
            32,
            in: 1...1_000_000,
            """
            Open connections per partner (and per administrator certificate) at most, so that no partner can take every \
            connection; certificates the directory does not list as active share 16 connections, each closed after 10 s.
            """
        )
        static let maxBatchBytesKey = ConfigurationKey.integer(
            "maxBatchBytes",
            16_777_216,
            in: 1...1_073_741_824,
            """
            Sealed bytes in one inbox answer at most (before base64); a batch always holds at least one message, so a message \
            too large for a client burns only its own delivery attempts.
            """
        )
        static let maxPendingBytesPerSenderKey = ConfigurationKey.integer(
            "maxPendingBytesPerSender",
            1_073_741_824,
            in: 1...Int.max,
            """
            Sealed bytes of one sender's messages that are not delivered and acknowledged yet, at most; beyond it a submission \
            gets 507 `quota.exceeded` (counter `ketenpost_quota_refusals_total`). Counted from the store every 5 s.
            """
        )
        public static let keys: [any DocumentedKey] = [
            maxMessageBytesKey, ratePerSecondKey, rateBurstKey, idleTimeoutKey, bodyTimeoutKey, maxConnectionsKey,
            maxConnectionsPerPartnerKey, maxBatchBytesKey, maxPendingBytesPerSenderKey,
        ]

        public var maxMessageBytes = maxMessageBytesKey.defaultValue
        public var ratePerSecond = ratePerSecondKey.defaultValue
        public var rateBurst = rateBurstKey.defaultValue
        public var idleTimeout = idleTimeoutKey.defaultValue
        public var bodyTimeout = bodyTimeoutKey.defaultValue
        public var maxConnections = maxConnectionsKey.defaultValue
        public var maxConnectionsPerPartner = maxConnectionsPerPartnerKey.defaultValue
        public var maxBatchBytes = maxBatchBytesKey.defaultValue
        public var maxPendingBytesPerSender = maxPendingBytesPerSenderKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.maxMessageBytesKey, into: &maxMessageBytes)
            try reader.read(Self.ratePerSecondKey, into: &ratePerSecond)
            try reader.read(Self.rateBurstKey, into: &rateBurst)
            try reader.read(Self.idleTimeoutKey, into: &idleTimeout)
            try reader.read(Self.bodyTimeoutKey, into: &bodyTimeout)
            try reader.read(Self.maxConnectionsKey, into: &maxConnections)
            try reader.read(Self.maxConnectionsPerPartnerKey, into: &maxConnectionsPerPartner)
            try reader.read(Self.maxBatchBytesKey, into: &maxBatchBytes)
            try reader.read(Self.maxPendingBytesPerSenderKey, into: &maxPendingBytesPerSender)
        }
    }

    /// `developmentPKI`: the throwaway PKI of a first start on a developer's machine.
    public struct Development: ConfigurationSection {
        public static let name = "developmentPKI"
        static let directoryKey = ConfigurationKey.optionalText(
            "directory",
            """
            If set and no CA exists there, the first start creates a development PKI (root and issuing CA, relay, partners, \
            administrator, echo); the shipped file sets `certs/dev`. Leave it out in production.
            """
        )
        static let serveCRLsKey = ConfigurationKey.choice(
            "serveCRLs",
            true,
            yes: "on",
            no: "off",
            """
            `on`: `ketenpost serve` answers at the development PKI's CRL distribution point (http://127.0.0.1:8480, loopback \
            only) with its current CRLs, as a real CA's web server would; if the port is taken, a warning is logged and the \
            relay runs without it. Only with `directory` set.
            """
        )
        public static let keys: [any DocumentedKey] = [directoryKey, serveCRLsKey]

        public var directory = directoryKey.defaultValue
        public var serveCRLs = serveCRLsKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.directoryKey, into: &directory)
            try reader.read(Self.serveCRLsKey, into: &serveCRLs)
        }
    }
}
