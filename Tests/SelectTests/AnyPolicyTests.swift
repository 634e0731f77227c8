import Platform
import Select
import Testing

/// `AnyPolicy` is a pure dispatcher: driven through the same epochs, it must plan exactly like
/// the policy it wraps, keep the same per-sample state, and hand the policy back unchanged.
@Suite struct AnyPolicyTests {
    /// Drives `direct` and `wrapped` through `epochs` identical epochs (losses that depend on
    /// sample and epoch, with a few jumps so re-entries and rank changes happen) and compares
    /// every plan, the encoded state of every sample, and the accounting properties.
    /// Returns how many sample-epochs were not planned `train` (so a test can require that the
    /// comparison covered real selection, not only all-train plans).
    @discardableResult
    func expectSame<P: SelectionPolicy>(_ direct: P, _ wrapped: AnyPolicy, count: Int, epochs: Int) -> Int {
        var direct = direct, wrapped = wrapped
        #expect(direct.id == wrapped.id && direct.stateStride == wrapped.stateStride)
        #expect(direct.selectsWithinBatches == wrapped.selectsWithinBatches)
        #expect(direct.validationFraction == wrapped.validationFraction)
        let planA = EpochPlan(sampleCount: count), planB = EpochPlan(sampleCount: count)
        var generatorA = SeededGenerator(seed: 9), generatorB = SeededGenerator(seed: 9)
        let loss: (Int, Int) -> Float = { index, epoch in
            let base = 2.0 * Float(0.8).power(epoch) / Float(1 + index % 7)
            return (index * 31 + epoch) % 17 == 0 ? base + 0.7 : base
        }
        var plansCompared = 0, notTrained = 0
        for epoch in 0..<epochs {
            let a = Drive.epoch(&direct, plan: planA, epoch: epoch, epochs: epochs, generator: &generatorA, loss: loss)
            let b = Drive.epoch(&wrapped, plan: planB, epoch: epoch, epochs: epochs, generator: &generatorB, loss: loss)
            #expect(a == b, "epoch \(epoch): plans differ")
            notTrained += a.filter { $0 != .train }.count
            #expect(Array(UnsafeBufferPointer(start: planA.weights, count: count)) == Array(UnsafeBufferPointer(start: planB.weights, count: count)), "epoch \(epoch): weights differ")
            #expect(direct.lastEpochReentries == wrapped.lastEpochReentries)
            #expect(direct.endEpoch(epoch: epoch, validationAccuracy: 0.5) == wrapped.endEpoch(epoch: epoch, validationAccuracy: 0.5))
            plansCompared += 1
        }
        #expect(plansCompared == epochs)
        let stride = max(direct.stateStride, 1)
        var recordA = [UInt8](repeating: 0, count: stride), recordB = [UInt8](repeating: 0, count: stride)
        for index in 0..<count {
            recordA.withUnsafeMutableBytes { direct.encodeState(index: index, into: $0.baseAddress!) }
            recordB.withUnsafeMutableBytes { wrapped.encodeState(index: index, into: $0.baseAddress!) }
            #expect(recordA == recordB, "sample \(index): state differs")
        }
        // decodeState goes through the wrapper too: the last sample's state, restored into
        // sample 1, encodes back to the same bytes.
        let last = recordA
        last.withUnsafeBytes { wrapped.decodeState(index: 1, from: $0.baseAddress!) }
        recordB.withUnsafeMutableBytes { wrapped.encodeState(index: 1, into: $0.baseAddress!) }
        #expect(recordB == last)
        return notTrained
    }

    @Test func iesThroughAnyPolicyPlansExactlyLikeIES() {
        let count = 64
        let excluded = expectSame(IESPolicy(sampleCount: count, threshold: 1e-2), .ies(IESPolicy(sampleCount: count, threshold: 1e-2)),
                                  count: count, epochs: 14)
        #expect(excluded > 0, "the losses must make IES exclude samples, or the comparison is trivial")
    }

    @Test func dihclThroughAnyPolicyPlansExactlyLikeDIHCL() {
        let count = 64
        let skipped = expectSame(DIHCLPolicy(sampleCount: count, epochs: 12, options: DIHCLOptions()),
                                 .dihcl(DIHCLPolicy(sampleCount: count, epochs: 12, options: DIHCLOptions())), count: count, epochs: 12)
        #expect(skipped > 0)
    }

    @Test func otherPoliciesThroughAnyPolicy() {
        let count = 48
        expectSame(InfoBatchPolicy(sampleCount: count, ratio: 0.5, annealFraction: 0.125),
                   .infoBatch(InfoBatchPolicy(sampleCount: count, ratio: 0.5, annealFraction: 0.125)), count: count, epochs: 8)
        expectSame(RandomRemovePolicy(fraction: 0.3, sampleCount: count),
                   .randomRemove(RandomRemovePolicy(fraction: 0.3, sampleCount: count)), count: count, epochs: 5)
        expectSame(SelectiveBackpropPolicy(sampleCount: count, beta: 3),
                   .selectiveBackprop(SelectiveBackpropPolicy(sampleCount: count, beta: 3)), count: count, epochs: 4)
        expectSame(FullPolicy(sampleCount: count), .full(FullPolicy(sampleCount: count)), count: count, epochs: 2)
    }
}
