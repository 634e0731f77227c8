import Platform
import Energy
import NN

/// Augmentation applied to training batches (never to evaluation).
public struct AugmentConfig: Equatable {
    /// Random crop after zero padding by this many pixels (0 = off).
    public var cropPadding = 0
    /// Random horizontal flip with probability 0.5.
    public var flip = false
    public init(cropPadding: Int = 0, flip: Bool = false) {
        self.cropPadding = cropPadding
        self.flip = flip
    }
}

/// What a non-finite loss or weight does to a run.
public enum NaNAction: Equatable {
    /// Stop with a message naming the epoch, the step and the last good checkpoint.
    case stop
    /// Reload the last good checkpoint, halve the learning rate and continue, at most
    /// `maximumBackoffs` times in a run; then stop.
    case backoff
    public static let maximumBackoffs = 4
}

extension Precision {
    /// The precision a run asking for `requested` gets, and the start-up note that says why:
    /// fp16 on an aarch64 CPU without half-precision arithmetic (the A72) falls back to fp32;
    /// elsewhere fp16 runs through the software rounding (`Half.round`), since no fp16 kernel
    /// exists yet, and the note says that it gives the numerics, not the speed.
    public static func resolve(_ requested: Precision, arm64: Bool, halfArithmetic: Bool) -> (precision: Precision, note: String?) {
        guard requested == .fp16 else { return (.fp32, nil) }
        if arm64 && !halfArithmetic {
            return (.fp32, "precision: fp32, not fp16: this CPU has no half-precision arithmetic (ARMv8.2 FP16, HWCAP fphp/asimdhp; the Cortex-A72 of a Raspberry Pi 4 lacks it)")
        }
        if arm64 {
            return (.fp16, "precision: fp16, rounding done in software (this CPU has FP16 arithmetic but no fp16 kernel is built yet): numerics of the fp16 mode, not its speed")
        }
        return (.fp16, "precision: fp16 rounding emulated in software: numerics of the fp16 mode, not its speed")
    }

    /// `resolve` for the CPU this process runs on.
    public static func resolveHere(_ requested: Precision) -> (precision: Precision, note: String?) {
        #if arch(arm64)
        return resolve(requested, arm64: true, halfArithmetic: SystemInfo.hasHalfPrecisionArithmetic())
        #else
        return resolve(requested, arm64: false, halfArithmetic: false)
        #endif
    }
}

/// Everything a training run needs; the defaults are the ones `leitner train` uses.
public struct TrainConfig {
    public var modelName = "cnn-s"
    public var model: ModelDescription
    public var epochs = 15
    public var batch = 64
    public var threads = 2
    public var optimizer = OptimizerConfig.sgd(momentum: 0.9, nesterov: true, weightDecay: 5e-4)
    public var learningRate = 0.05
    public var schedule = LearningRateSchedule.Kind.cosine(minimum: 0)
    public var warmupEpochs = 0.0
    public var augment = AugmentConfig()
    public var seed: UInt64 = 1
    /// Where checkpoints and the metrics log go.
    public var outputDirectory = "runs/latest"
    /// Continue from the checkpoint in `outputDirectory`.
    public var resume = false
    /// With `resume`: after the checkpoint is restored, the model's weights (model tensors by
    /// name; a file's optimizer tensors are ignored) come from this file instead, while the
    /// optimizer state, epoch, step and selection state stay the run's own (`--replace-weights`:
    /// a federated client continuing its run from the server's global model). Not part of the
    /// run's identity: each round brings another file.
    public var replaceWeights: String? = nil
    /// A fresh run into a directory that holds another run moves that run aside to
    /// DIRECTORY.previous-N (`--force`); without it such a run is refused.
    public var replaceExisting = false
    /// Use only the first N training samples (0 = all).
    public var trainLimit = 0
    /// Use only the first N test samples (0 = all).
    public var testLimit = 0
    /// Refuse a memory plan larger than this (nil = no limit).
    public var memoryBudgetBytes: Int? = nil
    /// The board profile the run was configured from (`--board`), if any.
    public var board: BoardProfile? = nil
    /// Stop (as if interrupted) once this many epochs are complete; 0 = run all `epochs`.
    /// The schedule still spans `epochs`, so `--resume` continues the same run.
    public var stopAfterEpoch = 0
    /// Write each epoch's per-sample losses and planned actions here (`LossDumpingPolicy`;
    /// nil = no dump).
    public var lossDumpDirectory: String? = nil
    /// What a NaN or infinity in the loss or weights does (`--on-nan`).
    public var onNaN = NaNAction.stop
    /// Show a progress bar (nil = when standard error is a terminal).
    public var progress: Bool? = nil
    /// The energy meter sampled during the run (none by default; the CLI defaults to auto).
    public var energy = MeterSettings()

    /// Each global batch's gradient as this many parts, each computed from zero and summed
    /// exactly (in fixed point), so that any number of ranks dividing it gives bit-identical
    /// runs (`--exact-parts`); 0 = off (a rank's part is one, summed by a float allreduce).
    public var exactParts = 0
    /// Batch-norm statistics over the global batch on every rank (`--sync-bn`, PyTorch's
    /// SyncBatchNorm) instead of over each rank's part. With one rank the part is the whole
    /// batch, so it changes nothing there.
    public var syncBatchNorm = false
    /// The arithmetic of the steps (`--precision`): fp32, or fp16 numerics with fp32 master
    /// weights and dynamic loss scaling (see `Precision`).
    public var precision = Precision.fp32
    /// The AVX-512 kernels on or off (nil: the machine's default, which LEITNER_SIMD=avx2 turns
    /// off). Tests set it instead of the environment, which every test in the process shares.
    public var wideKernels: Bool? = nil
    /// Why the run got the precision it has (`Precision.resolve`), printed at start-up; nil
    /// for a plain fp32 run.
    public var precisionNote: String? = nil

    /// Which parameters train (`--update`); anything but `.all` freezes the rest and batch
    /// norm's statistics.
    public var update = UpdateMode.all
    /// Pretrained weights loaded after initialisation (`finetune --from`); nil = none.
    public var pretrained: String? = nil
    /// Also train the last linear layer whatever `update` says (set when the head was replaced).
    public var trainHead = false
    /// Tensor names of `pretrained` not loaded because the head was replaced (they keep the
    /// seeded PyTorch initialisation).
    public var replacedHead: [String] = []

    /// What else decides this run's numbers besides the settings above (the data, the classes,
    /// the policy): recorded in its checkpoints and compared by `--resume` (RunIdentity).
    public var runFacts = RunIdentity()

    public init(model: ModelDescription) {
        self.model = model
    }

    public var learningRateSchedule: LearningRateSchedule {
        LearningRateSchedule(base: learningRate, kind: schedule, warmupEpochs: warmupEpochs, totalEpochs: Double(epochs))
    }
}
