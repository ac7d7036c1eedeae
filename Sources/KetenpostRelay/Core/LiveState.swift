import Foundation
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostStore
import Logging
import Synchronization

/// The relay's credentials as they are now: trust anchors with CRLs, the relay's own
/// certificate and key, the administrators. Swapped as a whole by `reload()` (SIGHUP, the
/// schedule, `POST /v1/admin/reload`); readers always see one consistent set.
public final class LiveCredentials: Sendable {
    let configuration: RelayConfiguration
    let metrics: RelayMetrics
    let logger: Logger
    let clock: @Sendable () -> Date
    private let current: Mutex<RelayCredentials>
    /// The stale-CRL alarm: which files were last logged, and when.
    private let crlAlarm = Mutex<(files: Set<String>, loggedAt: Date)>(([], .distantPast))

    init(
        _ credentials: RelayCredentials,
        configuration: RelayConfiguration,
        metrics: RelayMetrics,
        logger: Logger,
        clock: @escaping @Sendable () -> Date
    ) {
        current = Mutex(credentials)
        self.configuration = configuration
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
    }

    var value: RelayCredentials { current.withLock { $0 } }
    public var trust: TrustStore { current.withLock { $0.trust } }
    public var identity: Identity { current.withLock { $0.identity } }

    /// Re-reads the relay's certificate and key, trust anchors, CRLs and administrators. A set
    /// that fails to load is logged and ignored: the relay keeps serving with the old one.
    /// - Returns: whether a new set was installed.
    @discardableResult
    public func reload() -> Bool {
        let fresh: RelayCredentials
        do {
            fresh = try RelayCredentials.load(configuration)
        } catch {
            logger.error(
                "reload refused; the previous certificates stay in use",
                metadata: ["error.code": "\(error.code)", "error.message": "\(error.message)"]
            )
            return false
        }
        let changed = current.withLock { current -> Bool in
            guard current.digest != fresh.digest else { return false }
            current = fresh
            return true
        }
        if changed {
            logger.notice(
                "certificates reloaded",
                metadata: [
                    "relay.certificate.serial": "\(fresh.identity.certificate.serialNumberHex)",
                    "relay.certificate.notAfter": "\(ISO8601DateFormatter().string(from: fresh.identity.certificate.notAfter))",
                    "crl.count": "\(fresh.crls.count)",
                ]
            )
        }
        checkCRLs()
        return changed
    }

    /// Sets the stale-CRL gauge and logs an error for each CRL past its next update.
    @discardableResult
    func checkCRLs() -> [String] {
        let now = clock()
        let credentials = value
        let stale = credentials.staleCRLs(at: now)
        metrics.crlStale.set(Double(stale.count))
        for crl in credentials.crls {
            metrics.setCRLAge(file: crl.file, seconds: now.timeIntervalSince(crl.lastUpdate))
        }
        // Logged when the set changes and hourly while it lasts, not at every check.
        let log = crlAlarm.withLock { alarm -> Bool in
            guard Set(stale) != alarm.files || now.timeIntervalSince(alarm.loggedAt) >= 3600 else { return false }
            alarm = (Set(stale), now)
            return true
        }
        let consequence =
            configuration.tls.acceptStaleCRL
            ? "still accepting (tls.staleCRL: accept)" : "refusing certificates of its CA (tls.staleCRL: refuse)"
        for file in stale where log {
            logger.error("CRL past its next update: \(consequence)", metadata: ["crl.file": "\(file)"])
        }
        return stale
    }
}

/// The partner directory as this instance knows it: an immutable snapshot of the store's
/// directory, swapped for a newer one when the store's directory version moves.
public final class LiveDirectory: Sendable {
    let store: any RelayStore
    let metrics: RelayMetrics
    let logger: Logger
    let clock: @Sendable () -> Date
    private let current: Mutex<PartnerDirectory>

    init(
        _ directory: PartnerDirectory,
        store: any RelayStore,
        metrics: RelayMetrics,
        logger: Logger,
        clock: @escaping @Sendable () -> Date
    ) {
        current = Mutex(directory)
        self.store = store
        self.metrics = metrics
        self.logger = logger
        self.clock = clock
    }

    /// The snapshot in use now.
    public var snapshot: PartnerDirectory { current.withLock { $0 } }

    /// Loads the store's directory if its version moved (or `force`), and swaps it in.
    public func refresh(force: Bool = false) async throws {
        let previous = snapshot
        if !force, try await store.directoryVersion() == previous.version { return }
        let fresh = PartnerDirectory(snapshot: try await store.directorySnapshot(), previous: previous)
        let swapped = current.withLock { current -> Bool in
            // Another refresh may have installed a newer version meanwhile.
            guard fresh.version >= current.version else { return false }
            current = fresh
            return true
        }
        if swapped {
            metrics.directoryVersion.set(Double(fresh.version))
            updateCertificateGauges()
            if fresh.version != previous.version {
                logger.info(
                    "directory loaded",
                    metadata: ["directory.version": "\(fresh.version)", "directory.partners": "\(fresh.partners.count)"]
                )
            }
        }
    }

    /// Days left per usable certificate, for `/metrics`.
    func updateCertificateGauges() {
        let now = clock()
        var values: [(partner: String, fingerprint: String, days: Double)] = []
        for partner in snapshot.partners.values {
            for certificate in partner.certificates where certificate.state(at: now).isUsable {
                values.append((partner.id, certificate.fingerprint, certificate.record.notAfter.timeIntervalSince(now) / 86_400))
            }
        }
        metrics.setCertificateDays(values)
    }

    /// Certificates that are neither revoked nor retired and expire within `window`, soonest first.
    func expiring(within window: TimeInterval, at now: Date) -> [(partner: String, certificate: RegisteredCertificate)] {
        snapshot.partners.values.flatMap { partner in
            partner.certificates
                .filter {
                    $0.state(at: now) != .revoked && $0.state(at: now) != .retired && $0.record.notAfter.timeIntervalSince(now) < window
                }
                .map { (partner.id, $0) }
        }.sorted { $0.certificate.record.notAfter < $1.certificate.record.notAfter }
    }
}
