import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostProvisioning
import KetenpostRelay
import KetenpostStore
import Logging
import ServiceLifecycle

/// The conformance echo (`conformance.echo`): a partner hosted by the relay process for
/// `ketenpost conformance`. It is a client of the relay like any other partner — its own key,
/// mutual TLS to the relay's port, the client library — so the relay itself still holds no key
/// that opens a message. It answers every signal it can open with a signal back (same payload,
/// `correlationId` = the original id) and acknowledges it; what it cannot open it rejects with
/// the failing check's code, so that a partner sees at once what was wrong.
public struct ConformanceEcho: HostedPartner {
    public init() {}

    /// The hosted partners a configuration asks for: the echo if `conformance.echo` is set.
    public static func hosted(by configuration: RelayConfiguration) -> [any HostedPartner] {
        configuration.conformance.echo == nil ? [] : [ConformanceEcho()]
    }

    public func register(core: RelayCore) async throws {
        guard let id = core.configuration.conformance.echo else { return }
        // Said at every start: a production relay must not hold a partner's key or pass signals outside the policy.
        core.logger.warning(
            "conformance echo hosted: its private key is on this host and its signals bypass the policy; test relays only",
            metadata: ["partner.id": "\(id)"]
        )
        try await Self.register(id, configuration: core.configuration, store: core.store, now: core.clock(), logger: core.logger)
    }

    public func service(core: RelayCore, ports: AsyncStream<Int>) -> any Service {
        Echo(core: core, ports: ports)
    }

    /// Puts the echo partner and its certificate into the directory if they are missing.
    static func register(_ id: String, configuration: RelayConfiguration, store: any RelayStore, now: Date, logger: Logger) async throws {
        let identity = try Identity.load(directory: configuration.conformance.identity)
        guard identity.partnerID == id else {
            throw KetenpostError(
                .configInvalid,
                "conformance.identity \(configuration.conformance.identity) is for \(identity.partnerID), not for conformance.echo \(id)."
            )
        }
        let snapshot = try await store.directorySnapshot()
        var changes: [DirectoryChange] = []
        if !snapshot.partners.contains(where: { $0.id == id }) {
            changes.append(
                .addPartner(
                    DirectoryPartner(
                        id: id,
                        name: "Ketenpost conformance echo",
                        role: PartnerRole.careCoordinator.rawValue,
                        oin: identity.certificate.subjectSerialNumber ?? DevelopmentPKI.echo.oin,
                        state: PartnerState.active.rawValue
                    )
                )
            )
        }
        if !snapshot.certificates.contains(where: { $0.fingerprint == identity.certificate.fingerprint }) {
            changes.append(
                .addCertificate(
                    DirectoryImport.record(
                        identity.certificate,
                        chain: identity.chain,
                        partner: id,
                        uses: CertificateUse.allCases,
                        activatesAt: now,
                        now: now
                    )
                )
            )
        }
        if !changes.isEmpty {
            do { try await store.applyDirectory(changes, actor: "conformance", at: now) } catch is StoreError {}
            logger.notice("conformance echo registered", metadata: ["partner.id": "\(id)"])
        }
    }

}

/// The echo's loop: receive, answer or reject, acknowledge.
struct Echo: Service {
    let core: RelayCore
    let ports: AsyncStream<Int>

    func run() async throws {
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { return }
        let configuration = core.configuration
        let logger = core.logger
        let client = try RelayClient(
            relay: URL(string: "https://127.0.0.1:\(port)")!,
            identity: try Identity.load(directory: configuration.conformance.identity),
            trust: try TrustStore.load(anchorsFile: configuration.tls.trustAnchors, crlFiles: configuration.tls.crls),
            relayID: configuration.relay.id
        )
        await withGracefulShutdownHandler {
            while !Task.isCancelled && !Task.isShuttingDownGracefully {
                do {
                    for item in try await client.receive(max: 10, wait: 5) {
                        switch item.result {
                        case .success(let opened):
                            // Acknowledge first: when the partner sees the answer, its own message is
                            // already acknowledged (the kit checks that right after).
                            try await client.acknowledge(item)
                            var options = Drafting.Options()
                            options.correlationID = opened.header.id
                            let payload = try KetenpostJSON.encoder().encode(opened.payload)
                            _ = try await client.send(payload: payload, type: .signal, to: opened.header.from, options: options)
                            logger.info(
                                "conformance echo answered",
                                metadata: ["message.id": "\(item.id)", "partner.to": "\(opened.header.from)"]
                            )
                        case .failure(let error):
                            // A test partner: anything it cannot open is answered at once, with the reason.
                            try await client.acknowledge(item, rejectedWith: error.code.rawValue)
                            logger.info("conformance echo rejected", metadata: ["message.id": "\(item.id)", "error.code": "\(error.code)"])
                        }
                    }
                } catch {
                    if Task.isShuttingDownGracefully { break }
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
        } onGracefulShutdown: {
        }
        try? await client.shutdown()
    }
}
