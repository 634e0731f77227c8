import AllocCounting
import Foundation
import Testing
import Data
import Energy
import NN
import Train
import Kernels
import Platform
import Select

/// The allocator-call count at each per-batch callback of the training loop, in a buffer
/// allocated up front, and per epoch the calls between the epoch's first and last callback.
///
/// The step window: the loop calls the policy once per batch (`observeTrained` after a
/// trained batch's forward-backward, `observeScored` / `selectWithinBatch` after a scored
/// batch), so between an epoch's first and last callback lie whole steps only: the optimizer
/// update, the next batch's assembly (a streamed pack's record reads and the prefetch thread's
/// reads and inflates meanwhile), its forward, loss, backward and the policy's bookkeeping,
/// and, in a two-pass epoch, the start of the scoring pass. Outside it lie the epoch's edges:
/// planning, the shuffle, the metrics, evaluation, the log line, the checkpoint and state file
/// (allowed to allocate, counted separately).
final class StepWindows {
    struct Epoch {
        var epoch: Int
        /// Per-batch callbacks (trained, scored, selected within a batch).
        var trained = 0, scored = 0, selected = 0
        /// Calls between the first and the last callback.
        var window = AllocationCalls()
        /// ThreadPool.run calls that reached the workers in the window.
        var poolRuns = 0
        /// Index of the first interval between callbacks with a call (-1: none).
        var firstAllocatingInterval = -1
        var sites: [String] = []
        var steps: Int { trained + scored + selected - 1 }
    }

    let tracker: AllocationTracker
    /// The run's kernel pool (set once the trainer exists).
    var pool: ThreadPool? = nil
    let capacity = 1 << 14
    let marks: UnsafeMutablePointer<AllocationCalls>
    let runs: UnsafeMutablePointer<Int>
    var markCount = 0
    var current = Epoch(epoch: -1)
    private(set) var epochs: [Epoch] = []

    init(tracker: AllocationTracker) {
        self.tracker = tracker
        marks = .allocate(capacity: capacity)
        runs = .allocate(capacity: capacity)
    }

    deinit { marks.deallocate(); runs.deallocate() }

    /// One per-batch callback: reads the counters (no allocation).
    func mark() {
        precondition(markCount < capacity, "more than \(capacity) batches in an epoch")
        if markCount == 0 { AllocationTracker.resetCallSites() }
        marks[markCount] = tracker.calls
        runs[markCount] = pool?.parallelRuns ?? 0
        markCount += 1
    }

    /// Closes the current epoch's window (at the next epoch's planning, or at the end).
    func closeEpoch() {
        guard current.epoch >= 0 else { return }
        if markCount > 0 {
            current.window = marks[markCount - 1] - marks[0]
            current.poolRuns = runs[markCount - 1] - runs[0]
            for interval in 0..<max(markCount - 1, 0) {
                if !(marks[interval + 1] - marks[interval]).isZero {
                    current.firstAllocatingInterval = interval
                    break
                }
            }
            if !current.window.isZero { current.sites = AllocationTracker.callSites() }
        }
        epochs.append(current)
        markCount = 0
    }

    func beginEpoch(_ epoch: Int) {
        closeEpoch()
        current = Epoch(epoch: epoch)
    }
}

/// Forwards every call to `inner` (as the training command wraps its policy) and marks each
/// per-batch callback in `windows`.
struct WindowMarkingPolicy<Inner: SelectionPolicy>: SelectionPolicy {
    var inner: Inner
    let windows: StepWindows
    var id: PolicyID { inner.id }
    var stateStride: Int { inner.stateStride }
    var selectsWithinBatches: Bool { inner.selectsWithinBatches }
    var validationFraction: Double { inner.validationFraction }
    var lastEpochReentries: Int { inner.lastEpochReentries }
    mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        windows.beginEpoch(context.epoch)
        inner.planEpoch(context, plan: plan, generator: &generator)
    }
    mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>,
                                 epoch: Int, learningRate: Double) {
        inner.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate)
        windows.current.trained += 1
        windows.mark()
    }
    mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>, correct: UnsafePointer<UInt8>, epoch: Int) {
        inner.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch)
        windows.current.scored += 1
        windows.mark()
    }
    mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                    selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
        inner.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator)
        windows.current.selected += 1
        windows.mark()
    }
    mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool {
        inner.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy)
    }
    func encodeState(index: Int, into record: UnsafeMutableRawPointer) { inner.encodeState(index: index, into: record) }
    mutating func decodeState(index: Int, from record: UnsafeRawPointer) { inner.decodeState(index: index, from: record) }
}

