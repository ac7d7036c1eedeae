import Foundation
import KetenpostModel

/// The screens' words in Dutch and English. Field labels and help come from the schemas in
/// English; their Dutch is kept here by property name, and a test checks that every property,
/// description and enumeration value of the schemas has one (SchemaFormTests).
public struct Labels: Sendable {
    public let english: Bool

    public init(english: Bool) { self.english = english }

    /// The label of a payload field.
    public func field(_ field: FormField) -> String {
        english ? (field.title ?? Self.humanize(field.name)) : (Self.fieldNL[field.name] ?? field.title ?? Self.humanize(field.name))
    }

    /// The help text of a payload field: its own description, else its definition's.
    public func help(_ field: FormField) -> String? {
        if english { return field.help }
        if field.ownHelp, let own = Self.helpNL[field.name] { return own }
        if let definition = field.definition, let shared = Self.helpNL["$" + definition] { return shared }
        return nil
    }

    /// An enumeration value (`vital-interest`, `no-capacity`, a partner role, …).
    public func value(_ value: String) -> String {
        english ? (Self.valueEN[value] ?? Self.humanize(value)) : (Self.valueNL[value] ?? value)
    }

    public func type(_ type: String) -> String {
        let names: [String: (String, String)] = [
            "signal": ("Signaal", "Signal"),
            "referral": ("Verwijzing", "Referral"),
            "intake-notice": ("Aanmelding opvang", "Intake notice"),
            "intake-response": ("Antwoord op aanmelding", "Intake response"),
            "enforcement-signal": ("Handhavingssignaal", "Enforcement signal"),
            "registration": ("Registratie", "Registration"),
            "referral-response": ("Antwoord op verwijzing", "Referral response"),
        ]
        return names[type].map { english ? $0.1 : $0.0 } ?? type
    }

    public func state(_ state: DeskState) -> String {
        let names: [DeskState: (String, String)] = [
            .draft: ("Concept", "Draft"),
            .sending: ("Wordt verzonden", "Sending"),
            .accepted: ("Aangenomen door de relay", "Accepted by the relay"),
            .delivered: ("Afgeleverd", "Delivered"),
            .acknowledged: ("Ontvangst bevestigd", "Receipt confirmed"),
            .rejected: ("Geweigerd door de ontvanger", "Rejected by the recipient"),
            .expired: ("Verlopen, niet afgeleverd", "Expired, not delivered"),
            .dead: ("Niet af te leveren", "Could not be delivered"),
            .failed: ("Niet verzonden", "Not sent"),
            .new: ("Nieuw", "New"),
            .opened: ("Geopend", "Opened"),
            .answered: ("Beantwoord", "Answered"),
            .refused: ("Kon niet worden geopend", "Could not be opened"),
        ]
        return names[state].map { english ? $0.1 : $0.0 } ?? state.rawValue
    }

    public func role(_ role: StaffRole) -> String {
        switch role {
        case .caseworker: english ? "Caseworker" : "Medewerker"
        case .teamLead: english ? "Team lead" : "Teamleider"
        case .administrator: english ? "Desk administrator" : "Beheerder"
        case .logReader: english ? "Log reader" : "Logcontroleur"
        }
    }

    /// An access-log action (`view`, `sign-in-failed`, …) in words.
    public func action(_ action: String) -> String {
        let names: [String: (String, String)] = [
            "sign-in": ("aangemeld", "signed in"), "sign-in-failed": ("aanmelden mislukt", "sign-in failed"),
            "sign-out": ("afgemeld", "signed out"), "view": ("bekeken", "viewed"), "compose": ("concept gemaakt", "draft made"),
            "send": ("verzonden", "sent"), "answer": ("beantwoord", "answered"), "download": ("gedownload", "downloaded"),
            "export": ("geëxporteerd", "exported"), "assign": ("toegewezen", "assigned"),
            "user-change": ("account gewijzigd", "account changed"), "token-change": ("API-token gewijzigd", "API token changed"),
            "log-read": ("log gelezen", "log read"),
        ]
        return names[action].map { english ? $0.1 : $0.0 } ?? action
    }

