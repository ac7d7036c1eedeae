import Foundation
import Testing

@testable import KetenpostModel

/// The examples are dated around 2026-11-28, so "not in the future" and "current year" use a fixed clock.
let testNow = Date(timeIntervalSince1970: 1_795_953_600)  // 2026-11-29T12:00:00Z

enum Examples {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/examples")

    /// The shipped example payloads are payload-only (`seal --in` takes them as they are);
    /// the tests wrap each in a fixed header to get the inner document of an envelope.
    static let headers: [String: String] = [
        "enforcement-signal":
            #"{"id":"5a4e3d2c-1b0a-4f9e-8d7c-6b5a4e3d2c1b","type":"enforcement-signal","from":"gemeente-maastricht","to":"politie-avim-limburg","createdAt":"2026-11-28T15:30:00Z","expiresAt":"2027-02-26T15:30:00Z","priority":"normal","exploitationForm":"labour","region":"GM0935"}"#,
        "intake-notice":
            #"{"id":"c3a9e1f0-2b4d-4e8a-9f6c-7d0b1a2e3f45","type":"intake-notice","from":"politie-avim-limburg","to":"opvang-zuid-limburg","createdAt":"2026-11-29T08:40:00Z","expiresAt":"2026-12-06T08:40:00Z","priority":"urgent","exploitationForm":"criminal"}"#,
        "intake-response":
            #"{"id":"8d2f6b19-5e3c-4a7d-b1e0-4c9a8f7d6e21","type":"intake-response","from":"opvang-zuid-limburg","to":"politie-avim-limburg","createdAt":"2026-11-29T09:10:00Z","expiresAt":"2026-12-06T09:10:00Z","correlationId":"c3a9e1f0-2b4d-4e8a-9f6c-7d0b1a2e3f45","priority":"urgent"}"#,
        "referral":
            #"{"id":"0b7e4a52-93d1-4f6a-a2c8-5d1e7f3b9c04","type":"referral","from":"zorgcoordinatie-zuid-limburg","to":"zorgaanbieder-mondriaan","createdAt":"2026-11-28T09:15:00Z","expiresAt":"2026-12-28T09:15:00Z","priority":"normal","exploitationForm":"sexual","region":"GM1903"}"#,
        "referral-response":
            #"{"id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d","type":"referral-response","from":"zorgaanbieder-mondriaan","to":"zorgcoordinatie-zuid-limburg","createdAt":"2026-11-28T16:00:00Z","expiresAt":"2026-12-28T16:00:00Z","priority":"normal","correlationId":"0b7e4a52-93d1-4f6a-a2c8-5d1e7f3b9c04"}"#,
        "registration":
            #"{"id":"e7d6c5b4-a392-4180-9f6e-5d4c3b2a1908","type":"registration","from":"zorgcoordinatie-zuid-limburg","to":"registratiepunt-mensenhandel","createdAt":"2026-11-28T11:00:00Z","expiresAt":"2027-02-26T11:00:00Z","priority":"normal","exploitationForm":"sexual","region":"GM1903"}"#,
        "signal":
            #"{"id":"6f1c2d3e-4a5b-4c6d-8e7f-901a2b3c4d5e","type":"signal","from":"gemeente-eijsden-margraten","to":"zorgcoordinatie-zuid-limburg","createdAt":"2026-11-27T14:05:00Z","expiresAt":"2027-01-26T14:05:00Z","priority":"normal","exploitationForm":"labour","region":"GM1903"}"#,
    ]

    static func data(_ type: MessageType) throws -> Data {
        let payload = try String(contentsOf: directory.appendingPathComponent("\(type.rawValue).json"), encoding: .utf8)
        return Data("{\"header\":\(headers[type.rawValue]!),\"payload\":\(payload)}".utf8)
    }

    static func content(_ type: MessageType) throws -> SealedContent {
        try SealedContent.decode(from: data(type), now: testNow)
    }

    /// The example with edits applied; each edit is a dotted path (array indexes as numbers)
    /// and a JSON literal, or nil to remove the field.
    static func edited(_ type: MessageType, _ edits: [Edit]) throws -> Data {
        var tree = try JSONSerialization.jsonObject(with: data(type))
        for edit in edits {
            let value = try edit.json.map { try JSONSerialization.jsonObject(with: Data($0.utf8), options: .fragmentsAllowed) }
            tree = set(tree, edit.path.split(separator: ".").map(String.init)[...], value)
        }
        return try JSONSerialization.data(withJSONObject: tree)
    }

    private static func set(_ node: Any, _ path: ArraySlice<String>, _ value: Any?) -> Any {
        guard let key = path.first else { return value ?? NSNull() }
        if var array = node as? [Any], let i = Int(key), array.indices.contains(i) {
            if path.count == 1, value == nil { array.remove(at: i) } else { array[i] = set(array[i], path.dropFirst(), value) }
            return array
        }
        var object = node as? [String: Any] ?? [:]
        if path.count == 1, value == nil {
            object[key] = nil
        } else {
            object[key] = set(object[key] ?? [String: Any](), path.dropFirst(), value)
        }
        return object
    }
}

struct Edit: Sendable, CustomStringConvertible {
    let path: String
    let json: String?
    init(_ path: String, _ json: String?) { (self.path, self.json) = (path, json) }
    var description: String { "\(path)=\(json ?? "<removed>")" }
}

/// The failure thrown by `body`, or nil when it succeeded.
/// (Closures do not infer typed throws yet, so this takes any error and insists on a ValidationFailure.)
func failure(_ body: () throws -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> ValidationFailure? {
    do {
        try body()
        return nil
    } catch let error as ValidationFailure {
        return error
    } catch {
        Issue.record("expected a ValidationFailure, got \(type(of: error))", sourceLocation: sourceLocation)
        return nil
    }
}

func expectRejected(_ data: Data, path: String, rule: String, sourceLocation: SourceLocation = #_sourceLocation) {
    guard let error = failure({ _ = try SealedContent.decode(from: data, now: testNow) }) else {
        Issue.record("expected \(path) (rule: \(rule)) to be rejected, but it was accepted", sourceLocation: sourceLocation)
        return
    }
    #expect(error.contains(path: path, rule: rule), "\(error)", sourceLocation: sourceLocation)
}
