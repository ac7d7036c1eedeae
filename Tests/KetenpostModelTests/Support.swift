import Foundation
import Testing
@testable import KetenpostModel

/// The examples are dated around 2026-11-28, so "not in the future" and "current year" use a fixed clock.
let testNow = Date(timeIntervalSince1970: 1_795_953_600) // 2026-11-29T12:00:00Z

enum Examples {
    static let directory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("config/examples")

    static func data(_ type: MessageType) throws -> Data {
        try Data(contentsOf: directory.appendingPathComponent("\(type.rawValue).json"))
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
