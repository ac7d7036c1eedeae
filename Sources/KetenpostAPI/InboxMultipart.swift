import Foundation
import KetenpostModel

extension API {
    /// One leased message of an inbox batch in the binary form: the sealed message's DER as the
    /// relay stored it, without base64.
    public struct InboxDelivery: Sendable, Equatable {
        public var id: UUID
        /// The sender, as the relay authenticated it (also inside the signed message).
        public var from: String
        /// The message type from the routing header.
        public var type: String
        /// Present this token when acknowledging.
        public var leaseToken: String
        public var leaseExpiresAt: Date
        /// 1 for the first delivery.
        public var attempt: Int
        /// The sealed message (outer SignedData DER).
        public var message: Data

        public init(id: UUID, from: String, type: String, leaseToken: String, leaseExpiresAt: Date, attempt: Int, message: Data) {
            self.id = id
            self.from = from
            self.type = type
            self.leaseToken = leaseToken
            self.leaseExpiresAt = leaseExpiresAt
            self.attempt = attempt
            self.message = message
        }

        /// A message of the JSON form, its base64 decoded; a message that is not base64 comes
        /// as no bytes (opening it then fails for that message alone, envelope.malformed).
        public init(_ item: InboxMessage) {
            self.init(
                id: item.id,
                from: item.from,
                type: item.type,
                leaseToken: item.leaseToken,
                leaseExpiresAt: item.leaseExpiresAt,
                attempt: item.attempt,
                message: Data(base64Encoded: item.message) ?? Data()
            )
        }
    }
}

extension API.InboxMessage {
    /// The JSON form of a delivery: the sealed message in base64.
    public init(_ delivery: API.InboxDelivery) {
        self.init(
            id: delivery.id,
            from: delivery.from,
            type: delivery.type,
            leaseToken: delivery.leaseToken,
            leaseExpiresAt: delivery.leaseExpiresAt,
            attempt: delivery.attempt,
            message: delivery.message.base64EncodedString()
        )
    }
}

/// The inbox as `multipart/mixed` (RFC 2046), for partners that ask for it with
/// `Accept: multipart/mixed`: one `application/cms` part per message, its bytes as they are,
/// and the lease data in the part's headers (the names below). JSON with base64 stays the
/// default, for partners with curl and a JSON tool; the binary form spares both sides the
/// base64 and the JSON string escaping of every sealed message. An empty batch is
/// `204 No Content` (a multipart body needs at least one part).
///
/// ```
/// --BOUNDARY
/// Content-Type: application/cms
/// Content-Length: 10342
/// Ketenpost-Message-Id: 7f1c…
/// Ketenpost-From: gemeente-utrecht
/// Ketenpost-Type: referral
/// Ketenpost-Lease-Token: 4f0c…
/// Ketenpost-Lease-Expires-At: 2026-12-07T10:00:00Z
/// Ketenpost-Attempt: 1
///
/// (DER)
/// --BOUNDARY--
/// ```
/// Lines end in CRLF. The boundary is random and never occurs in a part's bytes.
public enum InboxMultipart {
    public static let mediaType = "multipart/mixed"
    public static let partType = "application/cms"

    enum Field {
        static let contentType = "content-type"
        static let contentLength = "content-length"
        static let id = "ketenpost-message-id"
        static let from = "ketenpost-from"
        static let type = "ketenpost-type"
        static let leaseToken = "ketenpost-lease-token"
        static let leaseExpiresAt = "ketenpost-lease-expires-at"
        static let attempt = "ketenpost-attempt"
    }

    /// The most a client parses: 100 messages of the relay's largest size, and then some.
    public static let maximumParts = 100
    static let maximumHeaderBytes = 4096

    // MARK: Negotiation

    /// Whether an `Accept` header asks for the binary form: `multipart/mixed` listed with a
    /// q-value above 0 and not below that of `application/json` (or `application/*`, `*/*`).
    /// Anything else, and no header, gets JSON, as before.
    public static func isPreferred(byAccept accept: String?) -> Bool {
        guard let accept else { return false }
        var multipart: Double?
        var json: Double?
        for range in accept.split(separator: ",") {
            let parts = range.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let type = parts.first else { continue }
            var q = 1.0
            for parameter in parts.dropFirst() where parameter.hasPrefix("q=") {
                q = Double(parameter.dropFirst(2)) ?? 0
            }
            switch type {
            case mediaType: multipart = max(multipart ?? 0, q)
            case "application/json": json = max(json ?? 0, q)
            default: break
            }
        }
        guard let multipart, multipart > 0 else { return false }
        return multipart >= (json ?? 0)
    }