/// A training step allocates nothing: zero calls to malloc, calloc, realloc, free or the
/// aligned allocators, counted on every thread of the run (the caller, the kernel pool's
/// workers, a streamed pack's prefetch thread, the energy recorder's sampling thread), in
/// every step of every epoch after the first, for every policy `PolicyKind` lists, from
/// memory, from a streamed pack and from a cached pack. One run, no retries: a single call is
/// a failure that names the run, the epoch, the step and the callers.
@Suite(.serialized) struct StepAllocationTests {
    enum Source: String, CaseIterable, CustomStringConvertible, Sendable {
        /// The pack loaded into memory.
        case memory
        /// Streamed in its streaming budget (ring of blocks, prefetch thread every epoch).
        case streamed
        /// Streamed in a budget that caches it (read in the first epoch only).
        case cached
        var description: String { rawValue }
    }

    /// A 1xSIDExSIDE uint8 pack of `count` learnable samples (syntheticSet's recipe: noise and
    /// a bright 2x2 patch in the class's cell of a grid) in blocks of about `blockBytes`.
    static func writePack(_ path: String, count: Int, side: Int, classes: Int, blockBytes: Int) throws {
        let writer = try PackWriter(path: path, channels: 1, height: side, width: side, elementType: .uint8,
                                    classNames: (0..<classes).map { "c\($0)" }, blockBytes: blockBytes)
        var generator = SeededGenerator(seed: 21)
        for _ in 0..<count {
            let label = generator.below(classes)
            var pixels = (0..<side * side).map { _ in UInt8(generator.below(60)) }
            var cells = 1
            while cells * cells < classes { cells += 1 }
            let row = (label / cells) * (side / cells) + 1, column = (label % cells) * (side / cells) + 1
            for dy in 0..<2 { for dx in 0..<2 { pixels[(row + dy) * side + column + dx] = 250 } }
            try writer.append(label: label, pixels: pixels[...])
        }
        _ = try writer.finish()
    }

    static func dataset(_ source: Source, path: String) throws -> Dataset {
        let pack = try PackFile.open(path)
        switch source {
        case .memory:
            return try pack.loadDataset()
        case .streamed:
            let required = PackStream.requiredBytes(pack: pack, shuffleBufferSamples: 32)
            let stream = try PackStream(pack: pack, budgetBytes: required.streaming, shuffleBufferSamples: 32)
            #expect(!stream.cacheMode && pack.blocks.count >= 8, "\(pack.blocks.count) blocks, cache mode \(stream.cacheMode)")
            return try Dataset(streaming: stream)
        case .cached:
            let stream = try PackStream(pack: pack, budgetBytes: 1 << 24, shuffleBufferSamples: 32)
            #expect(stream.cacheMode)
            return try Dataset(streaming: stream)
        }
    }

    struct Outcome {
        var epochs: [StepWindows.Epoch]
        /// Every tracked call of the run (construction excluded), windows and edges.
        var total: AllocationCalls
        var history: [EpochMetrics]
    }

    /// One training run as the training command makes it (TrainingSession, the policy wrapped
    /// in LossDumpingPolicy), built and run on threads the tracker follows.
    static func train(config: TrainConfig, kind: PolicyKind, settings: PolicySettings, train: Dataset, test: Dataset) throws -> Outcome {
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let windows = StepWindows(tracker: tracker)
        let policy = AnyPolicy(kind, settings: settings, sampleCount: train.count, epochs: config.epochs)
        let session = try TrainingSession(config: config, train: train, test: test, validationFraction: policy.validationFraction,
                                          reporter: Reporter(quiet: true))
        windows.pool = session.trainer.context.pool
        var wrapped = WindowMarkingPolicy(inner: try LossDumpingPolicy(policy, sampleCount: train.count, directory: nil), windows: windows)
        tracker.start()
        defer { tracker.stop() }
        try session.run(policy: &wrapped)
        let total = tracker.calls
        tracker.stop()
        windows.closeEpoch()
        return Outcome(epochs: windows.epochs, total: total, history: session.history)
    }

