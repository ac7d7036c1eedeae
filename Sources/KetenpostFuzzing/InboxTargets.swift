import Foundation
import KetenpostAPI

/// The inbox's binary form as a partner reads it (`InboxMultipart.parse`): the first line of
/// the input is the boundary, the rest the body. Properties: what parses, written again with
/// the same boundary, parses to the same deliveries; and the relay's boundary search
/// (memchr and memcmp over raw bytes) finds exactly what Foundation's search finds.
enum InboxTargets {
    static func multipart(_ data: Data) throws(FuzzFinding) {
        let newline = data.firstIndex(of: 0x0A) ?? data.endIndex
        let boundary = String(decoding: data[data.startIndex..<newline], as: UTF8.self)
        let body = newline < data.endIndex ? Data(data[(newline + 1)...]) : Data()
        let marker = Array(("--" + boundary).utf8)
        guard InboxMultipart.contains(marker, in: body) == (body.range(of: Data(marker)) != nil) else {
            throw FuzzFinding(.inboxMultipart, "search-disagrees", "the boundary search and Foundation's disagree")
        }
        let deliveries: [API.InboxDelivery]
        do {
            deliveries = try InboxMultipart.parse(body, boundary: boundary)
        } catch {
            trace("refused: \(error)")
            return
        }
        trace("parsed \(deliveries.count) part(s)")
        guard deliveries.count <= InboxMultipart.maximumParts else {
            throw FuzzFinding(.inboxMultipart, "too-many-parts", "more parts than the parser allows")
        }
        // Only header values the relay can write survive a second writing unchanged.
        let again = InboxMultipart.encode(deliveries, boundary: boundary)
        guard let reparsed = try? InboxMultipart.parse(again, boundary: boundary), reparsed == deliveries else {
            throw FuzzFinding(.inboxMultipart, "round-trip", "the deliveries, written again, do not parse to the same")
        }
    }
}
