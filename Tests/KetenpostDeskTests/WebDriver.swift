import AsyncHTTPClient
import Foundation
import NIOCore
import Testing

/// A small W3C WebDriver client for Debian's `chromedriver` driving headless `chromium`: enough
/// to sign in, fill forms, click and take screenshots as a caseworker's browser would.
final class WebDriver: Sendable {
    static var chromium: String? {
        ["/usr/bin/chromium", "/usr/bin/chromium-browser"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }
    static var chromedriver: String? {
        ["/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver"].first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    let process: Process
    let base: String
    let session: String
    let http: HTTPClient

    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    static func start(language: String = "nl") async throws -> WebDriver {
        guard let chromium, let chromedriver else { throw Failure(description: "chromium and chromedriver are needed") }
        let port = Int.random(in: 20_000..<40_000)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: chromedriver)
        process.arguments = ["--port=\(port)"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let base = "http://127.0.0.1:\(port)"
        do {
            // Wait until the driver answers.
            var ready = false
            for _ in 0..<100 where !ready {
                ready = (try? await call(http, "GET", "\(base)/status"))?["value"] != nil
                if !ready { try await Task.sleep(for: .milliseconds(100)) }
            }
            guard ready else { throw Failure(description: "chromedriver did not start") }
            let capabilities: [String: Any] = [
                "capabilities": [
                    "alwaysMatch": [
                        "browserName": "chrome",
                        "goog:chromeOptions": [
                            "binary": chromium,
                            "args": [
                                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1500",
                                "--lang=\(language)", "--accept-lang=\(language)",
                            ],
                            "prefs": ["intl.accept_languages": language],
                        ],
                    ]
                ]
            ]
            let answer = try await call(http, "POST", "\(base)/session", capabilities)
            guard let value = answer["value"] as? [String: Any], let session = value["sessionId"] as? String else {
                throw Failure(description: "no WebDriver session: \(answer)")
            }
            return WebDriver(process: process, base: base, session: session, http: http)
        } catch {
            process.terminate()
            try? await http.shutdown()
            throw error
        }
    }

    private init(process: Process, base: String, session: String, http: HTTPClient) {
        self.process = process
        self.base = base
        self.session = session
        self.http = http
    }

    /// Ends the session; a browser that does not close within seconds is killed with its driver.
    func quit() async {
        _ = try? await Self.call(http, "DELETE", "\(base)/session/\(session)", timeout: .seconds(5))
        process.terminate()
        for _ in 0..<50 where process.isRunning { try? await Task.sleep(for: .milliseconds(100)) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        try? await http.shutdown()
    }

    @discardableResult
    static func call(
        _ http: HTTPClient,
        _ method: String,
        _ url: String,
        _ body: [String: Any]? = nil,
        timeout: TimeAmount = .seconds(60)
    ) async throws -> [String: Any] {
        if ProcessInfo.processInfo.environment["KETENPOST_WEBDRIVER_TRACE"] != nil {
            FileHandle.standardError.write(Data("webdriver: \(method) \(url)\n".utf8))
        }
        var request = HTTPClientRequest(url: url)
        request.method = .init(rawValue: method)
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: try JSONSerialization.data(withJSONObject: body)))
        }
        let response = try await http.execute(request, timeout: timeout)
        let bytes = try await response.body.collect(upTo: 64 << 20)
        let object = (try? JSONSerialization.jsonObject(with: Data(bytes.readableBytesView))) as? [String: Any] ?? [:]
        if let value = object["value"] as? [String: Any], let error = value["error"] as? String {
            throw Failure(description: "\(method) \(url): \(error): \(value["message"] ?? "")")
        }
        return object
    }

    @discardableResult
    func command(_ method: String, _ path: String, _ body: [String: Any]? = nil) async throws -> Any? {
        try await Self.call(http, method, "\(base)/session/\(session)\(path)", body ?? (method == "POST" ? [:] : nil))["value"]
    }

    func open(_ url: String) async throws { try await command("POST", "/url", ["url": url]) }

    var url: String { get async throws { try await command("GET", "/url") as? String ?? "" } }

    var source: String { get async throws { try await command("GET", "/source") as? String ?? "" } }

    func element(_ css: String) async throws -> String {
        let value = try await command("POST", "/element", ["using": "css selector", "value": css]) as? [String: Any]
        guard let id = value?.values.first as? String else { throw Failure(description: "no element \(css)") }
        return id
    }

    func type(_ css: String, _ text: String) async throws {
        let id = try await element(css)
        try await command("POST", "/element/\(id)/clear")
        try await command("POST", "/element/\(id)/value", ["text": text])
    }

    func click(_ css: String) async throws {
        try await command("POST", "/element/\(try await element(css))/click")
    }

    /// Clicks a submit button and waits until the next page has loaded (a new document).
    func submit(_ css: String) async throws {
        let before = try await element("html")
        try await click(css)
        for _ in 0..<200 {
            if let now = try? await element("html"), now != before,
                (try? await command("POST", "/execute/sync", ["script": "return document.readyState;", "args": [Any]()]) as? String)
                    == "complete"
            {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw Failure(description: "no new page after clicking \(css)")
    }

    /// Sets an input's value the way a date-time picker would (typing into `datetime-local`
    /// depends on the browser's locale; the page itself runs no script).
    func setValue(_ css: String, _ value: String) async throws {
        let id = try await element(css)
        try await command(
            "POST",
            "/execute/sync",
            ["script": "arguments[0].value = arguments[1];", "args": [["element-6066-11e4-a52e-4f735466cecf": id], value]]
        )
    }

    /// Chooses an option of a select by its value.
    func select(_ css: String, value: String) async throws {
        try await click("\(css) option[value=\"\(value)\"]")
    }

    /// The page's text as a person reads it.
    var text: String {
        get async throws {
            try await command("GET", "/element/\(try await element("body"))/text") as? String ?? ""
        }
    }

    func cookies() async throws -> [String: String] {
        let list = try await command("GET", "/cookie") as? [[String: Any]] ?? []
        var result: [String: String] = [:]
        for cookie in list {
            if let name = cookie["name"] as? String, let value = cookie["value"] as? String { result[name] = value }
        }
        return result
    }

    /// Reloads `url` until its text contains `expected` (the desk's background service works meanwhile).
    func waitFor(_ expected: String, at url: String, seconds: Int = 20) async throws {
        for _ in 0..<(seconds * 4) {
            try await open(url)
            if try await text.contains(expected) { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw Failure(description: "\(url) never showed \(expected)")
    }

    /// Reloads `url` until an element matches `css`: for states that words alone cannot tell apart
    /// (a timeline names its pending steps too).
    func waitFor(element css: String, at url: String, seconds: Int = 20) async throws {
        for _ in 0..<(seconds * 4) {
            try await open(url)
            let found = try await command("POST", "/elements", ["using": "css selector", "value": css]) as? [Any]
            if found?.isEmpty == false { return }
            try await Task.sleep(for: .milliseconds(250))
        }
        throw Failure(description: "\(url) never showed \(css)")
    }

    /// Saves a screenshot as `name`.png in `folder`.
    func screenshot(_ name: String, into folder: URL) async throws {
        guard let base64 = try await command("GET", "/screenshot") as? String, let data = Data(base64Encoded: base64) else {
            throw Failure(description: "no screenshot")
        }
        try data.write(to: folder.appendingPathComponent("\(name).png"))
    }
}
