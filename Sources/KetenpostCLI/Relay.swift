import ArgumentParser
import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostConformance
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import Logging
import ServiceLifecycle

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// `--log-format`: how `serve` writes its log lines to standard error.
enum LogFormat: String, ExpressibleByArgument, CaseIterable {
    /// swift-log's stream format, for people.
    case text
    /// One JSON object per line, for log collectors.
    case json
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the relay (mutual TLS; SQLite or PostgreSQL store; development PKI created on first start).",
        discussion: """
            Stops gracefully on SIGTERM or SIGINT: in-flight requests finish, nothing accepted is lost. \
            SIGHUP re-reads the relay's certificate, key, trust anchors and CRLs. See docs/OPERATIONS.md.
            Examples:
              ketenpost serve --config config/ketenpost.yaml
              ketenpost serve --config config/ketenpost.yaml --port 0 --log-format json \\
                --log-level debug
            """
    )

    @Option(help: "Relay configuration file.") var config: String = "config/ketenpost.yaml"
    @Option(help: "Override listen.port (0 picks a free port).") var port: Int?
    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.") var logLevel: Logger.Level =
        .info
    @Option(name: .customLong("log-format"), help: "text or json (one JSON object per line).") var logFormat: LogFormat = .text
    @Flag(
        name: .customLong("conformance-echo"),
        help: """
            Host the conformance echo (conformance.echo, or ketenpost-echo) for `ketenpost conformance`. Test relays only: \
            its private key lives on this host and its signals pass outside the policy table.
            """
    ) var conformanceEcho = false

    func run() async throws {
        do {
            var configuration = try RelayConfiguration.load(path: config)
            if let port { configuration.listen.port = port }
            if conformanceEcho && configuration.conformance.echo == nil {
                configuration.conformance.echo = DevelopmentPKI.echo.id
            }
            let level = logLevel
            switch logFormat {
            case .json:
                LoggingSystem.bootstrap { label in JSONLogHandler(label: label, level: level) }
            case .text:
                LoggingSystem.bootstrap { label in
                    var handler = StreamLogHandler.standardError(label: label)
                    handler.logLevel = level
                    return handler
                }
            }
            let logger = Logger(label: "ketenpost.relay")
            let server = try await RelayServer.prepare(
                configuration,
                logger: logger,
                hostedPartners: ConformanceEcho.hosted(by: configuration)
            )
            let host = configuration.listen.host
            let services = try server.services(
                reloadOnSIGHUP: true,
                onRunning: { port in
                    print("Ketenpost relay listening on https://\(host):\(port) (mutual TLS; Ctrl-C stops it)")
                    fflush(nil)
                }
            )
            try await ServiceGroup(
                configuration: .init(
                    services: services,
                    gracefulShutdownSignals: [.sigterm, .sigint],
                    logger: logger
                )
            ).run()
        } catch {
            throw fail(error)
        }
    }
}

/// Options every partner command shares.
struct PartnerOptions: ParsableArguments {
    @Option(help: "Identity directory of the partner (cert.pem, key.pem).") var identity: String
    @Option(help: "Relay base URL.") var relay: String = "https://127.0.0.1:8443"
    @Option(help: "Trust anchors (PEM): the CA of the relay and the partners.") var trust: String = "certs/dev/ca/cert.pem"
    @Option(
        help: """
            Certificate revocation list (PEM); repeatable. Without it, the relay's CRLs are fetched and revocation is checked \
            against them (fail closed when they are stale).
            """
    ) var crl: [String] = []
    @Option(name: .customLong("relay-id"), help: "The relay's id, issuer of acceptance receipts.") var relayID: String = DevelopmentPKI
        .relayID
    @Option(
        help: """
            A partners.yaml with the partners' OINs, known without the relay: senders' OINs in the relay's directory must \
            agree with it.
            """
    ) var partners: String?

    func client() throws -> RelayClient {
        let pinned = try partners.map { try PartnerDirectoryFile.load(path: $0).partners }.map {
            Dictionary($0.map { ($0.id, $0.oin) }, uniquingKeysWith: { first, _ in first })
        }
        return try Self.client(relay: relay, identity: identity, trust: trust, crl: crl, relayID: relayID, pinnedOINs: pinned ?? [:])
    }

