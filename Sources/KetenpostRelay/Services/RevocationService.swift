import AsyncHTTPClient
import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostStore
import Logging
import NIOCore
import ServiceLifecycle
import Synchronization

/// Keeps a current CRL for every CA that issued a registered certificate or intermediate (and
/// the relay's own certificate): fetched over HTTP from the certificates' CRL distribution
/// points, checked against the CA's signature, kept in the store so that every instance uses
/// the same lists, and installed into the relay's trust store. `tls.crls` files remain as a
/// fallback for closed networks; per CA the newest list counts.
///
/// A list is fetched again every `revocation.refreshInterval`, and once half its validity has
/// passed, so that a fresh one is in place well before its nextUpdate. A failed fetch keeps
/// the list held and records the error (shown per CA to administrators); a list that goes
/// past its nextUpdate, or a CA whose list was never fetched, follows `tls.staleCRL`.
public final class RevocationService: Service, Sendable {
    let configuration: RelayConfiguration
    let store: any RelayStore
    let credentials: LiveCredentials
    let directory: LiveDirectory
    let logger: Logger
    let clock: @Sendable () -> Date
    /// Which CA issued a certificate, by fingerprint: found once (a signature check each).
    private let issuerOf = Mutex<[String: String?]>([:])
    /// One round at a time: a registration's fetch and the schedule's do not overlap.
    private let round = RoundLock()

    init(
        configuration: RelayConfiguration,
        store: any RelayStore,
        credentials: LiveCredentials,
        directory: LiveDirectory,
        logger: Logger,
        clock: @escaping @Sendable () -> Date
    ) {
        self.configuration = configuration
        self.store = store
        self.credentials = credentials
        self.directory = directory
        self.logger = logger
        self.clock = clock
    }

    /// A CA whose CRL the relay keeps, with where its certificates say the CRL is published.
    struct Tracked: Sendable {
        let issuer: Certificate
        var sources: [String]
    }

    // MARK: Service

    public func run() async throws {
        // A service that returns ends the relay's service group: without fetching, it waits for shutdown.
        guard configuration.revocation.fetch else { return try await gracefulShutdown() }
        // The store is read often (other instances' fetches apply within this), fetched only when due.
        let check = Duration.milliseconds(Int64(min(configuration.revocation.refreshInterval, 30) * 1000))
        var lastOCSP = Date.distantPast
        while !Task.isCancelled && !Task.isShuttingDownGracefully {
            try? await cancelWhenGracefulShutdown { try await Task.sleep(for: check) }
            if Task.isCancelled || Task.isShuttingDownGracefully { break }
            await refresh()
            if configuration.revocation.ocsp, clock().timeIntervalSince(lastOCSP) >= configuration.revocation.ocspInterval {
                lastOCSP = clock()
                await checkOCSP()
            }
        }
    }

    // MARK: Rounds

    /// The CAs to keep a CRL for, by the issuer certificate's fingerprint.
    func tracked() -> [String: Tracked] {
        let snapshot = directory.snapshot
        let credentials = self.credentials.value
        let now = clock()
        var subjects: [Certificate] = [credentials.identity.certificate] + credentials.identity.chain + credentials.administratorChain
        for partner in snapshot.partners.values {
            for registered in partner.certificates {
                let state = registered.state(at: now)
                guard state != .revoked && state != .expired && state != .retired else { continue }
                subjects.append(registered.certificate)
                subjects += registered.intermediates
            }
        }
        let pool = credentials.trust.anchors + snapshot.intermediates + credentials.identity.chain + credentials.administratorChain
        var byFingerprint: [String: Certificate] = [:]
        for certificate in pool { byFingerprint[certificate.fingerprint] = certificate }
        var result: [String: Tracked] = [:]
        var seen = Set<String>()
        for subject in subjects where seen.insert(subject.fingerprint).inserted {
            let sources = subject.crlDistributionPoints.filter { $0.hasPrefix("http://") || $0.hasPrefix("https://") }
            guard !sources.isEmpty, let issuer = issuer(of: subject, pool: pool).flatMap({ byFingerprint[$0] }) else { continue }
            var entry = result[issuer.fingerprint] ?? Tracked(issuer: issuer, sources: [])
            for source in sources where !entry.sources.contains(source) { entry.sources.append(source) }
            result[issuer.fingerprint] = entry
        }
        return result
    }

