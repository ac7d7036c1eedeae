import Foundation
import KetenpostAPI
import KetenpostClient
import KetenpostCrypto
import KetenpostEnvelope
import KetenpostModel
import Logging
import Synchronization

/// What the desk does, apart from its screens: drafts with fixed ids, sealing and submitting
/// exactly once, receiving (stored before acknowledged), following each message's state at the
/// relay, and tying answers to what they answer.
public final class DeskCore: Sendable {
    public let configuration: DeskConfiguration
    public let identity: Identity
    public let trust: TrustStore
    public let client: RelayClient
    public let store: DeskStore
    public let accounts: StaffAccounts
    let vault: Vault
    let logger: Logger
    /// The time for sessions and lockouts; tests move it to check the idle timeout.
    public let clock: @Sendable () -> Date
    private let directoryCache = Mutex<(at: Date, partners: [API.DirectoryList.Partner])?>(nil)
    /// Recipients' directory entries (their current certificates), a minute each: a busy case
    /// system sending hundreds of messages should not fetch them for every one, and spend the
    /// partner's request budget at the relay on it.
    private let entryCache = Mutex<[String: (at: Date, entry: API.DirectoryEntry)]>([:])
    /// When each outgoing message is next asked about (see `followOutgoing`).
    private let followSchedule = Mutex<[String: Date]>([:])

    /// The background receiver's last contact with the relay, for the status page.
    public struct RelayContact: Sendable, Equatable {
        public var lastSuccess: Date?
        public var lastError: String?
        public var lastErrorAt: Date?
    }
    let relayContactState = Mutex(RelayContact())
    public var relayContact: RelayContact { relayContactState.withLock { $0 } }

    func noteRelayContact(error code: String?) {
        let now = clock()
        relayContactState.withLock { contact in
            if let code {
                contact.lastError = code
                contact.lastErrorAt = now
            } else {
                contact.lastSuccess = now
            }
        }
    }

    public init(
        configuration: DeskConfiguration,
        identity: Identity,
        trust: TrustStore,
        client: RelayClient,
        store: DeskStore,
        bcryptCost: UInt8 = 12,
        logger: Logger = Logger(label: "ketenpost.desk"),
        clock: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.clock = clock
        self.configuration = configuration
        self.identity = identity
        self.trust = trust
        self.client = client
        self.store = store
        self.accounts = StaffAccounts(store: store, sessions: configuration.sessions, cost: bcryptCost)
        self.vault = Vault(identity: identity)
        self.logger = logger
    }

    public var partnerID: String { identity.partnerID }

    // MARK: Directory

    /// The relay's directory, cached for a minute (recipients change rarely; a form should not
    /// wait for the relay).
    public func directory() async throws -> [API.DirectoryList.Partner] {
        if let cached = directoryCache.withLock({ $0 }), cached.at.timeIntervalSinceNow > -60 { return cached.partners }
        let partners = try await client.directoryList().partners
        directoryCache.withLock { $0 = (Date(), partners) }
        return partners
    }

    /// This partner's role, as the directory registers it.
    public func ownRole() async throws -> PartnerRole? {
        try await directory().first { $0.id == partnerID }.flatMap { PartnerRole(rawValue: $0.role) }
    }

    /// Types this partner may start (answers open from the message they answer).
    public func composableTypes() async throws -> [MessageType] {
        guard let role = try await ownRole() else { return [] }
        return MessageType.allCases.filter { $0.answers == nil && $0.allowedSenderRoles.contains(role) }
    }

    /// Active partners that the policy lets receive `type` from this partner.
    public func recipients(for type: MessageType) async throws -> [API.DirectoryList.Partner] {
        guard let role = try await ownRole() else { return [] }
        return try await directory().filter { partner in
            guard partner.state == "active", partner.id != partnerID, let theirs = PartnerRole(rawValue: partner.role) else { return false }
            return type.allows(from: role, to: theirs)
        }
    }

    /// A recipient's directory entry with its certificates, cached for a minute.
    public func recipientEntry(_ id: String) async throws -> API.DirectoryEntry {
        if let cached = entryCache.withLock({ $0[id] }), cached.at.timeIntervalSinceNow > -60 { return cached.entry }
        let entry = try await client.directory(id)
        entryCache.withLock { $0[id] = (Date(), entry) }
        return entry
    }

    public func partnerName(_ id: String) async -> String {
        (try? await directory().first { $0.id == id }?.name) ?? id
    }

