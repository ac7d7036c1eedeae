import Foundation
import Hummingbird
import HummingbirdCore
import HummingbirdTLS
import KetenpostAPI
import KetenpostCrypto
import KetenpostModel
import KetenpostProvisioning
import KetenpostStore
import Logging
import NIOCore
import Prometheus
import ServiceLifecycle

/// Builds a relay from its configuration. `prepare` reads the files (development PKI on first
/// start, credentials, policy) and opens the store without touching it; `services` gives the
/// store and the relay application for one `ServiceGroup`, in that order: the store runs first
/// and closes last, after the server drained. The relay application migrates the store, imports
/// the directory and then serves.
public struct RelayServer: Sendable {
    public let core: RelayCore
    public let configuration: RelayConfiguration
    /// Partners that run inside the relay process (the conformance echo), as clients of it.
    public let hostedPartners: [any HostedPartner]

    /// Loads everything the configuration names. Any problem stops start-up with the file,
    /// the key and what is wrong.
    public static func prepare(
        _ configuration: RelayConfiguration,
        logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() },
        store: (any RelayStore)? = nil,
        hostedPartners: [any HostedPartner] = []
    ) async throws -> RelayServer {
        if configuration.conformance.echo != nil && hostedPartners.isEmpty {
            throw KetenpostError(
                .configInvalid,
                """
                conformance.echo is set, but this program does not host the conformance echo. Run `ketenpost serve`, or remove \
                conformance.echo.
                """
            )
        }
        if let dir = configuration.developmentPKI.directory {
            // Idempotent: what exists is kept (an administrator identity is added to an older PKI).
            let partners = try PartnerDirectoryFile.load(path: configuration.directory.partners)
            let summary = try DevelopmentPKI(directory: dir).create(partners: partners.partners)
            if !summary.created.isEmpty {
                logger.notice(
                    "created development PKI identities (not for production)",
                    metadata: ["pki.directory": "\(dir)", "pki.identities": "\(summary.created.count)"]
                )
            }
        }
        let credentials = try RelayCredentials.load(configuration)
        let policy = try Policy.load(path: configuration.directory.policy)
        let messageStore: any RelayStore
        if let store {
            messageStore = store
        } else {
            messageStore = try await StoreFactory.open(configuration.storeLocation, logger: logger)
        }
        // The directory is loaded from the store by `start()`, once the store runs.
        let core = RelayCore(
            configuration: configuration,
            directory: PartnerDirectory(version: -1, partners: []),
            policy: policy,
            credentials: credentials,
            store: messageStore,
            logger: logger,
            clock: clock
        )
        core.credentials.checkCRLs()
        return RelayServer(core: core, configuration: configuration, hostedPartners: hostedPartners)
    }

    /// Readies the running store: migrations, the import of `partners.yaml` (only what is
    /// missing is added, so changes made through the admin API survive restarts), the
    /// conformance echo, and this instance's directory snapshot.
    public func start() async throws {
        let store = core.store
        let logger = core.logger
        try await store.migrate()
        let snapshot = try await store.directorySnapshot()
        let changes = try DirectoryImport.changes(
            file: configuration.directory.partners,
            certificateDirectory: configuration.directory.certificates,
            current: snapshot,
            now: core.clock()
        )
        if !changes.isEmpty {
            do {
                try await store.applyDirectory(
                    changes,
                    actor: "import:" + URL(fileURLWithPath: configuration.directory.partners).lastPathComponent,
                    at: core.clock()
                )
            } catch is StoreError {
                // Another instance imported the same entries at the same moment; its import stands.
            }
            logger.notice("directory imported", metadata: ["directory.changes": "\(changes.count)"])
        }
        for partner in hostedPartners {
            try await partner.register(core: core)
        }
        try await core.directory.refresh(force: true)
        // The CRLs of the CAs in the directory before the first request (lists held in the store
        // are installed at once; missing or due ones are fetched, each within revocation.timeout).
        await core.revocation.refresh()
    }

    /// The services of a relay, in `ServiceGroup` order: the store, then the relay application
    /// (`start()`, then the Hummingbird application with its housekeeping services).
    public func services(
        reloadOnSIGHUP: Bool = false,
        onMetricsRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        onStatusRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> [any Service] {
        let app = try application(
            reloadOnSIGHUP: reloadOnSIGHUP,
            onMetricsRunning: onMetricsRunning,
            onStatusRunning: onStatusRunning,
            onRunning: onRunning
        )
        // The development CRL endpoint runs beside the relay from the start: the relay's first
        // CRL fetch (in `start()`) already reaches it.
        var development: [any Service] = []
        if configuration.developmentPKI.serveCRLs, let directory = configuration.developmentPKI.directory {
            development.append(DevelopmentCRLService(pki: DevelopmentPKI(directory: directory), logger: core.logger))
        }
        return [core.store] + development + [StartThenServe(server: self, app: app)]
    }

    /// The Hummingbird application with the sweeper service. `onRunning` gets the bound port.
    /// - Parameter reloadOnSIGHUP: reload certificates, CRLs and the directory on SIGHUP (`serve`).
    public func application(
        reloadOnSIGHUP: Bool = false,
        onMetricsRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        onStatusRunning: @escaping @Sendable (Int) async -> Void = { _ in },
        onRunning: @escaping @Sendable (Int) async -> Void = { _ in }
    ) throws -> some ApplicationProtocol {
        let tls = try RelayTLS.configuration(core: core)
        let logger = core.logger
        var services: [any Service] = [
            SweeperService(core: core), LifecycleService(core: core, reloadOnSIGHUP: reloadOnSIGHUP), core.revocation,
        ]
        // Hosted partners talk to this relay like any partner, once it listens.
        let streams = hostedPartners.map { _ in AsyncStream.makeStream(of: Int.self) }
        for (partner, stream) in zip(hostedPartners, streams) {
            services.append(partner.service(core: core, ports: stream.stream))
        }
        let listening = streams.map(\.continuation)
        if let address = configuration.admin.listen {
            // The status page on loopback, for administrators on this machine (or an SSH tunnel).
            let router = Router()
            let core = self.core
            let page: @Sendable (Request, BasicRequestContext) async -> Response = { _, _ in
                Response(
                    status: .ok,
                    headers: [.contentType: "text/html; charset=utf-8", .cacheControl: "no-store"],
                    body: .init(byteBuffer: ByteBuffer(string: await StatusPage.render(core)))
                )
            }
            router.get("/", use: page)
            router.get("/status", use: page)
            services.append(
                Self.plainListener(
                    router,
                    name: "status",
                    event: "status page listening",
                    host: address.host,
                    port: address.port,
                    logger: logger,
                    onRunning: onStatusRunning
                )
            )
        }
        if let address = configuration.metrics.listen {
            // Plain HTTP for the monitoring system, on an address the configuration names: only /metrics.
            let router = Router()
            let core = self.core
            router.get("/metrics") { _, _ in
                Response(
                    status: .ok,
                    headers: [.contentType: "text/plain; version=0.0.4"],
                    body: .init(byteBuffer: ByteBuffer(string: await core.metricsText()))
                )
            }
            services.append(
                Self.plainListener(
                    router,
                    name: "metrics",
                    event: "metrics listening",
                    host: address.host,
                    port: address.port,
                    logger: logger,
                    onRunning: onMetricsRunning
                )
            )
        }
        let gate = ConnectionGate(core: core)
        return Application(
            router: RelayHTTP.router(core: core),
            server: try .tls(
                .http1(
                    configuration: .init(
                        additionalChannelHandlers: [gate.handler()],
                        idleTimeout: .milliseconds(Int64(configuration.limits.idleTimeout * 1000))
                    )
                ),
                configuration: tls
            ),
            configuration: .init(
                address: .hostname(configuration.listen.host, port: configuration.listen.port),
                serverName: "ketenpost",
                availableConnectionsDelegate: ConnectionLimit(configuration.limits.maxConnections, gauge: core.metrics.connectionsOpen)
            ),
            services: services,
            onServerRunning: { channel in
                // The limit is checked before each read of the listening socket, and NIO
                // accepts up to `maxMessagesPerRead` (4) connections per read: when slots free
                // up under a queue of waiting clients the relay would overshoot the limit by
                // up to three. One accept per read keeps it exact from here on (the first read
                // after binding may still take four); connections are long-lived, so this costs
                // nothing measurable.
                do {
                    try await channel.setOption(ChannelOptions.maxMessagesPerRead, value: 1)
                } catch {
                    logger.warning("could not make the connection limit exact", metadata: ["error.type": "\(type(of: error))"])
                }
                let port = channel.localAddress?.port ?? 0
                logger.notice("relay listening", metadata: ["listen.host": "\(configuration.listen.host)", "listen.port": "\(port)"])
                for continuation in listening { continuation.yield(port) }
                await onRunning(port)
            },
            logger: logger
        )
    }
}

