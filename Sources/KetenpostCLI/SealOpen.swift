import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning

extension MessageType: ExpressibleByArgument {}
extension Priority: ExpressibleByArgument {}
extension ExploitationForm: ExpressibleByArgument {}

struct Seal: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seal a message offline: sign, encrypt for the recipient's certificates, sign again.",
        discussion: """
            Needs no relay: the recipient's certificates come from --to-cert. Submit the result with \
            curl or the client library (docs/FORMAT.md).
            Examples:
              ketenpost seal --identity certs/dev/partners/gemeente-eijsden-margraten \\
                --to zorgcoordinatie-zuid-limburg \\
                --to-cert certs/dev/partners/zorgcoordinatie-zuid-limburg/cert.pem \\
                --trust certs/dev/ca/cert.pem --type signal \\
                --in config/examples/signal.json --out signal.der
            """
    )

    @Option(help: "Identity directory of the sender (cert.pem, key.pem).") var identity: String
    @Option(help: "Partner id of the recipient.") var to: String
    @Option(name: .customLong("to-cert"), help: "Recipient certificate (PEM); repeat for each valid certificate.") var toCert: [String]
    @Option(help: "Trust anchors (PEM) the recipient certificates must chain to.") var trust: String = "certs/dev/ca/cert.pem"
    @Option(help: "Certificate revocation list (PEM); repeatable.") var crl: [String] = []
    @Option(help: "Message type: \(MessageType.allCases.map(\.rawValue).joined(separator: ", ")).") var type: MessageType
    @OptionGroup var header: HeaderOptions
    @Option(name: .customLong("in"), help: "Payload JSON file, or - for stdin.") var input: String = "-"
    @Option(name: .customLong("out"), help: "Output file for the sealed message (DER), or - for stdout.") var output: String = "-"

    func validate() throws {
        if toCert.isEmpty { throw ValidationError("Give at least one --to-cert.") }
    }

    func run() async throws {
        do {
            let sender = try Identity.load(directory: identity)
            let content = try Drafting.content(
                type: type,
                from: sender.partnerID,
                to: to,
                payload: try readInput(input),
                options: header.drafting()
            )
            // A --to-cert file may be a chain file (certificates.pem): its CA certificates are
            // intermediates, never recipients.
            let all = try toCert.flatMap { try Certificate.load(pemFile: $0) }
            let sealed = try Envelope.seal(
                content,
                from: sender,
                to: all.filter { !$0.isCA },
                intermediates: all.filter(\.isCA),
                trust: try TrustStore.load(anchorsFile: trust, crlFiles: crl)
            )
            try writeOutput(sealed, to: output)
        } catch {
            throw fail(error)
        }
    }
}

/// The routing-header choices that `seal` and `send` share.
struct HeaderOptions: ParsableArguments {
    @Option(help: "Message id (UUID); default a new one. Reuse it to resubmit the same message.") var id: String?
    @Option(name: .customLong("correlation-id"), help: "Id of the message this one answers.") var correlationID: String?
    @Option(name: .customLong("expires-in"), help: "Lifetime such as 12h or 14d; default per type.") var expiresIn: String?
    @Option(help: "normal or urgent.") var priority: Priority = .normal
    @Option(name: .customLong("exploitation-form"), help: "Statistics label: sexual, labour, criminal, unknown.") var exploitationForm:
        ExploitationForm?
    @Option(help: "Statistics label: CBS municipality code, e.g. GM1903.") var region: String?

    func validate() throws {
        if let id, UUID(uuidString: id) == nil { throw ValidationError("--id must be a UUID.") }
        if let correlationID, UUID(uuidString: correlationID) == nil { throw ValidationError("--correlation-id must be a UUID.") }
        if let expiresIn, Drafting.parseDuration(expiresIn) == nil {
            throw ValidationError("--expires-in must look like 90s, 30m, 12h or 14d.")
        }
    }