    /// A partner's name from the directory as last read (the mail service reads it at start), its
    /// id until then: for what every page shows (header, banners), which must never wait for the relay.
    public func cachedName(_ id: String) -> String {
        directoryCache.withLock { $0?.partners.first { $0.id == id }?.name } ?? id
    }

    /// This partner's own name, for the page header.
    public var ownName: String { cachedName(partnerID) }

    // MARK: Drafts

    /// A draft as the desk keeps it (encrypted for the partner's own key).
    public struct Draft: Codable, Sendable, Equatable {
        public var type: String
        public var to: String?
        public var priority: String = "normal"
        public var lifetimeDays: String?
        public var region: String?
        public var exploitationForm: String?
        public var correlationId: String?
        public var values = FormValues()
    }

    /// Makes a draft. Its id is the message id for good: however often "send" is pressed or
    /// retried, the relay sees one message.
    public func createDraft(type: MessageType, staff: StaffMember, answering: DeskMessage? = nil) throws(KetenpostError) -> DeskMessage {
        var draft = Draft(type: type.rawValue)
        if let answering {
            draft.to = answering.counterpart
            draft.correlationId = answering.id
            draft.priority = answering.priority
        }
        let now = DeskStore.milliseconds(Date())
        let message = DeskMessage(
            id: UUID().uuidString.lowercased(),
            direction: .outgoing,
            type: type.rawValue,
            counterpart: draft.to ?? "",
            priority: draft.priority,
            correlationId: draft.correlationId,
            createdAt: now,
            updatedAt: now,
            sentAt: nil,
            expiresAt: nil,
            state: .draft,
            sealed: nil,
            digest: nil,
            copy: try vault.seal(try encode(draft)),
            acceptanceReceipt: nil,
            recipientReceipt: nil,
            reasonCode: nil,
            outcome: nil,
            outcomeReason: nil,
            answerId: nil,
            answeredAt: nil,
            createdBy: staff.username,
            assignedTo: nil,
            submitAttempts: 0
        )
        try store.insert(message)
        try store.accessLog.recordEvent(
            AccessEvent(staff: staff.username, role: staff.role.rawValue, action: .compose, messageId: message.id)
        )
        return message
    }

    public func draft(of message: DeskMessage) throws(KetenpostError) -> Draft {
        guard message.state == .draft, let copy = message.copy else {
            throw KetenpostError(.deskWrongState, "This message is no longer a draft; it was sent already.")
        }
        do {
            return try JSONDecoder().decode(Draft.self, from: try vault.open(copy))
        } catch let error as KetenpostError {
            throw error
        } catch {
            throw KetenpostError(.internalError, "The draft could not be read back; make a new one.")
        }
    }

    /// Stores a draft's new values; only while it is a draft.
    public func saveDraft(_ id: String, _ draft: Draft) throws(KetenpostError) {
        let copy = try vault.seal(try encode(draft))
        let saved = try store.update(id, when: { $0.state == .draft }) { message in
            message.copy = copy
            message.counterpart = draft.to ?? ""
            message.priority = draft.priority == "urgent" ? "urgent" : "normal"
        }
        if saved == nil { throw KetenpostError(.deskWrongState, "This message is no longer a draft; it was sent already.") }
    }

    private func encode(_ value: some Encodable) throws(KetenpostError) -> Data {
        do { return try JSONEncoder().encode(value) } catch { throw .internal(error) }
    }

    // MARK: Sending

    /// Problems that keep a draft from being sent, by form path (`_to`, `_region`, … for the
    /// routing fields), as rule names and sentences.
    public struct Problems: Sendable, Equatable {
        public var fields: [String: [String]] = [:]
        public var isEmpty: Bool { fields.isEmpty }
        mutating func add(_ path: String, _ sentence: String) { fields[path, default: []].append(sentence) }
    }

    public enum SendResult: Sendable {
        /// Not sent: fix these.
        case invalid(Problems)
        /// Sealed and handed to the relay (or queued to be, when the relay is out of reach).
        case sent(DeskMessage)
    }

