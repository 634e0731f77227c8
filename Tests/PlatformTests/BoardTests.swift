import Foundation
import Platform
import Testing

/// Board profiles: the files parse, the binary's built-in copies equal them, bad profiles are
/// refused with the file and line, and /proc/cpuinfo facts pick the right board.
@Suite struct BoardTests {
    static let boardsDirectory = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("boards")

    @Test func builtinProfilesEqualTheFilesInBoards() throws {
        let files = try FileManager.default.contentsOfDirectory(atPath: Self.boardsDirectory.path)
            .filter { $0.hasSuffix(".board") }.sorted()
        #expect(files.count >= 5, "boards/ holds \(files)")
        #expect(BoardProfile.builtinTexts.map { $0.0 } == files, "run tools/embed-boards: built-in \(BoardProfile.builtinTexts.map { $0.0 }) vs files \(files)")
        for (name, text) in BoardProfile.builtinTexts {
            let file = try String(contentsOf: Self.boardsDirectory.appendingPathComponent(name), encoding: .utf8)
            #expect(text + "\n" == file, "\(name): the built-in copy differs from the file; run tools/embed-boards")
        }
        let names = BoardProfile.builtin().map { $0.name }
        for required in ["rpi4", "rpi5", "rk3588", "jetson-orin-nano", "x86_64-avx2"] {
            #expect(names.contains(required), "no built-in profile \(required) in \(names)")
        }
        for profile in BoardProfile.builtin() {
            #expect(profile.peakGFLOPSPerCore > 0 && profile.memoryBudgetMB > 0 && profile.idleWatts > 0,
                    "\(profile.name): incomplete")
            #expect(!profile.cpuParts.isEmpty || !profile.cpuFlags.isEmpty, "\(profile.name) cannot be matched")
        }
    }

    @Test func loadsByNameAndByPath() throws {
        let pi5 = try BoardProfile.load("rpi5")
        #expect(pi5.targetCPU == "cortex-a76" && pi5.threads == 4 && pi5.idleWatts == 3.3)
        let fromFile = try BoardProfile.load(Self.boardsDirectory.appendingPathComponent("rpi4.board").path)
        #expect(fromFile.name == "rpi4" && fromFile.targetCPU == "cortex-a72")
        #expect(throws: BoardError.self) { _ = try BoardProfile.load("pdp11") }
        do { _ = try BoardProfile.load("pdp11") } catch { #expect(error.description.contains("rpi5"), "\(error)") }
    }

    static let valid = BoardProfile.builtinTexts.first { $0.0 == "rpi5.board" }!.1

    @Test(arguments: [
        ("threads: four", "line", "'threads' must be a whole number"),
        ("colour: blue", "line", "unknown key 'colour'"),
        ("just words", "line", "expected 'key: value'"),
        ("idle-watts: nan", "line", "'idle-watts' must be a number"),
        ("name: rpi5 again", "line", "appears twice"),
    ])
    func refusesBadLinesNamingTheLine(extra: String, expectLine: String, message: String) {
        // Replace the key's own line (except for the duplicate case) so only `extra` is wrong.
        let key = extra.split(separator: ":").first.map(String.init) ?? extra
        let kept = Self.valid.split(separator: "\n", omittingEmptySubsequences: false)
            .filter { message.contains("twice") || !$0.hasPrefix(key + ":") }
        let text = kept.joined(separator: "\n") + "\n" + extra + "\n"
        let lineNumber = text.split(separator: "\n", omittingEmptySubsequences: false).firstIndex { $0 == Substring(extra) }! + 1
        do {
            _ = try BoardProfile.parse(text, source: "test.board")
            Issue.record("accepted a profile with '\(extra)'")
        } catch {
            #expect(error.line == lineNumber, "\(error.description)")
            #expect(error.description.contains("test.board") && error.description.contains(message), "\(error.description)")
        }
    }

    /// CRLF and CR line ends read like LF ("\r\n" is one Swift Character, so splitting on
    /// "\n" used to leave the whole file as one line and report "expected 'key: value'").
    @Test func crlfAndCRProfilesParseLikeLF() throws {
        let lf = try BoardProfile.parse(Self.valid, source: "lf.board")
        let lines = Self.valid.split(separator: "\n", omittingEmptySubsequences: false)
        let crlf = try BoardProfile.parse(lines.joined(separator: "\r\n"), source: "crlf.board")
        let cr = try BoardProfile.parse(lines.joined(separator: "\r"), source: "cr.board")
        for profile in [crlf, cr] {
            #expect(profile.name == lf.name && profile.threads == lf.threads && profile.cpuParts == lf.cpuParts
                    && profile.energySensors == lf.energySensors && profile.idleWatts == lf.idleWatts)
        }
        do {
            _ = try BoardProfile.parse(lines.joined(separator: "\r\n") + "\r\ncolour: blue\r\n", source: "crlf.board")
            Issue.record("accepted an unknown key")
        } catch {
            #expect(error.line == lines.count + 1 && error.message == "unknown key 'colour'", "\(error.description)")
        }
    }

    @Test func refusesAMissingKey() {
        let text = Self.valid.split(separator: "\n").filter { !$0.hasPrefix("idle-watts") }.joined(separator: "\n")
        #expect(throws: BoardError.self) { _ = try BoardProfile.parse(text, source: "x") }
        do { _ = try BoardProfile.parse(text, source: "x") } catch { #expect(error.message == "missing 'idle-watts'") }
    }

    @Test func matchesTheCPU() {
        #expect(BoardProfile.matching(cpuParts: ["0xd0b"], cpuFlags: [], cores: 4)?.name == "rpi5")
        #expect(BoardProfile.matching(cpuParts: ["0xd0b", "0xd05"], cpuFlags: [], cores: 8)?.name == "rk3588")
        #expect(BoardProfile.matching(cpuParts: ["0xd08"], cpuFlags: [], cores: 4)?.name == "rpi4")
        #expect(BoardProfile.matching(cpuParts: ["0xd42"], cpuFlags: [], cores: 6)?.name == "jetson-orin-nano")
        #expect(BoardProfile.matching(cpuParts: [], cpuFlags: ["sse2", "avx2", "fma"], cores: 2)?.name == "x86_64-avx2")
        #expect(BoardProfile.matching(cpuParts: [], cpuFlags: ["sse2"], cores: 2) == nil)
        #expect(BoardProfile.matching(cpuParts: ["0xd03"], cpuFlags: [], cores: 4) == nil)
        let pi5 = try! BoardProfile.load("rpi5")
        #expect(pi5.threads(onlineCores: 2) == 2 && pi5.threads(onlineCores: 4) == 4)
        #expect(try! BoardProfile.load("x86_64-avx2").threads(onlineCores: 3) == 3)
    }
}