    /// Every measured epoch's window holds no call; a failure names the run, epoch, step and
    /// callers. With more than one thread the pool must have handed work to its workers.
    static func expectNoCallsAfterWarmUp(_ outcome: Outcome, run: String, threads: Int) {
        let measured = outcome.epochs.filter { $0.epoch >= 1 }
        #expect(measured.count >= 1, "\(run): no epoch after the warm-up")
        for epoch in measured {
            #expect(epoch.steps >= 2, "\(run): epoch \(epoch.epoch + 1) has \(epoch.steps + 1) batches; the window needs three")
            #expect(epoch.window.isZero, """
                \(run): epoch \(epoch.epoch + 1) made \(epoch.window) on the run's threads in the \(epoch.steps) steps \
                between its first and last batch (\(epoch.poolRuns) pool runs), the first in step \(epoch.firstAllocatingInterval + 2) \
                of the epoch. Callers:
                \(epoch.sites.joined(separator: "\n"))
                """)
        }
        var windows = AllocationCalls()
        for epoch in measured { windows = windows + epoch.window }
        let poolRuns = measured.reduce(0) { $0 + $1.poolRuns }
        let steps = measured.reduce(0) { $0 + $1.steps }
        if threads > 1 { #expect(poolRuns > 0, "\(run): no kernel handed work to the pool's workers") }
        let warmUp = outcome.epochs.first.map { "\($0.window.total)" } ?? "-"
        print("\(run): \(windows.total) calls in \(steps) steps (\(poolRuns) pool runs handed to the workers) of \(measured.count) epochs after the warm-up (warm-up epoch's steps: \(warmUp)); whole run incl. epoch edges: \(outcome.total.total)")
    }

    static let directory = temporaryDirectory("step-allocation")
    static let tinyPack: String = {
        let path = directory + "/tiny8.pack"
        // 240 samples of 65 bytes in 15-record blocks: 16 blocks.
        try! writePack(path, count: 240, side: 8, classes: 4, blockBytes: 1000)
        return path
    }()

    static func settings() -> PolicySettings {
        var settings = PolicySettings()
        // Large enough that IES excludes samples once they have six losses (from epoch 7 on),
        // so the measured epochs include scoring passes.
        settings.iesThreshold = 2e-3
        settings.patience = 100
        return settings
    }

    /// Two threads: the kernels' pool worker runs, and still no call is made.
    @Test(arguments: PolicyKind.allCases, Source.allCases)
    func everyPolicyTrainsWithoutAllocating(kind: PolicyKind, source: Source) throws {
        try Self.trainTiny(kind: kind, source: source, threads: 2)
    }

    /// One thread: no pool run reaches a worker, so a step makes no allocator call at all
    /// (the prefetch thread of the streamed pack still runs).
    @Test(arguments: PolicyKind.allCases)
    func everyPolicyOnOneThreadMakesNoAllocatorCall(kind: PolicyKind) throws {
        try Self.trainTiny(kind: kind, source: .streamed, threads: 1)
    }

    /// DIHCL with its diversity step fed penultimate features from the training forward: the
    /// features are projected into the policy's store inside the step, still without allocating.
    @Test(arguments: [DIHCLOptions.Diversity.centrality, .facilityLocation])
    func dihclDiversityTrainsWithoutAllocating(diversity: DIHCLOptions.Diversity) throws {
        #expect(AllocationTracker.isInterposing, "malloc is not the counting interposer: nothing would be counted")
        let train = try Self.dataset(.memory, path: Self.tinyPack)
        let test = try PackFile.open(Self.tinyPack).loadDataset()
        var config = try tinyConfig(temporaryDirectory("step-allocation-dihcl-\(diversity)"), epochs: 9, threads: 1)
        config.batch = 16
        var settings = Self.settings()
        settings.dihcl.diversity = diversity
        let outcome = try Self.train(config: config, kind: .dihcl, settings: settings, train: train, test: test)
        Self.expectNoCallsAfterWarmUp(outcome, run: "dihcl \(diversity)", threads: 1)
        #expect(outcome.history.count == 9)
    }

    /// `--precision fp16`: the rounding passes, the loss-scale bookkeeping and the unscaling of
    /// the gradients add no allocator call to a step (every policy, one thread, streamed).
    @Test(arguments: PolicyKind.allCases)
    func fp16StepsMakeNoAllocatorCall(kind: PolicyKind) throws {
        try Self.trainTiny(kind: kind, source: .streamed, threads: 1, precision: .fp16)
    }

    static func trainTiny(kind: PolicyKind, source: Source, threads: Int, precision: Precision = .fp32) throws {
        #expect(AllocationTracker.isInterposing, "malloc is not the counting interposer: nothing would be counted")
        let train = try Self.dataset(source, path: Self.tinyPack)
        let test = try PackFile.open(Self.tinyPack).loadDataset()
        var config = try tinyConfig(temporaryDirectory("step-allocation-\(kind.name)-\(source)"), epochs: 9, threads: threads)
        config.batch = 16
        config.precision = precision
        let outcome = try Self.train(config: config, kind: kind, settings: Self.settings(), train: train, test: test)
        Self.expectNoCallsAfterWarmUp(outcome, run: "\(kind.name), \(source), \(threads) thread\(threads == 1 ? "" : "s"), \(precision.name)", threads: threads)
        if threads == 1 { #expect(outcome.epochs.allSatisfy { $0.poolRuns == 0 }) }
        #expect(outcome.history.count == 9, "\(kind.name): \(outcome.history.count) epochs")
        // Each policy's own path ran in the measured epochs.
        let measured = outcome.epochs.filter { $0.epoch >= 1 }
        switch kind {
        case .ies: #expect(measured.contains { $0.scored > 0 && $0.trained > 0 }, "IES never scored excluded samples: \(measured.map { ($0.trained, $0.scored) })")
        case .selectiveBackprop: #expect(measured.allSatisfy { $0.selected > 0 && $0.trained > 0 })
        default: #expect(measured.allSatisfy { $0.trained > 0 })
        }
    }

    /// The model zoo at 28x28 from a streamed pack (SGD and AdamW), with the energy recorder
    /// sampling the power model at 200 Hz on its own thread during the steps.
    @Test(arguments: ["mlp", "cnn-s", "resnet8"])
    func zooModelsFromAStreamedPackWithEnergySampling(model: String) throws {
        let path = Self.directory + "/zoo28.pack"
        if !FileManager.default.fileExists(atPath: path) {
            try Self.writePack(path, count: 192, side: 28, classes: 10, blockBytes: 8000)
        }
        let train = try Self.dataset(.streamed, path: path)
        let test = try PackFile.open(path).loadDataset()
        var config = TrainConfig(model: try ModelZoo.description(named: model))
        config.epochs = 3
        config.batch = 32
        config.threads = 2
        config.progress = false
        config.outputDirectory = temporaryDirectory("step-allocation-\(model)")
        config.augment = AugmentConfig(cropPadding: 2, flip: true)
        if model == "mlp" { config.optimizer = .adamw(beta1: 0.9, beta2: 0.999, epsilon: 1e-8, weightDecay: 0.01) }
        config.energy = MeterSettings(choice: .model)
        config.energy.sampleHz = 200
        let outcome = try Self.train(config: config, kind: .full, settings: PolicySettings(), train: train, test: test)
        Self.expectNoCallsAfterWarmUp(outcome, run: "\(model), streamed, energy sampled, 2 threads", threads: 2)
        #expect(outcome.history.count == 3)
        #expect(outcome.history.allSatisfy { $0.energyJoules.isFinite && $0.energyJoules > 0 }, "the recorder sampled: \(outcome.history.map { $0.energyJoules })")
    }
}
