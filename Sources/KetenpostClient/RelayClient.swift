import AsyncHTTPClient
import Foundation
import KetenpostAPI
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import NIOCore
import NIOSSL
import Synchronization

/// The Swift client library for case systems: talks to the relay over mutual TLS with the
/// partner's identity, seals, submits, receives, acknowledges and checks receipts.
///
/// ```swift
/// let client = try RelayClient(relay: URL(string: "https://relay.example:8443")!, identity: identity, trust: trust,
///                              relayID: "ketenpost-relay")
/// let sent = try await withRelayClient(client) { client in
///     try await client.send(payload: json, type: .signal, to: "zorgcoordinatie-zuid-limburg")
/// }
/// ```
public final class RelayClient: Sendable {
    public let relay: URL
    public let identity: Identity
    /// Further keys of this partner to open messages with, during a rotation: a message sealed
    /// for the old or the new certificate opens with whichever key is loaded.
    public let decryptionIdentities: [Identity]
    public let trust: TrustStore
    /// The relay's partner id: acceptance receipts must be issued by it.
    public let relayID: String
    private let http: HTTPClient
    private let timeout: TimeAmount
    public let revocation: RevocationCheck
    /// OINs this recipient knows without asking the relay (from the chain's partner list): the
    /// directory must agree with them, so a compromised relay cannot swap a sender's OIN.
    public let pinnedOINs: [String: String]
    /// What the directory registered for each sender, for a minute.
    private let bindings = Mutex<[String: (binding: Envelope.SenderBinding, fetchedAt: Date)]>([:])
    /// The trust store with the relay's CRLs, when they were fetched, and the earliest nextUpdate among them.
    private let revocationState = Mutex<(trust: TrustStore, fetchedAt: Date, nextUpdate: Date?)?>(nil)

    /// How the client learns which certificates are revoked.
    public enum RevocationCheck: Sendable {
        /// The CRLs the relay serves (`/v1/crls.pem`; signed by their CAs, so the relay cannot
        /// forge them), fetched again after `refreshInterval` and as soon as one passes its
        /// nextUpdate. A list past its nextUpdate, or none at all, fails closed
        /// (`certificate.crl-unavailable`): nothing is opened or trusted until a fresh one arrives.
        case fromRelay(refreshInterval: TimeInterval = 300)
        /// Only the CRLs in `trust` (files given with `--crl`, for offline use), or none.
        case trustOnly
    }