    private func issuer(of subject: Certificate, pool: [Certificate]) -> String? {
        if let known = issuerOf.withLock({ $0[subject.fingerprint] }), let known { return known }
        let found = pool.first { $0 != subject && subject.isIssued(by: $0) }?.fingerprint
        issuerOf.withLock { cache in
            if cache.count > 10_000 { cache.removeAll() }
            cache[subject.fingerprint] = .some(found)
        }
        return found
    }

    /// One round: fetches the lists that are due (or missing, for `force`), then installs what
    /// the store holds. Returns the tracked CAs whose fetch failed in this round.
    @discardableResult
    func refresh(force: Bool = false) async -> [String] {
        await round.run {
            let tracked = tracked()
            var failed: [String] = []
            if configuration.revocation.fetch && !tracked.isEmpty {
                let held = (try? await store.revocationLists()) ?? []
                let byIssuer = Dictionary(held.map { ($0.issuerFingerprint, $0) }, uniquingKeysWith: { a, _ in a })
                let now = clock()
                let due = tracked.values.filter { isDue(byIssuer[$0.issuer.fingerprint], now: now, force: force) }
                if !due.isEmpty {
                    failed = await fetch(due, tracked: tracked)
                }
            }
            await install(tracked: tracked)
            return failed
        }
    }

    /// Fetches the lists of CAs in `certificates`' chains that the relay holds none for (a
    /// registration whose CA is new), before the certificates are checked.
    func ensureLists(for pem: String) async {
        guard configuration.revocation.fetch, let certificates = try? Certificate.all(pem: Data(pem.utf8)) else { return }
        let pool = credentials.trust.anchors + certificates + directory.snapshot.intermediates + credentials.identity.chain
        let held = Set(((try? await store.revocationLists()) ?? []).filter { !$0.der.isEmpty }.map(\.issuerFingerprint))
        var missing: [String: Tracked] = [:]
        for subject in certificates {
            let sources = subject.crlDistributionPoints.filter { $0.hasPrefix("http://") || $0.hasPrefix("https://") }
            guard !sources.isEmpty, let issuer = pool.first(where: { $0 != subject && subject.isIssued(by: $0) }),
                !held.contains(issuer.fingerprint)
            else { continue }
            missing[issuer.fingerprint, default: Tracked(issuer: issuer, sources: [])].sources += sources
        }
        guard !missing.isEmpty else { return }
        await round.run {
            var tracked = self.tracked()
            for (key, value) in missing where tracked[key] == nil { tracked[key] = value }
            _ = await fetch(Array(missing.values), tracked: tracked)
            await install(tracked: tracked)
        }
    }

    private func isDue(_ held: StoredRevocationList?, now: Date, force: Bool) -> Bool {
        guard let held, !held.der.isEmpty, let fetchedAt = held.fetchedAt else {
            // Never fetched: at once, then again every refresh (at most once a minute) while it
            // keeps failing: the door may be closed for its certificates until it arrives.
            guard !force, let attempt = held?.lastAttemptAt else { return true }
            return now.timeIntervalSince(attempt) >= min(60, configuration.revocation.refreshInterval)
        }
        if force { return false }
        if let attempt = held.lastAttemptAt, held.lastError != nil,
            now.timeIntervalSince(attempt) < min(60, configuration.revocation.refreshInterval)
        {
            return false
        }
        if now.timeIntervalSince(fetchedAt) >= configuration.revocation.refreshInterval { return true }
        if let thisUpdate = held.thisUpdate, let nextUpdate = held.nextUpdate {
            return now >= thisUpdate.addingTimeInterval(nextUpdate.timeIntervalSince(thisUpdate) / 2)
        }
        return false
    }

