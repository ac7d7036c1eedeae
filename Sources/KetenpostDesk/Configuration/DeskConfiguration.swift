import Foundation
import KetenpostAPI
import KetenpostConfiguration
import KetenpostModel
import KetenpostProvisioning

/// The desk's configuration (`config/desk.yaml`): one desk serves one partner identity. Each
/// section's keys are declared once, here; docs/desk.md's reference is generated from them and
/// a test checks it and the shipped file.
public struct DeskConfiguration: Sendable {
    public var identity = Identity()
    public var relay = Relay()
    public var listen = Listen()
    public var data = DataFolder()
    public var sessions = Sessions()
    public var inbox = Inbox()
    public var language = Language()
    public var folders = Folders()
    public var webhooks = Webhooks()

    public static let sections: [any ConfigurationSection.Type] = [
        Identity.self, Relay.self, Listen.self, DataFolder.self, Sessions.self, Inbox.self, Language.self, Folders.self,
        Webhooks.self,
    ]

    public init() {}

    /// The desk of `partner` from a development PKI in `pki`, against the relay at `relayURL`,
    /// listening on a free loopback port: the demo, the benchmark and the tests use it.
    public static func development(pki: DevelopmentPKI, partner: String, relayURL: String, dataDirectory: String) -> DeskConfiguration {
        var c = DeskConfiguration()
        c.identity.directory = pki.partnerDirectory(partner)
        c.relay.url = relayURL
        c.relay.id = DevelopmentPKI.relayID
        c.relay.trustAnchors = pki.caCertificatePath
        c.relay.crls = [pki.crlPath]
        c.listen.port = 0
        c.data.directory = dataDirectory
        return c
    }

    /// Reads and checks the file. Errors name the file, the key and what is wrong.
    public static func load(path: String) throws(KetenpostError) -> DeskConfiguration {
        try parse(try ConfigurationFile.text(at: path), file: path)
    }

    public static func parse(_ text: String, file: String) throws(KetenpostError) -> DeskConfiguration {
        let given = try ConfigurationFile.sections(of: text, file: file, declared: sections)
        var c = DeskConfiguration()
        try ConfigurationFile.read(&c.identity, from: given, file: file)
        try ConfigurationFile.read(&c.relay, from: given, file: file)
        try ConfigurationFile.read(&c.listen, from: given, file: file)
        try ConfigurationFile.read(&c.data, from: given, file: file)
        try ConfigurationFile.read(&c.sessions, from: given, file: file)
        try ConfigurationFile.read(&c.inbox, from: given, file: file)
        try ConfigurationFile.read(&c.language, from: given, file: file)
        try ConfigurationFile.read(&c.folders, from: given, file: file)
        try ConfigurationFile.read(&c.webhooks, from: given, file: file)
        if c.webhooks.url != nil && c.webhooks.secretFile == nil {
            throw KetenpostError(
                .configInvalid,
                "\(file): webhooks.secretFile: required with webhooks.url (the HMAC key of the signatures)."
            )
        }
        // Passwords and session cookies cross the network only inside TLS.
        if !c.listen.isLoopback && (c.listen.certificate == nil || c.listen.key == nil) {
            throw KetenpostError(
                .configInvalid,
                """
                \(file): listen.host \(c.listen.host) is not a loopback address, so listen.certificate and listen.key are required: \
                staff sign in with passwords.
                """
            )
        }
        if c.listen.certificate != nil && c.listen.key == nil || c.listen.certificate == nil && c.listen.key != nil {
            throw KetenpostError(.configInvalid, "\(file): listen.certificate and listen.key go together; give both or neither.")
        }
        return c
    }

    /// The reference table of every key (docs/desk.md).
    public static func reference() -> String { ConfigurationFile.reference(sections) }
}

extension DeskConfiguration {
    /// `identity`: whose desk this is.
    public struct Identity: ConfigurationSection {
        public static let name = "identity"
        static let directoryKey = ConfigurationKey.requiredText(
            "directory",
            """
            The partner's identity directory (cert.pem, key.pem, optionally chain.pem): the desk seals, signs and opens with this \
            key, which never leaves the partner.
            """
        )
        public static let keys: [any DocumentedKey] = [directoryKey]

