import NN

/// One epoch's figures, as written to the JSONL log (one line per epoch).
public struct EpochMetrics {
    public var epoch = 0
    public var learningRate = 0.0
    public var trainLoss = 0.0
    public var trainAccuracy = 0.0
    public var testLoss = 0.0
    public var testAccuracy = 0.0
    public var samplesPerSecond = 0.0
    public var wallSeconds = 0.0
    public var samplesTrained = 0
    public var samplesScored = 0
    public var samplesSkipped = 0
    /// Training samples the epoch's plan covered (N; the validation split excluded).
    public var population = 0
    /// Skipped backward passes / training samples (the papers' figure).
    public var backpropSaved = 0.0
    /// 1 - (3 trained + 1 scored) / (3 N): a forward counts as a third of a training step.
    public var computeSaved = 0.0
    /// Samples that came back into training this epoch after being excluded (IES; -1 = n/a).
    public var reentries = -1
    /// Accuracy on the held-out validation split (early stopping; NaN when there is none).
    public var validationAccuracy = Double.nan
    /// The policy stopped the run after this epoch.
    public var stoppedEarly = false
    /// fp16 runs: optimizer steps skipped this epoch for a non-finite gradient (dynamic loss
    /// scaling), and the loss scale at the epoch's end; -1 and NaN under fp32 (not logged).
    public var fp16SkippedSteps = -1
    public var lossScale = Double.nan
    /// Monotonic seconds (Clock.seconds) when the training loop of the epoch started and ended.
    public var trainStarted = Double.nan
    public var trainEnded = Double.nan
    /// The same instants as Unix seconds (to align an external meter's log afterwards).
    public var trainStartUnix = Double.nan
    public var trainEndUnix = Double.nan
    /// Energy of the training loop (the interval of `wallSeconds`); NaN without a meter.
    public var energyJoules = Double.nan
    /// Energy of the evaluation and checkpoint after the training loop.
    public var evalEnergyJoules = Double.nan
    /// The meter's label and whether its figures are an estimate.
    public var energySource = ""
    public var energyEstimate = false
    /// Mean watts of the training loop.
    public var energyMeanWatts: Double { wallSeconds > 0 ? energyJoules / wallSeconds : .nan }
    /// Training-loop joules per trained sample.
    public var joulesPerSample: Double { samplesTrained > 0 ? energyJoules / Double(samplesTrained) : .nan }

    public init() {}

    /// The JSON line (no trailing newline). Keys are stable: tools read them.
    public var jsonLine: String {
        "{\"epoch\":\(epoch),\"lr\":\(JSONNumber.format(learningRate)),\"train_loss\":\(JSONNumber.format(trainLoss)),"
            + "\"train_accuracy\":\(JSONNumber.format(trainAccuracy)),\"test_loss\":\(JSONNumber.format(testLoss)),"
            + "\"test_accuracy\":\(JSONNumber.format(testAccuracy)),\"samples_per_second\":\(JSONNumber.format(samplesPerSecond)),"
            + "\"wall_seconds\":\(JSONNumber.format(wallSeconds)),\"samples_trained\":\(samplesTrained),"
            + "\"samples_scored\":\(samplesScored),\"samples_skipped\":\(samplesSkipped),\"population\":\(population),"
            + "\"backprop_saved\":\(JSONNumber.format(backpropSaved)),\"compute_saved\":\(JSONNumber.format(computeSaved)),"
            + "\"reentries\":\(reentries),\"validation_accuracy\":\(JSONNumber.format(validationAccuracy)),"
            + "\"stopped_early\":\(stoppedEarly),\"train_start_unix\":\(JSONNumber.format(trainStartUnix)),"
            + "\"train_end_unix\":\(JSONNumber.format(trainEndUnix)),\"energy_joules\":\(JSONNumber.format(energyJoules)),"
            + "\"energy_mean_watts\":\(JSONNumber.format(energyMeanWatts)),\"energy_joules_per_sample\":\(JSONNumber.format(joulesPerSample)),"
            + "\"eval_energy_joules\":\(JSONNumber.format(evalEnergyJoules)),"
            + "\"energy_source\":\(energySource.isEmpty ? "null" : JSON.text(.string(energySource))),\"energy_estimate\":\(energyEstimate)"
            + (fp16SkippedSteps >= 0 ? ",\"fp16_skipped_steps\":\(fp16SkippedSteps),\"loss_scale\":\(JSONNumber.format(lossScale))" : "") + "}"
    }
}

extension EpochMetrics {
    /// The figures of one line of the metrics log (`jsonLine`'s keys; an older log without
    /// "population" gets trained + scored + skipped, or trained + skipped under Selective
    /// Backprop, which cannot be told apart: such logs predate it). Nil for a line that is not
    /// a complete epoch record. Monotonic instants are not in the log and stay NaN.
    public init?(jsonLine line: String) {
        guard let value = try? JSON.parse(line), case .object = value else { return nil }
        func number(_ key: String) -> Double? {
            switch value[key] {
            case .number(let number, _)?: return number
            case .null?: return .nan
            default: return nil
            }
        }
        func integer(_ key: String) -> Int? {
            guard case .number(let number, _)? = value[key], number == number.rounded(), abs(number) < 1e15 else { return nil }
            return Int(number)
        }
        guard let epoch = integer("epoch"), epoch >= 1, let trained = integer("samples_trained"),
              let scored = integer("samples_scored"), let skipped = integer("samples_skipped"),
              let testAccuracy = number("test_accuracy") else { return nil }
        self.init()
        self.epoch = epoch
        samplesTrained = trained
        samplesScored = scored
        samplesSkipped = skipped
        population = integer("population") ?? trained + scored + skipped
        self.testAccuracy = testAccuracy
        learningRate = number("lr") ?? .nan
        trainLoss = number("train_loss") ?? .nan
        trainAccuracy = number("train_accuracy") ?? .nan
        testLoss = number("test_loss") ?? .nan
        samplesPerSecond = number("samples_per_second") ?? .nan
        wallSeconds = number("wall_seconds") ?? .nan
        backpropSaved = number("backprop_saved") ?? .nan
        computeSaved = number("compute_saved") ?? .nan
        reentries = integer("reentries") ?? -1
        validationAccuracy = number("validation_accuracy") ?? .nan
        if case .bool(let stopped)? = value["stopped_early"] { stoppedEarly = stopped }
        trainStartUnix = number("train_start_unix") ?? .nan
        trainEndUnix = number("train_end_unix") ?? .nan
        energyJoules = number("energy_joules") ?? .nan
        evalEnergyJoules = number("eval_energy_joules") ?? .nan
        if case .string(let source)? = value["energy_source"] { energySource = source }
        if case .bool(let estimate)? = value["energy_estimate"] { energyEstimate = estimate }
        fp16SkippedSteps = integer("fp16_skipped_steps") ?? -1
        lossScale = number("loss_scale") ?? .nan
    }
}

/// JSON-safe number text (JSON has no NaN or infinity: those become null).
public enum JSONNumber {
    public static func format(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "null"
    }
}
