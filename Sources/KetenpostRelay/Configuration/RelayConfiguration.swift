import Foundation
import KetenpostAPI
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import Yams

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
        Relay.self, Listen.self, Store.self, TLS.self, Directory.self, Metrics.self, Conformance.self, Audit.self, Admin.self,
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
        // Read from the composed node tree, key by key: nothing is built as plain values, so a
        // complex key such as `? [x]` cannot trap and aliases are not expanded (found by the
        // config-relay fuzz target). A misspelt key would otherwise be ignored silently and its
        // default used, so every key must be one a section declares.
        let root: Node?
        do { root = try Yams.compose(yaml: text) } catch {
            throw KetenpostError(.configInvalid, "\(file): not valid YAML (\(error)).")
        }
        var given: [String: [String: Node]] = [:]
        if let root, !ConfigurationKey<String>.isNull(root) {
            guard case .mapping(let sections) = root else {
                throw fail("the document", "must be a mapping of sections such as listen and store.")
            }
            for (sectionNode, value) in sections {
                guard let name = sectionNode.scalar?.string else {
                    throw fail("a key", "is not text; keys are plain names such as listen or store.")
                }
                guard let section = Self.sections.first(where: { $0.name == name }) else { throw fail(name, "is not a known key.") }
                guard given[name] == nil else { throw fail(name, "is given twice.") }
                var keys: [String: Node] = [:]
                if case .mapping(let mapping) = value {
                    for (keyNode, node) in mapping {
                        guard let key = keyNode.scalar?.string else { throw fail("\(name): a key", "is not text.") }
                        guard section.keys.contains(where: { $0.name == key }) else { throw fail("\(name).\(key)", "is not a known key.") }
                        guard keys[key] == nil else { throw fail("\(name).\(key)", "is given twice.") }
                        keys[key] = node
                    }
                } else if !ConfigurationKey<String>.isNull(value) {
                    throw fail(name, "must be a mapping of keys, such as \(name): {\(section.keys[0].name): …}.")
                }
                given[name] = keys
            }
        }
        var c = RelayConfiguration()
        func read<Section: ConfigurationSection>(_ section: inout Section) throws(KetenpostError) {
            try section.read(SectionReader(file: file, section: Section.name, values: given[Section.name] ?? [:]))
        }
        try read(&c.relay)
        try read(&c.listen)
        try read(&c.store)
        try read(&c.tls)
        try read(&c.directory)
        try read(&c.metrics)
        try read(&c.conformance)
        try read(&c.audit)
        try read(&c.admin)
        try read(&c.queue)
        try read(&c.limits)
        try read(&c.developmentPKI)
        return c
    }

    /// The reference table of every key, its default and its meaning (docs/OPERATIONS.md).
    public static func reference() -> String {
        var lines = ["| key | default | meaning |", "|---|---|---|"]
        for section in sections {
            for key in section.keys {
                lines.append("| `\(section.name).\(key.name)` | `\(key.documentedDefault)` | \(key.summary) |")
            }
        }
        return lines.joined(separator: "\n") + "\n"
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