        public var directory = directoryKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.directoryKey, into: &directory)
        }
    }

    /// `relay`: the relay the desk sends through and receives from.
    public struct Relay: ConfigurationSection {
        public static let name = "relay"
        static let urlKey = ConfigurationKey.text(
            "url",
            "https://127.0.0.1:8443",
            "The relay's base URL (mutual TLS with the partner's certificate).",
            check: {
                URL(string: $0)?.scheme == "https" && URL(string: $0)?.host != nil
                    ? nil : "must be an https URL such as https://relay.example:8443."
            }
        )
        static let idKey = ConfigurationKey.text(
            "id",
            "ketenpost-relay",
            "The relay's id: acceptance receipts must be signed by a certificate with this commonName.",
            check: { PartnerID.isValid($0) ? nil : "must be a partner-style id (lowercase letters, digits, dashes)." }
        )
        static let trustAnchorsKey = ConfigurationKey.text(
            "trustAnchors",
            "certs/dev/ca/cert.pem",
            "The CAs (PEM) for the relay's TLS certificate and every signature."
        )
        static let crlsKey = ConfigurationKey.list(
            "crls",
            ["certs/dev/crl.pem"],
            """
            CRLs (PEM) checked for recipients' certificates when sealing and when showing stored messages. Incoming messages are \
            checked against the CRLs the relay serves, fetched every five minutes (fail closed when they are stale).
            """
        )
        public static let keys: [any DocumentedKey] = [urlKey, idKey, trustAnchorsKey, crlsKey]

        public var url = urlKey.defaultValue
        public var id = idKey.defaultValue
        public var trustAnchors = trustAnchorsKey.defaultValue
        public var crls = crlsKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.urlKey, into: &url)
            try reader.read(Self.idKey, into: &id)
            try reader.read(Self.trustAnchorsKey, into: &trustAnchors)
            try reader.read(Self.crlsKey, into: &crls)
        }
    }

    /// `listen`: where staff reach the desk with their browsers.
    public struct Listen: ConfigurationSection {
        public static let name = "listen"
        static let hostKey = ConfigurationKey.text(
            "host",
            "127.0.0.1",
            "The address the desk listens on; any address other than loopback requires `certificate` and `key`."
        )
        static let portKey = ConfigurationKey.integer("port", 8080, in: 0...65_535, "The port; 0 picks a free one (the desk prints it).")
        static let certificateKey = ConfigurationKey.optionalText(
            "certificate",
            "The desk's TLS server certificate (PEM); with it the desk serves HTTPS and marks its cookies Secure."
        )
        static let keyKey = ConfigurationKey.optionalText("key", "The private key (PEM) of `certificate`.")
        public static let keys: [any DocumentedKey] = [hostKey, portKey, certificateKey, keyKey]

        public var host = hostKey.defaultValue
        public var port = portKey.defaultValue
        public var certificate = certificateKey.defaultValue
        public var key = keyKey.defaultValue

        public init() {}

        /// Whether only this machine can reach the desk.
        public var isLoopback: Bool { ["127.0.0.1", "::1", "localhost"].contains(host) || host.hasPrefix("127.") }

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.hostKey, into: &host)
            try reader.read(Self.portKey, into: &port)
            try reader.read(Self.certificateKey, into: &certificate)
            try reader.read(Self.keyKey, into: &key)
        }
    }

    /// `data`: the desk's own folder.
    public struct DataFolder: ConfigurationSection {
        public static let name = "data"
        static let directoryKey = ConfigurationKey.text(
            "directory",
            "data/desk",
            """
            The desk's folder: its SQLite file with staff accounts, sessions, drafts, the sealed messages (never their plaintext) and \
            the access log.
            """
        )
        public static let keys: [any DocumentedKey] = [directoryKey]

        public var directory = directoryKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.directoryKey, into: &directory)
        }
    }

    /// `folders`: watched folders for case systems that can only write files (docs/desk-api.md).
    public struct Folders: ConfigurationSection {
        public static let name = "folders"
        static let directoryKey = ConfigurationKey.optionalText(
            "directory",
            """
            Turns the watched folders on: JSON files written to `outbox/` here are sent and moved to `sent/` or `failed/`. Off \
            when not set.
            """
        )
        static let scanEveryKey = ConfigurationKey.duration(
            "scanEvery",
            "2s",
            atLeast: "1s",
            atMost: "1m",
            "How often `outbox/` is looked at."
        )
        static let writeInboxKey = ConfigurationKey.choice(
            "writeInbox",
            false,
            yes: "yes",
            no: "no",
            """
            Also write every received message, opened, to `inbox/` (mode 0600). That is plaintext at rest, outside the desk's \
            encryption: only when the case system needs it and the folder is protected.
            """
        )
        public static let keys: [any DocumentedKey] = [directoryKey, scanEveryKey, writeInboxKey]

        public var directory = directoryKey.defaultValue
        public var scanEvery = scanEveryKey.defaultValue
        public var writeInbox = writeInboxKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.directoryKey, into: &directory)
            try reader.read(Self.scanEveryKey, into: &scanEvery)
            try reader.read(Self.writeInboxKey, into: &writeInbox)
        }
    }

    /// `webhooks`: a case system's URL told of every new message and state change (ids and states,
    /// never content), signed with HMAC-SHA256.
    public struct Webhooks: ConfigurationSection {
        public static let name = "webhooks"
        static let urlKey = ConfigurationKey.optionalText(
            "url",
            "Where notifications are POSTed. https, or http on loopback only. Off when not set.",
            check: { text in
                guard let url = URL(string: text), let host = url.host, let scheme = url.scheme else {
                    return "must be a URL such as https://zaaksysteem.example/ketenpost."
                }
                let loopback = host == "127.0.0.1" || host == "localhost" || host == "::1"
                return scheme == "https" || (scheme == "http" && loopback)
                    ? nil : "must be an https URL (http only to 127.0.0.1 or localhost)."
            }
        )
        static let secretFileKey = ConfigurationKey.optionalText(
            "secretFile",
            "A file whose first line is the shared secret (at least 32 characters) for the signatures; required with `url`."
        )
        static let giveUpAfterKey = ConfigurationKey.duration(
            "giveUpAfter",
            "24h",
            atLeast: "1m",
            atMost: "30d",
            "A notification that keeps failing is retried with growing pauses (up to 5 minutes) for this long, then shown as given up."
        )
        public static let keys: [any DocumentedKey] = [urlKey, secretFileKey, giveUpAfterKey]

        public var url = urlKey.defaultValue
        public var secretFile = secretFileKey.defaultValue
        public var giveUpAfter = giveUpAfterKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.urlKey, into: &url)
            try reader.read(Self.secretFileKey, into: &secretFile)
            try reader.read(Self.giveUpAfterKey, into: &giveUpAfter)
        }
    }

    /// `sessions`: sign-in, idle time-out and lockout.
    public struct Sessions: ConfigurationSection {
        public static let name = "sessions"
        static let idleTimeoutKey = ConfigurationKey.duration(
            "idleTimeout",
            "30m",
            atLeast: "1m",
            atMost: "12h",
            "A session without a request for this long ends; the next page asks to sign in again."
        )
        static let lockoutAttemptsKey = ConfigurationKey.integer(
            "lockoutAttempts",
            5,
            in: 1...100,
            "Failed sign-ins in a row after which the account is locked."
        )
        static let lockoutDurationKey = ConfigurationKey.duration(
            "lockoutDuration",
            "15m",
            atLeast: "1m",
            "How long a locked account stays locked (a desk administrator can unlock it sooner)."
        )
        public static let keys: [any DocumentedKey] = [idleTimeoutKey, lockoutAttemptsKey, lockoutDurationKey]

        public var idleTimeout = idleTimeoutKey.defaultValue
        public var lockoutAttempts = lockoutAttemptsKey.defaultValue
        public var lockoutDuration = lockoutDurationKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.idleTimeoutKey, into: &idleTimeout)
            try reader.read(Self.lockoutAttemptsKey, into: &lockoutAttempts)
            try reader.read(Self.lockoutDurationKey, into: &lockoutDuration)
        }
    }

    /// `inbox`: fetching and the deadlines nobody may miss.
    public struct Inbox: ConfigurationSection {
        public static let name = "inbox"
        static let pollWaitKey = ConfigurationKey.duration(
            "pollWait",
            "25s",
            atLeast: "1s",
            atMost: "50s",
            "How long each background long poll waits at the relay for new messages."
        )
        static let urgentAnswerWithinKey = ConfigurationKey.duration(
            "urgentAnswerWithin",
            "4h",
            atLeast: "1m",
            "An urgent intake notice without an answer after this raises a banner on every page, on both desks."
        )
        public static let keys: [any DocumentedKey] = [pollWaitKey, urgentAnswerWithinKey]

        public var pollWait = pollWaitKey.defaultValue
        public var urgentAnswerWithin = urgentAnswerWithinKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.pollWaitKey, into: &pollWait)
            try reader.read(Self.urgentAnswerWithinKey, into: &urgentAnswerWithin)
        }
    }

    /// `language`: the screens' language.
    public struct Language: ConfigurationSection {
        public static let name = "language"
        static let defaultKey = ConfigurationKey.choice(
            "default",
            false,
            yes: "en",
            no: "nl",
            "The language of the screens; a browser that asks for the other one gets it."
        )
        public static let keys: [any DocumentedKey] = [defaultKey]

        /// `default: en`; Dutch otherwise.
        public var english = defaultKey.defaultValue

        public init() {}

        public mutating func read(_ reader: SectionReader) throws(KetenpostError) {
            try reader.read(Self.defaultKey, into: &english)
        }
    }
}
