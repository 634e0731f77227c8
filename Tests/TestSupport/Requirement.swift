import Foundation
import Testing

/// Tests that need something outside the package (the built `leitner` binary, python3 with
/// safetensors, the Debian Fashion-MNIST set, an AVX-512 CPU) say so through the test
/// framework, never by returning early:
///
///     @Test(.enabled(if: Requirement.runs(Requirement.hasBinary), Requirement.binaryReason))
///     func ... { let binary = try #require(Requirement.binary, ...) }
///
/// Outside CI a missing requirement skips the test with its reason (printed by the runner).
/// Under `CI=true` (set by `.ci/run`) the test runs anyway and its `#require` fails: CI must
/// not go green on a machine that silently lacks what a check needs.
public enum Requirement {
    public static var isCI: Bool { ProcessInfo.processInfo.environment["CI"] == "true" }

    /// Whether a test needing `present` runs: when present, and always under CI.
    public static func runs(_ present: Bool) -> Bool { present || isCI }

    /// Whether a test that needs hardware runs: only when present (CI machines vary in CPU).
    public static func runsOnHardware(_ present: Bool) -> Bool { present }

    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent().path

    /// The built `leitner` executable (.build/release, then .build/debug), if any.
    public static var binary: String? {
        // LEITNER_BINARY runs the CLI tests against another build (e.g. an older commit's, to
        // show that a hardening test fails there).
        if let other = ProcessInfo.processInfo.environment["LEITNER_BINARY"], !other.isEmpty {
            return FileManager.default.isExecutableFile(atPath: other) ? other : nil
        }
        for configuration in ["release", "debug"] {
            let path = root + "/.build/\(configuration)/leitner"
            if FileManager.default.isExecutableFile(atPath: path) { return path }
        }
        return nil
    }
    public static var hasBinary: Bool { binary != nil }
    public static let binaryReason: Comment =
        "no built .build/release/leitner: run `swift build -c release --product leitner` first (CI=true fails instead)"

    /// python3 can import safetensors and numpy.
    public static let hasPythonSafeTensors: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import safetensors, numpy"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()
    public static let pythonReason: Comment =
        "python3 with safetensors and numpy is not installed (pip install safetensors numpy; CI=true fails instead)"

    /// Debian's `dataset-fashion-mnist` (the full 60000/10000 set).
    public static let systemFashionMNIST = "/usr/share/datasets/fashion-mnist"
    public static var hasSystemFashionMNIST: Bool {
        FileManager.default.fileExists(atPath: systemFashionMNIST + "/train-images-idx3-ubyte.gz")
    }
    public static let fashionMNISTReason: Comment =
        "Debian's dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist; CI=true fails instead)"

    /// The CPU has AVX-512F (x86_64 Linux).
    public static var hasAVX512: Bool {
        (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?.contains(" avx512f ") ?? false
    }
}
