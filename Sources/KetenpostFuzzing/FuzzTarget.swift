import Foundation

/// The libFuzzer targets: one entry function per input format that reaches the relay or a
/// recipient from outside. `ketenpost-fuzz` runs them under libFuzzer, and
/// `KetenpostFuzzTests` replays the seed corpus and every kept regression input through the
/// same functions (Tests/Fuzz/README.md).
///
/// Each entry function must return normally for every input: a refusal is a clean, typed
/// error and is swallowed here. A crash is a finding, and so is a broken property (an oracle)
/// that the function checks on top: those throw `FuzzFinding`.
public enum FuzzTarget: String, CaseIterable, Sendable {
    /// Raw bytes as a sealed message: `Envelope.open` as the recipient (checks 1–13).
    case envelopeOpen = "envelope-open"
    /// The outer signed JSON document: signed with the sender's key, then opened.
    case envelopeOuter = "envelope-outer"
    /// The DER of the encrypted layer (AuthEnvelopedData): wrapped in a signed outer layer, then opened.
    case envelopeEncrypted = "envelope-encrypted"
    /// The inner signed JSON document: signed, encrypted for the recipient, wrapped, then opened.
    case envelopeInner = "envelope-inner"
    /// A routing header on its own (`RoutingHeader.decode`).
    case header
    /// A payload on its own (`Payload.decode`).
    case payload
    /// A receipt: DER as a signed receipt (`SignedReceipt.verify`), anything else as receipt JSON
    /// (`Receipt.decode`, and signed by its issuer then verified).
    case receipt
    /// Raw bytes on a relay connection: NIO's HTTP/1 decoder, Hummingbird's request and router,
    /// the relay's handlers.
    case httpRequest = "http-request"
    /// A SignedData read by both of the relay's parsers (the certificate-splitting fast path and
    /// OpenSSL's own): they must agree. DER as is, or layout changes of a valid message.
    case signedDataParsers = "signeddata-parsers"
    /// The inbox's binary form (`InboxMultipart.parse`): boundary on the first line, then the body.
    case inboxMultipart = "inbox-multipart"
    /// `config/ketenpost.yaml` (`RelayConfiguration.parse`).
    case configRelay = "config-relay"
    /// `config/partners.yaml` (`PartnerDirectoryFile.parse`).
    case configPartners = "config-partners"
    /// `config/policy.yaml` (`Policy.load`).
    case configPolicy = "config-policy"

    /// Runs one input through the target. Throws only for a finding.
    public func run(_ data: Data) async throws(FuzzFinding) {
        switch self {
        case .envelopeOpen: try EnvelopeTargets.open(data)
        case .envelopeOuter: try EnvelopeTargets.outer(data)
        case .envelopeEncrypted: try EnvelopeTargets.encrypted(data)
        case .envelopeInner: try EnvelopeTargets.inner(data)
        case .header: try DocumentTargets.header(data)
        case .payload: try DocumentTargets.payload(data)
        case .receipt: try DocumentTargets.receipt(data)
        case .httpRequest: try await HTTPRequestTarget.run(data)
        case .signedDataParsers: try ParserTargets.signedData(data)
        case .inboxMultipart: try InboxTargets.multipart(data)
        case .configRelay: try ConfigurationTargets.relay(data)
        case .configPartners: try ConfigurationTargets.partners(data)
        case .configPolicy: try ConfigurationTargets.policy(data)
        }
    }

    /// `run` for a caller outside Swift concurrency (libFuzzer's callback on the main thread).
    /// Never call it from a task: it blocks its thread until the input has been processed.
    public func runBlocking(_ data: Data) throws(FuzzFinding) {
        let box = ResultBox()
        let done = DispatchSemaphore(value: 0)
        Task {
            do throws(FuzzFinding) { try await run(data) } catch { box.set(error) }
            done.signal()
        }
        done.wait()
        if let finding = box.get() { throw finding }
    }

    /// Creates the keys, certificates and relay this target needs, so that the first input is
    /// not slower than the others (libFuzzer would take it for a slow unit).
    public func prepare() async throws {
        switch self {
        case .httpRequest: _ = try await HTTPRequestTarget.harness()
        case .configRelay, .configPartners, .configPolicy, .header, .payload, .inboxMultipart: break
        default: _ = Fixture.shared
        }
    }
}

/// A broken property: what should not happen, for which input class, and whether it is a known,
/// reported and not yet fixed problem (`FuzzFinding.Known`).
public struct FuzzFinding: Error, CustomStringConvertible, Sendable {
    public let target: FuzzTarget
    /// A stable name of the property, for `Known`.
    public let property: String
    public let message: String

    public init(_ target: FuzzTarget, _ property: String, _ message: String) {
        self.target = target
        self.property = property
        self.message = message
    }

    public var description: String { "\(target.rawValue): \(property): \(message)" }

    /// Properties whose violation is a known bug in code this branch may not change; see
    /// Tests/Fuzz/README.md. `ketenpost-fuzz` ignores them unless KETENPOST_FUZZ_STRICT=1 (so
    /// that CI finds new problems instead of the same one every run); the regression test
    /// expects them as known issues, and fails once the bug is fixed and the name not removed.
    public static let known: Set<String> = []

    public var isKnown: Bool { Self.known.contains(property) }
}

/// With KETENPOST_FUZZ_TRACE=1, each input's outcome goes to stderr (for `--replay`, to see
/// how far a seed gets).
let tracing = ProcessInfo.processInfo.environment["KETENPOST_FUZZ_TRACE"] == "1"

func trace(_ message: @autoclosure () -> String) {
    if tracing { FileHandle.standardError.write(Data("  \(message())\n".utf8)) }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var finding: FuzzFinding?
    func set(_ value: FuzzFinding) { lock.withLock { finding = value } }
    func get() -> FuzzFinding? { lock.withLock { finding } }
}
