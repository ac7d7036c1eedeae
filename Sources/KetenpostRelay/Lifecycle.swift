import Foundation
import Ketenpost
import KetenpostCrypto
import KetenpostStore
import Logging
import NIOSSL
import Prometheus
import ServiceLifecycle
import Synchronization
import UnixSignals

extension RelayCore {
    // MARK: Directory

    /// Loads the store's directory if its version moved (or `force`), and swaps it in.
    public func refreshDirectory(force: Bool = false) async throws {
        let current = directory
        if !force, try await store.directoryVersion() == current.version { return }
        let snapshot = try await store.directorySnapshot()
        let fresh = PartnerDirectory(snapshot: snapshot, previous: current)
        let swapped = live.withLock { live -> Bool in
            // Another refresh may have installed a newer version meanwhile.
            guard fresh.version >= live.directory.version else { return false }
            live.directory = fresh
            return true
        }
        if swapped {
            metrics.directoryVersion.set(Double(fresh.version))
            updateCertificateGauges(fresh)
            if fresh.version != current.version {
                logger.info("directory loaded", metadata: ["directory.version": "\(fresh.version)", "directory.partners": "\(fresh.partners.count)"])
            }
        }
    }

    func updateCertificateGauges(_ directory: PartnerDirectory) {
        let now = clock()
        var values: [(partner: String, fingerprint: String, days: Double)] = []
        for partner in directory.partners.values {
            for certificate in partner.certificates where certificate.state(at: now).isUsable {
                values.append((partner.id, certificate.fingerprint, certificate.record.notAfter.timeIntervalSince(now) / 86_400))
            }
        }
        metrics.setCertificateDays(values)
    }

    // MARK: Credentials

    /// Re-reads the relay's certificate and key, trust anchors, CRLs and administrators. A set
    /// that fails to load is logged and ignored: the relay keeps serving with the old one.
    /// - Returns: whether a new set was installed.
    @discardableResult
    public func reloadCredentials() -> Bool {
        let fresh: RelayCredentials
        do {
            fresh = try RelayCredentials.load(configuration)
        } catch {
            logger.error("reload refused; the previous certificates stay in use", metadata: ["error.code": "\(error.code)", "error.message": "\(error.message)"])
            return false
        }
        let changed = live.withLock { live -> Bool in
            guard live.credentials.digest != fresh.digest else { return false }
            live.credentials = fresh
            return true
        }
        if changed {
            logger.notice("certificates reloaded", metadata: [
                "relay.certificate.serial": "\(fresh.identity.certificate.serialNumberHex)",
                "relay.certificate.notAfter": "\(ISO8601DateFormatter().string(from: fresh.identity.certificate.notAfter))",
                "crl.count": "\(fresh.crls.count)",
            ])
        }
        checkCRLs()
        return changed
    }

    /// Sets the stale-CRL gauge and logs an error for each CRL past its next update.
    @discardableResult
    func checkCRLs() -> [String] {
        let now = clock()
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
        for file in stale where log {
            logger.error("CRL past its next update: \(configuration.acceptStaleCRL ? "still accepting (tls.staleCRL: accept)" : "refusing certificates of its CA (tls.staleCRL: refuse)")",
                         metadata: ["crl.file": "\(file)"])
        }
        return stale
    }

    /// The Prometheus text, with the queue gauges read from the store now.
    public func metricsText() async -> String {
        if let stats = store as? any StatsStore {
            do {
                metrics.setQueue(try await stats.queueStats(), partners: directory.partners.keys, now: clock())
            } catch {
                logger.error("queue statistics unavailable", metadata: ["error.type": "\(type(of: error))"])
            }
        }
        updateCertificateGauges(directory)
        return metrics.exposition()
    }

    /// Releases the store's connections (PostgreSQL) once the server has stopped.
    public func closeStore() async {
        await (store as? any ClosableStore)?.shutdown()
    }

    // MARK: Audit

    /// Signs the audit trail's head if it moved since the last checkpoint.
    public func writeCheckpoint() async {
        do {
            if let checkpoint = try await AuditTrail.checkpoint(store: store, identity: identity, at: clock()) {
                logger.info("audit checkpoint", metadata: ["audit.sequence": "\(checkpoint.sequence)"])
            }
        } catch {
            logger.error("audit checkpoint failed", metadata: ["error.type": "\(type(of: error))"])
        }
    }

    // MARK: Expiry

    /// Usable certificates that expire within the warning window, each logged as a warning.
    @discardableResult
    public func warnExpiring() -> [(partner: String, certificate: RegisteredCertificate)] {
        let now = clock()
        let items = expiring(within: configuration.expiryWarning, at: now)
        for item in items {
            let days = Int((item.certificate.record.notAfter.timeIntervalSince(now) / 86_400).rounded(.down))
            logger.warning("certificate expires soon", metadata: [
                "partner.id": "\(item.partner)", "certificate.fingerprint": "\(item.certificate.fingerprint.prefix(16))",
                "certificate.daysLeft": "\(days)"])
        }
        let relay = identity.certificate
        if relay.notAfter.timeIntervalSince(now) < configuration.expiryWarning {
            logger.warning("the relay's own certificate expires soon", metadata: [
                "certificate.daysLeft": "\(Int((relay.notAfter.timeIntervalSince(now) / 86_400).rounded(.down)))"])
        }
        return items
    }

