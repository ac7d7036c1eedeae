import KetenpostModel

/// The sentence shown next to a field for a broken rule. The model's issues carry a rule name and
/// an English sentence without the value; Dutch screens get Dutch sentences by rule name.
enum ProblemText {
    static func sentence(issue: ValidationIssue, labels: Labels) -> String {
        labels.english ? capitalized(issue.message) : (dutch[issue.rule] ?? "Deze waarde voldoet niet aan de regels (\(issue.rule)).")
    }

    /// Problems the desk finds itself (a form value that is not a number, a recipient not allowed).
    static func sentence(rule: String, labels: Labels) -> String {
        if labels.english { return english[rule] ?? "This value does not follow the rules (\(rule))." }
        return dutch[rule] ?? "Deze waarde voldoet niet aan de regels (\(rule))."
    }

    private static func capitalized(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() + "." }

    static let dutch: [String: String] = [
        "required": "Dit veld is verplicht.",
        "empty": "Vul hier iets in, niet alleen spaties.",
        "too-long": "Dit is te lang; kort het in.",
        "control-character": "Hier staan tekens die niet mogen (zoals tabs of onzichtbare tekens).",
        "count": "Het aantal regels klopt niet: kijk naar het minimum of maximum.",
        "unique": "Elke regel mag maar één keer voorkomen.",
        "bsn": "Dit is geen geldig BSN: 9 cijfers die de elfproef doorstaan.",
        "kvk": "Een KvK-nummer heeft 8 cijfers.",
        "cbs-code": "Een CBS-gemeentecode is GM met 4 cijfers, bijvoorbeeld GM1903.",
        "cbs": "Een CBS-gemeentecode is GM met 4 cijfers, bijvoorbeeld GM1903.",
        "date": "Vul een geldige datum in.",
        "date-time": "Vul een geldige datum en tijd in.",
        "not-future": "Deze datum mag niet in de toekomst liggen.",
        "email": "Dit is geen geldig e-mailadres.",
        "phone": "Een telefoonnummer heeft 6 tot 20 cijfers, spaties, streepjes of haakjes, eventueel na een +.",
        "language": "Gebruik taalcodes van twee kleine letters, zoals nl of ro.",
        "nationality": "Gebruik een landcode van drie hoofdletters, zoals NLD.",
        "partner-id": "Een partner-id bestaat uit kleine letters, cijfers en streepjes.",
        "case-reference": "Een zaaknummer heeft 1 tot 64 letters, cijfers of . _ / -",
        "pseudonym": "Een pseudoniem heeft 8 tot 64 letters, cijfers of streepjes.",
        "range": "Deze waarde ligt buiten het toegestane bereik.",
        "integer": "Vul een geheel getal in.",
        "whole-number": "Vul een geheel getal in.",
        "enum": "Kies een van de mogelijkheden.",
        "choice": "Kies een van de mogelijkheden.",
        "contact-channel": "Vul een telefoonnummer of een e-mailadres in.",
        "person-identifier": "Vul minstens een alias, voornaam of achternaam in.",
        "not-applicable": "Dit veld hoort niet bij de gekozen uitkomst of soort; maak het leeg.",
        "reason": "Vul een reden in.",
        "explanation": "Vul een toelichting in.",
        "year": "Vul een jaar in vanaf 2000 tot en met dit jaar.",
        "consent": "Bij grondslag toestemming moet de toestemming gegeven zijn.",
        "no-victim-health-data": "Een handhavingssignaal mag geen gezondheidsgegevens van het slachtoffer bevatten.",
        "type-mismatch": "Deze waarde heeft niet de juiste vorm.",
        "unknown-field": "Dit veld hoort niet in dit bericht.",
        "recipient": "Deze partner mag dit soort bericht van uw organisatie niet ontvangen; kies een andere.",
        "lifetime": "Vul een aantal dagen in van 1 tot en met 90.",
        "self-addressed": "U kunt geen bericht aan uw eigen organisatie sturen.",
    ]

    static let english: [String: String] = [
        "required": "This field is required.",
        "whole-number": "Enter a whole number.",
        "choice": "Choose one of the options.",
        "date-time": "Enter a valid date and time.",
        "cbs": "A CBS municipality code is GM followed by 4 digits, such as GM1903.",
        "recipient": "This partner may not receive this kind of message from your organisation; choose another.",
        "lifetime": "Enter a number of days from 1 to 90.",
    ]
}