    /// Checks a draft and builds the content to seal.
    public func content(of message: DeskMessage, draft: Draft, labels: Labels) async throws -> (SealedContent?, Problems) {
        var problems = Problems()
        guard let type = MessageType(rawValue: draft.type) else {
            problems.add("_type", labels["error.type"])
            return (nil, problems)
        }
        let form = PayloadForms.form(for: type)
        let built = draft.values.payload(for: form)
        for (path, rule) in built.problems { problems.add(path, ProblemText.sentence(rule: rule, labels: labels)) }
        // Recipient: one the policy allows, from the directory.
        let allowed = try await recipients(for: type).map(\.id)
        if let to = draft.to, !to.isEmpty {
            if !allowed.contains(to) && type.answers == nil { problems.add("_to", ProblemText.sentence(rule: "recipient", labels: labels)) }
        } else {
            problems.add("_to", ProblemText.sentence(rule: "required", labels: labels))
        }
        var options = Drafting.Options()
        options.id = UUID(uuidString: message.id) ?? UUID()
        options.priority = Priority(rawValue: draft.priority) ?? .normal
        options.correlationID = draft.correlationId.flatMap(UUID.init(uuidString:))
        if let days = draft.lifetimeDays, !days.isEmpty {
            if let value = Int(days), (1...90).contains(value) {
                options.lifetime = TimeInterval(value) * 86_400
            } else {
                problems.add("_lifetimeDays", ProblemText.sentence(rule: "lifetime", labels: labels))
            }
        }
        if let region = draft.region, !region.isEmpty {
            options.region = region
            if !Identifiers.isValidCBSMunicipality(region) { problems.add("_region", ProblemText.sentence(rule: "cbs", labels: labels)) }
        }
        if let form = draft.exploitationForm, !form.isEmpty {
            if let value = ExploitationForm(rawValue: form) {
                options.exploitationForm = value
            } else {
                problems.add("_exploitationForm", ProblemText.sentence(rule: "choice", labels: labels))
            }
        }
        // The model's rules, each next to its field.
        do {
            let payload = try KetenpostJSON.decodeStrict(Payload.self, from: built.json, path: "payload")
            try payload.validate()
        } catch {
            for issue in error.issues where built.problems[issue.formPath] == nil {
                problems.add(issue.formPath.isEmpty ? "_form" : issue.formPath, ProblemText.sentence(issue: issue, labels: labels))
            }
        }
        guard problems.isEmpty, let to = draft.to else { return (nil, problems) }
        let content = try Drafting.content(type: type, from: partnerID, to: to, payload: built.json, options: options)
        return (content, problems)
    }

    /// Sends a draft: checks it, seals it with the partner's key for the recipient's current
    /// certificates, stores the sealed bytes, then submits them and verifies the relay's receipt.
    /// A second call for the same message (double click, browser retry) changes nothing.
    public func send(_ id: String, staff: StaffMember, labels: Labels) async throws -> SendResult {
        guard let message = try store.message(id), message.direction == .outgoing else {
            throw KetenpostError(.deskNotFound, "There is no such draft at this desk.")
        }
        guard message.state == .draft else { return .sent(message) }
        let draft = try self.draft(of: message)
        let (built, problems) = try await content(of: message, draft: draft, labels: labels)
        guard let content = built else { return .invalid(problems) }
        let entry = try await recipientEntry(content.header.to)
        let (certificates, intermediates) = try entry.sealingCertificates()
        let sealed = try Envelope.seal(content, from: identity, to: certificates, intermediates: intermediates, trust: trust)
        let copy = try vault.seal(try content.encoded())
        let event = AccessEvent(staff: staff.username, role: staff.role.rawValue, action: .send, messageId: id)
        // Only the first request turns the draft into a message; a concurrent second one finds
        // it sending and shows its state.
        guard
            let sending = try store.update(
                id,
                when: { $0.state == .draft },
                event: event,
                { m in
                    m.state = .sending
                    m.sealed = sealed
                    m.digest = Digest.sha256(sealed).hexString
                    m.copy = copy
                    m.counterpart = content.header.to
                    m.priority = content.header.priority.rawValue
                    m.sentAt = DeskStore.milliseconds(content.header.createdAt)
                    m.expiresAt = DeskStore.milliseconds(content.header.expiresAt)
                }
            )
        else {
            return .sent(try store.message(id) ?? message)
        }
        if let original = content.header.correlationId?.uuidString.lowercased() {
            try store.accessLog.recordEvent(
                AccessEvent(staff: staff.username, role: staff.role.rawValue, action: .answer, messageId: original, detail: "with \(id)")
            )
        }
        logger.info("message sealed", metadata: ["message.id": "\(id)", "message.type": "\(content.header.type.rawValue)"])
        return .sent(await submit(sending))
    }