    static func client(
        relay: String,
        identity: String,
        trust: String,
        crl: [String],
        relayID: String = DevelopmentPKI.relayID,
        pinnedOINs: [String: String] = [:]
    ) throws -> RelayClient {
        guard let url = URL(string: relay), url.scheme == "https" else {
            throw KetenpostError(.requestInvalid, "--relay must be an https URL such as https://127.0.0.1:8443.")
        }
        // Revocation is checked against the relay's CRLs, or only against --crl files when given (offline).
        return try RelayClient(
            relay: url,
            identity: try Identity.load(directory: identity),
            trust: try TrustStore.load(anchorsFile: trust, crlFiles: crl),
            relayID: relayID,
            revocation: crl.isEmpty ? .fromRelay() : .trustOnly,
            pinnedOINs: pinnedOINs
        )
    }
}

func printJSON<T: Encodable>(_ value: T) {
    let encoder = KetenpostJSON.encoder()
    encoder.outputFormatting.insert(.prettyPrinted)
    if let data = try? encoder.encode(value) { print(String(decoding: data, as: UTF8.self)) }
}

/// Writes a file so that it is complete on disk before anything else happens (write to a
/// temporary name, fsync, rename, fsync the directory).
func writeDurably(_ data: Data, to url: URL) throws {
    let directory = url.deletingLastPathComponent()
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let temporary = directory.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp")
    guard FileManager.default.createFile(atPath: temporary.path, contents: nil, attributes: [.posixPermissions: 0o600]) else {
        throw KetenpostError(.internalError, "Cannot write \(temporary.path).")
    }
    let handle = try FileHandle(forWritingTo: temporary)
    try handle.write(contentsOf: data)
    try handle.synchronize()
    try handle.close()
    guard rename(temporary.path, url.path) == 0 else { throw KetenpostError(.internalError, "Cannot rename into \(url.path).") }
    let fd = open(directory.path, O_RDONLY)
    if fd >= 0 {
        fsync(fd)
        close(fd)
    }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Seal a message for the recipient's current certificates, submit it and verify the acceptance receipt.",
        discussion: """
            The sealed bytes and the receipt are kept in the outbox (default IDENTITY/outbox/ID.der and \
            ID.receipt.der): they are the sender's proof of what was sent and when the relay took it. \
            Running send again with the same --id resubmits the same bytes, so a retry never creates a second message.
            Examples:
              ketenpost send --identity certs/dev/partners/gemeente-eijsden-margraten \\
                --to zorgcoordinatie-zuid-limburg --type signal \\
                --in config/examples/signal.json
              ketenpost send --identity certs/dev/partners/gemeente-eijsden-margraten \\
                --to zorgcoordinatie-zuid-limburg --type signal --id 6f1c2d3e-… \\
                --in config/examples/signal.json
            """
    )

    @OptionGroup var partner: PartnerOptions
    @Option(help: "Partner id of the recipient.") var to: String
    @Option(help: "Message type.") var type: MessageType
    @Option(name: .customLong("in"), help: "Payload JSON file, or - for stdin.") var input: String = "-"
    @OptionGroup var header: HeaderOptions
    @Option(help: "Outbox directory for sealed messages and receipts.") var outbox: String?
    @Option(help: "Submission attempts on network failure.") var attempts: Int = 3

    func run() async throws {
        do {
            let sent = try await withRelayClient(try partner.client()) { client in try await send(client) }
            printJSON(
                SendResult(
                    id: sent.header.id,
                    to: sent.header.to,
                    type: sent.header.type.rawValue,
                    state: sent.response.state,
                    acceptedAt: sent.receipt.time,
                    digest: sent.receipt.messageDigest,
                    duplicate: sent.response.duplicate,
                    receiptVerified: true
                )
            )
        } catch {
            throw fail(error)
        }
    }

    struct SendResult: Encodable {
        var id: UUID, to: String, type: String, state: String, acceptedAt: Date, digest: String, duplicate: Bool, receiptVerified: Bool
    }

    private func send(_ client: RelayClient) async throws -> RelayClient.Sent {
        let box = URL(fileURLWithPath: outbox ?? partner.identity + "/outbox")
        let options = self.header.drafting()
        let file = box.appendingPathComponent("\(options.id.uuidString.lowercased()).der")
        let sealed: Data
        let routing: RoutingHeader
        if let existing = try? Data(contentsOf: file) {
            // A retry: the very same bytes, so the relay answers with the original receipt.
            sealed = existing
            routing = try Envelope.readOuter(existing, trust: client.trust).header
        } else {
            let entry = try await client.directory(to)
            let (certificates, intermediates) = try entry.sealingCertificates()
            let content = try Drafting.content(
                type: type,
                from: client.identity.partnerID,
                to: to,
                payload: try readInput(input),
                options: options
            )
            sealed = try Envelope.seal(
                content,
                from: client.identity,
                to: certificates,
                intermediates: intermediates,
                trust: try await client.currentTrust()
            )
            routing = content.header
            try writeDurably(sealed, to: file)
        }
        var lastError: (any Error)?
        for attempt in 1...max(1, attempts) {
            do {
                let sent = try await client.submit(sealed: sealed, header: routing)
                try writeDurably(
                    Data(base64Encoded: sent.response.receipt) ?? Data(),
                    to: box.appendingPathComponent("\(routing.id.uuidString.lowercased()).receipt.der")
                )
                return sent
            } catch let error as KetenpostError {
                throw error  // the relay answered: retrying the same bytes would get the same answer
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(200 * attempt))
            }
        }
        throw lastError ?? KetenpostError(.internalError, "Submission failed.")
    }
}

