import Foundation
import KetenpostProvisioning

/// A throwaway chain for load and crash tests: N municipalities that signal M care
/// coordinators, with a development PKI, a partners file and a one-rule policy in `work`.
struct SyntheticChain {
    let pki: DevelopmentPKI
    let senderIDs: [String]
    let recipientIDs: [String]
    let partnersFile: URL
    let policyFile: URL

    init(in work: URL, prefix: String, senders: Int, recipients: Int) throws {
        senderIDs = (1...senders).map { String(format: "\(prefix)-gemeente-%03d", $0) }
        recipientIDs = (1...recipients).map { String(format: "\(prefix)-zorgcoordinatie-%03d", $0) }
        let entries =
            senderIDs.enumerated().map { PartnerEntry(id: $1, name: $1, role: .municipality, oin: String(format: "00000001%012d", $0)) }
            + recipientIDs.enumerated().map {
                PartnerEntry(id: $1, name: $1, role: .careCoordinator, oin: String(format: "00000003%012d", $0))
            }
        pki = DevelopmentPKI(directory: work.appendingPathComponent("certs").path)
        try pki.create(partners: entries)
        partnersFile = work.appendingPathComponent("partners.yaml")
        let yaml =
            "partners:\n" + entries.map { "  - {id: \($0.id), name: \($0.name), role: \($0.role.rawValue), oin: \"\($0.oin)\"}\n" }.joined()
        try yaml.write(to: partnersFile, atomically: true, encoding: .utf8)
        policyFile = work.appendingPathComponent("policy.yaml")
        try "rules:\n  - {type: signal, from: [municipality], to: [care-coordinator]}\n".write(
            to: policyFile,
            atomically: true,
            encoding: .utf8
        )
    }

    /// Writes a `serve` configuration for this chain into `work` and returns its path: the given
    /// listen port (`--port` overrides it per instance), the store of `storeURL` or a SQLite file
    /// in `work`, and the `queue` and `limits` sections as given (YAML flow mappings).
    func writeRelayConfiguration(in work: URL, port: Int, storeURL: String?, queue: String, limits: String) throws -> String {
        let store = storeURL.map { "store: {url: \"\($0)\"}" } ?? "store: {path: \(work.path)/store/ketenpost.sqlite}"
        // Nothing serves the CRL distribution point the synthetic certificates name, and the
        // relay waits revocation.timeout (10 s) for it before it listens: at every start, and
        // at every restart of the crash test. The list in tls.crls is the one in use anyway.
        let config = """
            listen: {host: 127.0.0.1, port: \(port)}
            \(store)
            tls: {certificate: \(pki.relayDirectory)/cert.pem, key: \(pki.relayDirectory)/key.pem, trustAnchors: \
            \(pki.caCertificatePath), crls: [\(pki.crlPath)]}
            directory: {partners: \(partnersFile.path), policy: \(policyFile.path), certificates: \(pki.directory.path)/partners}
            queue: \(queue)
            limits: \(limits)
            admin: {certificates: [\(pki.adminDirectory)/cert.pem]}
            revocation: {fetch: off}

            """
        let path = work.appendingPathComponent("ketenpost.yaml").path
        try config.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }
}
