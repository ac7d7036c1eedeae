import Foundation

/// Partner ids appear in URLs, file names and log lines, so they are restricted to a safe alphabet.
public enum PartnerID {
    /// `^[a-z0-9][a-z0-9-]{1,62}$`
    public static func isValid(_ s: String) -> Bool {
        ASCII.matches(s, count: 2...63, first: { ASCII.isLower($0) || ASCII.isDigit($0) }) {
            ASCII.isLower($0) || ASCII.isDigit($0) || $0 == UInt8(ascii: "-")
        }
    }
}

/// Dutch public identifiers. Checking them at the edge catches typos before a message about a
/// real person is routed under the wrong number.
public enum Identifiers {
    /// Organisatie-identificatienummer: 20 digits.
    public static func isValidOIN(_ s: String) -> Bool { ASCII.digits(s, count: 20) != nil }

    /// Chamber of Commerce (KvK) number: 8 digits.
    public static func isValidKvK(_ s: String) -> Bool { ASCII.digits(s, count: 8) != nil }

    /// Burgerservicenummer: 9 digits passing the eleven-test (9a+8b+…+2h−1i divisible by 11), not all zero.
    public static func isValidBSN(_ s: String) -> Bool {
        guard let d = ASCII.digits(s, count: 9), d.contains(where: { $0 != 0 }) else { return false }
        let sum = zip(d, [9, 8, 7, 6, 5, 4, 3, 2, -1]).reduce(0) { $0 + $1.0 * $1.1 }
        return sum % 11 == 0
    }

    /// CBS municipality code: `GM` followed by 4 digits, e.g. GM1903 (Eijsden-Margraten).
    public static func isValidCBSMunicipality(_ s: String) -> Bool {
        s.utf8.count == 6 && s.hasPrefix("GM") && ASCII.digits(String(s.dropFirst(2)), count: 4) != nil
    }
}
