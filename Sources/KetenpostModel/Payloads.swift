import Foundation

/// Shared by the payload types so that `Payload` can encode and check them uniformly.
protocol PayloadContent: Encodable, Sendable {
    static var messageType: MessageType { get }
    var schema: String { get }
    func checkFields(_ path: String, _ c: inout Checks)
}

extension PayloadContent {
    func check(_ path: String, _ c: inout Checks) {
        c.check(
            schema == Self.messageType.schemaID,
            Path.join(path, "schema"),
            "schema",
            "must be \(Self.messageType.schemaID) for this payload type"
        )
        checkFields(path, &c)
    }
}

/// Indicators, safety risks and observations are short items in a list.
private func checkItems(_ items: [String], _ path: String, _ range: ClosedRange<Int>, max: Int = Limits.shortText, _ c: inout Checks) {
    c.count(items.count, path, range)
    for (i, item) in items.enumerated() { c.text(item, Path.index(path, i), max: max) }
}

// MARK: - signal

/// A front-line observation of possible trafficking, sent to the care coordinator.
public struct Signal: Codable, Sendable, Equatable, PayloadContent {
    static let messageType = MessageType.signal
    public private(set) var schema = MessageType.signal.schemaID
    /// `YYYY-MM-DD`, not in the future.
    public var observedOn: String
    public var place: Place
    /// 1 to 4, unique.
    public var exploitationForms: [ExploitationForm]
    /// 1 to 50 short items.
    public var indicators: [String]
    public var urgency: Urgency
    /// Optional: a signal may be about someone whose name is unknown.
    public var person: Person?
    public var reporter: Contact
    public var consent: ConsentStatus
    public var legalBasis: LegalBasis
    public var notes: String?

    public init(
        observedOn: String,
        place: Place,
        exploitationForms: [ExploitationForm],
        indicators: [String],
        urgency: Urgency,
        person: Person? = nil,
        reporter: Contact,
        consent: ConsentStatus,
        legalBasis: LegalBasis,
        notes: String? = nil
    ) {
        self.observedOn = observedOn
        self.place = place
        self.exploitationForms = exploitationForms
        self.indicators = indicators
        self.urgency = urgency
        self.person = person
        self.reporter = reporter
        self.consent = consent
        self.legalBasis = legalBasis
        self.notes = notes
    }

    func checkFields(_ p: String, _ c: inout Checks) {
        c.date(observedOn, Path.join(p, "observedOn"), notInFuture: true)
        place.check(Path.join(p, "place"), &c)
        c.count(exploitationForms.count, Path.join(p, "exploitationForms"), 1...4)
        c.unique(exploitationForms, Path.join(p, "exploitationForms"))
        checkItems(indicators, Path.join(p, "indicators"), 1...50, &c)
        person?.check(Path.join(p, "person"), &c)
        reporter.check(Path.join(p, "reporter"), &c)
        // Claiming consent that was not given would mislead every recipient down the chain.
        c.check(
            legalBasis != .consent || consent == .given,
            Path.join(p, "legalBasis"),
            "consent",
            "can only be consent when consent is given"
        )
        c.freeText(notes, Path.join(p, "notes"))
    }
}

// MARK: - referral

/// Hands a person over from the care coordinator (or municipality) to a shelter or care provider.
public struct Referral: Codable, Sendable, Equatable, PayloadContent {
    static let messageType = MessageType.referral
    public private(set) var schema = MessageType.referral.schemaID
    public var person: Person
    /// 1 to 6, unique.
    public var needs: [Need]
    public var legalBasis: LegalBasis
    /// The sender's case number, 1 to 64 of `A-Z a-z 0-9 . _ / -`.
    public var caseReference: String
    public var contact: Contact
    public var notes: String?

    public init(person: Person, needs: [Need], legalBasis: LegalBasis, caseReference: String, contact: Contact, notes: String? = nil) {
        self.person = person
        self.needs = needs
        self.legalBasis = legalBasis
        self.caseReference = caseReference
        self.contact = contact
        self.notes = notes
    }

    func checkFields(_ p: String, _ c: inout Checks) {
        person.check(Path.join(p, "person"), &c)
        c.count(needs.count, Path.join(p, "needs"), 1...6)
        c.unique(needs, Path.join(p, "needs"))
        c.check(
            ASCII.matches(caseReference, count: 1...64) { ASCII.isLetterOrDigit($0) || "._/-".utf8.contains($0) },
            Path.join(p, "caseReference"),
            "case-reference",
            "must be 1 to 64 letters, digits or . _ / -"
        )
        contact.check(Path.join(p, "contact"), &c)
        c.freeText(notes, Path.join(p, "notes"))
    }
}

// MARK: - intake-notice