/// A partner that runs inside the relay process as a client of it (the conformance echo, in
/// its own target so that the relay does not link the HTTP client).
public protocol HostedPartner: Sendable {
    /// Puts the partner into the directory once the store runs (before the listeners open).
    func register(core: RelayCore) async throws
    /// The partner's work, given the port the relay listens on once it does.
    func service(core: RelayCore, ports: AsyncStream<Int>) -> any Service
}

/// The relay application as one service: the store is readied before the listeners open and
/// the housekeeping services start, so that none of them sees an unmigrated store.
struct StartThenServe<App: ApplicationProtocol>: Service {
    let server: RelayServer
    let app: App

    func run() async throws {
        try await server.start()
        try await app.run()
    }
}

/// `limits.maxConnections`, with the number of open connections as a gauge. Hummingbird's
/// handler calls it on the listening channel's event loop only.
struct ConnectionLimit: AvailableConnectionsDelegate {
    let maxConnections: Int
    let gauge: Prometheus.Gauge
    var open = 0

    init(_ maxConnections: Int, gauge: Prometheus.Gauge) {
        self.maxConnections = maxConnections
        self.gauge = gauge
    }

    mutating func connectionOpened() {
        open += 1
        gauge.set(Double(open))
    }

    mutating func connectionClosed() {
        open -= 1
        gauge.set(Double(open))
    }