    func expiring(within window: TimeInterval, at now: Date) -> [(partner: String, certificate: RegisteredCertificate)] {
        directory.partners.values.flatMap { partner in
            partner.certificates
                .filter { $0.state(at: now) != .revoked && $0.state(at: now) != .retired && $0.record.notAfter.timeIntervalSince(now) < window }
                .map { (partner.id, $0) }
        }.sorted { $0.certificate.record.notAfter < $1.certificate.record.notAfter }
    }

    // MARK: TLS

    /// The handshake's client certificate check, replacing BoringSSL's: chain and CRLs through
    /// the relay's trust store (so revocation counts at the handshake), and a certificate the
    /// directory has revoked or retired is refused before any request. Certificates the
    /// directory does not know pass here and get a 403 with a code on their first request.
    func verifyHandshake(_ chain: [NIOSSLCertificate]) -> NIOSSLVerificationResult {
        guard let der = try? chain.first?.toDERBytes(), let leaf = try? Certificate(der: der) else { return .failed }
        let (directory, credentials) = live.withLock { ($0.directory, $0.credentials) }
        do {
            try credentials.trust.verify(leaf, for: .tlsClient)
        } catch {
            let code = KetenpostError.certificate(error, role: "client").code
            logger.notice("handshake refused", metadata: ["error.code": "\(code)"])
            metrics.handshakeFailed(reason: code.rawValue)
            return .failed
        }
        if credentials.administrators.contains(leaf.fingerprint) { return .certificateVerified }
        if let (partner, registered) = directory.registration(of: leaf) {
            let state = registered.state(at: clock())
            if state == .revoked || state == .retired || state == .expired {
                logger.notice("handshake refused", metadata: ["partner.id": "\(partner.id)", "certificate.state": "\(state.rawValue)"])
                metrics.handshakeFailed(reason: "directory-\(state.rawValue)")
                return .failed
            }
        }
        return .certificateVerified
    }

    /// The relay's current certificate and key for a new handshake.
    func tlsOverride() -> NIOSSLContextConfigurationOverride {
        let credentials = self.credentials
        var override = NIOSSLContextConfigurationOverride()
        override.certificateChain = credentials.tlsChain
        override.privateKey = credentials.tlsKey
        return override
    }
}

/// Keeps a running relay current: directory changes from other instances, certificate and
/// CRL files (on schedule and on SIGHUP), the stale-CRL alarm and daily expiry warnings.
struct LifecycleService: Service {
    let core: RelayCore
    let reloadOnSIGHUP: Bool

    func run() async throws {
        await withTaskGroup(of: Void.self) { group in
            if reloadOnSIGHUP {
                let signals = await UnixSignalsSequence(trapping: .sighup)
                group.addTask {
                    for await _ in signals.cancelOnGracefulShutdown() {
                        core.logger.notice("SIGHUP: reloading certificates, CRLs and the directory")
                        core.reloadCredentials()
                        try? await core.refreshDirectory(force: true)
                    }
                }
            }
            if let notifying = core.store as? any NotifyingStore {
                // Another instance accepted a message or changed the directory: act at once
                // instead of waiting for a poll.
                group.addTask {
                    do {
                        for await notification in try await notifying.notifications().cancelOnGracefulShutdown() {
                            switch notification {
                            case .inbox(let recipient): await core.notifier.notify(recipient)
                            case .directory: try? await core.refreshDirectory()
                            }
                        }
                    } catch {
                        // Long polls then wake only for messages accepted here; the others arrive with the next poll.
                        core.logger.error("store notifications unavailable; falling back to polling", metadata: ["error.type": "\(type(of: error))"])
                    }
                }
            }
            // The loop ends at graceful shutdown; then the listeners are cancelled.
            await loop()
            group.cancelAll()
        }
        // A final checkpoint when the relay stops: the trail it leaves is signed to its end.
        await core.writeCheckpoint()
    }

    private func loop() async {
        let configuration = core.configuration
        var lastCredentials = ContinuousClock.now
        var lastExpiry = ContinuousClock.now
        var lastCheckpoint = ContinuousClock.now
        core.warnExpiring()
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown {
                try await Task.sleep(for: .milliseconds(Int64(configuration.directoryRefreshInterval * 1000)))
            }
            if Task.isCancelled || Task.isShuttingDownGracefully { return }
            do {
                try await core.refreshDirectory()
            } catch {
                core.logger.error("directory refresh failed", metadata: ["error.type": "\(type(of: error))"])
            }
            let now = ContinuousClock.now
            if now - lastCredentials >= .milliseconds(Int64(configuration.reloadInterval * 1000)) {
                lastCredentials = now
                core.reloadCredentials()
                core.updateCertificateGauges(core.directory)
            }
            if now - lastCheckpoint >= .milliseconds(Int64(configuration.checkpointInterval * 1000)) {
                lastCheckpoint = now
                await core.writeCheckpoint()
            }
            if now - lastExpiry >= .seconds(86_400) {
                lastExpiry = now
                core.warnExpiring()
            }
        }
    }
}