public struct Dependant: Codable, Sendable, Equatable {
    public var relation: DependantRelation
    public var ageYears: Int?

    public init(relation: DependantRelation, ageYears: Int? = nil) {
        self.relation = relation
        self.ageYears = ageYears
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        relation = try c.decode(DependantRelation.self, forKey: .relation)
        ageYears = try c.decodeIntegerIfPresent(forKey: .ageYears)
    }
}

/// Asks a shelter to take someone in; the shelter answers with an intake-response.
public struct IntakeNotice: Codable, Sendable, Equatable, PayloadContent {
    static let messageType = MessageType.intakeNotice
    public private(set) var schema = MessageType.intakeNotice.schemaID
    public var person: Person
    /// ISO 639-1 codes (two lowercase letters), 1 to 10, unique.
    public var languages: [String]
    /// 0 to 20; children and partners arrive with the person and need a place too.
    public var dependants: [Dependant]
    public var urgency: Urgency
    public var requestedArrival: Date
    /// 0 to 50 short items.
    public var safetyRisks: [String]
    public var medicalNeeds: String?
    public var referrer: Contact
    public var legalBasis: LegalBasis

    public init(
        person: Person,
        languages: [String],
        dependants: [Dependant] = [],
        urgency: Urgency,
        requestedArrival: Date,
        safetyRisks: [String] = [],
        medicalNeeds: String? = nil,
        referrer: Contact,
        legalBasis: LegalBasis
    ) {
        self.person = person
        self.languages = languages
        self.dependants = dependants
        self.urgency = urgency
        self.requestedArrival = Date(timeIntervalSince1970: Double(RFC3339.wholeSeconds(requestedArrival)))
        self.safetyRisks = safetyRisks
        self.medicalNeeds = medicalNeeds
        self.referrer = referrer
        self.legalBasis = legalBasis
    }

    /// Empty lists may be left out, like any other field without content.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(String.self, forKey: .schema)
        person = try c.decode(Person.self, forKey: .person)
        languages = try c.decode([String].self, forKey: .languages)
        dependants = try c.decodeIfPresent([Dependant].self, forKey: .dependants) ?? []
        urgency = try c.decode(Urgency.self, forKey: .urgency)
        requestedArrival = try c.decode(Date.self, forKey: .requestedArrival)
        safetyRisks = try c.decodeIfPresent([String].self, forKey: .safetyRisks) ?? []
        medicalNeeds = try c.decodeIfPresent(String.self, forKey: .medicalNeeds)
        referrer = try c.decode(Contact.self, forKey: .referrer)
        legalBasis = try c.decode(LegalBasis.self, forKey: .legalBasis)
    }

    func checkFields(_ p: String, _ c: inout Checks) {
        person.check(Path.join(p, "person"), &c)
        let langs = Path.join(p, "languages")
        c.count(languages.count, langs, 1...10)
        c.unique(languages, langs)
        for (i, code) in languages.enumerated() {
            c.check(
                ASCII.matches(code, count: 2...2, rest: ASCII.isLower),
                Path.index(langs, i),
                "language",
                "must be an ISO 639-1 code of two lowercase letters, such as nl"
            )
        }
        c.count(dependants.count, Path.join(p, "dependants"), 0...20)
        for (i, dependant) in dependants.enumerated() {
            if let age = dependant.ageYears {
                c.check(
                    (0...120).contains(age),
                    Path.join(Path.index(Path.join(p, "dependants"), i), "ageYears"),
                    "range",
                    "must be 0 to 120"
                )
            }
        }
        checkItems(safetyRisks, Path.join(p, "safetyRisks"), 0...50, &c)
        c.freeText(medicalNeeds, Path.join(p, "medicalNeeds"))
        referrer.check(Path.join(p, "referrer"), &c)
    }
}

// MARK: - intake-response

/// The shelter's answer to an intake notice (the header's correlationId names the notice).
public struct IntakeResponse: Codable, Sendable, Equatable, PayloadContent {
    static let messageType = MessageType.intakeResponse
    public private(set) var schema = MessageType.intakeResponse.schemaID
    public var outcome: IntakeOutcome
    /// Required when declined or waitlisted, so the referrer can look elsewhere with reason.
    public var reason: String?
    /// Required when accepted: where and when to bring the person.
    public var arrivalInstructions: String?
    public var legalBasis: LegalBasis

    public init(outcome: IntakeOutcome, reason: String? = nil, arrivalInstructions: String? = nil, legalBasis: LegalBasis) {
        self.outcome = outcome
        self.reason = reason
        self.arrivalInstructions = arrivalInstructions
        self.legalBasis = legalBasis
    }

