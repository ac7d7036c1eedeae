import Foundation
import Testing

@testable import KetenpostModel

@Suite struct JSONTests {
    private struct Stamp: Codable, Equatable { var at: Date }

    private func decodeDate(_ text: String) -> Date? {
        try? KetenpostJSON.decoder().decode(Stamp.self, from: Data("{\"at\":\"\(text)\"}".utf8)).at
    }

    @Test func encoderIsCanonical() throws {
        let data = try KetenpostJSON.encoder().encode(["z": "a/b", "a": "é"])
        #expect(String(decoding: data, as: UTF8.self) == #"{"a":"é","z":"a/b"}"#)
        let stamp = try KetenpostJSON.encoder().encode(Stamp(at: Date(timeIntervalSince1970: 1_795_946_400.75)))
        #expect(String(decoding: stamp, as: UTF8.self) == #"{"at":"2026-11-29T10:00:00Z"}"#)
    }

    @Test func dateFormatting() {
        #expect(RFC3339.format(Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: 951_782_400)) == "2000-02-29T00:00:00Z")
        #expect(RFC3339.format(Date(timeIntervalSince1970: .infinity)) == "9999-12-31T23:59:59Z")
        #expect(RFC3339.format(.distantPast).hasPrefix("0001-"))
    }

    @Test func dateParsing() {
        let expected = Date(timeIntervalSince1970: 1_795_946_400)  // 2026-11-29T10:00:00Z
        #expect(decodeDate("2026-11-29T10:00:00Z") == expected)
        #expect(decodeDate("2026-11-29t10:00:00z") == expected)
        #expect(decodeDate("2026-11-29T11:00:00+01:00") == expected)
        #expect(decodeDate("2026-11-29T05:30:00-04:30") == expected)
        // Fractions are accepted and cut to whole seconds, as the canonical encoding writes them.
        #expect(decodeDate("2026-11-29T10:00:00.250Z") == expected)
        #expect(decodeDate("2026-11-29T10:00:00.999Z") == expected)
        #expect(decodeDate("2028-02-29T00:00:00Z") != nil)
        for bad in [
            "2026-11-29T10:00:00", "2026-11-29 10:00:00Z", "2026-11-29T24:00:00Z", "2027-02-29T00:00:00Z",
            "2026-11-29T10:00:00.Z", "2026-11-29T10:00:00+0100", "2026-11-29", "２０２６-11-29T10:00:00Z", "",
        ] {
            #expect(decodeDate(bad) == nil, "\(bad)")
        }
    }

    @Test func calendarDates() {
        #expect(CalendarDate("2024-02-29") != nil)
        #expect(CalendarDate("2023-02-29") == nil)
        #expect(CalendarDate("1899-12-31") == nil)
        #expect(CalendarDate("2026-1-01") == nil)
        #expect(CalendarDate.today(now: testNow) == CalendarDate(year: 2026, month: 11, day: 29))
        // 23:30 UTC on 31 December is already New Year in Amsterdam.
        #expect(CalendarDate.today(now: Date(timeIntervalSince1970: 1_798_759_800)) == CalendarDate(year: 2027, month: 1, day: 1))
    }

    @Test func uuidsAreWrittenInLowercaseAndReadInAnyCase() throws {
        let header = try Examples.content(.signal).header
        let text = String(decoding: header.encoded(), as: UTF8.self)
        #expect(text.contains(#""id":"6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e""#))
        let upper = text.replacingOccurrences(of: "6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e", with: "6F1C2D3E-4A5B-4C6D-8E7F-901A2B3C4D5E")
        #expect(try RoutingHeader.decode(from: Data(upper.utf8)) == header)
    }

    @Test func decodeStrictWorksForOtherTypes() {
        struct Outer: Codable {
            var header: RoutingHeader
            var envelope: String
        }
        let json = #"{"envelope": "TUlJ", "header": {"id": "x"}, "extra": 1}"#
        let error = failure { _ = try KetenpostJSON.decodeStrict(Outer.self, from: Data(json.utf8), path: "outer") }
        #expect(error?.contains(path: "outer.header.id", rule: "uuid") == true, "\(String(describing: error))")
    }

    @Test func unknownKeysAreAllReportedWithSafePaths() {
        let json = #"{"at": "2026-11-29T10:00:00Z", "b": 1, "Jan Jansen": 2}"#
        let error = failure { _ = try KetenpostJSON.decodeStrict(Stamp.self, from: Data(json.utf8), path: "") }
        #expect(error?.issues.map { $0.path } == ["<key>", "b"])
        #expect(error?.issues.allSatisfy { $0.rule == "unknown-field" } == true)
    }
}

extension JSONTests {
    /// JSONSerialization keeps the last duplicate and JSONDecoder the first; neither may decide.
    @Test func duplicateKeysAreRefused() throws {
        let cases: [(String, String)] = [
            (#"{"header": {"to": "a", "to": "b"}}"#, "header.to"),
            (#"{"payload": {"x": [{"a": 1}, {"b": 1, "b": 2}]}}"#, "payload.x[1].b"),
            (#"{"payload": {"notes": null, "n\u006ftes": "x"}}"#, "payload.notes"),
            (#"{"a": {"k": 1}, "b": {"k": 1}, "a": 2}"#, "a"),
            (#"{"s": "{\"k\": 1, \"k\": 2}", "t": ["\"", "k"], "s": 1}"#, "s"),
        ]
        for (json, path) in cases {
            let error = failure { _ = try SealedContent.decode(from: Data(json.utf8)) }
            #expect(
                error?.issues == [ValidationIssue(path: path, rule: "duplicate-key", message: "occurs more than once in its object")],
                "\(json): \(String(describing: error))"
            )
        }
        #expect(DuplicateKeys.first(in: Data(#"{"a": {"k": 1}, "b": {"k": [1, {"k": 2}]}}"#.utf8), path: "") == nil)
        for type in MessageType.allCases {
            #expect(DuplicateKeys.first(in: try Examples.data(type), path: "") == nil)
        }
    }
}
