import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import KetenpostStore
import Logging
import NIOSSL

/// The relay's parts, wired once: live credentials and directory, the authenticator, the
/// message service and directory administration over one store. HTTP-independent; the HTTP
/// layer (`RelayHTTP`) and the TLS layer (`RelayTLS`) sit on top of it.
public final class RelayCore: Sendable {
    public let configuration: RelayConfiguration
    public let policy: Policy
    public let store: any RelayStore
    public let clock: @Sendable () -> Date
    public let logger: Logger
    /// Counters and gauges (`/metrics`).
    public let metrics: RelayMetrics
    /// Trust anchors, CRLs, the relay's certificate and key, the administrators.
    public let credentials: LiveCredentials
    /// The partner directory as this instance knows it.
    public let directory: LiveDirectory
    public let authenticator: Authenticator
    public let messages: MessageService
    public let administration: DirectoryAdministration
    /// The CRL of every tracked CA, fetched and shared through the store.
    public let revocation: RevocationService
    let notifier = InboxNotifier()

    /// A core from values in memory (no files, no administrators): for harnesses such as the fuzz targets.
    public convenience init(
        configuration: RelayConfiguration,
        directory: PartnerDirectory,
        policy: Policy,
        trust: TrustStore,
        identity: Identity,
        store: any RelayStore,
        logger: Logger
    ) throws {
        let credentials = RelayCredentials(
            trust: trust,
            identity: identity,
            tlsChain: [],
            tlsKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(try identity.key.pem().utf8), format: .pem)),
            administrators: [],
            administratorChain: [],
            crls: [],
            digest: ""
        )
        self.init(
            configuration: configuration,
            directory: directory,
            policy: policy,
            credentials: credentials,
            store: store,
            logger: logger
        )
    }

    init(
        configuration: RelayConfiguration,
        directory: PartnerDirectory,
        policy: Policy,
        credentials: RelayCredentials,
        store: any RelayStore,
        logger: Logger,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.configuration = configuration
        self.policy = policy
        self.store = store
        self.logger = logger
        self.clock = clock
        let metrics = RelayMetrics()
        self.metrics = metrics
        self.credentials = LiveCredentials(credentials, configuration: configuration, metrics: metrics, logger: logger, clock: clock)
        self.directory = LiveDirectory(directory, store: store, metrics: metrics, logger: logger, clock: clock)
        authenticator = Authenticator(
            credentials: self.credentials,
            directory: self.directory,
            rateLimiter: RateLimiter(rate: configuration.limits.ratePerSecond, burst: configuration.limits.rateBurst),
            clock: clock
        )
        messages = MessageService(
            configuration: configuration,
            policy: policy,
            store: store,
            credentials: self.credentials,
            directory: self.directory,
            authenticator: authenticator,
            notifier: notifier,
            metrics: metrics,
            clock: clock,
            quota: SenderQuota(limit: configuration.limits.maxPendingBytesPerSender, store: store, metrics: metrics)
        )
        // CRLs are judged by OpenSSL against the system time, so their schedule runs on it too
        // (not on the injected clock, which tests freeze for message times).
        let revocation = RevocationService(
            configuration: configuration,
            store: store,
            credentials: self.credentials,
            directory: self.directory,
            logger: logger,
            clock: { Date() }
        )
        self.revocation = revocation
        administration = DirectoryAdministration(
            configuration: configuration,
            store: store,
            credentials: self.credentials,
            directory: self.directory,
            notifier: notifier,
            revocation: revocation,
            clock: clock
        )
    }

    // MARK: Housekeeping shared by the lifecycle services, the status page and the tests

    /// Applies expiry, dead-letters and retention once.
    public func sweep() async throws -> SweepCounts { try await messages.sweep(logger: logger) }

    /// Re-reads certificates, CRLs and administrators (see `LiveCredentials.reload()`).
    @discardableResult
    public func reloadCredentials() -> Bool { credentials.reload() }

    /// The Prometheus text, with the queue gauges read from the store now.
    public func metricsText() async -> String {
        do {
            metrics.setQueue(try await store.queueStats(), partners: directory.snapshot.partners.keys, now: clock())
        } catch {
            logger.error("queue statistics unavailable", metadata: ["error.type": "\(type(of: error))"])
        }
        directory.updateCertificateGauges()
        return metrics.exposition()
    }

    /// Signs the audit trail's head if it moved since the last checkpoint.
    public func writeCheckpoint() async {
        do {
            if let checkpoint = try await AuditTrail.checkpoint(store: store, identity: credentials.identity, at: clock()) {
                logger.info("audit checkpoint", metadata: ["audit.sequence": "\(checkpoint.sequence)"])
            }
        } catch {
            logger.error("audit checkpoint failed", metadata: ["error.type": "\(type(of: error))"])
        }
    }

    /// Usable certificates that expire within the warning window, each logged as a warning.
    @discardableResult
    public func warnExpiring() -> [(partner: String, certificate: RegisteredCertificate)] {
        let now = clock()
        let items = directory.expiring(within: configuration.directory.expiryWarning, at: now)
        for item in items {
            let days = Int((item.certificate.record.notAfter.timeIntervalSince(now) / 86_400).rounded(.down))
            logger.warning(
                "certificate expires soon",
                metadata: [
                    "partner.id": "\(item.partner)", "certificate.fingerprint": "\(item.certificate.fingerprint.prefix(16))",
                    "certificate.daysLeft": "\(days)",
                ]
            )
        }
        let relay = credentials.identity.certificate
        if relay.notAfter.timeIntervalSince(now) < configuration.directory.expiryWarning {
            logger.warning(
                "the relay's own certificate expires soon",
                metadata: [
                    "certificate.daysLeft": "\(Int((relay.notAfter.timeIntervalSince(now) / 86_400).rounded(.down)))"
                ]
            )
        }
        return items
    }
}
