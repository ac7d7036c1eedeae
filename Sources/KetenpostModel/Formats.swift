import Foundation

/// Byte-level pattern checks: identifiers are ASCII by definition, and checking UTF-8 bytes
/// rejects look-alike Unicode (full-width digits, Cyrillic letters) that a regex class might accept.
enum ASCII {
    static func isDigit(_ b: UInt8) -> Bool { b >= 0x30 && b <= 0x39 }
    static func isLower(_ b: UInt8) -> Bool { b >= 0x61 && b <= 0x7A }
    static func isUpper(_ b: UInt8) -> Bool { b >= 0x41 && b <= 0x5A }
    static func isLetterOrDigit(_ b: UInt8) -> Bool { isDigit(b) || isLower(b) || isUpper(b) }
    static func isLowerHex(_ b: UInt8) -> Bool { isDigit(b) || (b >= 0x61 && b <= 0x66) }

    /// Every byte satisfies `rest`, except the first, which satisfies `first` when given.
    static func matches(_ s: String, count: ClosedRange<Int>, first: ((UInt8) -> Bool)? = nil, rest: (UInt8) -> Bool) -> Bool {
        let bytes = s.utf8
        guard count.contains(bytes.count), let head = bytes.first, first?(head) ?? rest(head) else { return false }
        return bytes.dropFirst().allSatisfy(rest)
    }

    static func digits(_ s: String, count: Int) -> [Int]? {
        let bytes = Array(s.utf8)
        guard bytes.count == count, bytes.allSatisfy(isDigit) else { return nil }
        return bytes.map { Int($0 - 0x30) }
    }
}

/// Proleptic Gregorian arithmetic without `Calendar`, so that parsing is exact, locale-free
/// and identical on every platform (Howard Hinnant's days-from-civil algorithm).
enum Civil {
    static func isLeap(_ y: Int) -> Bool { (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 }

    static func daysIn(month m: Int, year y: Int) -> Int {
        switch m {
        case 2: isLeap(y) ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let mp = (month + 9) % 12
        let doy = (153 * mp + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    static func date(fromDays z0: Int) -> (year: Int, month: Int, day: Int) {
        let z = z0 + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (month <= 2 ? 1 : 0), month, day)
    }

    /// Reads a fixed-width number of ASCII digits.
    static func number(_ b: ArraySlice<UInt8>) -> Int? {
        guard !b.isEmpty, b.allSatisfy(ASCII.isDigit) else { return nil }
        return b.reduce(0) { $0 * 10 + Int($1 - 0x30) }
    }

    static func isValid(year: Int, month: Int, day: Int) -> Bool {
        (1...12).contains(month) && (1...daysIn(month: month, year: year)).contains(day)
    }
}

/// A date without time (`YYYY-MM-DD`), as used for birth dates and observation days.
struct CalendarDate: Comparable {
    let year: Int, month: Int, day: Int

    init?(_ s: String) {
        let b = Array(s.utf8)
        guard b.count == 10, b[4] == UInt8(ascii: "-"), b[7] == UInt8(ascii: "-"),
            let y = Civil.number(b[0..<4]), let m = Civil.number(b[5..<7]), let d = Civil.number(b[8..<10]),
            y >= 1900, Civil.isValid(year: y, month: m, day: d)
        else { return nil }
        (year, month, day) = (y, m, d)
    }

    init(year: Int, month: Int, day: Int) { (self.year, self.month, self.day) = (year, month, day) }

    /// Today as the Dutch chain partners see it (Europe/Amsterdam), since they write these dates.
    static func today(now: Date) -> CalendarDate {
        let offset = TimeZone(identifier: "Europe/Amsterdam")?.secondsFromGMT(for: now) ?? 3600
        let seconds = RFC3339.wholeSeconds(now) + Int64(offset)
        let (y, m, d) = Civil.date(fromDays: Int(seconds.floorDiv(86_400)))
        return CalendarDate(year: y, month: m, day: d)
    }

    static func < (a: CalendarDate, b: CalendarDate) -> Bool {
        (a.year, a.month, a.day) < (b.year, b.month, b.day)
    }
}

/// RFC 3339 date-times. Written by hand because the canonical form must be byte-stable
/// (it is signed) and because accepted input must be exactly RFC 3339, nothing looser.
enum RFC3339 {
    /// Seconds since 1970 for years 0001-9999, the range the format can express.
    static let range: ClosedRange<Int64> = -62_135_596_800...253_402_300_799

    static func wholeSeconds(_ date: Date) -> Int64 {
        let t = date.timeIntervalSince1970.rounded(.down)
        guard t.isFinite else { return t > 0 ? range.upperBound : range.lowerBound }
        return Int64(max(Double(range.lowerBound), min(Double(range.upperBound), t)))
    }

    /// `2026-11-29T10:00:00Z`: UTC, whole seconds (sub-second precision is dropped; dates
    /// beyond years 0001-9999 are clamped rather than crashing the encoder).
    static func format(_ date: Date) -> String {
        let t = wholeSeconds(date)
        let days = t.floorDiv(86_400)
        let secs = Int(t - days * 86_400)
        let (y, m, d) = Civil.date(fromDays: Int(days))
        func pad(_ v: Int, _ width: Int) -> String {
            let s = String(v)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secs / 3600, 2)):\(pad(secs / 60 % 60, 2)):\(pad(secs % 60, 2))Z"
    }

    /// Accepts `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`; `T` and `Z` in either case, as RFC 3339 allows.
    static func parse(_ s: String) -> Date? {
        let b = Array(s.utf8)
        func at(_ i: Int, _ chars: String) -> Bool { i < b.count && chars.utf8.contains(b[i]) }
        guard b.count >= 20, b.count <= 40, at(4, "-"), at(7, "-"), at(10, "Tt"), at(13, ":"), at(16, ":"),
            let year = Civil.number(b[0..<4]), let month = Civil.number(b[5..<7]), let day = Civil.number(b[8..<10]),
            let hour = Civil.number(b[11..<13]), let minute = Civil.number(b[14..<16]), let second = Civil.number(b[17..<19]),
            year >= 1, Civil.isValid(year: year, month: month, day: day), hour < 24, minute < 60, second < 60
        else { return nil }
        var i = 19
        var fraction = 0.0
        if at(i, ".") {
            let start = i + 1
            i = start
            while i < b.count, ASCII.isDigit(b[i]) { i += 1 }
            guard i > start, i - start <= 9, let digits = String(bytes: b[start..<i], encoding: .ascii),
                let value = Double("0." + digits)
            else { return nil }
            fraction = value
        }
        var offset = 0
        if at(i, "Zz"), i + 1 == b.count {
            offset = 0
        } else if at(i, "+-"), i + 6 == b.count, at(i + 3, ":"),
            let oh = Civil.number(b[(i + 1)..<(i + 3)]), let om = Civil.number(b[(i + 4)..<(i + 6)]), oh < 24, om < 60
        {
            offset = (oh * 60 + om) * 60 * (b[i] == UInt8(ascii: "-") ? -1 : 1)
        } else {
            return nil
        }
        let seconds = Civil.days(year: year, month: month, day: day) * 86_400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: Double(seconds) + fraction)
    }
}

extension Int64 {
    func floorDiv(_ d: Int64) -> Int64 {
        let q = self / d
        return (self % d != 0 && (self < 0) != (d < 0)) ? q - 1 : q
    }
}
