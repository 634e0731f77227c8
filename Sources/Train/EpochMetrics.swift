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

    public init() {}

    /// The JSON line (no trailing newline). Keys are stable: tools read them.
    public var jsonLine: String {
        "{\"epoch\":\(epoch),\"lr\":\(JSONNumber.format(learningRate)),\"train_loss\":\(JSONNumber.format(trainLoss)),"
            + "\"train_accuracy\":\(JSONNumber.format(trainAccuracy)),\"test_loss\":\(JSONNumber.format(testLoss)),"
            + "\"test_accuracy\":\(JSONNumber.format(testAccuracy)),\"samples_per_second\":\(JSONNumber.format(samplesPerSecond)),"
            + "\"wall_seconds\":\(JSONNumber.format(wallSeconds)),\"samples_trained\":\(samplesTrained),"
            + "\"samples_scored\":\(samplesScored),\"samples_skipped\":\(samplesSkipped)}"
    }
}

/// JSON-safe number text (JSON has no NaN or infinity: those become null).
public enum JSONNumber {
    public static func format(_ value: Double) -> String {
        value.isFinite ? "\(value)" : "null"
    }
}