    /// Fetches each CA's list (in parallel), stores what passes and puts each into use as soon
    /// as it is stored (a slow CA does not hold back another's revocations); returns the CAs
    /// that failed.
    private func fetch(_ due: [Tracked], tracked: [String: Tracked]) async -> [String] {
        var http = HTTPClient.Configuration()
        http.redirectConfiguration = .follow(max: 3, allowCycles: false)
        let timeout = TimeAmount.milliseconds(Int64(configuration.revocation.timeout * 1000))
        http.timeout = .init(connect: timeout, read: timeout)
        if let proxy = configuration.revocation.proxy, let url = URL(string: proxy), let host = url.host {
            http.proxy = .server(host: host, port: url.port ?? 80)
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
        let failed = await withTaskGroup(of: String?.self) { group in
            for tracked in due {
                group.addTask { await self.fetch(tracked, client: client) }
            }
            var failed: [String] = []
            for await result in group {
                if let result { failed.append(result) } else { await install(tracked: tracked) }
            }
            return failed
        }
        // One client per round (rounds are rare), shut down before the next: nothing lingers.
        try? await client.shutdown()
        return failed
    }

    /// Tries the CA's sources in order. Returns the issuer's name when every source failed.
    private func fetch(_ tracked: Tracked, client: HTTPClient) async -> String? {
        var lastError = "no source"
        let issuerName = tracked.issuer.commonName ?? tracked.issuer.subject
        for source in tracked.sources {
            let result = await fetchOne(source, issuer: tracked.issuer, client: client)
            switch result {
            case .success(let list):
                let now = clock()
                let stored = StoredRevocationList(
                    issuerFingerprint: tracked.issuer.fingerprint,
                    issuer: tracked.issuer.subject,
                    source: source,
                    der: list.der,
                    thisUpdate: list.lastUpdate,
                    nextUpdate: list.nextUpdate,
                    revokedCount: list.revokedCount,
                    fetchedAt: now,
                    lastAttemptAt: now
                )
                do {
                    try await store.saveRevocationList(stored)
                    logger.info(
                        "CRL fetched",
                        metadata: ["crl.issuer": "\(issuerName)", "crl.revoked": "\(list.revokedCount)", "crl.source": "\(source)"]
                    )
                    return nil
                } catch {
                    lastError = "store-unavailable: the fetched list could not be stored"
                }
            case .failure(let failure):
                lastError = failure.sentence
            }
        }
        logger.error(
            "CRL fetch failed; the list held (if any) stays in use",
            metadata: ["crl.issuer": "\(issuerName)", "crl.error": "\(lastError)"]
        )
        try? await store.recordRevocationFailure(
            issuerFingerprint: tracked.issuer.fingerprint,
            issuer: tracked.issuer.subject,
            source: tracked.sources.first ?? "",
            error: lastError,
            at: clock()
        )
        return issuerName
    }

    /// Why a fetch failed: a stable code and a sentence without any content of the answer.
    struct FetchFailure: Error {
        let code: String
        let detail: String
        var sentence: String { "\(code): \(detail)" }
    }

    private func fetchOne(_ source: String, issuer: Certificate, client: HTTPClient) async -> Result<RevocationList, FetchFailure> {
        let limits = configuration.revocation
        let seconds = Int(limits.timeout.rounded(.up))
        do {
            let body = try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
                // The whole fetch, download included, within the timeout: a CRL server that
                // trickles bytes cannot hold a round.
                group.addTask {
                    var request = HTTPClientRequest(url: source)
                    request.headers.add(name: "Accept", value: "application/pkix-crl, application/x-pkcs7-crl, */*")
                    let response = try await client.execute(request, timeout: .seconds(Int64(seconds)))
                    guard response.status == .ok else {
                        throw FetchFailure(code: "http-\(response.status.code)", detail: "the server answered \(response.status.code)")
                    }
                    if let length = response.headers.first(name: "Content-Length").flatMap(Int.init), length > limits.maxBytes {
                        throw FetchFailure(code: "too-large", detail: "the list is larger than revocation.maxBytes (\(limits.maxBytes))")
                    }
                    do {
                        return try await response.body.collect(upTo: limits.maxBytes)
                    } catch is NIOTooManyBytesError {
                        throw FetchFailure(code: "too-large", detail: "the list is larger than revocation.maxBytes (\(limits.maxBytes))")
                    }
                }
                group.addTask {
                    try await Task.sleep(for: .seconds(limits.timeout))
                    return nil
                }
                defer { group.cancelAll() }
                guard let first = try await group.next(), let body = first else {
                    throw FetchFailure(code: "timeout", detail: "no complete answer within revocation.timeout (\(seconds) s)")
                }
                return body
            }
            let list: RevocationList
            do { list = try RevocationList.parse(Data(buffer: body)) } catch {
                return .failure(FetchFailure(code: "not-a-crl", detail: "the answer is not a CRL (DER or PEM)"))
            }
            guard list.isIssued(by: issuer) else {
                return .failure(
                    FetchFailure(code: "wrong-issuer", detail: "the list is not signed by \(issuer.commonName ?? "its CA")")
                )
            }
            guard list.lastUpdate <= clock().addingTimeInterval(300) else {
                return .failure(FetchFailure(code: "not-yet-valid", detail: "the list's thisUpdate is in the future"))
            }
            return .success(list)
        } catch let failure as FetchFailure {
            return .failure(failure)
        } catch let error as HTTPClientError where error == .deadlineExceeded || error == .readTimeout || error == .connectTimeout {
            return .failure(FetchFailure(code: "timeout", detail: "no complete answer within revocation.timeout (\(seconds) s)"))
        } catch {
            return .failure(FetchFailure(code: "unreachable", detail: "the server could not be reached (\(type(of: error)))"))
        }
    }

