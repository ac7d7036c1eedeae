import Foundation
import HummingbirdCore
import KetenpostCrypto
import Logging
import NIOCore
import NIOSSL
import NIOTLS
import Synchronization

/// Who may hold the relay's connections (issue 20). `limits.maxConnections` is global, so one
/// partner opening connections up to it would keep every other partner out. Once a handshake
/// completes, the certificate decides which budget the connection counts against:
/// - a registered certificate of an active partner, or an administrator's: at most
///   `limits.maxConnectionsPerPartner` per partner (per administrator certificate);
/// - anything else that passed the handshake (a certificate the directory does not list, of a
///   suspended partner, not yet active): at most `unauthorizedLimit` such connections at once,
///   each closed after `unauthorizedLifetime`, time enough for the 403 that says what is wrong.
/// A connection over its budget is closed at once, counted in
/// `ketenpost_tls_handshake_failures_total{reason="connection-cap"}` and logged (metadata only).
final class ConnectionGate: Sendable {
    enum Holder: Hashable, Sendable {
        case partner(String)
        case administrator(String)
        case unauthorized
    }

    let perPartner: Int
    let unauthorizedLimit: Int
    let unauthorizedLifetime: TimeAmount
    private let classify: @Sendable (Certificate) -> Holder
    private let counts = Mutex<[Holder: Int]>([:])
    private let metrics: RelayMetrics
    private let logger: Logger

    init(
        perPartner: Int,
        unauthorizedLimit: Int = 16,
        unauthorizedLifetime: TimeAmount = .seconds(10),
        metrics: RelayMetrics,
        logger: Logger,
        classify: @escaping @Sendable (Certificate) -> Holder
    ) {
        self.perPartner = perPartner
        self.unauthorizedLimit = unauthorizedLimit
        self.unauthorizedLifetime = unauthorizedLifetime
        self.metrics = metrics
        self.logger = logger
        self.classify = classify
    }

    /// The gate of a relay: partners by the directory's registrations, administrators by their certificates.
    convenience init(core: RelayCore) {
        let directory = core.directory
        let credentials = core.credentials
        let clock = core.clock
        self.init(
            perPartner: core.configuration.limits.maxConnectionsPerPartner,
            metrics: core.metrics,
            logger: core.logger
        ) { certificate in
            if credentials.value.administrators.contains(certificate.fingerprint) { return .administrator(certificate.fingerprint) }
            guard let (partner, registered) = directory.snapshot.registration(of: certificate), partner.state == .active,
                registered.isUsable(for: .tlsClient, at: clock())
            else { return .unauthorized }
            return .partner(partner.id)
        }
    }

    /// Counts a connection in for `certificate`, or refuses it (nil).
    func admit(_ certificate: Certificate) -> Holder? {
        let holder = classify(certificate)
        let limit: Int
        switch holder {
        case .partner, .administrator: limit = perPartner
        case .unauthorized: limit = unauthorizedLimit
        }
        let admitted = counts.withLock { counts in
            guard counts[holder, default: 0] < limit else { return false }
            counts[holder, default: 0] += 1
            return true
        }
        guard admitted else {
            metrics.handshakeFailed(reason: "connection-cap")
            let who: String
            switch holder {
            case .partner(let id): who = id
            case .administrator: who = "administrator"
            case .unauthorized: who = "unregistered or inactive certificates"
            }
            logger.notice(
                "connection closed: over its connection budget",
                metadata: ["connection.holder": "\(who)", "connection.limit": "\(limit)"]
            )
            return nil
        }
        return holder
    }

    func release(_ holder: Holder) {
        counts.withLock { counts in
            let left = counts[holder, default: 1] - 1
            counts[holder] = left > 0 ? left : nil
        }
    }

    /// Open connections counted for `holder` (tests).
    func open(_ holder: Holder) -> Int { counts.withLock { $0[holder, default: 0] } }

    /// The handler for one connection, placed after the HTTP codec (Hummingbird's additional
    /// channel handlers): it sees the TLS handshake's completion and the channel's end.
    func handler() -> ConnectionGateHandler { ConnectionGateHandler(gate: self) }
}

/// Admits or closes one connection when its TLS handshake completes; releases it at its end.
final class ConnectionGateHandler: ChannelInboundHandler, RemovableChannelHandler {
    // Passes everything on; only events matter here.
    typealias InboundIn = Any
    let gate: ConnectionGate
    private var holder: ConnectionGate.Holder?

    init(gate: ConnectionGate) { self.gate = gate }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted = event as? TLSUserEvent {
            let ssl = try? context.pipeline.syncOperations.handler(type: NIOSSLServerHandler.self)
            guard let der = try? ssl?.peerCertificate?.toDERBytes(), let certificate = try? Certificate.cached(der: der),
                let holder = gate.admit(certificate)
            else {
                context.close(promise: nil)
                return
            }
            self.holder = holder
            if holder == .unauthorized {
                let channel = context.channel
                context.eventLoop.scheduleTask(in: gate.unauthorizedLifetime) { channel.close(promise: nil) }
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let holder {
            gate.release(holder)
            self.holder = nil
        }
        context.fireChannelInactive()
    }
}