    /// A sentence of the screens by key.
    public subscript(_ key: String) -> String {
        guard let pair = Self.text[key] else { return key }
        return english ? pair.1 : pair.0
    }

    static func humanize(_ name: String) -> String {
        var words = ""
        for character in name {
            if character.isUppercase { words.append(" ") }
            words.append(character == "-" ? " " : Character(character.lowercased()))
        }
        return words.prefix(1).uppercased() + words.dropFirst()
    }

    // MARK: Dutch for the schemas

    static let fieldNL: [String: String] = [
        "address": "Adres", "ageYears": "Leeftijd (jaren)", "alias": "Roepnaam of alias",
        "arrivalInstructions": "Aankomstinstructies", "bsn": "BSN", "caseReference": "Zaaknummer", "consent": "Toestemming",
        "contact": "Contactpersoon", "dateOfBirth": "Geboortedatum", "declineReason": "Reden van afwijzing",
        "dependants": "Meekomende gezinsleden", "description": "Omschrijving", "email": "E-mailadres", "explanation": "Toelichting",
        "exploitationForm": "Vorm van uitbuiting", "exploitationForms": "Vormen van uitbuiting", "familyName": "Achternaam",
        "gender": "Geslacht", "givenName": "Voornaam", "indicators": "Signalen", "kind": "Soort", "kvkNumber": "KvK-nummer",
        "languages": "Talen", "legalBasis": "Grondslag", "medicalNeeds": "Medische behoeften", "municipality": "Gemeente (CBS-code)",
        "name": "Naam", "nationality": "Nationaliteit", "needs": "Hulpvragen", "notes": "Opmerkingen", "observations": "Waarnemingen",
        "observedOn": "Waargenomen op", "organisation": "Organisatie (partner-id)", "outcome": "Uitkomst", "person": "Persoon",
        "phone": "Telefoon", "place": "Plaats", "pseudonym": "Pseudoniem", "reason": "Reden", "referralSource": "Verwijzer",
        "referrer": "Aanmelder", "relation": "Relatie", "reporter": "Melder", "requestedArrival": "Gewenste aankomst",
        "requestedRoute": "Gevraagd traject", "safetyRisks": "Veiligheidsrisico's", "startDate": "Startdatum",
        "subjects": "Betrokkenen", "suspicion": "Vermoeden", "urgency": "Urgentie", "year": "Jaar",
    ]

    static let helpNL: [String: String] = [
        "$cbsMunicipality": "Een CBS-gemeentecode: GM en 4 cijfers, bijvoorbeeld GM1903.",
        "$contact": "Wie terugbellen: de medewerker, met een telefoonnummer of e-mailadres.",
        "$date": "Een datum (jaar 1900 tot 9999).",
        "$dateTime": "Datum en tijd, Nederlandse tijd.",
        "$freeText": "Tot 10.000 tekens; regels mogen, alleen spaties niet.",
        "$legalBasis": "Waarom het delen van deze gegevens rechtmatig is.",
        "$partnerId": "Een partner-id: kleine letters, cijfers en streepjes, zoals gemeente-eijsden-margraten.",
        "$pastDate": "Een datum, niet in de toekomst.",
        "$person": "Over wie het bericht gaat; deel alleen wat nodig is. Minstens een van: alias, voornaam, achternaam.",
        "$place": "Waar het is gezien: een omschrijving (een parkeerplaats, een website), eventueel de gemeente.",
        "$shortText": "Eén regel van 1 tot 200 tekens.",
        "arrivalInstructions": "Verplicht bij aannemen: waar en wanneer de persoon gebracht kan worden.",
        "bsn": "Burgerservicenummer: 9 cijfers die de elfproef doorstaan.",
        "caseReference": "Uw eigen zaaknummer: 1 tot 64 letters, cijfers of . _ / -",
        "dateOfBirth": "Alleen voor een persoon.",
        "declineReason": "Verplicht bij afwijzen, en alleen dan.",
        "dependants": "Kinderen en partners die meekomen en ook een plek nodig hebben.",
        "email": "Eén @ met tekst aan beide kanten, zonder spaties.",
        "explanation": "Verplicht als de reden 'anders' is.",
        "indicators": "Wat is gezien of gehoord: 1 tot 50 korte punten.",
        "kvkNumber": "Alleen voor een bedrijf: 8 cijfers.",
        "languages": "Taalcodes van twee kleine letters (ISO 639-1), zoals nl, en, ro.",
        "nationality": "Landcode van drie hoofdletters (ISO 3166-1), zoals NLD.",
        "person": "Niet verplicht: een signaal kan gaan over iemand van wie de naam onbekend is.",
        "phone": "6 tot 20 cijfers, spaties, streepjes of haakjes, eventueel na een +.",
        "pseudonym": "8 tot 64 letters, cijfers of streepjes; per slachtoffer steeds hetzelfde.",
        "reason": "Verplicht bij afwijzen of wachtlijst.",
        "startDate": "Alleen bij aannemen: de dag waarop de zorg begint.",
        "year": "Vanaf 2000 tot en met dit jaar.",
    ]

