import Foundation

/// A person the message is about. Every field is optional so that a sender shares only what is
/// needed; an alias alone is enough where the person wants or needs to stay anonymous.
public struct Person: Codable, Sendable, Equatable {
    public var alias: String?
    public var givenName: String?
    public var familyName: String?
    /// `YYYY-MM-DD`, not in the future.
    public var dateOfBirth: String?
    public var gender: Gender?
    /// ISO 3166-1 alpha-3, uppercase (e.g. `NLD`; `XXA` stateless as in ICAO 9303 passes the format too).
    public var nationality: String?
    /// Burgerservicenummer, checked with the eleven-test.
    public var bsn: String?

    public init(
        alias: String? = nil,
        givenName: String? = nil,
        familyName: String? = nil,
        dateOfBirth: String? = nil,
        gender: Gender? = nil,
        nationality: String? = nil,
        bsn: String? = nil
    ) {
        self.alias = alias
        self.givenName = givenName
        self.familyName = familyName
        self.dateOfBirth = dateOfBirth
        self.gender = gender
        self.nationality = nationality
        self.bsn = bsn
    }

    func check(_ path: String, _ c: inout Checks) {
        c.text(alias, Path.join(path, "alias"))
        c.text(givenName, Path.join(path, "givenName"))
        c.text(familyName, Path.join(path, "familyName"))
        let named = [alias, givenName, familyName].contains {
            $0.map { !$0.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty } ?? false
        }
        c.check(named, path, "person-identifier", "must have at least one of alias, givenName, familyName")
        c.date(dateOfBirth, Path.join(path, "dateOfBirth"), notInFuture: true)
        if let nationality {
            c.check(
                ASCII.matches(nationality, count: 3...3, rest: ASCII.isUpper),
                Path.join(path, "nationality"),
                "nationality",
                "must be an ISO 3166-1 alpha-3 code in capitals, such as NLD"
            )
        }
        if let bsn {
            c.check(Identifiers.isValidBSN(bsn), Path.join(path, "bsn"), "bsn", "must be 9 digits that pass the eleven-test")
        }
    }
}

/// Who to call back about a message: the case worker, not just the organisation.
public struct Contact: Codable, Sendable, Equatable {
    /// Partner id of the contact's organisation.
    public var organisation: String
    public var name: String
    public var phone: String?
    public var email: String?

    public init(organisation: String, name: String, phone: String? = nil, email: String? = nil) {
        self.organisation = organisation
        self.name = name
        self.phone = phone
        self.email = email
    }

    func check(_ path: String, _ c: inout Checks) {
        c.partnerID(organisation, Path.join(path, "organisation"))
        c.text(name, Path.join(path, "name"))
        c.check(phone != nil || email != nil, path, "contact-channel", "must have a phone number or an e-mail address")
        if let phone {
            // ^\+?[0-9 ()-]{6,20}$
            let body = phone.hasPrefix("+") ? String(phone.dropFirst()) : phone
            c.check(
                ASCII.matches(body, count: 6...20) { ASCII.isDigit($0) || " ()-".utf8.contains($0) },
                Path.join(path, "phone"),
                "phone",
                "must be 6 to 20 digits, spaces, hyphens or brackets, optionally after a +"
            )
        }
        if let email {
            let parts = email.split(separator: "@", omittingEmptySubsequences: false)
            let ok =
                parts.count == 2 && parts.allSatisfy { !$0.isEmpty } && email.unicodeScalars.count <= 254
                && !email.unicodeScalars.contains { $0.properties.isWhitespace || $0.properties.generalCategory == .control }
            c.check(ok, Path.join(path, "email"), "email", "must be an e-mail address: one @ with text on both sides, no spaces")
        }
    }
}

/// Where something was observed. A description rather than an address, because the place
/// may be a car park, a field or a web site.
public struct Place: Codable, Sendable, Equatable {
    public var description: String
    /// CBS municipality code.
    public var municipality: String?

    public init(description: String, municipality: String? = nil) {
        self.description = description
        self.municipality = municipality
    }

    func check(_ path: String, _ c: inout Checks) {
        c.text(description, Path.join(path, "description"))
        c.municipality(municipality, Path.join(path, "municipality"))
    }
}
