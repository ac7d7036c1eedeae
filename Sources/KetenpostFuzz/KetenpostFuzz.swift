import CKetenpostFuzzDriver
import Foundation
import KetenpostFuzzing

/// `ketenpost-fuzz`: the libFuzzer targets of Tests/Fuzz/README.md.
///
/// Built with `-Xswiftc -sanitize=fuzzer,address` it is a libFuzzer binary for the target named
/// by KETENPOST_FUZZ_TARGET (every libFuzzer flag works). Built plainly (as `swift build` does)
/// it replays inputs and writes the seed corpus; so does the fuzzing build with these options:
///
///     ketenpost-fuzz --list
///     ketenpost-fuzz --replay TARGET FILE_OR_DIRECTORY...
///     ketenpost-fuzz --write-seeds DIRECTORY
@main
enum KetenpostFuzz {
    static func main() {
        let arguments = Array(CommandLine.arguments.dropFirst())
        switch arguments.first {
        case "--list":
            for target in FuzzTarget.allCases { print(target.rawValue) }
        case "--write-seeds":
            guard arguments.count == 2 else { usage() }
            do {
                for file in try FuzzSeeds.write(to: URL(fileURLWithPath: arguments[1])) { print(file) }
            } catch {
                fail("cannot write the seeds: \(error)")
            }
        case "--replay":
            guard arguments.count >= 3, let target = FuzzTarget(rawValue: arguments[1]) else { usage() }
            exit(replay(target, Array(arguments.dropFirst(2))))
        default:
            guard ketenpost_fuzz_linked() != 0 else { usage() }
            fuzz()
        }
    }

    /// The target of this fuzzing process, from KETENPOST_FUZZ_TARGET.
    static let target: FuzzTarget = {
        let name = ProcessInfo.processInfo.environment["KETENPOST_FUZZ_TARGET"] ?? ""
        guard let target = FuzzTarget(rawValue: name) else {
            fail("set KETENPOST_FUZZ_TARGET to one of: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return target
    }()

    /// Whether known, unfixed findings (`FuzzFinding.known`) count.
    static let strict = ProcessInfo.processInfo.environment["KETENPOST_FUZZ_STRICT"] == "1"

    static func fuzz() -> Never {
        let target = Self.target
        prepare(target)
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(ketenpost_fuzz_run_driver(&argc, &argv, fuzzOneInput))
    }

    static func prepare(_ target: FuzzTarget) {
        let done = DispatchSemaphore(value: 0)
        let failure = Locked<String?>(nil)
        Task {
            do { try await target.prepare() } catch { failure.set("\(error)") }
            done.signal()
        }
        done.wait()
        if let message = failure.get() { fail("cannot prepare \(target.rawValue): \(message)") }
        atexit { FuzzSeeds.removeScratch() }
    }

    /// One input; a finding aborts, which libFuzzer reports as a crash and saves.
    static func runOne(_ data: Data) {
        do {
            try target.runBlocking(data)
        } catch {
            if error.isKnown && !strict { return }
            FileHandle.standardError.write(Data("\n==ketenpost-fuzz== finding: \(error)\n".utf8))
            abort()
        }
    }

    static func replay(_ target: FuzzTarget, _ paths: [String]) -> Int32 {
        prepare(target)
        var files: [URL] = []
        for path in paths {
            let url = URL(fileURLWithPath: path)
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { fail("\(path): no such file") }
            if isDirectory.boolValue {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
                files += names.sorted().filter { !$0.hasPrefix(".") }.map { url.appendingPathComponent($0) }
            } else {
                files.append(url)
            }
        }
        var status: Int32 = 0
        for file in files {
            guard let data = try? Data(contentsOf: file) else { fail("\(file.path): cannot be read") }
            do {
                try target.runBlocking(data)
                print("ok       \(file.path)")
            } catch {
                print("\(error.isKnown ? "known  " : "FINDING") \(file.path): \(error)")
                if !error.isKnown || strict { status = 1 }
            }
        }
        return status
    }

    static func usage() -> Never {
        fail(
            """
            usage: ketenpost-fuzz --list | --replay TARGET FILE_OR_DIRECTORY... | --write-seeds DIRECTORY
                   KETENPOST_FUZZ_TARGET=TARGET ketenpost-fuzz [libFuzzer flags] [CORPUS_DIRECTORY...]
                   (the last form needs a build with -Xswiftc -sanitize=fuzzer,address; see Tests/Fuzz/README.md)
            """
        )
    }

    static func fail(_ message: String) -> Never {
        FileHandle.standardError.write(Data("ketenpost-fuzz: \(message)\n".utf8))
        exit(2)
    }
}

/// libFuzzer's callback. Also exported under libFuzzer's well-known name, which its archive
/// refers to when it is linked in.
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    KetenpostFuzz.runOne(data.map { Data(bytes: $0, count: size) } ?? Data())
    return 0
}

final class Locked<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var value: Value
    init(_ value: Value) { self.value = value }
    func set(_ newValue: Value) { lock.withLock { value = newValue } }
    func get() -> Value { lock.withLock { value } }
}