    static let valueNL: [String: String] = [
        "accepted": "aangenomen", "acute": "acuut", "administrative": "bestuursrechtelijk", "business": "bedrijf",
        "care-coordinator": "zorgcoördinator", "care-provider": "zorgaanbieder", "child": "kind", "completed": "afgerond",
        "consent": "toestemming", "criminal": "strafrechtelijk", "declined": "afgewezen", "female": "vrouw", "fiscal": "fiscaal",
        "given": "gegeven", "housing": "huisvesting", "income": "inkomen", "labour": "arbeidsuitbuiting", "language": "taal",
        "legal": "juridisch", "legal-task": "wettelijke taak", "male": "man", "medical": "medisch", "municipality": "gemeente",
        "no-capacity": "geen plek", "non-binary": "non-binair", "normal": "normaal", "not-asked": "niet gevraagd",
        "not-possible": "niet mogelijk", "not-suitable": "niet passend", "other": "anders", "outside-region": "buiten de regio",
        "partner": "partner", "person": "persoon", "person-declined": "persoon wil niet", "police": "politie",
        "psychosocial": "psychosociaal", "refused": "geweigerd", "registry": "registratie", "sexual": "seksuele uitbuiting",
        "shelter": "opvang", "tax-office": "Belastingdienst", "unknown": "onbekend", "urgent": "urgent",
        "vital-interest": "vitaal belang", "waitlisted": "wachtlijst",
    ]

    static let valueEN: [String: String] = [
        "labour": "labour exploitation", "sexual": "sexual exploitation", "criminal": "criminal", "tax-office": "tax office",
        "legal-task": "legal task", "vital-interest": "vital interest", "no-capacity": "no capacity", "not-suitable": "not suitable",
        "outside-region": "outside the region", "person-declined": "the person declined", "not-asked": "not asked",
        "not-possible": "not possible", "non-binary": "non-binary", "care-coordinator": "care coordinator",
        "care-provider": "care provider",
    ]

    // MARK: The screens' sentences

