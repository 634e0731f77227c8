import CSystem

/// What `leitner doctor` reports about the machine it runs on, read from /proc.
public struct MachineInfo {
    /// "model name" (x86_64) or a description built from the CPU parts (aarch64).
    public var cpuModel = "unknown"
    /// Distinct "CPU part" values (aarch64), lower case, e.g. 0xd0b for Cortex-A76.
    public var cpuParts: [String] = []
    /// CPU flags (x86_64 "flags") or features (aarch64 "Features").
    public var cpuFlags: [String] = []
    public var onlineCores = 1
    public var memoryTotalBytes = 0
    public var memoryAvailableBytes = 0

    public init() {}

    /// Reads /proc/cpuinfo and /proc/meminfo (under `root`, "/" normally; tests give a fixture).
    public static func read(root: String = "/") -> MachineInfo {
        var info = MachineInfo()
        info.onlineCores = SystemInfo.onlineCores()
        if let text = try? FileSystem.readAll(root + "proc/cpuinfo", limit: 4 << 20) {
            info.parseCPUInfo(String(decoding: text, as: UTF8.self))
        }
        if let text = try? FileSystem.readAll(root + "proc/meminfo", limit: 1 << 20) {
            info.parseMemInfo(String(decoding: text, as: UTF8.self))
        }
        return info
    }

    public mutating func parseCPUInfo(_ text: String) {
        var model = ""
        for line in text.split(separator: "\n") {
            let parts = line.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false)
            guard parts.count == 2 else { continue }
            let key = trimmed(parts[0])
            let value = trimmed(parts[1])
            switch key {
            case "model name", "Model", "Hardware":
                if model.isEmpty { model = value }
            case "CPU part":
                let part = value.lowercased()
                if !cpuParts.contains(part) { cpuParts.append(part) }
            case "flags", "Features":
                if cpuFlags.isEmpty { cpuFlags = value.split(separator: " ").map { String($0) } }
            default:
                break
            }
        }
        let partNames = cpuParts.map { MachineInfo.armCoreName($0) }.joined(separator: " + ")
        if model.isEmpty { model = partNames.isEmpty ? "unknown" : partNames }
        else if !partNames.isEmpty { model += " (" + partNames + ")" }
        cpuModel = model
    }

    public mutating func parseMemInfo(_ text: String) {
        for line in text.split(separator: "\n") {
            let words = line.split(separator: " ")
            guard words.count >= 2, let kib = Int(words[1]) else { continue }
            if words[0] == "MemTotal:" { memoryTotalBytes = kib * 1024 }
            if words[0] == "MemAvailable:" { memoryAvailableBytes = kib * 1024 }
        }
    }

    /// Arm's core names for the CPU part numbers of the boards Leitner has profiles for.
    public static func armCoreName(_ part: String) -> String {
        switch part {
        case "0xd03": return "Cortex-A53"
        case "0xd05": return "Cortex-A55"
        case "0xd08": return "Cortex-A72"
        case "0xd0b": return "Cortex-A76"
        case "0xd41": return "Cortex-A78"
        case "0xd42": return "Cortex-A78AE"
        default: return "CPU part " + part
        }
    }

    /// The built-in board profile for this machine, if one matches.
    public var board: BoardProfile? {
        BoardProfile.matching(cpuParts: cpuParts, cpuFlags: cpuFlags, cores: onlineCores)
    }
}

/// A sequential read of a file in 1 MiB reads after dropping it from the page cache: what a
/// dataset stream gets from the storage.
public struct ReadTest {
    public var bytes = 0
    public var seconds = 0.0
    public var reads = 0
    /// Whether the page cache could be dropped first (if not, the figure may be the cache's).
    public var cacheDropped = false
    public var megabytesPerSecond: Double { seconds > 0 ? Double(bytes) / 1e6 / seconds : 0 }

    /// Reads at most `limitBytes` of `path`.
    public static func run(path: String, limitBytes: Int = 64 << 20) throws(SystemError) -> ReadTest {
        let file = try FileHandle.openForReading(path)
        defer { try? file.close() }
        var result = ReadTest()
        result.cacheDropped = leitner_drop_cache(file.descriptor) == 0
        let chunk = UnsafeMutableRawPointer.allocate(byteCount: 1 << 20, alignment: 4096)
        defer { chunk.deallocate() }
        let start = Clock.seconds()
        while result.bytes < limitBytes {
            let got = try file.read(into: chunk, count: min(1 << 20, limitBytes - result.bytes))
            if got == 0 { break }
            result.bytes += got
            result.reads += 1
        }
        result.seconds = Clock.seconds() - start
        return result
    }
}
