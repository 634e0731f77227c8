import Foundation
import Testing
import TestSupport
import Data
import NN
import Platform
import Train
import Kernels
import Select

/// Numeric faults (`--on-nan`), the metrics log after a crash, and the `leitner` binary's
/// answers to malformed arguments and files.
@Suite(.serialized) struct NumericFaultTests {
    /// A NaN loss in epoch 2 stops the run with the epoch, the step and the last good checkpoint.
    @Test func nanLossStopsNamingEpochStepAndCheckpoint() throws {
        let train = try syntheticSet(count: 160, seed: 5), test = try syntheticSet(count: 40, seed: 6)
        let session = try TrainingSession(config: try tinyConfig(temporaryDirectory("nan-stop"), epochs: 3), train: train, test: test)
        session.trainer.injectedNaNStep = 13  // 10 steps per epoch: the third step of epoch 2
        var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        do {
            try session.run(policy: &hook)
            Issue.record("a NaN loss did not stop the run")
        } catch {
            #expect(error.message.contains("epoch 2, step 13") && error.message.contains("nan")
                    && error.message.contains(session.checkpointPath + " (epoch 1)"), "\(error.message)")
        }
        #expect(session.history.count == 1)
        let metadata = try Checkpoint.readMetadata(path: session.checkpointPath)
        #expect(Checkpoint.value("epoch", in: metadata) == "1", "the faulty epoch was checkpointed")
    }

    /// `--on-nan backoff`: the run reloads epoch 1's checkpoint, halves the learning rate,
    /// finishes, and records the halving in the checkpoint; a diverging run with no good
    /// checkpoint yet stops and says so.
    @Test func backoffReloadsTheCheckpointWithHalfTheLearningRate() throws {
        let train = try syntheticSet(count: 160, seed: 5), test = try syntheticSet(count: 40, seed: 6)
        var config = try tinyConfig(temporaryDirectory("nan-backoff"), epochs: 3)
        config.onNaN = .backoff
        let session = try TrainingSession(config: config, train: train, test: test)
        session.trainer.injectedNaNStep = 13
        var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        try session.run(policy: &hook)
        #expect(session.history.map(\.epoch) == [1, 2, 3])
        #expect(session.trainer.learningRateScale == 0.5)
        #expect(session.history[1].learningRate == 0.5 * config.learningRateSchedule.rate(at: 1))
        #expect(session.history.allSatisfy { $0.trainLoss.isFinite })
        let metadata = try Checkpoint.readMetadata(path: session.checkpointPath)
        #expect(Checkpoint.value("learning_rate_scale", in: metadata) == "0.5")
        let log = try String(contentsOfFile: session.metricsPath, encoding: .utf8)
        #expect(log.split(separator: "\n").count == 3)

        var diverging = try tinyConfig(temporaryDirectory("nan-diverge"), epochs: 2)
        diverging.onNaN = .backoff
        diverging.learningRate = 1e30
        let divergingSession = try TrainingSession(config: diverging, train: train, test: test)
        do {
            try divergingSession.run(policy: &hook)
            Issue.record("a diverging run finished")
        } catch {
            #expect(error.message.contains("non-finite value in epoch 1") && error.message.contains("no good checkpoint"),
                    "\(error.message)")
        }
    }

    /// A crash after an epoch's log line but before its checkpoint, or in the middle of a log
    /// line: the resumed run's log is the uninterrupted run's, line for line.
    @Test func resumeDropsLogLinesAfterTheCheckpoint() throws {
        let train = try syntheticSet(count: 160, seed: 5), test = try syntheticSet(count: 40, seed: 6)
        var hook = CountingPolicy(counts: [Int](repeating: 0, count: train.count))
        let straight = try TrainingSession(config: try tinyConfig(temporaryDirectory("log-straight"), epochs: 3), train: train, test: test)
        try straight.run(policy: &hook)
        let directory = temporaryDirectory("log-crash")
        var first = try tinyConfig(directory, epochs: 3)
        first.stopAfterEpoch = 1
        let interrupted = try TrainingSession(config: first, train: train, test: test)
        try interrupted.run(policy: &hook)
        let handle = try #require(FileHandle(forWritingAtPath: interrupted.metricsPath))
        handle.seekToEndOfFile()
        handle.write("{\"epoch\":2,\"lr\":0.04,\"train_loss\":1.0}\n{\"epoch\":3,\"lr\":0.0".data(using: .utf8)!)
        handle.closeFile()
        var resumed = try tinyConfig(directory, epochs: 3)
        resumed.resume = true
        try TrainingSession(config: resumed, train: train, test: test).run(policy: &hook)
        func values(_ path: String) throws -> [String] {
            try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
                line.split(separator: ",").filter { !$0.contains("second") && !$0.contains("unix") && !$0.contains("energy") }
                    .joined(separator: ",")
            }
        }
        #expect(try values(interrupted.metricsPath) == values(straight.metricsPath))
    }
}

/// The built `leitner` binary (.build/release or .build/debug) on malformed input: a message on
/// standard error and a non-zero exit, never a crash. Skipped by the test framework with the
/// reason when not built; under CI=true a missing binary fails.
@Suite(.enabled(if: Requirement.runs(Requirement.hasBinary), Requirement.binaryReason))
struct MalformedInputCLITests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func run(_ arguments: [String]) throws -> (status: Int32, reason: Process.TerminationReason, error: String) {
        let binary = try #require(Requirement.binary, Requirement.binaryReason)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let errorPipe = Pipe()
        process.standardError = errorPipe
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        let data = errorPipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, process.terminationReason, String(decoding: data, as: UTF8.self))
    }

    func corpus(_ parser: String) -> [String] {
        let directory = Self.root.appendingPathComponent("Tests/Fixtures/malformed/\(parser)").path
        return ((try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []).sorted().map { directory + "/" + $0 }
    }

    @Test func malformedArgumentsModelsAndBoardsExitNonZeroWithAMessage() throws {
        var cases: [(String, [String])] = []
        for path in corpus("cli") {
            let arguments = String(decoding: try Data(contentsOf: URL(fileURLWithPath: path)), as: UTF8.self)
                .split(separator: "\0", omittingEmptySubsequences: false).map(String.init)
            cases.append((path, ["train"] + arguments))
        }
        for path in corpus("model") { cases.append((path, ["train", "--model-file", path, "--epochs", "1"])) }
        for path in corpus("board") { cases.append((path, ["train", "--board", path, "--epochs", "1"])) }
        #expect(cases.count >= 30)
        for (path, arguments) in cases {
            let result = try run(arguments)
            #expect(result.reason == .exit && result.status != 0, "\(path): exit \(result.status) (\(result.reason))")
            #expect(result.error.hasPrefix("leitner") && !result.error.contains("Fatal error"), "\(path): \(result.error)")
        }
    }

    @Test func aMemoryBudgetBelowThePlanIsRefusedWithTheSizeNeeded() throws {
        let result = try run(["train", "--data", Self.root.appendingPathComponent("data/fashion-mnist-subset").path,
                              "--memory-budget-mb", "1", "--epochs", "1", "--meter", "none", "--out", temporaryDirectory("budget-cli")])
        #expect(result.reason == .exit && result.status != 0)
        #expect(result.error.contains("memory plan needs") && result.error.contains("--memory-budget-mb"), "\(result.error)")
    }
}