    /// Submits a `sending` message's stored bytes (again). The relay answers a repeat with the
    /// original receipt, so a lost answer costs nothing.
    @discardableResult
    public func submit(_ message: DeskMessage) async -> DeskMessage {
        guard message.state == .sending, let sealed = message.sealed else { return message }
        do {
            let outer = try Envelope.readOuter(sealed, trust: trust)
            let sent = try await client.submit(sealed: sealed, header: outer.header)
            let receipt = Data(base64Encoded: sent.response.receipt)
            let updated = try store.update(message.id, when: { $0.state == .sending }) { m in
                m.state = .accepted
                m.acceptanceReceipt = receipt
                m.submitAttempts += 1
            }
            try markAnswered(message)
            return updated ?? message
        } catch let error as KetenpostError where Self.isRelayRefusal(error) {
            logger.notice("relay refused a message", metadata: ["message.id": "\(message.id)", "error.code": "\(error.code)"])
            return
                (try? store.update(message.id, when: { $0.state == .sending }) { m in
                    m.state = .failed
                    m.reasonCode = error.code.rawValue
                    m.submitAttempts += 1
                }) ?? message
        } catch {
            let code = (error as? KetenpostError)?.code.rawValue ?? "network"
            logger.notice(
                "relay not reached; the message stays queued",
                metadata: ["message.id": "\(message.id)", "error.code": "\(code)"]
            )
            return
                (try? store.update(message.id, when: { $0.state == .sending }) { m in
                    m.submitAttempts += 1
                    m.reasonCode = code
                }) ?? message
        }
    }

    /// A refusal that will not change by retrying the same bytes (policy, certificate, content).
    static func isRelayRefusal(_ error: KetenpostError) -> Bool {
        let passing: Set<KetenpostError.Code> = [
            .rateLimited, .storeUnavailable, .tlsHandshakeFailed, .internalError, .requestTooLarge, .certificateCRLUnavailable,
        ]
        return !passing.contains(error.code) && error.detail.contains { $0.hasPrefix("HTTP 4") }
    }

    /// After an answer is accepted by the relay: the message it answers is answered.
    private func markAnswered(_ answer: DeskMessage) throws {
        guard let original = answer.correlationId, let type = MessageType(rawValue: answer.type), type.answers != nil else { return }
        let outcome = answer.copy.flatMap { try? SealedContent.decode(from: vault.open($0)) }.flatMap {
            Self.outcome(of: $0.payload).outcome
        }
        try store.update(original, when: { $0.direction == .incoming }) { m in
            m.state = .answered
            m.answerId = answer.id
            m.answeredAt = DeskStore.milliseconds(Date())
            m.outcome = outcome
        }
    }

    /// The business answer in a response: its outcome and, for a declined referral, the reason
    /// code. Never free text: those columns are not encrypted.
    static func outcome(of payload: Payload) -> (outcome: String?, reason: String?) {
        switch payload {
        case .intakeResponse(let r): (r.outcome.rawValue, nil)
        case .referralResponse(let r): (r.outcome.rawValue, r.declineReason?.rawValue)
        default: (nil, nil)
        }
    }

    // MARK: Reading

    /// Opens an incoming message from its sealed bytes (every view), or an outgoing one from the
    /// desk's encrypted copy.
    public func content(of message: DeskMessage) throws(KetenpostError) -> SealedContent {
        switch message.direction {
        case .incoming:
            guard let sealed = message.sealed else { throw KetenpostError(.deskNotFound, "The message's bytes are not at this desk.") }
            do {
                // Checked against revocation when it arrived; shown again with the desk's own trust store.
                return try client.open(sealed, allowExpired: true, trust: trust).content
            } catch let error as KetenpostError {
                throw error
            } catch {
                throw .internal(error)
            }
        case .outgoing:
            guard let copy = message.copy, message.state != .draft else {
                throw KetenpostError(.deskWrongState, "This message is a draft; open it to edit.")
            }
            do {
                return try SealedContent.decode(from: try vault.open(copy))
            } catch let error as KetenpostError {
                throw error
            } catch {
                throw KetenpostError(.internalError, "The desk's copy of this message could not be read.")
            }
        }
    }

    // MARK: Receiving and following

