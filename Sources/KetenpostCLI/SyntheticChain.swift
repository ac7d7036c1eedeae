import Foundation
import Ketenpost

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
        let entries = senderIDs.enumerated().map { PartnerEntry(id: $1, name: $1, role: .municipality, oin: String(format: "00000001%012d", $0)) }
            + recipientIDs.enumerated().map { PartnerEntry(id: $1, name: $1, role: .careCoordinator, oin: String(format: "00000003%012d", $0)) }
        pki = DevelopmentPKI(directory: work.appendingPathComponent("certs").path)
        try pki.create(partners: entries)
        partnersFile = work.appendingPathComponent("partners.yaml")
        let yaml = "partners:\n" + entries.map { "  - {id: \($0.id), name: \($0.name), role: \($0.role.rawValue), oin: \"\($0.oin)\"}\n" }.joined()
        try yaml.write(to: partnersFile, atomically: true, encoding: .utf8)
        policyFile = work.appendingPathComponent("policy.yaml")
        try "rules:\n  - {type: signal, from: [municipality], to: [care-coordinator]}\n".write(to: policyFile, atomically: true, encoding: .utf8)
    }
}
