import Foundation
import Testing

@testable import KetenpostModel

/// docs/schemas/TYPE.schema.json and the Swift model must not drift: every example and every
/// model round trip validates with a real JSON Schema validator (python-jsonschema, draft
/// 2020-12), and every payload the model refuses in RuleTests the schemas refuse too, except
/// the few rules JSON Schema cannot state (listed here, and named in the schemas' descriptions).
@Suite struct SchemaTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// Rules only the model checks: the eleven-test, "not in the future" and "up to the current year".
    static func isModelOnly(_ c: RuleCase) -> Bool {
        ["bsn", "not-future"].contains(c.rule) || (c.rule == "range" && c.path == "payload.year" && c.edits.first?.json == "2027")
    }

    /// Payloads that use every optional field (valid for the model), beyond the shipped examples.
    static let fuller: [(MessageType, [Edit])] = [
        (
            .signal,
            [
                Edit(
                    "payload.person",
                    #"{"alias":"M.","givenName":"Mihai","familyName":"P.","dateOfBirth":"1990-04-02","gender":"male","nationality":"ROU","bsn":"111222333"}"#
                )
            ]
        ),
        (.signal, [Edit("payload.legalBasis", #""consent""#), Edit("payload.consent", #""given""#)]),
        // Texts at their limits: 200 characters on one line, 10,000 with line breaks.
        (
            .signal,
            [
                Edit("payload.indicators.0", "\"\(String(repeating: "ë", count: 200))\""),
                Edit("payload.notes", "\"\(String(repeating: "a\\n", count: 5_000))\""),
            ]
        ),
        (.referral, [Edit("payload.notes", #""Tab\tand\nline break""#)]),
        (.intakeNotice, [Edit("payload.dependants", "[]"), Edit("payload.safetyRisks", nil), Edit("payload.medicalNeeds", nil)]),
        (
            .intakeResponse,
            [Edit("payload.outcome", #""declined""#), Edit("payload.reason", #""Vol""#), Edit("payload.arrivalInstructions", nil)]
        ),
        (.enforcementSignal, [Edit("payload.observations", nil)]),
        (
            .referralResponse,
            [
                Edit("payload.outcome", #""declined""#), Edit("payload.startDate", nil), Edit("payload.declineReason", #""other""#),
                Edit("payload.explanation", #""De cliënt verhuist naar een andere regio.""#),
            ]
        ),
    ]

    @Test func schemasAndModelAgree() async throws {
        let work = FileManager.default.temporaryDirectory.appendingPathComponent("ketenpost-schemas-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: work) }
        var valid: [String] = []
        var invalid: [String: RuleCase] = [:]
        func write(_ data: Data, _ name: String) throws -> String {
            let path = work.appendingPathComponent(name).path
            try data.write(to: URL(fileURLWithPath: path))
            return path
        }
        for type in MessageType.allCases {
            // The shipped example as it is, and as the model encodes it after decoding it.
            let example = try Data(contentsOf: Self.root.appendingPathComponent("config/examples/\(type.rawValue).json"))
            valid.append(try write(example, "example-\(type.rawValue).json"))
            let decoded = try Payload.decode(from: example, now: testNow)
            valid.append(try write(decoded.encoded(), "roundtrip-\(type.rawValue).json"))
        }
        for (index, (type, edits)) in Self.fuller.enumerated() {
            let content = try SealedContent.decode(from: try Examples.edited(type, edits), now: testNow)
            valid.append(try write(content.payload.encoded(), "fuller-\(index)-\(type.rawValue).json"))
        }
        for (index, c) in (RuleTests.strict + RuleTests.payload).enumerated() where c.path.hasPrefix("payload") && !Self.isModelOnly(c) {
            let document = try #require(try JSONSerialization.jsonObject(with: try Examples.edited(c.type, c.edits)) as? [String: Any])
            let payload = try JSONSerialization.data(withJSONObject: try #require(document["payload"]))
            invalid[try write(payload, "refused-\(index)-\(c.rule).json")] = c
        }
        #expect(valid.count == 22 && invalid.count > 55)

        let result = try await Self.validate(valid: valid, invalid: invalid.keys.sorted())
        for (path, failure) in result.failures {
            if let c = invalid[path] {
                Issue.record("the model refuses \(c), the schema accepts it")
            } else {
                Issue.record("\(URL(fileURLWithPath: path).lastPathComponent) is valid for the model but not for the schema: \(failure)")
            }
        }
        #expect(result.checked == valid.count + invalid.count, "the validator did not check every file")
        #expect(result.schemas.count == 8, "docs/schemas: \(result.schemas)")
    }

    struct Result: Decodable {
        let checked: Int
        let schemas: [String]
        let failures: [String: Failure]
        struct Failure: Decodable, CustomStringConvertible {
            let expected: String
            let errors: [String]
            var description: String { errors.joined(separator: "; ") }
        }
    }

    /// Runs scripts/validate-payloads.py on a Dispatch thread (it blocks until python is done).
    static func validate(valid: [String], invalid: [String]) async throws -> Result {
        let script = root.appendingPathComponent("scripts/validate-payloads.py").path
        let (status, out, err) = try await withCheckedThrowingContinuation { continuation in
            DispatchQueue.global().async {
                do {
                    let process = Process()
                    process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
                    process.arguments = ["python3", script, "--json", "--valid"] + valid + ["--invalid"] + invalid
                    let stdout = Pipe()
                    let stderr = Pipe()
                    process.standardOutput = stdout
                    process.standardError = stderr
                    try process.run()
                    let out = stdout.fileHandleForReading.readDataToEndOfFile()
                    let err = stderr.fileHandleForReading.readDataToEndOfFile()
                    process.waitUntilExit()
                    continuation.resume(returning: (process.terminationStatus, out, String(decoding: err, as: UTF8.self)))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
        }
        guard let result = try? JSONDecoder().decode(Result.self, from: out) else {
            throw ValidatorUnavailable(message: "scripts/validate-payloads.py exited \(status): \(err.suffix(2000))")
        }
        return result
    }

    struct ValidatorUnavailable: Error, CustomStringConvertible {
        let message: String
        var description: String { message + " (install python3-jsonschema; .ci/run does)" }
    }
}
