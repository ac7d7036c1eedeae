import AsyncHTTPClient
import Foundation
import KetenpostAPI
import KetenpostCrypto
import Logging
import NIOCore
import ServiceLifecycle

/// Delivers webhook notifications in order of their making: POST with
/// `Ketenpost-Signature: t=UNIXTIME,v1=HEX`, where HEX is HMAC-SHA256 under the shared secret of
/// `UNIXTIME.BODY` (the receiver checks it and that the time is recent, against replays). A
/// failure (not 2xx, or no answer in 10 s) is retried after 1, 2, 4 … seconds, at most 5
/// minutes apart, until `giveUpAfter`; the status page shows what is failing.
public struct DeskWebhooks: Sendable {
    let core: DeskCore
    let url: String
    let secret: Data
    let giveUpAfter: TimeInterval
    let client: HTTPClient

    public init(core: DeskCore, client: HTTPClient = .shared) throws(KetenpostError) {
        let configuration = core.configuration.webhooks
        guard let url = configuration.url, let file = configuration.secretFile else {
            throw KetenpostError(.configInvalid, "webhooks.url and webhooks.secretFile are both needed for webhooks.")
        }
        guard let text = try? String(contentsOfFile: file, encoding: .utf8),
            let line = text.split(separator: "\n", omittingEmptySubsequences: false).first, line.count >= 32
        else {
            throw KetenpostError(
                .configInvalid,
                "webhooks.secretFile: \(file) could not be read or its first line is shorter than 32 characters."
            )
        }
        self.core = core
        self.url = url
        secret = Data(line.utf8)
        giveUpAfter = configuration.giveUpAfter
        self.client = client
    }

    /// The signature header's value for `body` at `time`.
    public static func signature(secret: Data, body: Data, at time: Date) -> String {
        let stamp = String(Int(time.timeIntervalSince1970))
        let mac = Digest.hmacSHA256(key: secret, Data("\(stamp).".utf8) + body)
        return "t=\(stamp),v1=\(mac.hexString)"
    }

    /// Delivers what is due; returns how many were delivered.
    @discardableResult
    public func deliverDue() async -> Int {
        guard let pending = try? core.store.pendingWebhookEvents() else { return 0 }
        var delivered = 0
        for event in pending {
            // In order: nothing overtakes a notification that waits for its retry.
            guard let seq = event.seq, event.nextAttemptAt <= DeskStore.milliseconds(core.clock()) else { break }
            let body = event.body
            var request = HTTPClientRequest(url: url)
            request.method = .POST
            request.headers.add(name: "Content-Type", value: "application/json")
            request.headers.add(name: "Ketenpost-Event-Id", value: String(seq))
            request.headers.add(name: "Ketenpost-Signature", value: Self.signature(secret: secret, body: body, at: core.clock()))
            request.body = .bytes(ByteBuffer(bytes: body))
            var failure: String?
            do {
                let response = try await client.execute(request, timeout: .seconds(10))
                _ = try? await response.body.collect(upTo: 64 * 1024)
                if !(200..<300).contains(response.status.code) { failure = "http-\(response.status.code)" }
            } catch {
                failure = "network"
            }
            let now = core.clock()
            guard let failure else {
                core.store.webhookDelivered(seq, at: now)
                delivered += 1
                continue
            }
            let age = now.timeIntervalSince1970 - Double(event.createdAt) / 1000
            let pause = min(pow(2, Double(event.attempts)), 300)
            core.store.webhookFailed(seq, error: failure, retryAt: age < giveUpAfter ? now.addingTimeInterval(pause) : nil, at: now)
            core.logger.notice("webhook not delivered", metadata: ["webhook.event": "\(seq)", "error.code": "\(failure)"])
            // Later notifications wait too: the receiver gets them in order once it is back.
            break
        }
        return delivered
    }
}

struct DeskWebhookService: Service {
    let webhooks: DeskWebhooks

    func run() async throws {
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                await webhooks.deliverDue()
                try? await Task.sleep(for: .milliseconds(500))
            }
        }
    }
}