    /// One long poll: every message is stored (sealed) before it is acknowledged, so a crash in
    /// between means a redelivery, never a loss. Returns how many arrived.
    @discardableResult
    public func receiveOnce(wait: TimeInterval) async throws -> Int {
        let received = try await client.receive(max: 10, wait: wait)
        for item in received {
            let now = DeskStore.milliseconds(Date())
            var message = DeskMessage(
                id: item.id.uuidString.lowercased(),
                direction: .incoming,
                type: "unknown",
                counterpart: item.from,
                priority: "normal",
                correlationId: nil,
                createdAt: now,
                updatedAt: now,
                sentAt: nil,
                expiresAt: nil,
                state: .new,
                sealed: item.sealed,
                digest: Digest.sha256(item.sealed).hexString,
                copy: nil,
                acceptanceReceipt: nil,
                recipientReceipt: nil,
                reasonCode: nil,
                outcome: nil,
                outcomeReason: nil,
                answerId: nil,
                answeredAt: nil,
                createdBy: nil,
                assignedTo: nil,
                submitAttempts: 0
            )
            switch item.result {
            case .success(let opened):
                let header = opened.header
                message.type = header.type.rawValue
                message.counterpart = header.from
                message.priority = header.priority.rawValue
                message.correlationId = header.correlationId?.uuidString.lowercased()
                message.sentAt = DeskStore.milliseconds(header.createdAt)
                message.expiresAt = DeskStore.milliseconds(header.expiresAt)
            case .failure(let error) where error.isContentBound:
                message.state = .refused
                message.reasonCode = error.code.rawValue
            case .failure(let error):
                // Not this message's fault (a CRL, a key in rotation): leave it for redelivery.
                logger.warning("message left at the relay", metadata: ["message.id": "\(item.id)", "error.code": "\(error.code)"])
                continue
            }
            do {
                try store.insert(message)
            } catch {
                // Stored on an earlier delivery whose acknowledgement got lost: acknowledge again.
                if error.code != .deskConflict { throw error }
            }
            let answerID = message.id
            if case .success(let opened) = item.result, let original = message.correlationId {
                let answer = Self.outcome(of: opened.payload)
                if answer.outcome != nil {
                    try store.update(original, when: { $0.direction == .outgoing && $0.answerId == nil }) { m in
                        m.outcome = answer.outcome
                        m.outcomeReason = answer.reason
                        m.answerId = answerID
                        m.answeredAt = now
                    }
                }
            }
            try await client.acknowledge(item)
            logger.info("message received", metadata: ["message.id": "\(message.id)", "message.state": "\(message.state.rawValue)"])
        }
        return received.count
    }

    /// Resubmits queued messages and asks the relay about the others until their state is final.
    ///
    /// Each message is asked about less often as it ages (every 3 s at first, a tenth of its age
    /// later, at most every 5 minutes), and at most 20 per round: a desk with hundreds of messages
    /// in flight must not spend the partner's request budget at the relay on polling.
    public func followOutgoing() async {
        guard let pending = try? store.awaitingRelay() else { return }
        let now = clock()
        var asked = 0
        let ids = Set(pending.map(\.id))
        followSchedule.withLock { schedule in schedule = schedule.filter { ids.contains($0.key) } }
        for message in pending {
            if message.state == .sending {
                await submit(message)
                continue
            }
            if let next = followSchedule.withLock({ $0[message.id] }), next > now { continue }
            guard asked < 20 else { break }
            asked += 1
            let age = now.timeIntervalSince1970 - Double(message.sentAt ?? message.createdAt) / 1000
            let pause = min(300, max(3, age / 10))
            followSchedule.withLock { $0[message.id] = now.addingTimeInterval(pause) }
            guard let id = UUID(uuidString: message.id), let status = try? await client.status(id) else { continue }
            let state: DeskState? =
                switch status.state {
                case "accepted": .accepted
                case "delivered": .delivered
                case "acknowledged": .acknowledged
                case "rejected": .rejected
                case "expired": .expired
                case "dead-lettered": .dead
                default: nil
                }
            guard let state, state != message.state || status.recipientReceipt != nil && message.recipientReceipt == nil else { continue }
            try? store.update(message.id) { m in
                m.state = state
                m.reasonCode = status.reasonCode ?? m.reasonCode
                if let receipt = status.recipientReceipt { m.recipientReceipt = Data(base64Encoded: receipt) }
            }
        }
    }
}

extension SQLiteAccessLog {
    /// Records an event; a log that cannot be written stops the action (no unlogged access).
    func recordEvent(_ event: AccessEvent) throws(KetenpostError) {
        do {
            try record(event)
        } catch {
            throw KetenpostError(
                .storeUnavailable,
                "The desk could not write its access log, so it shows nothing. Check the data folder's disk and permissions."
            )
        }
    }
}