    func isAcceptingNewConnections() -> Bool { open < maxConnections }
}

extension RelayServer {
    /// A plain-HTTP side listener (status page, metrics): logs `event` with its address and
    /// reports the port once it listens (the configuration may ask for port 0).
    static func plainListener(
        _ router: Router<BasicRequestContext>,
        name: String,
        event: String,
        host: String,
        port: Int,
        logger: Logger,
        onRunning: @escaping @Sendable (Int) async -> Void
    ) -> any Service {
        Application(
            router: router,
            configuration: .init(address: .hostname(host, port: port), serverName: "ketenpost-\(name)"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                logger.notice("\(event)", metadata: ["listen.host": "\(host)", "listen.port": "\(port)"])
                await onRunning(port)
            },
            logger: logger
        )
    }
}

/// A relay running in this process (the demo, the benchmark and the tests use it).
public final class RunningRelay: Sendable {
    public let port: Int
    /// The port of the plain metrics listener, when `metrics.listen` is set.
    public let metricsPort: Int?
    /// The port of the loopback status page, when `admin.listen` is set.
    public let statusPort: Int?
    public let core: RelayCore
    private let group: ServiceGroup
    private let task: Task<Void, any Error>

    init(port: Int, metricsPort: Int?, statusPort: Int?, core: RelayCore, group: ServiceGroup, task: Task<Void, any Error>) {
        self.port = port
        self.metricsPort = metricsPort
        self.statusPort = statusPort
        self.core = core
        self.group = group
        self.task = task
    }

    public var url: URL { URL(string: "https://127.0.0.1:\(port)")! }

    /// Starts the relay and returns once it listens.
    public static func start(_ server: RelayServer, logger: Logger) async throws -> RunningRelay {
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let (metricsPorts, metricsContinuation) = AsyncStream.makeStream(of: Int.self)
        let (statusPorts, statusContinuation) = AsyncStream.makeStream(of: Int.self)
        let services = try server.services(
            onMetricsRunning: { metricsContinuation.yield($0) },
            onStatusRunning: { statusContinuation.yield($0) }
        ) { port in continuation.yield(port) }
        let group = ServiceGroup(configuration: .init(services: services, gracefulShutdownSignals: [], logger: logger))
        let task = Task {
            // A start-up failure (a bad partners.yaml, an unreachable store) ends the wait for the port.
            defer { continuation.finish() }
            try await group.run()
        }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else {
            try await task.value
            throw KetenpostError(.internalError, "The relay stopped before it listened.")
        }
        var metricsPort: Int?
        if server.configuration.metrics.listen != nil {
            var metricsIterator = metricsPorts.makeAsyncIterator()
            metricsPort = await metricsIterator.next()
        }
        var statusPort: Int?
        if server.configuration.admin.listen != nil {
            var statusIterator = statusPorts.makeAsyncIterator()
            statusPort = await statusIterator.next()
        }
        return RunningRelay(port: port, metricsPort: metricsPort, statusPort: statusPort, core: server.core, group: group, task: task)
    }

    /// Graceful shutdown: in-flight requests finish, then the store closes; returns when all has stopped.
    public func stop() async {
        await group.triggerGracefulShutdown()
        _ = try? await task.value
    }
}
