/// What Leitner knows about a board: how to build for it and how to run on it. Profiles are
/// plain text, one `key: value` per line, `#` starts a comment (see boards/README.md); the
/// repository's boards/*.board files are compiled into the binary (BoardProfile+Builtin.swift)
/// so a binary copied alone to a board still knows them, and a profile file given by path is
/// read at run time.
public struct BoardProfile {
    /// The largest board profile file read (the shipped ones are under 2 KiB).
    public static let maximumFileBytes = 64 << 10

    public var name = ""
    public var description = ""
    /// Swift target triple of the Embedded build.
    public var triple = ""
    /// `-target-cpu` of the build (code generation and scheduling).
    public var targetCPU = ""
    /// Prefix of the GNU cross tools that link the binary (`aarch64-linux-gnu`).
    public var linker = ""
    /// Default training threads; 0 means every online core.
    public var threads = 0
    /// Memory budget of the model's arenas, MiB.
    public var memoryBudgetMB = 0
    public var peakGFLOPSPerCore = 0.0
    /// Energy meters to try, in order (`vcgencmd-pmic`, `hwmon`, `rapl`, `external`, `model`).
    public var energySensors: [String] = []
    /// The power model: idle watts plus active watts per busy core.
    public var idleWatts = 0.0
    public var activeWattsPerCore = 0.0
    /// Sequential read speed of the board's usual storage, MB/s.
    public var storageReadMBps = 0.0
    /// `/proc/cpuinfo` "CPU part" values that identify the board (aarch64).
    public var cpuParts: [String] = []
    /// `/proc/cpuinfo` flags the CPU must have (x86_64).
    public var cpuFlags: [String] = []
    /// Most cores the board has (0: any); tells boards with the same core type apart.
    public var maxCores = 0

    public init() {}

    /// The threads to use on a machine with `onlineCores` cores.
    public func threads(onlineCores: Int) -> Int {
        threads > 0 ? min(threads, max(onlineCores, 1)) : max(onlineCores, 1)
    }

    public var memoryBudgetBytes: Int { memoryBudgetMB * 1_048_576 }

