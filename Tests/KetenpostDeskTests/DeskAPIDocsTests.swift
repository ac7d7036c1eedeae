import Foundation
import KetenpostDesk
import Testing
import Yams

/// docs/desk-api.md as a case system's developer would use it: every curl recipe and the Swift
/// client, against two live desks; and docs/desk-openapi.yaml names every route and error code.
@Suite(.serialized) struct DeskAPIDocsTests {
    static func guide() throws -> String {
        try String(contentsOf: Root.url.appendingPathComponent("docs/desk-api.md"), encoding: .utf8)
    }

    static func recipe(_ name: String) throws -> String {
        let text = try guide()
        // Up to the closing fence, which may be indented (a recipe inside a list item).
        guard let start = text.range(of: "# recipe: \(name)\n"), let end = text.range(of: "```", range: start.upperBound..<text.endIndex)
        else { throw CaseSystemExampleFailure(description: "recipe \(name) missing from docs/desk-api.md") }
        return text[start.upperBound..<end.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: "\n")
    }

    static func bash(_ script: String, in folder: URL, env: [String: String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = ["-c", "set -euo pipefail\n" + script]
        process.currentDirectoryURL = folder
        process.environment = ProcessInfo.processInfo.environment.merging(env) { $1 }
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let output = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else { throw CaseSystemExampleFailure(description: "\(script)\nfailed: \(output)") }
        return output
    }

    static func json(_ url: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as? [String: Any] ?? [:]
    }

    @Test func theSwiftExampleIsTheFileTheTestsRun() throws {
        let text = try Self.guide()
        let file = try String(
            contentsOf: Root.url.appendingPathComponent("Tests/KetenpostDeskTests/CaseSystemExample.swift"),
            encoding: .utf8
        )
        #expect(
            text.contains("```swift\n" + file + "```\n<!-- swift-example: end -->"),
            "docs/desk-api.md and CaseSystemExample.swift differ"
        )
    }

