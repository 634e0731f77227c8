import Platform
import Select
import Kernels

/// Wraps a policy and, after each epoch, has the reporter write every sample's loss of that
/// epoch and the action the policy planned for it to `directory/losses-EEEE.bin` (E = the
/// 1-based epoch, as in metrics.jsonl), for `tools/check-ies-reference` to replay. The losses
/// are copied during the epoch (one store per observed sample); the file is written in
/// `endEpoch`, after the epoch's training and evaluation. Format (little-endian, docs/loss-dump.md):
///     0 magic "LTNRLOS1", 8 version u32 = 1, 12 policy id u32, 16 epoch u64, 24 N u64,
///     32 N losses f32 (NaN = no loss observed this epoch), then N actions u8 (0 train, 1 score, 2 skip).
///
/// With `directory` nil the wrapper only forwards (nothing copied or written). The training
/// command always wraps its policy this way so that each policy type specializes the
/// training session once, not twice (Embedded Swift specializes every generic per type: one
/// `TrainingSession.run` per policy and per wrapper costs ~11 KB of binary each).
public struct LossDumpingPolicy<Inner: SelectionPolicy>: SelectionPolicy {
    /// The wrapped policy: it plans, observes and keeps its state as if unwrapped.
    public var inner: Inner
    public let directory: String?
    let reporter: Reporter
    let sampleCount: Int
    var losses: [Float]
    var actions: [UInt8]
    var epoch = 0
    /// Files that could not be written (each also reported on standard error).
    public private(set) var failures = 0

    public init(_ inner: Inner, sampleCount: Int, directory: String?, reporter: Reporter = Reporter()) throws(TrainError) {
        self.inner = inner
        self.directory = directory
        self.reporter = reporter
        guard let directory else {
            self.sampleCount = 0
            losses = []
            actions = []
            return
        }
        self.sampleCount = sampleCount
        losses = [Float](repeating: .nan, count: sampleCount)
        actions = [UInt8](repeating: SampleAction.train.rawValue, count: sampleCount)
        do { try FileSystem.makeDirectories(directory) } catch { throw TrainError(error) }
    }

    public var id: PolicyID { inner.id }
    public var stateStride: Int { inner.stateStride }
    public var selectsWithinBatches: Bool { inner.selectsWithinBatches }
    public var validationFraction: Double { inner.validationFraction }
    public var lastEpochReentries: Int { inner.lastEpochReentries }

    public static func path(directory: String, epoch: Int) -> String { LossDumpFile.path(directory: directory, epoch: epoch) }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        inner.planEpoch(context, plan: plan, generator: &generator)
        epoch = context.epoch
        guard directory != nil else { return }
        for index in 0..<sampleCount {
            actions[index] = plan.actions[index]
            losses[index] = .nan
        }
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses batchLosses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
        inner.observeTrained(indices: indices, losses: batchLosses, correct: correct, epoch: epoch, learningRate: learningRate)
        guard directory != nil else { return }
        for slot in 0..<indices.count { losses[Int(indices[slot])] = batchLosses[slot] }
    }

    public mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses batchLosses: UnsafePointer<Float>,
                                       correct: UnsafePointer<UInt8>, epoch: Int) {
        inner.observeScored(indices: indices, losses: batchLosses, correct: correct, epoch: epoch)
        guard directory != nil else { return }
        for slot in 0..<indices.count { losses[Int(indices[slot])] = batchLosses[slot] }
    }

    public var wantsFeatures: Bool { inner.wantsFeatures }
    public mutating func prepareFeatures(dimension: Int) { inner.prepareFeatures(dimension: dimension) }
    public mutating func observeFeatures(indices: UnsafeBufferPointer<Int32>, rows: UnsafePointer<Float>, dimension: Int) {
        inner.observeFeatures(indices: indices, rows: rows, dimension: dimension)
    }

    public mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses batchLosses: UnsafePointer<Float>,
                                           selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
        inner.selectWithinBatch(indices: indices, losses: batchLosses, selected: selected, generator: &generator)
    }

    public mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool {
        if let directory, !reporter.writeLossDump(directory: directory, epoch: self.epoch + 1, policy: inner.id, losses: losses, actions: actions) {
            failures += 1
        }
        return inner.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy)
    }

    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) { inner.encodeState(index: index, into: record) }
    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) { inner.decodeState(index: index, from: record) }

}

/// The loss-dump file's fixed parts (format above and in docs/loss-dump.md).
public enum LossDumpFile {
    public static var magic: [UInt8] { Array("LTNRLOS1".utf8) }
    public static var headerSize: Int { 32 }

    /// DIRECTORY/losses-EEEE.bin for the 1-based `epoch`.
    public static func path(directory: String, epoch: Int) -> String {
        var number = "\(epoch)"
        while number.count < 4 { number = "0" + number }
        return directory + "/losses-" + number + ".bin"
    }
}

extension Reporter {
    /// Writes one epoch's loss dump (the 1-based `epoch`; the whole file in one buffer, one
    /// write); false after a warning when it could not be written.
    func writeLossDump(directory: String, epoch: Int, policy: PolicyID, losses: [Float], actions: [UInt8]) -> Bool {
        typealias Dump = LossDumpFile
        let sampleCount = losses.count
        let size = Dump.headerSize + 5 * sampleCount
        var bytes = [UInt8](repeating: 0, count: size)
        let path = Dump.path(directory: directory, epoch: epoch)
        let policyID = UInt32(policy.rawValue), epochNumber = UInt64(epoch), count = UInt64(sampleCount)
        var failure: SystemError? = nil
        bytes.withUnsafeMutableBytes { raw in
            let base = raw.baseAddress!
            for (offset, byte) in Dump.magic.enumerated() { base.storeBytes(of: byte, toByteOffset: offset, as: UInt8.self) }
            base.storeBytes(of: UInt32(1).littleEndian, toByteOffset: 8, as: UInt32.self)
            base.storeBytes(of: policyID.littleEndian, toByteOffset: 12, as: UInt32.self)
            base.storeBytes(of: epochNumber.littleEndian, toByteOffset: 16, as: UInt64.self)
            base.storeBytes(of: count.littleEndian, toByteOffset: 24, as: UInt64.self)
            for index in 0..<sampleCount {
                base.storeBytes(of: losses[index].bitPattern.littleEndian, toByteOffset: Dump.headerSize + 4 * index, as: UInt32.self)
                base.storeBytes(of: actions[index], toByteOffset: Dump.headerSize + 4 * sampleCount + index, as: UInt8.self)
            }
            do throws(SystemError) {
                let file = try FileHandle.create(path)
                defer { try? file.close() }
                try file.writeAll(UnsafeRawPointer(base), count: size)
            } catch {
                failure = error
            }
        }
        if let failure {
            warning("leitner: loss dump not written: " + failure.description)
            return false
        }
        return true
    }
}
