import Foundation
import Energy

/// A throw-away directory tree standing in for /sys or /proc.
struct FixtureTree {
    let root: String

    init(_ name: String) {
        root = NSTemporaryDirectory() + "leitner-energy-\(name)-\(getpid())-\(UInt64.random(in: 0...UInt64.max))"
        try? FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
    }

    /// Writes `text` to root/path, creating directories.
    func write(_ path: String, _ text: String) throws {
        let full = root + "/" + path
        try FileManager.default.createDirectory(atPath: (full as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        try text.write(toFile: full, atomically: false, encoding: .utf8)
    }

    /// Makes root/path a directory (opening it succeeds, reading it fails with EISDIR: an
    /// unreadable attribute even for root, who ignores file permissions).
    func makeDirectory(_ path: String) throws {
        try FileManager.default.createDirectory(atPath: root + "/" + path, withIntermediateDirectories: true)
    }

    func remove() { try? FileManager.default.removeItem(atPath: root) }
}

/// A verbatim `vcgencmd pmic_read_adc` capture from a loaded Raspberry Pi 5 Model B (2 GB,
/// Raspberry Pi OS bookworm, four busy cores), as published in the Zeus project's tests;
/// shipped in Tests/Fixtures.
func pmicFixturePath() -> String {
    var directory = URL(fileURLWithPath: #filePath)
    for _ in 0..<2 { directory.deleteLastPathComponent() }  // Tests/EnergyTests/file -> Tests
    return directory.path + "/Fixtures/pi5-pmic_read_adc-load.txt"
}

func watts(_ reading: Reading) -> Double? {
    if case .watts(let value) = reading { return value }
    return nil
}

func joules(_ reading: Reading) -> Double? {
    if case .joules(let value) = reading { return value }
    return nil
}