    func checkFields(_ p: String, _ c: inout Checks) {
        if outcome != .accepted && reason == nil {
            c.fail(Path.join(p, "reason"), "required", "is required when the outcome is declined or waitlisted")
        }
        if outcome == .accepted && arrivalInstructions == nil {
            c.fail(Path.join(p, "arrivalInstructions"), "required", "is required when the outcome is accepted")
        }
        c.freeText(reason, Path.join(p, "reason"))
        c.freeText(arrivalInstructions, Path.join(p, "arrivalInstructions"))
    }
}

// MARK: - referral-response

/// A care provider's or shelter's answer to a referral (the header's correlationId names the referral).
public struct ReferralResponse: Codable, Sendable, Equatable, PayloadContent {
    static let messageType = MessageType.referralResponse
    public private(set) var schema = MessageType.referralResponse.schemaID
    public var outcome: ReferralOutcome
    /// Required when declined, and only then.
    public var declineReason: DeclineReason?
    /// Required when the decline reason is `other`; otherwise optional context.
    public var explanation: String?
    /// Only when accepted: the day care starts, `YYYY-MM-DD`.
    public var startDate: String?
    /// Who handles the referral at the answering organisation.
    public var contact: Contact
    public var legalBasis: LegalBasis

    public init(
        outcome: ReferralOutcome,
        declineReason: DeclineReason? = nil,
        explanation: String? = nil,
        startDate: String? = nil,
        contact: Contact,
        legalBasis: LegalBasis
    ) {
        self.outcome = outcome
        self.declineReason = declineReason
        self.explanation = explanation
        self.startDate = startDate
        self.contact = contact
        self.legalBasis = legalBasis
    }

    func checkFields(_ p: String, _ c: inout Checks) {
        if outcome == .declined {
            c.check(declineReason != nil, Path.join(p, "declineReason"), "required", "is required when the outcome is declined")
        } else if declineReason != nil {
            c.fail(Path.join(p, "declineReason"), "not-applicable", "is only allowed when the outcome is declined")
        }
        if declineReason == .other && explanation == nil {
            c.fail(Path.join(p, "explanation"), "required", "is required when the decline reason is other")
        }
        if startDate != nil {
            c.check(outcome == .accepted, Path.join(p, "startDate"), "not-applicable", "is only allowed when the outcome is accepted")
            c.date(startDate, Path.join(p, "startDate"))
        }
        c.freeText(explanation, Path.join(p, "explanation"))
        contact.check(Path.join(p, "contact"), &c)
    }
}

// MARK: - enforcement-signal

/// A suspected perpetrator: a person or a business.
public struct Subject: Codable, Sendable, Equatable {
    public var kind: SubjectKind
    public var name: String
    /// Only for businesses: 8 digits.
    public var kvkNumber: String?
    public var address: String?
    /// Only for persons: `YYYY-MM-DD`.
    public var dateOfBirth: String?

    public init(kind: SubjectKind, name: String, kvkNumber: String? = nil, address: String? = nil, dateOfBirth: String? = nil) {
        self.kind = kind
        self.name = name
        self.kvkNumber = kvkNumber
        self.address = address
        self.dateOfBirth = dateOfBirth
    }

    func check(_ path: String, _ c: inout Checks) {
        c.text(name, Path.join(path, "name"))
        c.text(address, Path.join(path, "address"))
        if let kvkNumber {
            c.check(kind == .business, Path.join(path, "kvkNumber"), "not-applicable", "is only allowed for a business")
            c.check(Identifiers.isValidKvK(kvkNumber), Path.join(path, "kvkNumber"), "kvk", "must be 8 digits")
        }
        if dateOfBirth != nil {
            c.check(kind == .person, Path.join(path, "dateOfBirth"), "not-applicable", "is only allowed for a person")
            c.date(dateOfBirth, Path.join(path, "dateOfBirth"), notInFuture: true)
        }
    }
}

/// Information about suspected perpetrators for the criminal, fiscal or administrative route.
///
/// It goes to enforcement partners, who have no business with the victim's health: decoding
/// refuses any health-ish or victim key at any depth (rule `no-victim-health-data`) before the
/// generic unknown-field check, so the refusal says why instead of just "unknown field".
public struct EnforcementSignal: Codable, Sendable, Equatable, PayloadContent {
    static let messageType = MessageType.enforcementSignal
    public private(set) var schema = MessageType.enforcementSignal.schemaID
    /// 1 to 50.
    public var subjects: [Subject]
    public var suspicion: String
    /// 0 to 100 items of free text.
    public var observations: [String]
    public var requestedRoute: EnforcementRoute
    public var legalBasis: LegalBasis

    public init(
        subjects: [Subject],
        suspicion: String,
        observations: [String] = [],
        requestedRoute: EnforcementRoute,
        legalBasis: LegalBasis
    ) {
        self.subjects = subjects
        self.suspicion = suspicion
        self.observations = observations
        self.requestedRoute = requestedRoute
        self.legalBasis = legalBasis
    }