    static let text: [String: (String, String)] = [
        "app.name": ("Ketenpost-desk", "Ketenpost desk"),
        "nav.inbox": ("Postvak in", "Inbox"),
        "nav.sent": ("Verzonden", "Sent"),
        "nav.compose": ("Nieuw bericht", "New message"),
        "nav.log": ("Toegangslog", "Access log"),
        "nav.users": ("Medewerkers", "Staff"),
        "nav.status": ("Status", "Status"),
        "nav.signout": ("Afmelden", "Sign out"),
        "nav.skip": ("Naar de inhoud", "Skip to content"),
        "signin.title": ("Aanmelden", "Sign in"),
        "signin.username": ("Gebruikersnaam", "Username"),
        "signin.password": ("Wachtwoord", "Password"),
        "signin.code": ("Code uit uw authenticator-app", "Code from your authenticator app"),
        "signin.code.help": (
            "Zes cijfers. Alleen nodig als voor uw account een tweede factor is ingesteld.",
            "Six digits. Only needed when your account has a second factor."
        ),
        "signin.submit": ("Aanmelden", "Sign in"),
        "signin.intro": (
            "Meld u aan met het account dat uw beheerder voor u heeft gemaakt.",
            "Sign in with the account your desk administrator made for you."
        ),
        "error.title": ("Dat lukte niet", "That did not work"),
        "error.code": ("Foutcode", "Error code"),
        "error.back": ("Terug naar het postvak", "Back to the inbox"),
        "inbox.title": ("Postvak in", "Inbox"),
        "inbox.empty": ("Geen berichten in deze lijst.", "No messages in this list."),
        "sent.title": ("Verzonden berichten", "Sent messages"),
        "list.received": ("Ontvangen", "Received"),
        "list.created": ("Gemaakt", "Created"),
        "list.type": ("Soort", "Type"),
        "list.from": ("Van", "From"),
        "list.to": ("Aan", "To"),
        "list.state": ("Status", "Status"),
        "list.priority": ("Prioriteit", "Priority"),
        "list.assigned": ("Toegewezen aan", "Assigned to"),
        "list.answer": ("Antwoord", "Answer"),
        "list.filter": ("Filteren", "Filter"),
        "list.all": ("Alle", "All"),
        "list.count": ("berichten", "messages"),
        "list.next": ("Volgende", "Next"),
        "list.previous": ("Vorige", "Previous"),
        "list.overdue": ("Te laat", "Overdue"),
        "list.mine": ("Alleen aan mij toegewezen", "Assigned to me only"),
        "compose.title": ("Nieuw bericht", "New message"),
        "compose.choose": ("Kies het soort bericht", "Choose the kind of message"),
        "compose.to": ("Ontvanger", "Recipient"),
        "compose.to.help": (
            "Alleen partners die dit soort bericht van uw organisatie mogen ontvangen.",
            "Only partners allowed to receive this kind of message from your organisation."
        ),
        "compose.priority": ("Prioriteit", "Priority"),
        "compose.expires": ("Geldig (dagen)", "Valid for (days)"),
        "compose.expires.help": (
            "Na deze termijn wordt het bericht niet meer afgeleverd; u ziet dat dan in rood.",
            "After this the message is no longer delivered; you will see it in red."
        ),
        "compose.region": ("Regio voor de statistiek (CBS-code)", "Region for statistics (CBS code)"),
        "compose.exploitation": ("Vorm van uitbuiting voor de statistiek", "Form of exploitation for statistics"),
        "compose.labels": ("Voor de statistiek (zonder persoonsgegevens)", "For statistics (no personal data)"),
        "compose.save": ("Concept opslaan", "Save draft"),
        "compose.send": ("Versleutelen en verzenden", "Seal and send"),
        "compose.required": ("verplicht", "required"),
        "compose.addRow": ("Regel toevoegen", "Add a row"),
        "compose.removeRow": ("Deze regel verwijderen", "Remove this row"),
        "compose.errors": (
            "Het bericht is nog niet verzonden. Verbeter de gemarkeerde velden:", "The message was not sent. Fix the marked fields:"
        ),
        "compose.saved": ("Concept opgeslagen.", "Draft saved."),
        "compose.none": ("(kies)", "(choose)"),
        "compose.noRecipients": (
            "Er is geen partner die dit soort bericht van uw organisatie mag ontvangen.",
            "No partner may receive this kind of message from your organisation."
        ),
        "compose.answering": ("Antwoord op", "Answer to"),
        "message.title": ("Bericht", "Message"),
        "message.header": ("Gegevens van het bericht", "About this message"),
        "message.id": ("Berichtnummer", "Message id"),
        "message.expires": ("Verloopt", "Expires"),
        "message.answer": ("Beantwoorden", "Answer"),
        "message.evidence": ("Bewijsstukken downloaden (ZIP)", "Download evidence (ZIP)"),
        "message.assign": ("Toewijzen", "Assign"),
        "message.timeline": ("Verloop", "Timeline"),
        "message.answers": ("Antwoorden en dossier", "Answers and case"),
        "message.content": ("Inhoud", "Content"),
        "message.refused": (
            "Dit bericht kon niet worden geopend en is geweigerd met een ondertekende ontvangstbevestiging. De afzender ziet dat.",
            "This message could not be opened and was refused with a signed receipt. The sender sees that."
        ),
        "message.sentby": ("Verzonden door", "Sent by"),
        "timeline.sealed": ("Versleuteld en ondertekend", "Sealed and signed"),
        "timeline.accepted": ("Aangenomen door de relay (ontvangstbewijs gecontroleerd)", "Accepted by the relay (receipt verified)"),
        "timeline.delivered": ("Afgeleverd bij de ontvanger", "Delivered to the recipient"),
        "timeline.acknowledged": ("Ontvangst bevestigd door de ontvanger (ondertekend)", "Receipt confirmed by the recipient (signed)"),
        "timeline.answered": ("Beantwoord", "Answered"),
        "timeline.pending": ("nog niet", "not yet"),
        "next.rejected": (
            "De ontvanger kon het bericht niet openen. Neem telefonisch contact op en stuur het opnieuw als nieuw bericht.",
            "The recipient could not open the message. Call them, and send it again as a new message."
        ),
        "next.expired": (
            "Het bericht is niet op tijd opgehaald. Bel de ontvanger; stuur het zo nodig opnieuw.",
            "The message was not collected in time. Call the recipient; send it again if needed."
        ),
        "next.dead": (
            "Het bericht kon na herhaalde pogingen niet worden afgeleverd. Bel de ontvanger en uw beheerder.",
            "The message could not be delivered after repeated attempts. Call the recipient and your administrator."
        ),
        "next.failed": (
            "De relay heeft het bericht geweigerd. Lees de reden, pas zo nodig aan en stuur een nieuw bericht.",
            "The relay refused the message. Read the reason, change what is needed, and send a new message."
        ),
        "next.sending": (
            "De relay is nog niet bereikt. De desk blijft het proberen met hetzelfde bericht; het wordt nooit twee keer verzonden.",
            "The relay has not been reached yet. The desk keeps trying with the same message; it is never sent twice."
        ),
        "banner.urgent": (
            "Urgente aanmelding zonder antwoord:",
            "Urgent intake notice without an answer:"
        ),
        "answer.title": ("Antwoord", "Answer"),
        "log.title": ("Toegangslog", "Access log"),
        "log.intact": ("De keten van het log is intact.", "The log's chain is intact."),
        "log.broken": ("Het log is gewijzigd vanaf regel", "The log was changed from entry"),
        "log.csv": ("Exporteren als CSV", "Export as CSV"),
        "log.staff": ("Medewerker", "Staff member"),
        "log.message": ("Bericht", "Message"),
        "log.time": ("Tijd", "Time"),
        "log.action": ("Handeling", "Action"),
        "log.role": ("Rol", "Role"),
        "log.detail": ("Details", "Detail"),
        "users.title": ("Medewerkers", "Staff"),
        "users.username": ("Gebruikersnaam", "Username"),
        "users.name": ("Naam", "Name"),
        "users.role": ("Rol", "Role"),
        "users.state": ("Status", "Status"),
        "users.disabled": ("uitgeschakeld", "disabled"),
        "users.locked": ("geblokkeerd", "locked"),
        "users.active": ("actief", "active"),
        "users.secondFactor": ("Tweede factor", "Second factor"),
        "yes": ("ja", "yes"),
        "no": ("nee", "no"),
        "signedInAs": ("Aangemeld als", "Signed in as"),
    ]
}