    /// The drafting options; `validate()` has checked the formats.
    func drafting() -> Drafting.Options {
        var options = Drafting.Options()
        if let id, let uuid = UUID(uuidString: id) { options.id = uuid }
        options.correlationID = correlationID.flatMap(UUID.init(uuidString:))
        options.lifetime = expiresIn.flatMap(Drafting.parseDuration)
        options.priority = priority
        options.exploitationForm = exploitationForm
        options.region = region
        return options
    }
}

struct Open: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Open a sealed message: verify both signatures and the certificates, decrypt, check header and schema.",
        discussion: """
            Prints {"header": …, "payload": …} as JSON. On failure prints the error code and a \
            sentence on stderr and exits with status 1. Revocation is checked against the CRLs the \
            relay serves (--relay; fail closed when they are stale or out of reach), or against \
            --crl files for offline use. The signer must carry the sender's OIN and, with the relay, \
            be one of the sender's registered certificates; --partners gives OINs known without the \
            relay (the chain's partner list), which the relay's directory must then agree with.
            Examples:
              ketenpost open --identity certs/dev/partners/zorgcoordinatie-zuid-limburg \\
                --trust certs/dev/ca/cert.pem --crl certs/dev/crl.pem --in signal.der
              ketenpost open --identity certs/dev/partners/zorgcoordinatie-zuid-limburg --in signal.der
              ketenpost open --identity certs/dev/partners/zorgcoordinatie-zuid-limburg \
                --crl certs/dev/crl.pem --partners config/partners.yaml --in signal.der
            """
    )

    @Option(help: "Identity directory of the recipient (cert.pem, key.pem).") var identity: String
    @Option(help: "Trust anchors (PEM): the CA certificates partners are issued by.") var trust: String = "certs/dev/ca/cert.pem"
    @Option(help: "Certificate revocation list (PEM); repeatable, for offline use. Without it, the relay's CRLs are fetched.")
    var crl: [String] = []
    @Option(help: "Relay base URL to fetch the CRLs from (with the identity's certificate) when no --crl is given.")
    var relay: String = "https://127.0.0.1:8443"
    @Option(name: .customLong("in"), help: "Sealed message (DER), or - for stdin.") var input: String = "-"
    @Flag(name: .customLong("allow-expired"), help: "Open a message past its expiresAt (to look at it, not to act on it).")
    var allowExpired = false
    @Option(help: "A partners.yaml with the partners' OINs, known without the relay; needed for offline use (--crl).")
    var partners: String?

    func run() async throws {
        do {
            let recipient = try Identity.load(directory: identity)
            let message = try readInput(input)
            var store = try TrustStore.load(anchorsFile: trust, crlFiles: crl)
            let pinned = try partners.map { try PartnerDirectoryFile.load(path: $0).partners }.map {
                Dictionary($0.map { ($0.id, $0.oin) }, uniquingKeysWith: { first, _ in first })
            }
            // The sender named by the (signature-checked) outer layer; the binding decides whether to believe it.
            let from = try Envelope.readOuter(message, trust: store).header.from
            let binding: Envelope.SenderBinding
            if crl.isEmpty {
                let client = try PartnerOptions.client(relay: relay, identity: identity, trust: trust, crl: [], pinnedOINs: pinned ?? [:])
                (store, binding) = try await withRelayClient(client) {
                    (try await $0.currentTrust(), try await $0.senderBinding(for: from))
                }
            } else {
                guard let oin = pinned?[from] else {
                    let missing = pinned == nil ? "give the chain's partners.yaml" : "\(from) is not in it"
                    throw KetenpostError(.signerNotSender, "Offline (--crl), the sender's OIN must come from --partners: \(missing).")
                }
                binding = Envelope.SenderBinding(partner: from, oin: oin, fingerprints: nil)
            }
            let opened = try Envelope.open(message, as: recipient, trust: store, allowExpired: allowExpired, sender: binding)
            var out = opened.content.encoded()
            out.append(0x0A)
            try writeOutput(out, to: "-")
        } catch {
            throw fail(error)
        }
    }
}