struct Inbox: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Lease, open and verify messages; write them out; acknowledge with signed receipts.",
        discussion: """
            Each message is written atomically to --out (fsync'd) before its receipt is sent. A message \
            that fails any check is answered with a signed rejection receipt naming the error code.
            Exit status 2 when a message was left for redelivery (it may open with another key later).
            Examples:
              ketenpost inbox --identity certs/dev/partners/zorgcoordinatie-zuid-limburg \\
                --wait 20 --out received --ack
              ketenpost inbox --identity certs/dev/partners/zorgcoordinatie-zuid-limburg \\
                --max 1
            """
    )

    @OptionGroup var partner: PartnerOptions
    @Option(help: "Seconds to wait for a message when the inbox is empty (long poll).") var wait: Int = 0
    @Option(help: "Most messages to lease at once.") var max: Int = 10
    @Option(help: "Directory to write each opened message to (ID.json); without it they go to stdout.") var out: String?
    @Flag(help: "Acknowledge each message with a signed receipt after it is written.") var ack = false

    func run() async throws {
        do {
            let (received, failures) = try await withRelayClient(try partner.client()) { client in
                let received = try await client.receive(max: max, wait: TimeInterval(wait))
                return (received, await handle(received, client: client))
            }
            var stderr = StandardError()
            if failures > 0 { throw ExitCode(2) }
            if received.isEmpty { print("no messages", to: &stderr) }
        } catch let exit as ExitCode {
            throw exit
        } catch {
            throw fail(error)
        }
    }

    /// Writes (and acknowledges) each message; one message must not stop the others. Returns
    /// how many failed.
    private func handle(_ received: [RelayClient.Received], client: RelayClient) async -> Int {
        var stderr = StandardError()
        var failures = 0
        for item in received {
            let id = item.id.uuidString.lowercased()
            // One message must not stop the others: each is handled, and reported, on its own.
            do {
                switch item.result {
                case .success(let opened):
                    let file = out.map { URL(fileURLWithPath: $0).appendingPathComponent("\(id).json") }
                    if let file, FileManager.default.fileExists(atPath: file.path) {
                        // Delivered again (our receipt got lost): already written, so only acknowledge.
                        if ack { try await client.acknowledge(item) }
                        print("already received \(id), \(ack ? "acknowledged again" : "not written again")", to: &stderr)
                        continue
                    }
                    var document = opened.content.encoded()
                    document.append(0x0A)
                    if let file { try writeDurably(document, to: file) } else { FileHandle.standardOutput.write(document) }
                    if ack { try await client.acknowledge(item) }
                    print(
                        "received \(id) \(opened.header.type.rawValue) from \(opened.header.from)\(ack ? ", acknowledged" : "")",
                        to: &stderr
                    )
                case .failure(let error) where error.isContentBound:
                    if ack { try await client.acknowledge(item) }
                    print("refused \(id): \(error.code)\(ack ? ", rejection receipt sent" : "")", to: &stderr)
                case .failure(let error):
                    // Possibly local or passing (certificates, CRL, key rotation): no final
                    // rejection; the relay delivers it again after the lease.
                    failures += 1
                    print("could not open \(id): \(error.code); left for redelivery", to: &stderr)
                }
            } catch {
                failures += 1
                print("failed on \(id): \(error)", to: &stderr)
            }
        }
        return failures
    }
}

