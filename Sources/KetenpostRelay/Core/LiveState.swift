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
    /// The CRLs fetched into the store (`RevocationService`), merged into every credential set,
    /// and whether revocation must be checked even without any list (some CA is tracked).
    private let fetched = Mutex<(lists: [RevocationList], der: Set<Data>, required: Bool, missing: [String])>(([], [], false, []))
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
            // Same bytes, same set: the files are compared before anything is parsed, so the
            // check every `tls.reloadInterval` costs a few reads, not the decoding of every PEM.
            let files = try RelayCredentials.read(configuration)
            if files.digest == current.withLock({ $0.digest }) {
                metrics.credentialCheck("unchanged")
                checkCRLs()
                return false
            }
            let (lists, _, required, _) = fetched.withLock { $0 }
            fresh = try RelayCredentials.load(configuration, files: files)
                .merging(fetched: lists, required: required, acceptStale: configuration.tls.acceptStaleCRL)
        } catch {
            metrics.credentialCheck("refused")
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
        metrics.credentialCheck(changed ? "installed" : "unchanged")
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

    /// Installs the CRLs held in the store (`required`: some CA is tracked, so revocation is
    /// checked even if no list could be fetched). A new trust store (and verification cache) is
    /// made only when the set of lists changed.
    /// - Returns: whether the trust store changed.
    @discardableResult
    func install(fetched lists: [RevocationList], required: Bool, missing: [String] = []) -> Bool {
        let der = Set(lists.map(\.der))
        let changed = fetched.withLock { current -> Bool in
            defer { current.missing = missing }
            guard current.der != der || current.required != required else { return false }
            current = (lists, der, required, missing)
            return true
        }
        guard changed else { return false }
        do {
            let merged = try value.merging(fetched: lists, required: required, acceptStale: configuration.tls.acceptStaleCRL)
            current.withLock { $0.trust = merged.trust }
        } catch {
            logger.error("fetched CRLs could not be installed; the previous ones stay in use", metadata: ["error.code": "\(error.code)"])
            return false
        }
        return true
    }

    /// The CRLs in effect (files and fetched, newest per CA): what the relay serves to partners.
    public var revocationLists: [RevocationList] { current.withLock { $0.trust.revocationLists } }

    /// The CRLs in effect, each with a label for people: its file's name (`tls.crls`), or the
    /// CA's name for a fetched one.
    public func labelledRevocationLists() -> [(label: String, list: RevocationList)] {
        let credentials = value
        let files = Dictionary(credentials.crls.map { ($0.der, $0.file) }, uniquingKeysWith: { a, _ in a })
        return credentials.trust.revocationLists.map { list in
            (files[list.der].map { URL(fileURLWithPath: $0).lastPathComponent } ?? "CA \(Self.commonName(list.issuer))", list)
        }
    }

    /// Certificates whose OCSP responder gave no usable answer at the last check (`revocation.ocsp`).
    private let ocspUnanswered = Mutex<[String]>([])
    func setOCSPUnanswered(_ labels: [String]) { ocspUnanswered.withLock { $0 = labels } }

    /// CAs the relay tracks (`RevocationService`) for which no list could be fetched and no file holds one.
    public var missingRevocationLists: [String] { fetched.withLock { $0.missing } }

    /// Labels of the CRLs in effect past their next update, and of tracked CAs without a list.
    public func staleRevocationLists(at now: Date) -> [String] {
        labelledRevocationLists().filter { $0.list.nextUpdate.map { $0 <= now } ?? false }.map(\.label)
            + missingRevocationLists.map { "CA \($0) (no CRL)" } + ocspUnanswered.withLock { $0 }.map { "OCSP for \($0) (no answer)" }
    }

    static func commonName(_ rfc2253: String) -> String {
        rfc2253.split(separator: ",").first { $0.hasPrefix("CN=") }.map { String($0.dropFirst(3)) } ?? rfc2253
    }

    /// Sets the stale-CRL gauge and logs an error for each CRL in effect that is past its next
    /// update, and for each tracked CA without any list.
    @discardableResult
    func checkCRLs() -> [String] {
        // The system time: OpenSSL judges a CRL's nextUpdate by it, whatever the relay's clock says.
        let now = Date()
        let effective = labelledRevocationLists()
        let stale = staleRevocationLists(at: now)
        metrics.crlStale.set(Double(stale.count))
        for (label, list) in effective {
            metrics.setCRLAge(file: label, seconds: now.timeIntervalSince(list.lastUpdate))
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