    /// - Parameters:
    ///   - relay: base URL, e.g. `https://127.0.0.1:8443`.
    ///   - identity: the partner's certificate and key (also the TLS client certificate).
    ///   - trust: trust anchors for the relay's TLS certificate and for every signature.
    ///   - relayID: the commonName of the relay's receipt-signing certificate.
    ///   - decryptionIdentities: other identities of the same partner to try when opening.
    public init(
        relay: URL,
        identity: Identity,
        trust: TrustStore,
        relayID: String,
        decryptionIdentities: [Identity] = [],
        timeout: TimeAmount = .seconds(60),
        revocation: RevocationCheck = .fromRelay(),
        pinnedOINs: [String: String] = [:]
    ) throws {
        self.revocation = revocation
        self.pinnedOINs = pinnedOINs
        self.relay = relay
        self.decryptionIdentities = decryptionIdentities.filter { $0.partnerID == identity.partnerID }
        self.relayID = relayID
        self.identity = identity
        self.trust = trust
        self.timeout = timeout
        var tls = TLSConfiguration.makeClientConfiguration()
        tls.minimumTLSVersion = .tlsv12
        tls.cipherSuites = TLSPolicy.cipherSuites
        tls.trustRoots = .certificates(try trust.anchors.map { try NIOSSLCertificate(bytes: Array($0.der), format: .der) })
        tls.certificateChain = try ([identity.certificate] + identity.chain).map {
            .certificate(try NIOSSLCertificate(bytes: Array($0.der), format: .der))
        }
        tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: Array(try identity.key.pem().utf8), format: .pem))
        http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: .init(tlsConfiguration: tls))
    }

    /// Closes the connections. `withRelayClient` does it for you; call it yourself only for a
    /// client that lives as long as the program.
    public func shutdown() async throws { try await http.shutdown() }

    // MARK: Raw API calls

    public func directory(_ partner: String) async throws -> API.DirectoryEntry {
        try await call("GET", "/v1/directory/\(partner)", as: API.DirectoryEntry.self)
    }

    /// Every partner in the directory (without certificates).
    public func directoryList() async throws -> API.DirectoryList {
        try await call("GET", "/v1/directory", as: API.DirectoryList.self)
    }

    /// Submits sealed bytes. Safe to retry with the same bytes: the relay answers with the original receipt.
    public func submit(_ sealed: Data) async throws -> API.SubmitResponse {
        try await call("POST", "/v1/messages", body: sealed, as: API.SubmitResponse.self)
    }

    /// The inbox as JSON, each sealed message in base64 (what curl partners read).
    public func inbox(max: Int = 10, wait: TimeInterval = 0) async throws -> API.InboxResponse {
        try await call("GET", "/v1/inbox?max=\(max)&wait=\(Int(wait))", as: API.InboxResponse.self)
    }

    /// The inbox in the binary form (`multipart/mixed`, `InboxMultipart`): the sealed messages
    /// as they are, without base64 or JSON on either side. A relay that answers JSON anyway (one
    /// from before the binary form) is read as well.
    public func deliveries(max: Int = 10, wait: TimeInterval = 0) async throws -> [API.InboxDelivery] {
        let (data, contentType) = try await exchange(
            "GET",
            "/v1/inbox?max=\(max)&wait=\(Int(wait))",
            accept: "\(InboxMultipart.mediaType), application/json;q=0.5"
        )
        if data.isEmpty && contentType == nil { return [] }  // 204: nothing waiting
        if let boundary = contentType.flatMap(InboxMultipart.boundary(ofContentType:)) {
            do {
                return try InboxMultipart.parse(data, boundary: boundary)
            } catch {
                throw KetenpostError(.internalError, "The relay's inbox answer could not be read: \(error).")
            }
        }
        let response: API.InboxResponse
        do {
            response = try KetenpostJSON.decoder().decode(API.InboxResponse.self, from: data)
        } catch {
            throw KetenpostError(.internalError, "The relay's answer could not be read: \(error)")
        }
        // A message that is not base64 comes as no bytes: opening it fails for that message
        // alone (envelope.malformed), so the rest of the batch is still received.
        return response.messages.map(API.InboxDelivery.init)
    }

    public func acknowledge(id: UUID, leaseToken: String, receipt: Data) async throws -> API.AcknowledgeResponse {
        try await call(
            "POST",
            "/v1/messages/\(id.uuidString.lowercased())/ack?lease=\(leaseToken)",
            body: receipt,
            as: API.AcknowledgeResponse.self
        )
    }

    public func status(_ id: UUID) async throws -> API.StatusResponse {
        try await call("GET", "/v1/messages/\(id.uuidString.lowercased())", as: API.StatusResponse.self)
    }

    // MARK: The partner's workflow

    public struct Sent: Sendable {
        public let header: RoutingHeader
        public let response: API.SubmitResponse
        /// The relay's acceptance receipt, verified.
        public let receipt: Receipt
    }

    /// Fetches the recipient's certificates, seals for all of them, submits, and verifies the
    /// acceptance receipt (signed by the relay, naming this message's id and digest).
    public func send(
        payload: Data,
        type: MessageType,
        to recipient: String,
        options: Drafting.Options = Drafting.Options()
    ) async throws -> Sent {
        let entry = try await directory(recipient)
        let (certificates, intermediates) = try entry.sealingCertificates()
        let content = try Drafting.content(type: type, from: identity.partnerID, to: recipient, payload: payload, options: options)
        let sealed = try Envelope.seal(
            content,
            from: identity,
            to: certificates,
            intermediates: intermediates,
            trust: try await currentTrust()
        )
        return try await submit(sealed: sealed, header: content.header)
    }

    /// Submits already sealed bytes and verifies the acceptance receipt against them.
    public func submit(sealed: Data, header: RoutingHeader) async throws -> Sent {
        _ = try await currentTrust()
        let response = try await submit(sealed)
        let receipt = try verifyAcceptance(response.receipt, for: sealed, header: header)
        return Sent(header: header, response: response, receipt: receipt)
    }

    /// Checks an acceptance receipt: signed by a trusted relay certificate, for exactly these bytes.
    public func verifyAcceptance(_ base64: String, for sealed: Data, header: RoutingHeader) throws -> Receipt {
        guard let der = Data(base64Encoded: base64) else {
            throw KetenpostError(.receiptMalformed, "The relay's receipt is not base64.")
        }
        let verified = try SignedReceipt.verify(der, trust: try latestTrust(), signer: .relay(relayID))
        let receipt = verified.receipt
        guard receipt.issuer == relayID, verified.signer.commonName == relayID else {
            throw KetenpostError(.receiptSignerMismatch, "The acceptance receipt is not signed by the relay (\(relayID)).")
        }
        guard receipt.kind == .acceptance, receipt.disposition == .accepted, receipt.messageId == header.id,
            receipt.messageDigest == Digest.sha256(sealed).hexString, receipt.from == header.from, receipt.to == header.to
        else {
            throw KetenpostError(
                .receiptInvalid,
                "The relay's acceptance receipt does not name this message (id, digest, sender, recipient)."
            )
        }
        return receipt
    }

    public struct Received: Sendable {
        public let id: UUID
        /// The sender as the relay names it; the opened message proves it.
        public let from: String
        public let leaseToken: String
        /// The sealed bytes as delivered.
        public let sealed: Data
        /// The opened message, or the reason it was refused.
        public let result: Result<Envelope.Opened, KetenpostError>
    }

    /// The trust store to check signatures with now: `trust` with the relay's current CRLs
    /// (`RevocationCheck.fromRelay`), fetched when due; or `trust` as given (`.trustOnly`).
    public func currentTrust() async throws -> TrustStore {
        guard case .fromRelay(let refreshInterval) = revocation else { return trust }
        let now = Date()
        if let held = revocationState.withLock({ $0 }), now.timeIntervalSince(held.fetchedAt) < refreshInterval,
            held.nextUpdate.map({ now < $0 }) ?? true
        {
            return held.trust
        }
        let pem: Data
        do {
            pem = try await raw("GET", "/v1/crls.pem")
        } catch {
            // Out of reach: a held set still within its nextUpdate stays good; otherwise fail closed.
            if let held = revocationState.withLock({ $0 }), held.nextUpdate.map({ now < $0 }) ?? true { return held.trust }
            throw error
        }
        let lists = (try? RevocationList.all(pem: pem)) ?? []
        guard !lists.isEmpty else {
            throw KetenpostError(
                .certificateCRLUnavailable,
                """
                The relay serves no CRLs, so revocation cannot be checked and nothing is trusted. Ask the relay administrators \
                (revocation.fetch, tls.crls), or give CRL files (--crl) for offline use.
                """
            )
        }
        let stale = lists.filter { $0.nextUpdate.map { $0 <= now } ?? false }
        guard stale.isEmpty else {
            throw KetenpostError(
                .certificateCRLUnavailable,
                """
                The relay's CRL of \(stale.map { Self.commonName($0.issuer) }.joined(separator: ", ")) is past its next update, \
                so revocation cannot be checked and nothing is trusted. Try again later; the relay administrators see which CA's \
                list cannot be fetched.
                """
            )
        }
        let fresh = try TrustStore(
            anchors: trust.anchors,
            intermediates: trust.intermediates,
            revocationLists: lists,
            checkRevocation: true
        )
        revocationState.withLock { $0 = (fresh, now, lists.compactMap(\.nextUpdate).min()) }
        return fresh
    }

    static func commonName(_ rfc2253: String) -> String {
        rfc2253.split(separator: ",").first { $0.hasPrefix("CN=") }.map { String($0.dropFirst(3)) } ?? rfc2253
    }

    /// The trust store of the last `currentTrust()`; with `.fromRelay` and none yet, an error
    /// (never a store without revocation).
    private func latestTrust() throws -> TrustStore {
        guard case .fromRelay = revocation else { return trust }
        guard let held = revocationState.withLock({ $0?.trust }) else {
            throw KetenpostError(
                .certificateCRLUnavailable,
                "The relay's CRLs have not been fetched yet; call currentTrust() (receive() and send() do) before opening."
            )
        }
        return held
    }

    /// Leases messages and opens each; nothing is acknowledged yet.
    public func receive(max: Int = 10, wait: TimeInterval = 0) async throws -> [Received] {
        let trust = try await currentTrust()
        let messages = try await deliveries(max: max, wait: wait)
        // What the directory registered for each sender, fetched before anything is opened: a
        // relay out of reach is an error of this call (the leases run out and the messages come
        // again), not a verdict on a message; a sender the directory does not know is one.
        var bindings: [String: Result<Envelope.SenderBinding, KetenpostError>] = [:]
        for sender in Set(messages.map(\.from)) {
            do {
                bindings[sender] = .success(try await senderBinding(for: sender))
            } catch let error as KetenpostError {
                bindings[sender] = .failure(error)
            }
        }
        var received: [Received] = []
        for item in messages {
            let sealed = item.message
            let result: Result<Envelope.Opened, KetenpostError>
            do {
                let opened = try await openBound(sealed, from: item.from, binding: try bindings[item.from]!.get(), trust: trust)
                result =
                    opened.header.id == item.id
                    ? .success(opened)
                    : .failure(KetenpostError(.headerMismatch, "The relay delivered the message under another id than its header's."))
            } catch let error as KetenpostError {
                result = .failure(error)
            }
            // Anything else (the relay out of reach while a rotated sender's entry is fetched again)
            // ends this call: the messages come again.
            received.append(Received(id: item.id, from: item.from, leaseToken: item.leaseToken, sealed: sealed, result: result))
        }
        return received
    }

    /// Opens a message from `sender`, bound to what the directory registered for it (its OIN and
    /// signing certificates; `Envelope.SenderBinding`). A signer the held directory entry lacks
    /// gets one fresh look (a rotation may have happened since).
    /// - Parameter known: the sender's binding if the caller has it (`senderBinding(for:)`).
    public func openBound(
        _ sealed: Data,
        from sender: String,
        binding known: Envelope.SenderBinding? = nil,
        allowExpired: Bool = false,
        trust: TrustStore? = nil
    ) async throws -> Envelope.Opened {
        let binding: Envelope.SenderBinding
        if let known { binding = known } else { binding = try await senderBinding(for: sender) }
        do {
            return try open(sealed, allowExpired: allowExpired, trust: trust, sender: binding)
        } catch let error as KetenpostError where error.code == .signerUnregistered {
            let fresh = try await senderBinding(for: sender, refresh: true)
            guard fresh != binding else { throw error }
            return try open(sealed, allowExpired: allowExpired, trust: trust, sender: fresh)
        }
    }

    /// What the directory registered for `partner`, checked against the pinned OIN if there is one.
    public func senderBinding(for partner: String, refresh: Bool = false) async throws -> Envelope.SenderBinding {
        let now = Date()
        if !refresh, let held = bindings.withLock({ $0[partner] }), now.timeIntervalSince(held.fetchedAt) < 60 { return held.binding }
        let entry = try await directory(partner)
        if let pinned = pinnedOINs[partner], pinned != entry.oin {
            throw KetenpostError(
                .signerNotSender,
                """
                The relay's directory gives \(partner) another OIN than the one known here; messages from \(partner) are not \
                opened. Tell the relay administrators.
                """
            )
        }
        let binding = Envelope.SenderBinding(partner: partner, oin: entry.oin, fingerprints: entry.signers.map(Set.init))
        bindings.withLock { $0[partner] = (binding, now) }
        return binding
    }

    /// Opens with the identity, or else with each decryption identity (only "not a recipient" moves on).
    /// `allowExpired` is for looking at a stored message again, never for acting on a new one.
    /// Without `trust`, the trust store of the last `currentTrust()` (which `receive` calls).
    /// With `sender`, the signer must be what the directory registered (`openBound` fetches it).
    public func open(
        _ sealed: Data,
        allowExpired: Bool = false,
        trust: TrustStore? = nil,
        sender: Envelope.SenderBinding? = nil
    ) throws -> Envelope.Opened {
        let trust = try trust ?? latestTrust()
        let candidates = [identity] + decryptionIdentities
        for (index, candidate) in candidates.enumerated() {
            let result = Result { try Envelope.open(sealed, as: candidate, trust: trust, allowExpired: allowExpired, sender: sender) }
            switch result {
            case .success(let opened):
                return opened
            case .failure(let error):
                // Only "not encrypted for this key" is worth another key; anything else is final.
                let notForThisKey = (error as? KetenpostError)?.code == .notARecipient
                if !notForThisKey || index == candidates.count - 1 { throw error }
            }
        }
        throw KetenpostError(.notARecipient, "The message is not encrypted for any loaded key.")
    }

    // MARK: Administration (administrator certificate)

    public func adminPartners() async throws -> API.AdminPartnerList {
        try await call("GET", "/v1/admin/partners", as: API.AdminPartnerList.self)
    }

    public func adminPartner(_ id: String) async throws -> API.AdminPartner {
        try await call("GET", "/v1/admin/partners/\(id)", as: API.AdminPartner.self)
    }

    public func adminAddPartner(_ partner: API.AdminNewPartner) async throws -> API.AdminPartner {
        try await call("POST", "/v1/admin/partners", json: partner, as: API.AdminPartner.self)
    }

    public func adminSuspend(_ id: String) async throws -> API.AdminPartner {
        try await call("POST", "/v1/admin/partners/\(id)/suspend", as: API.AdminPartner.self)
    }

    public func adminResume(_ id: String) async throws -> API.AdminPartner {
        try await call("POST", "/v1/admin/partners/\(id)/resume", as: API.AdminPartner.self)
    }

    public func adminAddCertificate(_ id: String, _ certificate: API.AdminCertificateInput) async throws -> API.AdminPartner {
        try await call("POST", "/v1/admin/partners/\(id)/certificates", json: certificate, as: API.AdminPartner.self)
    }

    public func adminRotate(_ id: String, _ rotation: API.AdminRotation) async throws -> API.AdminPartner {
        try await call("POST", "/v1/admin/partners/\(id)/rotate", json: rotation, as: API.AdminPartner.self)
    }

    public func adminRevoke(fingerprint: String, reason: String) async throws -> API.AdminPartner {
        try await call(
            "POST",
            "/v1/admin/certificates/\(fingerprint)/revoke",
            json: API.AdminRevocation(reason: reason),
            as: API.AdminPartner.self
        )
    }

    /// The relay's CRL per CA (administrator certificate).
    public func adminRevocationLists() async throws -> API.AdminRevocationLists {
        try await call("GET", "/v1/admin/crls", as: API.AdminRevocationLists.self)
    }

    public func adminExpiring(withinDays days: Int) async throws -> API.AdminExpiring {
        try await call("GET", "/v1/admin/certificates/expiring?within=\(days)d", as: API.AdminExpiring.self)
    }

    public func adminEvents(after: Int64 = 0, limit: Int = 100) async throws -> API.AdminEvents {
        try await call("GET", "/v1/admin/events?after=\(after)&limit=\(limit)", as: API.AdminEvents.self)
    }

    public func adminReload() async throws -> API.HealthResponse {
        try await call("POST", "/v1/admin/reload", as: API.HealthResponse.self)
    }

    /// The Prometheus exposition text.
    public func metrics() async throws -> String {
        String(decoding: try await raw("GET", "/metrics"), as: UTF8.self)
    }

    /// Signs and sends the receipt for a received message: processed, or rejected with the
    /// error code of the check that failed (or `reason`). Callers should only reject for
    /// failures that are `isContentBound`: a rejection is final.
    @discardableResult
    public func acknowledge(_ received: Received, rejectedWith reason: String? = nil) async throws -> API.AcknowledgeResponse {
        var rejection = reason
        if rejection == nil, case .failure(let error) = received.result { rejection = error.code.rawValue }
        let from: String
        if case .success(let opened) = received.result { from = opened.header.from } else { from = received.from }
        let receipt = Receipt(
            kind: .acknowledgement,
            messageId: received.id,
            messageDigest: Digest.sha256(received.sealed).hexString,
            from: from,
            to: identity.partnerID,
            issuer: identity.partnerID,
            disposition: rejection == nil ? .processed : .rejected,
            reasonCode: rejection,
            time: Date()
        )
        return try await acknowledge(
            id: received.id,
            leaseToken: received.leaseToken,
            receipt: try SignedReceipt.sign(receipt, as: identity)
        )
    }

    // MARK: HTTP

    private static func handshakeFailed(_ error: any Error) -> KetenpostError {
        KetenpostError(
            .tlsHandshakeFailed,
            """
            The TLS handshake with the relay failed: the relay refused this certificate (revoked, retired, expired, suspended at the \
            CA or from an untrusted CA), or the relay's certificate is not trusted here. Check --identity and --trust, or ask the \
            relay administrators.
            """,
            detail: ["\(error)"]
        )
    }

    private func call<T: Decodable, B: Encodable>(_ method: String, _ path: String, json: B, as type: T.Type) async throws -> T {
        let body = try KetenpostJSON.encoder().encode(json)
        let data = try await raw(method, path, body: body, contentType: "application/json")
        do {
            return try KetenpostJSON.decoder().decode(T.self, from: data)
        } catch {
            throw KetenpostError(.internalError, "The relay's answer could not be read: \(error)")
        }
    }

    private func call<T: Decodable>(_ method: String, _ path: String, body: Data? = nil, as type: T.Type) async throws -> T {
        let data = try await raw(method, path, body: body, contentType: "application/cms")
        do {
            return try KetenpostJSON.decoder().decode(T.self, from: data)
        } catch {
            throw KetenpostError(.internalError, "The relay's answer could not be read: \(error)")
        }
    }

    /// The body of a 2xx answer; any other status becomes the relay's error (code and sentence).
    private func raw(_ method: String, _ path: String, body: Data? = nil, contentType: String = "application/cms") async throws -> Data {
        try await exchange(method, path, body: body, contentType: contentType).data
    }

    /// `raw` with an `Accept` header, also returning the answer's content type (nil for 204).
    private func exchange(
        _ method: String,
        _ path: String,
        body: Data? = nil,
        contentType: String = "application/cms",
        accept: String? = nil
    ) async throws -> (data: Data, contentType: String?) {
        guard let url = URL(string: path, relativeTo: relay) else {
            throw KetenpostError(.requestInvalid, "Cannot build a URL for \(path).")
        }
        var request = HTTPClientRequest(url: url.absoluteString)
        request.method = .init(rawValue: method)
        if let accept { request.headers.add(name: "Accept", value: accept) }
        if let body {
            request.headers.add(name: "Content-Type", value: contentType)
            request.body = .bytes(ByteBuffer(bytes: body))
        }
        let response: HTTPClientResponse
        do {
            response = try await http.execute(request, timeout: timeout)
        } catch let error as NIOSSLError {
            throw Self.handshakeFailed(error)
        } catch let error as BoringSSLError {
            throw Self.handshakeFailed(error)
        }
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let data = Data(bytes.readableBytesView)
        guard (200..<300).contains(Int(response.status.code)) else {
            if let error = try? KetenpostJSON.decoder().decode(API.ErrorBody.self, from: data) {
                throw KetenpostError(
                    KetenpostError.Code(rawValue: error.error.code),
                    error.error.message,
                    detail: ["HTTP \(response.status.code)"]
                )
            }
            throw KetenpostError(.internalError, "The relay answered HTTP \(response.status.code) without an error body.")
        }
        return (data, response.status.code == 204 ? nil : response.headers.first(name: "Content-Type"))
    }
}

/// Runs `body` with a client and shuts the client down afterwards, also when `body` throws:
/// no connection pool outlives its work, and no detached task is needed to close it.
public func withRelayClient<Result>(
    _ client: @autoclosure () throws -> RelayClient,
    _ body: (RelayClient) async throws -> Result
) async throws -> Result {
    let client = try client()
    let result: Result
    do {
        result = try await body(client)
    } catch {
        try? await client.shutdown()
        throw error
    }
    try await client.shutdown()
    return result
}

/// The same for several clients (the demo, the benchmarks): all are shut down afterwards.
public func withRelayClients<Result>(
    _ clients: @autoclosure () throws -> [RelayClient],
    _ body: ([RelayClient]) async throws -> Result
) async throws -> Result {
    let clients = try clients()
    let result: Result
    do {
        result = try await body(clients)
    } catch {
        for client in clients { try? await client.shutdown() }
        throw error
    }
    for client in clients { try await client.shutdown() }
    return result
}