    // MARK: Writing (the relay)

    /// A boundary that occurs in none of `bodies`: 32 random hex digits, drawn again in the
    /// (never expected) case that a body contains it.
    public static func boundary(avoiding bodies: [Data]) -> String {
        while true {
            var generator = SystemRandomNumberGenerator()
            let candidate =
                "ketenpost-"
                + (0..<2).map { _ in
                    let hex = String(generator.next() as UInt64, radix: 16)
                    return String(repeating: "0", count: 16 - hex.count) + hex
                }.joined()
            let marker = Array(("--" + candidate).utf8)
            if !bodies.contains(where: { Self.contains(marker, in: $0) }) { return candidate }
        }
    }

    /// The `Content-Type` of a response with `boundary`.
    public static func contentType(boundary: String) -> String { "\(mediaType); boundary=\(boundary)" }

    /// The delimiter and headers of one part, to be followed by the message's bytes. The
    /// header values are the relay's own (ids, partner ids, tokens, dates, numbers): none holds
    /// a line break.
    public static func partHead(_ delivery: API.InboxDelivery, boundary: String, first: Bool) -> String {
        (first ? "" : "\r\n") + "--\(boundary)\r\n"
            + "Content-Type: \(partType)\r\n"
            + "Content-Length: \(delivery.message.count)\r\n"
            + "Ketenpost-Message-Id: \(delivery.id.uuidString.lowercased())\r\n"
            + "Ketenpost-From: \(delivery.from)\r\n"
            + "Ketenpost-Type: \(delivery.type)\r\n"
            + "Ketenpost-Lease-Token: \(delivery.leaseToken)\r\n"
            + "Ketenpost-Lease-Expires-At: \(KetenpostJSON.dateText(delivery.leaseExpiresAt))\r\n"
            + "Ketenpost-Attempt: \(delivery.attempt)\r\n\r\n"
    }

    /// The close delimiter after the last part.
    public static func closing(boundary: String) -> String { "\r\n--\(boundary)--\r\n" }

    /// A whole body (tests, fuzzing; the relay streams the parts).
    public static func encode(_ deliveries: [API.InboxDelivery], boundary: String) -> Data {
        var data = Data()
        for (index, delivery) in deliveries.enumerated() {
            data.append(contentsOf: partHead(delivery, boundary: boundary, first: index == 0).utf8)
            data.append(delivery.message)
        }
        // With no part before it, the close delimiter starts the body (no line break first).
        data.append(contentsOf: closing(boundary: boundary).utf8.dropFirst(deliveries.isEmpty ? 2 : 0))
        return data
    }

    // MARK: Reading (the partner)