struct Status: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show a sent message's state, times and verified receipts (sender only).",
        discussion: """
            Only the sender of a message sees it. With --receipts, the signed receipts are written out \
            for a third party to check with `openssl cms -verify`.
            Examples:
              ketenpost status \\
                --identity certs/dev/partners/gemeente-eijsden-margraten 6f1c2d3e-…
              ketenpost status --identity certs/dev/partners/gemeente-eijsden-margraten \\
                --receipts receipts 6f1c2d3e-…
            """
    )

    @OptionGroup var partner: PartnerOptions
    @Argument(help: "Message id.") var messageID: String
    @Option(help: "Write the receipts (CMS DER) into this directory, for a third party to check with openssl.") var receipts: String?
    @Option(help: "Outbox with the sealed copy (default IDENTITY/outbox): receipts are checked against its digest.") var outbox: String?

    func run() async throws {
        do {
            guard let id = UUID(uuidString: messageID) else { throw KetenpostError(.requestInvalid, "The message id must be a UUID.") }
            let (status, report) = try await withRelayClient(try partner.client()) { client in
                let status = try await client.status(id)
                let copy = try? Data(
                    contentsOf: URL(fileURLWithPath: outbox ?? partner.identity + "/outbox")
                        .appendingPathComponent("\(id.uuidString.lowercased()).der")
                )
                return (
                    status,
                    try StatusReport(
                        status,
                        trust: try await client.currentTrust(),
                        relayID: partner.relayID,
                        me: client.identity.partnerID,
                        sealedCopy: copy
                    )
                )
            }
            if let receipts {
                let dir = URL(fileURLWithPath: receipts)
                try writeDurably(
                    Data(base64Encoded: status.acceptanceReceipt) ?? Data(),
                    to: dir.appendingPathComponent("\(messageID).acceptance.der")
                )
                if let recipient = status.recipientReceipt {
                    try writeDurably(
                        Data(base64Encoded: recipient) ?? Data(),
                        to: dir.appendingPathComponent("\(messageID).acknowledgement.der")
                    )
                }
            }
            printJSON(report)
        } catch {
            throw fail(error)
        }
    }
}

/// A status with both receipts checked: signatures, signers and that they name this message.
struct StatusReport: Encodable {
    var id: UUID
    var type: String
    var from: String
    var to: String
    var state: String
    var acceptedAt: Date
    var expiresAt: Date
    var attempts: Int
    var firstDeliveredAt: Date?
    var completedAt: Date?
    var reasonCode: String?
    var acceptanceReceipt: ReceiptSummary
    var recipientReceipt: ReceiptSummary?
    /// Whether the receipts name the digest of the sender's own sealed copy; nil without a copy.
    var matchesSealedCopy: Bool?

    struct ReceiptSummary: Encodable {
        var issuer: String
        var disposition: String
        var time: Date
        var reasonCode: String?
        var verified: Bool
    }

    /// Checks both receipts: signatures and chains, the relay as issuer of the acceptance, the
    /// recipient as issuer of the acknowledgement, this sender as `from`, and (with the sender's
    /// own sealed copy) its digest rather than the digest the relay reports.
    init(_ status: API.StatusResponse, trust: TrustStore, relayID: String, me: String, sealedCopy: Data?) throws {
        guard status.from == me else { throw KetenpostError(.receiptInvalid, "The relay reports a message of another sender.") }
        let digest = sealedCopy.map { Digest.sha256($0).hexString } ?? status.digest
        guard digest == status.digest else {
            throw KetenpostError(.receiptMismatch, "The relay's digest differs from the digest of the sealed copy in the outbox.")
        }
        func check(_ base64: String, kind: Receipt.Kind, issuer: String) throws -> ReceiptSummary {
            guard let der = Data(base64Encoded: base64) else { throw KetenpostError(.receiptMalformed, "A receipt is not base64.") }
            let receipt = try SignedReceipt.verify(der, trust: trust, signer: kind == .acceptance ? .relay(relayID) : .partner).receipt
            guard receipt.kind == kind, receipt.messageId == status.id, receipt.messageDigest == digest,
                receipt.from == me, receipt.to == status.to, receipt.issuer == issuer
            else {
                throw KetenpostError(.receiptInvalid, "A receipt does not name this message.")
            }
            return ReceiptSummary(
                issuer: receipt.issuer,
                disposition: receipt.disposition.rawValue,
                time: receipt.time,
                reasonCode: receipt.reasonCode,
                verified: true
            )
        }
        id = status.id
        type = status.type
        from = status.from
        to = status.to
        state = status.state
        acceptedAt = status.acceptedAt
        expiresAt = status.expiresAt
        attempts = status.attempts
        firstDeliveredAt = status.firstDeliveredAt
        completedAt = status.completedAt
        reasonCode = status.reasonCode
        acceptanceReceipt = try check(status.acceptanceReceipt, kind: .acceptance, issuer: relayID)
        recipientReceipt = try status.recipientReceipt.map { try check($0, kind: .acknowledgement, issuer: status.to) }
        matchesSealedCopy = sealedCopy == nil ? nil : true
    }
}
