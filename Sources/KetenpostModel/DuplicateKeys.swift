import Foundation

/// Finds the first object key that occurs twice in the same object.
///
/// Foundation disagrees with itself here (JSONSerialization keeps the last duplicate,
/// JSONDecoder the first), and so do other tools such as jq: a header with two `to` keys could
/// be routed by one reading and checked by another. Refusing duplicates removes the ambiguity.
/// Expects syntactically valid JSON (it runs after JSONSerialization has accepted the bytes).
enum DuplicateKeys {
    private enum Frame {
        case object(keys: Set<String>, current: String?, expectKey: Bool)
        case array(index: Int)
    }

    static func first(in data: Data, path prefix: String) -> String? {
        let bytes = [UInt8](data)
        var stack: [Frame] = []
        var i = 0

        func path() -> String {
            stack.reduce(prefix) { path, frame in
                switch frame {
                case .object(_, let current, _): current.map { Path.join(path, Path.safeKey($0)) } ?? path
                case .array(let index): Path.index(path, index)
                }
            }
        }

        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"): stack.append(.object(keys: [], current: nil, expectKey: true))
            case UInt8(ascii: "["): stack.append(.array(index: 0))
            case UInt8(ascii: "}"), UInt8(ascii: "]"): _ = stack.popLast()
            case UInt8(ascii: ","):
                switch stack.last {
                case .object(let keys, let current, _): stack[stack.count - 1] = .object(keys: keys, current: current, expectKey: true)
                case .array(let index): stack[stack.count - 1] = .array(index: index + 1)
                case nil: break
                }
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                if case .object(var keys, _, true) = stack.last {
                    let token = bytes[start...min(i, bytes.count - 1)]
                    // Escapes (`\u0074o` is `to`) are rare in keys; only then pay for a real parse.
                    let key =
                        !token.contains(UInt8(ascii: "\\"))
                        ? String(decoding: token.dropFirst().dropLast(), as: UTF8.self)
                        : (try? JSONSerialization.jsonObject(with: Data(token), options: .fragmentsAllowed)) as? String ?? ""
                    let fresh = keys.insert(key).inserted
                    stack[stack.count - 1] = .object(keys: keys, current: key, expectKey: false)
                    if !fresh { return path() }
                }
            default: break
            }
            i += 1
        }
        return nil
    }
}