    /// The boundary parameter of a `multipart/mixed` content type, nil for any other type.
    public static func boundary(ofContentType contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces) }
        guard parts.first?.lowercased() == mediaType else { return nil }
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1)
            guard pair.count == 2, pair[0].trimmingCharacters(in: .whitespaces).lowercased() == "boundary" else { continue }
            var value = pair[1].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            // RFC 2046: 1 to 70 characters.
            guard (1...70).contains(value.utf8.count) else { return nil }
            return value
        }
        return nil
    }

    /// Why a body could not be read; the caller turns it into its error.
    public struct Malformed: Error, Equatable, CustomStringConvertible {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Parses a body written by `encode`/the relay: every part must carry all the lease headers
    /// and a `Content-Length`, be followed by the delimiter exactly there, and the body must end
    /// with the close delimiter. Strict, as everything else a partner reads from the relay; by
    /// the length, so a part's bytes are never scanned.
    public static func parse(_ body: Data, boundary: String) throws(Malformed) -> [API.InboxDelivery] {
        let bytes = [UInt8](body)
        let dashBoundary = Array(("--" + boundary).utf8)
        let delimiter = Array(("\r\n--" + boundary).utf8)
        guard bytes.starts(with: dashBoundary) else { throw Malformed("the body does not start with the boundary") }
        var position = dashBoundary.count
        var deliveries: [API.InboxDelivery] = []
        while true {
            // After a delimiter: "--" closes, CRLF opens a part.
            if bytes[position...].starts(with: [0x2D, 0x2D]) {
                let rest = bytes[(position + 2)...]
                guard rest.isEmpty || rest.elementsEqual([0x0D, 0x0A]) else { throw Malformed("bytes after the close delimiter") }
                return deliveries
            }
            guard bytes[position...].starts(with: [0x0D, 0x0A]) else { throw Malformed("a delimiter not followed by a line break") }
            position += 2
            guard deliveries.count < maximumParts else { throw Malformed("more than \(maximumParts) parts") }
            guard let headerEnd = find([0x0D, 0x0A, 0x0D, 0x0A], in: bytes[position..<min(bytes.count, position + maximumHeaderBytes)])
            else {
                throw Malformed("a part without the blank line after its headers")
            }
            let headers = try parseHeaders(bytes[position..<headerEnd])
            let start = headerEnd + 4
            guard let length = headers[Field.contentLength].flatMap({ Int($0) }), length >= 0, length <= bytes.count - start else {
                throw Malformed("a part without a content-length within the body")
            }
            let end = start + length
            guard bytes[end...].starts(with: delimiter) else {
                throw Malformed("a part not followed by the delimiter at its content-length")
            }
            deliveries.append(try delivery(headers, body: Data(bytes[start..<end])))
            position = end + delimiter.count
        }
    }

    private static func parseHeaders(_ block: ArraySlice<UInt8>) throws(Malformed) -> [String: String] {
        guard let text = String(validating: block, as: UTF8.self) else { throw Malformed("part headers that are not UTF-8") }
        var headers: [String: String] = [:]
        for line in text.components(separatedBy: "\r\n") {
            guard let colon = line.firstIndex(of: ":") else { throw Malformed("a part header line without a colon") }
            let name = line[..<colon].trimmingCharacters(in: .whitespaces).lowercased()
            let value = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            guard !name.isEmpty, !value.contains(where: \.isNewline) else { throw Malformed("a malformed part header") }
            guard headers.updateValue(value, forKey: name) == nil else { throw Malformed("the part header \(name) twice") }
        }
        return headers
    }

    private static func delivery(_ headers: [String: String], body: Data) throws(Malformed) -> API.InboxDelivery {
        func field(_ name: String) throws(Malformed) -> String {
            guard let value = headers[name], !value.isEmpty else { throw Malformed("a part without \(name)") }
            return value
        }
        guard try field(Field.contentType).lowercased() == partType else { throw Malformed("a part that is not \(partType)") }
        guard let id = UUID(uuidString: try field(Field.id)) else { throw Malformed("a part whose message id is not a UUID") }
        guard let expires = KetenpostJSON.date(fromText: try field(Field.leaseExpiresAt)) else {
            throw Malformed("a part whose lease expiry is not an RFC 3339 date-time")
        }
        guard let attempt = Int(try field(Field.attempt)), attempt >= 1 else { throw Malformed("a part whose attempt is not a count") }
        return API.InboxDelivery(
            id: id,
            from: try field(Field.from),
            type: try field(Field.type),
            leaseToken: try field(Field.leaseToken),
            leaseExpiresAt: expires,
            attempt: attempt,
            message: body
        )
    }

    /// The first index of `needle` in `bytes` (a header block: a few hundred bytes).
    private static func find(_ needle: [UInt8], in bytes: ArraySlice<UInt8>) -> Int? {
        guard bytes.count >= needle.count else { return nil }
        for index in bytes.startIndex...(bytes.endIndex - needle.count) where bytes[index..<(index + needle.count)].elementsEqual(needle) {
            return index
        }
        return nil
    }

    /// Whether `data` contains `needle`: memchr to each candidate first byte, then memcmp (the
    /// relay checks every sealed message for the boundary; a byte loop cost more than the base64 it replaces).
    public static func contains(_ needle: [UInt8], in data: Data) -> Bool {
        guard let first = needle.first, data.count >= needle.count else { return false }
        return data.withUnsafeBytes { (raw: UnsafeRawBufferPointer) -> Bool in
            guard let base = raw.baseAddress else { return false }
            let lastStart = raw.count - needle.count
            var offset = 0
            while offset <= lastStart {
                guard let hit = memchr(base + offset, Int32(first), lastStart - offset + 1) else { return false }
                let index = base.distance(to: UnsafeRawPointer(hit))
                if memcmp(base + index, needle, needle.count) == 0 { return true }
                offset = index + 1
            }
            return false
        }
    }
}
