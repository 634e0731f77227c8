import Foundation
import Testing
import TestSupport

/// `--precision fp16` through the release binary: every policy trains with it (the forward-only
/// scoring passes of IES and Selective Backprop and DIHCL's feature tap included), the start-up
/// note says what the mode is on this CPU, and the combinations that are not built are refused.
@Suite(.serialized, .enabled(if: Requirement.runs(Requirement.hasBinary), Requirement.binaryReason))
struct PrecisionCLITests {
    static let subset = Requirement.root + "/data/fashion-mnist-subset"

    func run(_ arguments: [String]) throws -> CommandResult {
        let binary = try #require(Requirement.binary, Requirement.binaryReason)
        return try CommandRunner.run(binary, arguments, timeout: 300)
    }

    func quickTrain(_ out: String, _ extra: [String]) -> [String] {
        ["train", "--data", Self.subset, "--train-subset", "400", "--test-limit", "100", "--model", "cnn-s", "--epochs", "2",
         "--meter", "none", "--no-progress", "--threads", "1", "--precision", "fp16", "--out", out] + extra
    }

    @Test(arguments: [
        ["--policy", "full"], ["--policy", "random-remove"], ["--policy", "ies"], ["--policy", "dihcl", "--dih-diversity", "centrality"],
        ["--policy", "infobatch"], ["--policy", "selective-backprop"], ["--policy", "early-stop"],
    ])
    func everyPolicyTrainsInFP16(policy: [String]) throws {
        let out = temporaryDirectory("fp16-policy")
        let result = try run(quickTrain(out, policy))
        #expect(!result.signalled && result.status == 0, "\(policy): \(result.status) \(result.error)")
        #if arch(x86_64)
        #expect(result.output.contains("fp16 rounding emulated in software: numerics of the fp16 mode, not its speed"), "\(result.output)")
        #endif
        #expect(result.output.contains("fp16 compute weights"), "the memory plan line must count the compute copy")
        #expect(result.output.contains("| fp16: 0 step(s) skipped, loss scale 65536"), "\(result.output)")
        let log = (try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? ""
        let lines = log.split(separator: "\n")
        #expect(lines.count == 2 && lines.allSatisfy { $0.contains("\"fp16_skipped_steps\":") }, "\(policy): \(log)")
    }

    @Test func fp32LogHasNoFP16Fields() throws {
        let out = temporaryDirectory("fp32-log")
        var arguments = quickTrain(out, [])
        arguments[arguments.firstIndex(of: "fp16")!] = "fp32"
        let result = try run(arguments)
        #expect(result.status == 0, "\(result.error)")
        #expect(!result.output.contains("precision:") && !result.output.contains("fp16 compute weights"))
        let log = (try? String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8)) ?? ""
        #expect(!log.isEmpty && !log.contains("fp16_skipped_steps"))
    }

    @Test func unbuiltCombinationsAreRefused() throws {
        let result = try run(quickTrain(temporaryDirectory("fp16-parts"), ["--exact-parts", "2"]))
        #expect(result.status == 2 || result.status == 1, "\(result.status)")
        #expect(result.error.contains("--precision fp16 does not combine with --sync-bn or --exact-parts"), "\(result.error)")
        let bad = try run(quickTrain(temporaryDirectory("fp16-bad"), []).map { $0 == "fp16" ? "fp8" : $0 })
        #expect(bad.status != 0 && bad.error.contains("--precision"), "\(bad.error)")
    }
}
