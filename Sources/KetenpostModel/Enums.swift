import Foundation

/// The roles of the partner directory; the policy and the message types speak in roles, not partners.
public enum PartnerRole: String, KetenpostEnum {
    case municipality
    case careCoordinator = "care-coordinator"
    case shelter
    case careProvider = "care-provider"
    case police
    case taxOffice = "tax-office"
    case registry
}

public enum MessageType: String, KetenpostEnum {
    case signal
    case referral
    case intakeNotice = "intake-notice"
    case intakeResponse = "intake-response"
    case enforcementSignal = "enforcement-signal"
    case registration
    case referralResponse = "referral-response"

    /// The value of the payload's `schema` field; versioned so that a schema can change without
    /// old messages becoming ambiguous.
    public var schemaID: String { "ketenpost/\(rawValue)/v1" }

    public init?(schemaID: String) {
        guard let type = Self.allCases.first(where: { $0.schemaID == schemaID }) else { return nil }
        self = type
    }

    /// Who may send this type (the brief's table). The relay's policy may narrow this, never widen it.
    public var allowedSenderRoles: Set<PartnerRole> {
        switch self {
        case .signal: [.municipality, .careProvider, .shelter, .police]
        case .referral: [.careCoordinator, .municipality]
        case .intakeNotice: [.careCoordinator, .police, .municipality]
        case .intakeResponse: [.shelter]
        case .enforcementSignal: [.municipality, .police]
        case .registration: [.careCoordinator, .police]
        case .referralResponse: MessageType.referral.allowedRecipientRoles
        }
    }

    /// Who may receive this type. An answer goes back to whoever may send what it answers.
    public var allowedRecipientRoles: Set<PartnerRole> {
        switch self {
        case .signal: [.careCoordinator]
        case .referral: [.careProvider, .shelter]
        case .intakeNotice: [.shelter]
        case .intakeResponse: MessageType.intakeNotice.allowedSenderRoles
        case .enforcementSignal: [.police, .taxOffice, .municipality]
        case .registration: [.registry]
        case .referralResponse: MessageType.referral.allowedSenderRoles
        }
    }

    /// The type this one answers (its header's `correlationId` names such a message), if it is an answer.
    public var answers: MessageType? {
        switch self {
        case .intakeResponse: .intakeNotice
        case .referralResponse: .referral
        default: nil
        }
    }

    public func allows(from sender: PartnerRole, to recipient: PartnerRole) -> Bool {
        allowedSenderRoles.contains(sender) && allowedRecipientRoles.contains(recipient)
    }
}

public enum Priority: String, KetenpostEnum { case normal, urgent }

/// A non-identifying statistics label as well as a payload field: seeing the extent of
/// trafficking better is one of the regional plan's goals.
public enum ExploitationForm: String, KetenpostEnum { case sexual, labour, criminal, unknown }

/// Why personal data may be shared: stated on every message so that recipients and auditors
/// can see it, because uncertainty about the privacy law made partners stop reporting.
public enum LegalBasis: String, KetenpostEnum {
    case consent
    case legalTask = "legal-task"
    case vitalInterest = "vital-interest"
}

public enum Urgency: String, KetenpostEnum { case normal, urgent, acute }

public enum Gender: String, KetenpostEnum {
    case female, male
    case nonBinary = "non-binary"
    case unknown
}

/// Whether the person agreed to the signal being passed on.
public enum ConsentStatus: String, KetenpostEnum {
    case given, refused
    case notAsked = "not-asked"
    case notPossible = "not-possible"
}

public enum Need: String, KetenpostEnum { case housing, medical, legal, psychosocial, income, language }

public enum DependantRelation: String, KetenpostEnum { case child, partner, other }

public enum IntakeOutcome: String, KetenpostEnum { case accepted, declined, waitlisted }

/// How a care provider or shelter answers a referral.
public enum ReferralOutcome: String, KetenpostEnum { case accepted, declined, completed }

/// Why a referral was declined, as a code that the sender's systems can count and act on.
public enum DeclineReason: String, KetenpostEnum {
    case noCapacity = "no-capacity"
    case notSuitable = "not-suitable"
    case outsideRegion = "outside-region"
    case personDeclined = "person-declined"
    case other
}

public enum SubjectKind: String, KetenpostEnum { case person, business }

/// The three ways of tackling perpetrators: criminal (police), fiscal (tax office), administrative (municipality).
public enum EnforcementRoute: String, KetenpostEnum { case criminal, fiscal, administrative }

/// Whether a partner may send and receive (`suspended`: refused at the relay, messages kept).
public enum PartnerState: String, Codable, Sendable {
    case active, suspended
}