    /// Installs the lists the store holds for tracked CAs, and tells the credentials which CAs
    /// are tracked without any list.
    private func install(tracked: [String: Tracked]) async {
        guard let held = try? await store.revocationLists() else { return }
        var lists: [RevocationList] = []
        for row in held where !row.der.isEmpty {
            guard let list = try? RevocationList(der: row.der) else { continue }
            lists.append(list)
        }
        // Missing: a tracked CA without any list, fetched or from a `tls.crls` file.
        let withList = Set(held.filter { !$0.der.isEmpty }.map(\.issuerFingerprint))
        let fromFiles = Set(credentials.value.fileRevocationLists.map(\.issuer))
        let missing = tracked.filter { !withList.contains($0.key) && !fromFiles.contains($0.value.issuer.subject) }
            .map { $0.value.issuer.commonName ?? $0.value.issuer.subject }
        if credentials.install(fetched: lists, required: !tracked.isEmpty, missing: missing.sorted()) {
            logger.notice("CRLs in use changed", metadata: ["crl.fetched": "\(lists.count)", "crl.tracked": "\(tracked.count)"])
        }
        credentials.checkCRLs()
    }
}

// MARK: - OCSP (`revocation.ocsp: on`)

extension RevocationService {
    /// What a certificate's OCSP responder says, or nil when OCSP is off or it names none.
    func ocspStatus(of certificate: Certificate, chain: [Certificate]) async -> Result<OCSP.Status, FetchFailure>? {
        guard configuration.revocation.ocsp else { return nil }
        let responders = OCSP.responders(of: certificate)
        guard !responders.isEmpty else { return nil }
        let credentials = self.credentials.value
        let pool = chain + credentials.trust.anchors + directory.snapshot.intermediates + credentials.identity.chain
        guard let issuer = pool.first(where: { $0 != certificate && certificate.isIssued(by: $0) }) else {
            return .failure(FetchFailure(code: "no-issuer", detail: "the certificate's issuer is not known here"))
        }
        let request: OCSP.Request
        do { request = try OCSP.request(for: certificate, issuer: issuer) } catch {
            return .failure(FetchFailure(code: "request", detail: "no OCSP request could be made for the certificate"))
        }
        var http = HTTPClient.Configuration()
        let timeout = TimeAmount.milliseconds(Int64(configuration.revocation.timeout * 1000))
        http.timeout = .init(connect: timeout, read: timeout)
        if let proxy = configuration.revocation.proxy, let url = URL(string: proxy), let host = url.host {
            http.proxy = .server(host: host, port: url.port ?? 80)
        }
        let client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
        var result: Result<OCSP.Status, FetchFailure> = .failure(FetchFailure(code: "no-source", detail: "no responder answered"))
        for responder in responders {
            do {
                var post = HTTPClientRequest(url: responder)
                post.method = .POST
                post.headers.add(name: "Content-Type", value: "application/ocsp-request")
                post.body = .bytes(ByteBuffer(bytes: request.der))
                let response = try await client.execute(post, timeout: .seconds(Int64(configuration.revocation.timeout.rounded(.up))))
                guard response.status == .ok else {
                    result = .failure(
                        FetchFailure(code: "http-\(response.status.code)", detail: "the responder answered \(response.status.code)")
                    )
                    continue
                }
                let body = try await response.body.collect(upTo: min(configuration.revocation.maxBytes, 1 << 20))
                let answer = try OCSP.check(Data(buffer: body), for: request, issuer: issuer, anchors: credentials.trust.anchors)
                result = .success(answer.status)
                break
            } catch let error as CryptoError {
                result = .failure(FetchFailure(code: "invalid-answer", detail: error.message))
            } catch {
                result = .failure(FetchFailure(code: "unreachable", detail: "the responder could not be reached (\(error))"))
            }
        }
        try? await client.shutdown()
        return result
    }