    /// Parses a profile. Every required key must be present, numbers must parse, unknown keys
    /// are refused (a typo must not silently fall back to a default).
    public static func parse(_ text: String, source: String) throws(BoardError) -> BoardProfile {
        var profile = BoardProfile()
        var seen: [String] = []
        var lineNumber = 0
        for rawLine in TextLines.split(text) {
            lineNumber += 1
            let line = trimmed(rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
            if line.isEmpty { continue }
            guard let colon = line.firstIndex(of: ":") else {
                throw BoardError(source: source, line: lineNumber, message: "expected 'key: value', found '\(line)'")
            }
            let key = trimmed(line[line.startIndex..<colon])
            let value = trimmed(line[line.index(after: colon)...])
            if seen.contains(key) { throw BoardError(source: source, line: lineNumber, message: "'\(key)' appears twice") }
            seen.append(key)
            func number(_ range: ClosedRange<Double>) throws(BoardError) -> Double {
                guard let parsed = Double(value), parsed.isFinite, range.contains(parsed) else {
                    throw BoardError(source: source, line: lineNumber,
                                     message: "'\(key)' must be a number in \(range.lowerBound)...\(range.upperBound), found '\(value)'")
                }
                return parsed
            }
            func integer(_ range: ClosedRange<Int>) throws(BoardError) -> Int {
                guard let parsed = Int(value), range.contains(parsed) else {
                    throw BoardError(source: source, line: lineNumber,
                                     message: "'\(key)' must be a whole number in \(range.lowerBound)...\(range.upperBound), found '\(value)'")
                }
                return parsed
            }
            let list = value.split(separator: ",").map { trimmed($0) }.filter { !$0.isEmpty }
            switch key {
            case "name": profile.name = value
            case "description": profile.description = value
            case "triple": profile.triple = value
            case "target-cpu": profile.targetCPU = value
            case "linker": profile.linker = value
            case "threads": profile.threads = try integer(0...1024)
            case "memory-budget-mb": profile.memoryBudgetMB = try integer(1...1_048_576)
            case "peak-gflops-per-core": profile.peakGFLOPSPerCore = try number(0.001...100_000)
            case "energy-sensors": profile.energySensors = list
            case "idle-watts": profile.idleWatts = try number(0...10_000)
            case "active-watts-per-core": profile.activeWattsPerCore = try number(0...10_000)
            case "storage-read-mbps": profile.storageReadMBps = try number(0.001...1_000_000)
            case "cpu-parts": profile.cpuParts = list.map { $0.lowercased() }
            case "cpu-flags": profile.cpuFlags = list
            case "max-cores": profile.maxCores = try integer(0...1024)
            default:
                throw BoardError(source: source, line: lineNumber, message: "unknown key '\(key)'")
            }
        }
        for key in requiredKeys where !seen.contains(key) {
            throw BoardError(source: source, line: 0, message: "missing '\(key)'")
        }
        if profile.name.isEmpty || profile.name.contains(" ") {
            throw BoardError(source: source, line: 0, message: "'name' must be one word, found '\(profile.name)'")
        }
        return profile
    }

    public static let requiredKeys = [
        "name", "description", "triple", "target-cpu", "linker", "threads", "memory-budget-mb",
        "peak-gflops-per-core", "energy-sensors", "idle-watts", "active-watts-per-core", "storage-read-mbps",
    ]

    /// The profiles compiled into the binary (from boards/*.board), in listing order.
    public static func builtin() -> [BoardProfile] {
        var profiles: [BoardProfile] = []
        for (file, text) in builtinTexts {
            do { profiles.append(try parse(text, source: "built-in " + file)) }
            catch { preconditionFailure("built-in board profile does not parse: \(error.description)") }
        }
        return profiles
    }

    /// A built-in profile by name, or a profile file by path (a name containing '/' or
    /// ending in ".board").
    public static func load(_ nameOrPath: String) throws(BoardError) -> BoardProfile {
        if nameOrPath.contains("/") || nameOrPath.hasSuffix(".board") {
            let bytes: [UInt8]
            do { bytes = try FileSystem.readAll(nameOrPath, limit: BoardProfile.maximumFileBytes) }
            catch { throw BoardError(source: nameOrPath, line: 0, message: error.description) }
            return try parse(String(decoding: bytes, as: UTF8.self), source: nameOrPath)
        }
        for profile in builtin() where profile.name == nameOrPath { return profile }
        let names = builtin().map { $0.name }.joined(separator: ", ")
        throw BoardError(source: nameOrPath, line: 0, message: "no such board; known boards: \(names) (or give a .board file)")
    }

    /// The built-in profile that matches this CPU: an aarch64 board whose CPU parts are all
    /// present (the most parts wins, so RK3588's A76+A55 beats the Pi 5's A76 alone) and whose
    /// core limit is respected, or an x86_64 profile whose flags are all present.
    public static func matching(cpuParts: [String], cpuFlags: [String], cores: Int) -> BoardProfile? {
        var best: BoardProfile? = nil
        var bestScore = 0
        for profile in builtin() {
            var score = 0
            if !profile.cpuParts.isEmpty && profile.cpuParts.allSatisfy({ cpuParts.contains($0) }) {
                score = 10 * profile.cpuParts.count
            } else if !profile.cpuFlags.isEmpty && profile.cpuFlags.allSatisfy({ cpuFlags.contains($0) }) {
                score = profile.cpuFlags.count
            }
            if profile.maxCores > 0 && cores > profile.maxCores { score = 0 }
            if score > bestScore { best = profile; bestScore = score }
        }
        return best
    }

    /// The profile as the lines `leitner boards` prints.
    public var summary: String {
        let threadText = threads == 0 ? "all cores" : "\(threads)"
        return "\(name): \(description)\n"
            + "  build: \(triple), cpu \(targetCPU), link \(linker)-gcc\n"
            + "  run: threads \(threadText), memory budget \(memoryBudgetMB) MiB, peak \(peakGFLOPSPerCore) GFLOP/s per core, storage \(storageReadMBps) MB/s\n"
            + "  energy: \(energySensors.joined(separator: ", ")); model \(idleWatts) W idle + \(activeWattsPerCore) W per busy core"
    }
}

/// A profile that cannot be used: which file, which line (0: the whole file), what is wrong.
public struct BoardError: Error, CustomStringConvertible {
    public let source: String
    public let line: Int
    public let message: String

    public var description: String {
        line > 0 ? "board profile \(source), line \(line): \(message)" : "board profile \(source): \(message)"
    }
}

@inline(__always)
func trimmed<S: StringProtocol>(_ text: S) -> String {
    var characters = Substring(text)
    while let first = characters.first, first == " " || first == "\t" || first == "\r" { characters.removeFirst() }
    while let last = characters.last, last == " " || last == "\t" || last == "\r" { characters.removeLast() }
    return String(characters)
}
