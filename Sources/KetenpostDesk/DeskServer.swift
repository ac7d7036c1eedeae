import Foundation
import Hummingbird
import HummingbirdAuth
import HummingbirdTLS
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import Logging
import NIOCore
import NIOSSL
import ServiceLifecycle

/// One desk: the partner's identity, its relay client, its store, the web application and the
/// background service that receives and follows messages, as one `ServiceGroup`.
public struct DeskServer: Sendable {
    public let core: DeskCore

    /// Loads the identity, trust anchors and data folder that `configuration` names.
    public static func open(
        _ configuration: DeskConfiguration,
        bcryptCost: UInt8 = 12,
        logger: Logger = Logger(label: "ketenpost.desk"),
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws -> DeskServer {
        let identity = try Identity.load(directory: configuration.identity.directory)
        let trust = try TrustStore.load(anchorsFile: configuration.relay.trustAnchors, crlFiles: configuration.relay.crls)
        guard let url = URL(string: configuration.relay.url) else {
            throw KetenpostError(.configInvalid, "relay.url is not a URL.")
        }
        let client = try RelayClient(relay: url, identity: identity, trust: trust, relayID: configuration.relay.id)
        let store: DeskStore
        do {
            store = try DeskStore(directory: configuration.data.directory, webhookEvents: configuration.webhooks.url != nil)
        } catch {
            throw KetenpostError(
                .storeUnavailable,
                "The desk's data folder \(configuration.data.directory) could not be opened; check that it exists and is writable."
            )
        }
        let core = DeskCore(
            configuration: configuration,
            identity: identity,
            trust: trust,
            client: client,
            store: store,
            bcryptCost: bcryptCost,
            logger: logger,
            clock: clock
        )
        return DeskServer(core: core)
    }

    /// Sessions live in memory: a restart signs everybody out, and nothing about a session is on disk.
    let sessionStorage: MemoryPersistDriver<ContinuousClock>

    public init(core: DeskCore) {
        self.core = core
        sessionStorage = MemoryPersistDriver()
    }

    /// The router, for `app.test(.router)` and for `application`.
    public func router() -> Router<DeskRequestContext> {
        let router = Router(context: DeskRequestContext.self)
        let configuration = core.configuration
        // Named after the partner: desks on one host (the demo) must not overwrite each other's cookie.
        let cookie = "ketenpost_desk_" + core.partnerID.replacingOccurrences(of: "-", with: "_")
        router.add(
            middleware: SessionMiddleware(
                storage: sessionStorage,
                configuration: .init(
                    sessionCookieParameters: .init(
                        name: cookie,
                        path: "/",
                        secure: configuration.listen.certificate != nil,
                        sameSite: .strict
                    ),
                    keyPrefix: "desk.",
                    defaultSessionExpiration: .seconds(configuration.sessions.idleTimeout)
                )
            )
        )
        DeskRoutes.addRoutes(to: router, core: core)
        return router
    }

    /// The web application and the background services.
    public func services(onRunning: @escaping @Sendable (Int) async -> Void = { _ in }) throws -> [any Service] {
        let configuration = core.configuration
        let logger = core.logger
        let address = BindAddress.hostname(configuration.listen.host, port: configuration.listen.port)
        let running: @Sendable (any Channel) async -> Void = { channel in
            let port = channel.localAddress?.port ?? 0
            logger.notice("desk listening", metadata: ["listen.host": "\(configuration.listen.host)", "listen.port": "\(port)"])
            await onRunning(port)
        }
        var background: [any Service] = [sessionStorage, DeskMailService(core: core)]
        if let directory = configuration.folders.directory {
            background.append(DeskFolderService(folders: DeskFolders(core: core, directory: directory)))
        }
        if configuration.webhooks.url != nil { background.append(DeskWebhookService(webhooks: try DeskWebhooks(core: core))) }
        if let certificate = configuration.listen.certificate, let key = configuration.listen.key {
            let chain = try NIOSSLCertificate.fromPEMFile(certificate).map { NIOSSLCertificateSource.certificate($0) }
            var tls = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .file(key))
            tls.minimumTLSVersion = .tlsv12
            tls.cipherSuites = TLSPolicy.cipherSuites
            return [
                Application(
                    router: router(),
                    server: try .tls(.http1(), configuration: TLSChannelConfiguration(tlsConfiguration: tls)),
                    configuration: .init(address: address, serverName: "ketenpost-desk"),
                    services: background,
                    onServerRunning: running,
                    logger: logger
                )
            ]
        }
        return [
            Application(
                router: router(),
                configuration: .init(address: address, serverName: "ketenpost-desk"),
                services: background,
                onServerRunning: running,
                logger: logger
            )
        ]
    }
}

/// Receives in long polls and follows sent messages until their state is final. A relay that
/// cannot be reached is retried every few seconds; nothing is lost meanwhile (the relay keeps
/// the messages; the desk keeps its queued sends).
struct DeskMailService: Service {
    let core: DeskCore

    func run() async throws {
        let wait = core.configuration.inbox.pollWait
        let core = core
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                // Receiving: one long poll after another.
                group.addTask {
                    while !Task.isCancelled {
                        do {
                            try await core.receiveOnce(wait: wait)
                            core.noteRelayContact(error: nil)
                        } catch {
                            // Shutting down cancels the long poll: nothing to report.
                            if Task.isCancelled || error is CancellationError { break }
                            let code = (error as? KetenpostError)?.code.rawValue ?? "network"
                            core.noteRelayContact(error: code)
                            // The error's type, not its text: texts may quote what the relay sent.
                            core.logger.warning(
                                "relay not reached; retrying",
                                metadata: ["error.code": "\(code)", "error.type": "\(type(of: error))"]
                            )
                            try? await Task.sleep(for: .seconds(5))
                        }
                    }
                }
                // Following: queued sends are retried and sent messages' states fetched every few seconds.
                group.addTask {
                    // The directory first, so that the page header names this partner.
                    _ = try? await core.directory()
                    while !Task.isCancelled {
                        await core.followOutgoing()
                        try? await Task.sleep(for: .seconds(3))
                    }
                }
            }
        }
    }
}

/// A desk running in this process (the demo and the tests).
public final class RunningDesk: Sendable {
    public let port: Int
    public let server: DeskServer
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    public var core: DeskCore { server.core }
    public var url: URL { URL(string: "http://127.0.0.1:\(port)")! }

    init(port: Int, server: DeskServer, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.server = server
        self.group = group
        self.task = task
    }

    public static func start(_ server: DeskServer, logger: Logger) async throws -> RunningDesk {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let services = try server.services { continuation.yield($0) }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await task.value
            throw KetenpostError(.internalError, "The desk stopped before it listened.")
        }
        return RunningDesk(port: port, server: server, group: group, task: task)
    }

    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
        try? await server.core.client.shutdown()
    }
}