    /// Asks the responders of every usable registered certificate. A certificate the responder
    /// calls revoked is revoked in the directory at once (every instance refuses it from its
    /// next directory refresh); one without a usable answer raises the alarm.
    func checkOCSP() async {
        let snapshot = directory.snapshot
        let now = clock()
        var unanswered: [String] = []
        for partner in snapshot.partners.values.sorted(by: { $0.id < $1.id }) {
            for registered in partner.certificates {
                let state = registered.state(at: now)
                guard state != .revoked && state != .expired && state != .retired else { continue }
                switch await ocspStatus(of: registered.certificate, chain: registered.intermediates) {
                case nil, .success(.good)?:
                    continue
                case .success(.revoked)?:
                    do {
                        try await store.applyDirectory(
                            [.revokeCertificate(fingerprint: registered.fingerprint, at: now, reason: "ca-revoked-ocsp")],
                            actor: "ocsp",
                            at: now
                        )
                        logger.notice(
                            "certificate revoked: its CA's OCSP responder says so",
                            metadata: ["partner.id": "\(partner.id)", "certificate.serial": "\(registered.record.serial)"]
                        )
                        try? await directory.refresh(force: true)
                    } catch {
                        logger.error("OCSP revocation could not be stored", metadata: ["partner.id": "\(partner.id)"])
                    }
                case .success(.unknown)?:
                    unanswered.append(partner.id)
                    logger.error("OCSP responder does not know the certificate", metadata: ["partner.id": "\(partner.id)"])
                case .failure(let failure)?:
                    unanswered.append(partner.id)
                    logger.error("OCSP check failed", metadata: ["partner.id": "\(partner.id)", "ocsp.error": "\(failure.sentence)"])
                }
            }
        }
        credentials.setOCSPUnanswered(unanswered)
        credentials.checkCRLs()
    }
}

/// Runs one closure at a time (async), in arrival order.
final class RoundLock: Sendable {
    private let state = Mutex<(busy: Bool, waiters: [CheckedContinuation<Void, Never>])>((false, []))

    func run<T: Sendable>(_ body: () async -> T) async -> T {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let start = state.withLock { state -> Bool in
                if state.busy {
                    state.waiters.append(continuation)
                    return false
                }
                state.busy = true
                return true
            }
            if start { continuation.resume() }
        }
        let result = await body()
        let next = state.withLock { state -> CheckedContinuation<Void, Never>? in
            if state.waiters.isEmpty {
                state.busy = false
                return nil
            }
            return state.waiters.removeFirst()
        }
        next?.resume()
        return result
    }
}