    public init(from decoder: any Decoder) throws {
        _ = try VictimHealthDataScreen(from: decoder)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(String.self, forKey: .schema)
        subjects = try c.decode([Subject].self, forKey: .subjects)
        suspicion = try c.decode(String.self, forKey: .suspicion)
        observations = try c.decodeIfPresent([String].self, forKey: .observations) ?? []
        requestedRoute = try c.decode(EnforcementRoute.self, forKey: .requestedRoute)
        legalBasis = try c.decode(LegalBasis.self, forKey: .legalBasis)
    }

    func checkFields(_ p: String, _ c: inout Checks) {
        let subjectsPath = Path.join(p, "subjects")
        c.count(subjects.count, subjectsPath, 1...50)
        for (i, subject) in subjects.enumerated() { subject.check(Path.index(subjectsPath, i), &c) }
        c.freeText(suspicion, Path.join(p, "suspicion"))
        checkItems(observations, Path.join(p, "observations"), 0...100, max: Limits.freeText, &c)
    }
}

/// Walks every key of a JSON value and throws on the first name that suggests victim or health data.
struct VictimHealthDataScreen: Decodable {
    /// Compared after lowercasing and dropping everything but letters, so `medical_needs`,
    /// `MedicalNeeds` and `victimName` are all caught.
    static let forbidden = ["medical", "health", "diagnosis", "medication", "victim", "person"]

    struct AnyKey: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    static func isForbidden(_ key: String) -> Bool {
        let folded = String(key.lowercased().unicodeScalars.filter { $0.properties.isAlphabetic }.map(Character.init))
        return forbidden.contains { folded.contains($0) }
    }

    init(from decoder: any Decoder) throws {
        if let object = try? decoder.container(keyedBy: AnyKey.self) {
            for key in object.allKeys.sorted(by: { $0.stringValue < $1.stringValue }) {
                if Self.isForbidden(key.stringValue) {
                    throw RuleViolation.decodingError(
                        object.codingPath + [key],
                        "no-victim-health-data",
                        "is not allowed: enforcement signals may not carry victim health data or data about the victim"
                    )
                }
                _ = try object.decode(VictimHealthDataScreen.self, forKey: key)
            }
        } else if var array = try? decoder.unkeyedContainer() {
            while !array.isAtEnd { _ = try array.decode(VictimHealthDataScreen.self) }
        }
    }
}

// MARK: - registration

/// Pseudonymous national registration of a victim, so that the extent of trafficking becomes
/// visible without sending names: no person fields exist in this schema at all.
public struct Registration: Codable, Sendable, Equatable, PayloadContent {
    static let messageType = MessageType.registration
    public private(set) var schema = MessageType.registration.schemaID
    public var exploitationForm: ExploitationForm
    /// 2000 up to the current year.
    public var year: Int
    /// CBS municipality code.
    public var municipality: String
    public var referralSource: PartnerRole
    /// 8 to 64 of `A-Z a-z 0-9 -`; stable per victim so that the registry can count people, not messages.
    public var pseudonym: String
    public var legalBasis: LegalBasis

    public init(
        exploitationForm: ExploitationForm,
        year: Int,
        municipality: String,
        referralSource: PartnerRole,
        pseudonym: String,
        legalBasis: LegalBasis
    ) {
        self.exploitationForm = exploitationForm
        self.year = year
        self.municipality = municipality
        self.referralSource = referralSource
        self.pseudonym = pseudonym
        self.legalBasis = legalBasis
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        schema = try c.decode(String.self, forKey: .schema)
        exploitationForm = try c.decode(ExploitationForm.self, forKey: .exploitationForm)
        year = try c.decodeInteger(forKey: .year)
        municipality = try c.decode(String.self, forKey: .municipality)
        referralSource = try c.decode(PartnerRole.self, forKey: .referralSource)
        pseudonym = try c.decode(String.self, forKey: .pseudonym)
        legalBasis = try c.decode(LegalBasis.self, forKey: .legalBasis)
    }

    func checkFields(_ p: String, _ c: inout Checks) {
        let currentYear = CalendarDate.today(now: c.now).year
        c.check((2000...max(2000, currentYear)).contains(year), Path.join(p, "year"), "range", "must be 2000 up to the current year")
        c.municipality(municipality, Path.join(p, "municipality"))
        c.check(
            ASCII.matches(pseudonym, count: 8...64) { ASCII.isLetterOrDigit($0) || $0 == UInt8(ascii: "-") },
            Path.join(p, "pseudonym"),
            "pseudonym",
            "must be 8 to 64 letters, digits or hyphens"
        )
    }
}
