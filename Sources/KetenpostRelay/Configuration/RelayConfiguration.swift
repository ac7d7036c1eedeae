import Foundation
import KetenpostAPI
import KetenpostConfiguration
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning

/// The relay's configuration (`config/ketenpost.yaml`): one section per part of the relay,
/// each a small struct whose keys (name, default, meaning) are declared once, in
/// `Configuration/Sections.swift`. Relative paths are resolved against the working directory.
/// Every key is optional; the reference with every key and default is in docs/OPERATIONS.md
/// ("Configuration reference"), generated from the sections and checked by a test.
public struct RelayConfiguration: Sendable {
    public var relay = Relay()
    public var listen = Listen()
    public var store = Store()
    public var tls = TLS()
    public var revocation = Revocation()
    public var directory = Directory()
    public var metrics = Metrics()
    public var conformance = Conformance()
    public var audit = Audit()
    public var admin = Admin()
    public var queue = Queue()
    public var limits = Limits()
    public var developmentPKI = Development()

    /// The sections in the order of the file and the reference.
    public static let sections: [any ConfigurationSection.Type] = [
        Relay.self, Listen.self, Store.self, TLS.self, Revocation.self, Directory.self, Metrics.self, Conformance.self, Audit.self,
        Admin.self,
        Queue.self, Limits.self, Development.self,
    ]

    public init() {}

    /// Where the store lives.
    public var storeLocation: StoreLocation {
        store.url.flatMap(StoreLocation.parse) ?? .sqlite(path: store.path)
    }

    /// A configuration for a development PKI in `pki` (as `ketenpost pki init` lays it out),
    /// listening on a free port: the demo, the benchmarks and the tests use it.
    public static func development(pki: DevelopmentPKI, storePath: String, partnersFile: String, policyFile: String) -> RelayConfiguration {
        var c = RelayConfiguration()
        c.listen.port = 0
        c.store.path = storePath
        c.developmentPKI.directory = pki.directory.path
        // Many such relays run at once (tests): none takes the fixed development CRL port, and
        // none waits for it at start; the development CRLs come from `crl.pem` (tls.crls).
        c.developmentPKI.serveCRLs = false
        c.revocation.fetch = false
        c.tls.certificate = pki.relayDirectory + "/cert.pem"
        c.tls.key = pki.relayDirectory + "/key.pem"
        c.tls.trustAnchors = pki.caCertificatePath
        c.tls.crls = [pki.crlPath]
        c.directory.partners = partnersFile
        c.directory.policy = policyFile
        c.directory.certificates = pki.directory.appendingPathComponent("partners").path
        c.admin.certificates = [pki.adminDirectory + "/cert.pem"]
        return c
    }

    /// Reads and checks the file. Errors name the file, the key and what is wrong.
    public static func load(path: String) throws(KetenpostError) -> RelayConfiguration {
        try parse(try ConfigurationFile.text(at: path), file: path)
    }

    public static func parse(_ text: String, file: String) throws(KetenpostError) -> RelayConfiguration {
        let given = try ConfigurationFile.sections(of: text, file: file, declared: sections)
        var c = RelayConfiguration()
        try ConfigurationFile.read(&c.relay, from: given, file: file)
        try ConfigurationFile.read(&c.listen, from: given, file: file)
        try ConfigurationFile.read(&c.store, from: given, file: file)
        try ConfigurationFile.read(&c.tls, from: given, file: file)
        try ConfigurationFile.read(&c.revocation, from: given, file: file)
        try ConfigurationFile.read(&c.directory, from: given, file: file)
        try ConfigurationFile.read(&c.metrics, from: given, file: file)
        try ConfigurationFile.read(&c.conformance, from: given, file: file)
        try ConfigurationFile.read(&c.audit, from: given, file: file)
        try ConfigurationFile.read(&c.admin, from: given, file: file)
        try ConfigurationFile.read(&c.queue, from: given, file: file)
        try ConfigurationFile.read(&c.limits, from: given, file: file)
        try ConfigurationFile.read(&c.developmentPKI, from: given, file: file)
        return c
    }

    /// The reference table of every key, its default and its meaning (docs/OPERATIONS.md).
    public static func reference() -> String { ConfigurationFile.reference(sections) }
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