    @Test func curlRecipesAndTheSwiftClientWork() async throws {
        try await DeskAPITests.withTwoDesks { h, coordinatorDesk, shelterDesk, zorg, opvang in
            let work = h.work.appendingPathComponent("recipes")
            try FileManager.default.createDirectory(at: work, withIntermediateDirectories: true)
            try DeskAPITests.referral().write(to: work.appendingPathComponent("request.json"))
            try DeskAPITests.body(["payload": try DeskAPITests.example("referral-response")]).write(
                to: work.appendingPathComponent("answer.json")
            )
            let coordinator = ["DESK": zorg.base, "TOKEN": zorg.token]
            let shelter = ["DESK": opvang.base, "TOKEN": opvang.token]
            // curl: send (twice, as after a timeout), follow, receive, answer.
            for _ in 0..<2 {
                _ = try Self.bash(try Self.recipe("api-send"), in: work, env: coordinator.merging(["KEY": "recipe-1"]) { $1 })
            }
            let id = try #require(try Self.json(work.appendingPathComponent("sent.json"))["id"] as? String)
            _ = try Self.bash(try Self.recipe("api-status"), in: work, env: coordinator.merging(["ID": id]) { $1 })
            #expect(try Self.json(work.appendingPathComponent("status.json"))["id"] as? String == id)
            _ = try Self.bash(try Self.recipe("api-inbox"), in: work, env: shelter)
            let inbox = try Self.json(work.appendingPathComponent("inbox.json"))
            #expect((inbox["messages"] as? [[String: Any]])?.map { $0["id"] as? String } == [id])
            _ = try Self.bash(try Self.recipe("api-answer"), in: work, env: shelter.merging(["ID": id]) { $1 })
            // The whole answer in the message: state and reasonCode say why if it was not accepted.
            let answered = try Self.json(work.appendingPathComponent("answered.json"))
            #expect(answered["state"] as? String == "accepted", "\(answered)")
            #expect(try coordinatorDesk.core.store.list(.init(direction: .outgoing)).total == 1)

            // The Swift client: the same steps with a second referral.
            let client = KetenpostDeskClient(desk: zorg.base, token: zorg.token)
            let shelterClient = KetenpostDeskClient(desk: opvang.base, token: opvang.token)
            let request =
                try JSONSerialization.jsonObject(with: try DeskAPITests.referral(caseReference: "ZCZL-2026/0200")) as? [String: Any]
            let second = try await client.send(try #require(request), key: "swift-1")
            #expect(try await client.send(try #require(request), key: "swift-1") == second)
            let received = try await shelterClient.inbox(after: inbox["cursor"] as? String ?? "0")
            #expect(received.messages.map { $0["id"] as? String } == [second])
            let answerID = try await shelterClient.answer(second, payload: try DeskAPITests.example("referral-response"), key: "swift-a-1")
            var state: [String: Any] = [:]
            for _ in 0..<100 {
                state = try await client.status(second)
                if (state["answer"] as? [String: Any])?["messageId"] as? String == answerID { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect((state["answer"] as? [String: Any])?["outcome"] as? String == "accepted", "\(state)")
            var other = try #require(request)
            other["priority"] = "normal"
            do {
                _ = try await client.send(other, key: "swift-1")
                Issue.record("another body under the same key was accepted")
            } catch let failure as KetenpostDeskClient.Failure {
                #expect(failure.status == 409 && failure.body.contains("desk.idempotency-conflict"))
            }
            await #expect(throws: KetenpostDeskClient.Failure.self) {
                _ = try await KetenpostDeskClient(desk: zorg.base, token: "kpd_nope").status(second)
            }

            // The folder recipe, against a desk's folders, and the webhook check against a signature.
            let folders = h.work.appendingPathComponent("recipe-folders")
            let deskFolders = DeskFolders(core: coordinatorDesk.core, directory: folders.path)
            try deskFolders.prepare()
            _ = try Self.bash(try Self.recipe("folder-drop"), in: work, env: ["FOLDERS": folders.path])
            let outcomes = await deskFolders.scanOnce()
            guard case .sent = outcomes["zaak-0147.json"] else {
                Issue.record("folder recipe: \(outcomes)")
                return
            }
            let secret = "recipe-secret-0123456789-0123456789"
            let body = Data(#"{"event":"message.state","id":1}"#.utf8)
            try body.write(to: work.appendingPathComponent("body.json"))
            let signature = DeskWebhooks.signature(secret: Data(secret.utf8), body: body, at: Date())
            let verified = try Self.bash(try Self.recipe("webhook-verify"), in: work, env: ["SIGNATURE": signature, "SECRET": secret])
            #expect(verified.contains("signature ok"))
            let forged = DeskWebhooks.signature(secret: Data("another secret, not the shared one".utf8), body: body, at: Date())
            #expect(throws: CaseSystemExampleFailure.self) {
                try Self.bash(try Self.recipe("webhook-verify"), in: work, env: ["SIGNATURE": forged, "SECRET": secret])
            }
            _ = shelterDesk
        }
    }

    /// docs/desk-openapi.yaml: valid YAML, OpenAPI 3, every route the desk serves for case
    /// systems and every error code it can answer with.
    @Test func theOpenAPIDocumentNamesEveryRouteAndCode() throws {
        let text = try String(contentsOf: Root.url.appendingPathComponent("docs/desk-openapi.yaml"), encoding: .utf8)
        let document = try #require(try Yams.load(yaml: text) as? [String: Any])
        #expect((document["openapi"] as? String)?.hasPrefix("3.") == true)
        let paths = try #require(document["paths"] as? [String: Any])
        let routes: [(String, String)] = [
            ("/api/v1/messages", "post"), ("/api/v1/messages/{id}", "get"), ("/api/v1/messages/{id}/evidence.zip", "get"),
            ("/api/v1/inbox", "get"), ("/api/v1/inbox/{id}/answer", "post"),
        ]
        for (path, method) in routes {
            let operation = (paths[path] as? [String: Any])?[method] as? [String: Any]
            #expect(operation?["responses"] != nil, "\(method) \(path) is not in docs/desk-openapi.yaml")
        }
        for code in [
            "desk.token-invalid", "desk.token-scope", "desk.idempotency-key-missing", "desk.idempotency-conflict", "desk.message-invalid",
            "desk.not-found",
            "desk.wrong-state", "desk.input-invalid", "desk.relay-unavailable", "store.unavailable", "request.too-large",
        ] {
            #expect(text.contains(code), "\(code) is not in docs/desk-openapi.yaml")
        }
    }
}

struct CaseSystemExampleFailure: Error, CustomStringConvertible {
    let description: String
}
