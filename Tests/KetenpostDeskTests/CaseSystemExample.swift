import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A case system's side of the desk API.
struct KetenpostDeskClient: Sendable {
    let desk: String  // e.g. http://127.0.0.1:8080
    let token: String  // kpd_…
    var http: HTTPClient = .shared

    struct Failure: Error {
        let status: Int
        let body: String
    }

    /// Sends a message; `key` names it for good (store it with the case before calling).
    func send(_ request: [String: Any], key: String) async throws -> String {
        let answer = try await call(.POST, "/api/v1/messages", body: request, key: key)
        return answer["id"] as? String ?? ""
    }

    /// The delivery state and, once there, the business answer.
    func status(_ id: String) async throws -> [String: Any] {
        try await call(.GET, "/api/v1/messages/\(id)")
    }

    /// Received messages after `cursor`, waiting up to `wait` seconds for one.
    func inbox(after cursor: String, wait: Int = 25) async throws -> (messages: [[String: Any]], cursor: String) {
        let answer = try await call(.GET, "/api/v1/inbox?after=\(cursor)&wait=\(wait)")
        return (answer["messages"] as? [[String: Any]] ?? [], answer["cursor"] as? String ?? cursor)
    }

    /// Answers a received intake notice or referral.
    func answer(_ id: String, payload: [String: Any], key: String) async throws -> String {
        let answer = try await call(.POST, "/api/v1/inbox/\(id)/answer", body: ["payload": payload], key: key)
        return answer["id"] as? String ?? ""
    }

    private func call(_ method: HTTPMethod, _ path: String, body: [String: Any]? = nil, key: String? = nil) async throws -> [String: Any] {
        var request = HTTPClientRequest(url: desk + path)
        request.method = method
        request.headers.add(name: "Authorization", value: "Bearer \(token)")
        if let key { request.headers.add(name: "Idempotency-Key", value: key) }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        // A timeout is safe to retry: the same key never sends twice.
        let response = try await http.execute(request, timeout: .seconds(90))
        let bytes = try await response.body.collect(upTo: 16 << 20)
        guard (200..<300).contains(response.status.code) else {
            throw Failure(status: Int(response.status.code), body: String(buffer: bytes))
        }
        return try JSONSerialization.jsonObject(with: Data(buffer: bytes)) as? [String: Any] ?? [:]
    }
}
