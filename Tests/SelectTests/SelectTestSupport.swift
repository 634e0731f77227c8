import Foundation
import Platform
import Select
import Testing

/// Shared helpers: drive a policy through epochs with synthetic per-sample losses.
enum Drive {
    /// Calls `observeTrained` with `indices` and their `losses`.
    static func trained<P: SelectionPolicy>(_ policy: inout P, _ indices: [Int32], _ losses: [Float], epoch: Int) {
        let correct = [UInt8](repeating: 1, count: max(indices.count, 1))
        indices.withUnsafeBufferPointer { indexBuffer in
            losses.withUnsafeBufferPointer { lossBuffer in
                correct.withUnsafeBufferPointer { correctBuffer in
                    policy.observeTrained(indices: indexBuffer, losses: lossBuffer.baseAddress!,
                                          correct: correctBuffer.baseAddress!, epoch: epoch, learningRate: 0.1)
                }
            }
        }
    }

    /// Calls `observeScored` with `indices` and their `losses`.
    static func scored<P: SelectionPolicy>(_ policy: inout P, _ indices: [Int32], _ losses: [Float], epoch: Int) {
        let correct = [UInt8](repeating: 1, count: max(indices.count, 1))
        indices.withUnsafeBufferPointer { indexBuffer in
            losses.withUnsafeBufferPointer { lossBuffer in
                correct.withUnsafeBufferPointer { correctBuffer in
                    policy.observeScored(indices: indexBuffer, losses: lossBuffer.baseAddress!,
                                         correct: correctBuffer.baseAddress!, epoch: epoch)
                }
            }
        }
    }

    /// One whole epoch as the training loop runs it: plan, train the `train` samples (loss
    /// from `loss(index, epoch)`), then score the `score` samples. Returns the plan's actions.
    @discardableResult
    static func epoch<P: SelectionPolicy>(_ policy: inout P, plan: EpochPlan, epoch: Int, epochs: Int,
                                          generator: inout SeededGenerator,
                                          loss: (Int, Int) -> Float) -> [SampleAction] {
        policy.planEpoch(EpochContext(epoch: epoch, epochs: epochs, learningRate: 0.1), plan: plan, generator: &generator)
        var actions: [SampleAction] = []
        var trainedIndices: [Int32] = [], trainedLosses: [Float] = []
        var scoredIndices: [Int32] = [], scoredLosses: [Float] = []
        for index in 0..<plan.sampleCount {
            let action = plan.action(index)
            actions.append(action)
            switch action {
            case .train: trainedIndices.append(Int32(index)); trainedLosses.append(loss(index, epoch))
            case .score: scoredIndices.append(Int32(index)); scoredLosses.append(loss(index, epoch))
            case .skip: break
            }
        }
        if !trainedIndices.isEmpty { trained(&policy, trainedIndices, trainedLosses, epoch: epoch) }
        if !scoredIndices.isEmpty { scored(&policy, scoredIndices, scoredLosses, epoch: epoch) }
        return actions
    }

    /// All of a policy's records, encoded back to back.
    static func records<P: SelectionPolicy>(_ policy: P, sampleCount: Int) -> [UInt8] {
        let stride = policy.stateStride
        var bytes = [UInt8](repeating: 0xEE, count: max(sampleCount * stride, 1))
        bytes.withUnsafeMutableBytes { raw in
            for index in 0..<sampleCount { policy.encodeState(index: index, into: raw.baseAddress! + index * stride) }
        }
        return Array(bytes.prefix(sampleCount * stride))
    }
}

/// A fresh empty directory under the system temporary directory.
func makeTemporaryDirectory(_ name: String) -> String {
    let path = FileManager.default.temporaryDirectory
        .appendingPathComponent("leitner-select-\(name)-\(UUID().uuidString)").path
    try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    return path
}
