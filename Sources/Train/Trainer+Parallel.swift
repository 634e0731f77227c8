import Data
import NN
import Platform
import Select

/// Synchronous data-parallel training over the ranks of an mpirun job (`Cluster`).
///
/// Every rank draws the same global order from (seed, epoch), so the order does not depend on
/// the number of ranks K. A global batch of B samples (`--batch` is global) is dealt in rank
/// order: rank r trains samples `Cluster.part(of: B)` of it (floor or ceil of B/K), drawing
/// the augmentation a one-process run draws for them (it skips the other ranks' draws). Its
/// loss is a mean over B, not over its part, so each rank's gradient is its mean gradient
/// weighted by (its samples / B), and one allreduce (sum) over the model's contiguous gradient
/// region gives every rank the gradient of the global batch mean; the optimizer step, the same
/// on every rank, keeps the weights identical (checked by a checksum each epoch).
///
/// Batch norm uses each rank's batch statistics (as PyTorch DDP does by default); the running
/// statistics of rank 0 are broadcast at the end of each epoch (DDP broadcasts rank 0's buffers
/// before each forward, so the values used in evaluation and checkpoints are the same). With
/// `--sync-bn` (`BatchNormExchange`) every batch-norm layer normalises with the statistics of
/// the global batch, exchanged between the ranks in its forward and backward, so a step
/// computes what one process computes on the whole batch (up to the order of float sums).
///
/// Selection: a rank observes only its own samples' losses. It keeps them, in order, and after
/// the epoch the ranks gather them all (allgather), so every rank replays the one-process
/// run's `observeTrained`/`observeScored` calls, batch by batch with the same learning rates,
/// holds the whole per-sample state, and plans the next epoch identically. The scored samples
/// are dealt like the trained ones, so a policy that shrinks the trained set leaves no rank
/// idle. (A policy that selects within batches, Selective Backprop, needs the losses during
/// the epoch and is refused with several ranks.)
extension Trainer {
    /// One epoch's trained and scored samples dealt across the ranks (see the type's comment).
    func trainEpochInParts<Policy: SelectionPolicy>(
        policy: inout Policy, trainCount: Int, scoreCount: Int, tally: inout Tally, augment: inout SeededGenerator,
        progress: inout ProgressDisplay, started: Double
    ) {
        let schedule = config.learningRateSchedule
        ownObserved = 0
        clusterStop = false
        // This rank's samples in order, for a streamed pack's prefetch.
        let own = dealt(order, count: trainCount, into: rankOrder, rank: rank)
        let ownScored = dealt(scoreOrder, count: scoreCount, into: rankOrder + own, rank: rank)
        trainAssembler.beginPass(UnsafeBufferPointer(start: rankOrder, count: own + ownScored))
        var done = 0
        var lossSum = 0.0
        while done < trainCount && !halted {
            let batch = min(config.batch, trainCount - done)
            let learningRate = schedule.rate(at: Double(epoch) + Double(done) / Double(trainCount)) * learningRateScale
            trainPart(start: done, batch: batch, learningRate: learningRate, augment: &augment)
            lossSum += stepSums[0]
            done += batch
            progress.update(epoch: epoch + 1, epochs: config.epochs, done: done, total: trainCount + scoreCount,
                            started: started, loss: lossSum / Double(max(done, 1)))
        }
        var scored = 0
        while scored < scoreCount && numericFault == nil {
            let batch = min(config.batch, scoreCount - scored)
            let part = Cluster.part(of: batch)
            trainAssembler.skipAugmentation(count: part.lowerBound, generator: &augment)
            var chunk = part.lowerBound
            while chunk < part.upperBound {
                let count = min(localBatch, part.upperBound - chunk)
                scoreBatch(UnsafeBufferPointer(start: scoreOrder + scored + chunk, count: count), augment: &augment)
                keepObservations(count)
                chunk += count
            }
            trainAssembler.skipAugmentation(count: batch - part.upperBound, generator: &augment)
            scored += batch
            progress.update(epoch: epoch + 1, epochs: config.epochs, done: trainCount + scored, total: trainCount + scoreCount,
                            started: started, loss: lossSum / Double(max(done, 1)))
        }
        // The ranks agree whether the epoch is whole before they exchange its observations.
        for slot in 0..<4 { stepSums[slot] = 0 }
        stepSums[3] = StopRequest.requested || trainAssembler.failure != nil ? 1 : 0
        Cluster.sum(stepSums, count: 4)
        if stepSums[3] > 0 { clusterStop = true }
        guard !halted else { return }
        gatherObservations(trainCount: trainCount, scoreCount: scoreCount)
        // The one-process run's observation calls, in its order, on every rank.
        done = 0
        while done < trainCount {
            let batch = min(config.batch, trainCount - done)
            let learningRate = schedule.rate(at: Double(epoch) + Double(done) / Double(trainCount)) * learningRateScale
            policy.observeTrained(indices: UnsafeBufferPointer(start: order + done, count: batch), losses: positionLosses + done,
                                  correct: positionCorrect + done, epoch: epoch, learningRate: learningRate)
            for position in done..<(done + batch) {
                tally.lossSum += Double(positionLosses[position])
                tally.correct += Int(positionCorrect[position])
            }
            tally.trained += batch
            done += batch
        }
        scored = 0
        while scored < scoreCount {
            let batch = min(config.batch, scoreCount - scored)
            policy.observeScored(indices: UnsafeBufferPointer(start: scoreOrder + scored, count: batch),
                                 losses: positionLosses + trainCount + scored, correct: positionCorrect + trainCount + scored,
                                 epoch: epoch)
            tally.scored += batch
            scored += batch
        }
    }

    /// One optimizer step of the global batch `order[start ..< start + batch]`: this rank's part
    /// forward and backward, the fault/stop flags and loss summed over the ranks, one
    /// allreduce of the gradients, the update. Leaves the global loss sum in `stepSums[0]`.
    /// With `--exact-parts P` the rank's part is P/K pieces, each piece's gradient computed
    /// from zero and added in fixed point (exact, so the order of addition does not matter).
    func trainPart(start: Int, batch: Int, learningRate: Double, augment: inout SeededGenerator) {
        let share = Cluster.part(of: batch)
        trainAssembler.skipAugmentation(count: share.lowerBound, generator: &augment)
        for slot in 0..<4 { stepSums[slot] = 0 }
        var fault: String? = nil
        let pieces = parts > 0 ? (rank * parts / ranks)..<((rank + 1) * parts / ranks) : rank..<(rank + 1)
        let pieceCount = parts > 0 ? parts : ranks
        if parts > 0 { fixedGradients.update(repeating: 0, count: model.parameterCount) }
        model.zeroGradients(batch: 1)
        if let exchange = model.batchNormExchange {
            for other in 0..<ranks { exchange.rankSamples[other] = Cluster.part(of: batch, rank: other).count }
        }
        for piece in pieces {
            let range = (batch * piece / pieceCount)..<(batch * (piece + 1) / pieceCount)
            if range.isEmpty {
                // With --sync-bn the other ranks' batch norms wait for this rank's (empty) share.
                model.joinBatchNormExchanges()
                continue
            }
            let indices = UnsafeBufferPointer(start: order + start + range.lowerBound, count: range.count)
            trainAssembler.assemble(indices: indices, input: model.input, labels: model.labels, generator: &augment)
            for slot in 0..<range.count { model.sampleWeights[slot] = epochPlan.weights[Int(indices[slot])] }
            model.dropoutSeed = dropoutSeed(step: step)
            model.lossMeanOver = batch
            model.forwardBackward(batch: range.count)
            model.lossMeanOver = 0
            if step + 1 == injectedNaNStep {
                model.losses[0] = .nan
                injectedNaNStep = 0
            }
            for slot in 0..<range.count {
                if !model.losses[slot].isFinite && fault == nil {
                    fault = "loss of sample \(indices[slot]) is \(model.losses[slot]) (rank \(rank))"
                }
                stepSums[0] += Double(model.losses[slot])
                stepSums[1] += Double(model.correct[slot])
            }
            keepObservations(range.count)
            if parts > 0 && fault == nil { fault = addFixed() }
        }
        trainAssembler.skipAugmentation(count: batch - share.upperBound, generator: &augment)
        stepSums[2] = fault == nil ? 0 : 1
        stepSums[3] = StopRequest.requested || trainAssembler.failure != nil ? 1 : 0
        Cluster.sum(stepSums, count: 4)
        if stepSums[3] > 0 { clusterStop = true }
        if stepSums[2] > 0 {
            numericFault = NumericFault(epoch: epoch + 1, step: step + 1, what: fault ?? "a non-finite loss on another rank")
            return
        }
        let syncStarted = Clock.seconds()
        if parts > 0 {
            Cluster.sum(fixedGradients, count: model.parameterCount)
            for index in 0..<model.parameterCount {
                model.gradients[index] = Float(Double(fixedGradients[index]) * Trainer.fixedPointStep)
            }
        } else {
            Cluster.sum(model.gradients, count: model.parameterCount)
        }
        gradientSyncSeconds += Clock.seconds() - syncStarted
        gradientSyncs += 1
        optimizer.step(learningRate: learningRate)
    }

    /// The fixed-point unit of `--exact-parts` gradients: 2^-32 (gradients up to 2^24 in
    /// magnitude fit an Int64 summed over 2^7 parts).
    static let fixedPointStep = 1.0 / 4_294_967_296.0
    static let fixedPointLimit: Float = 16_777_216

    /// Adds the model's gradients, rounded to the fixed-point unit, to `fixedGradients`; a
    /// message when one is not finite or too large to convert.
    func addFixed() -> String? {
        for index in 0..<model.parameterCount {
            let value = model.gradients[index]
            guard value.isFinite && abs(value) < Trainer.fixedPointLimit else {
                return "gradient \(index) is \(value) (rank \(rank))"
            }
            fixedGradients[index] &+= Int64((Double(value) / Trainer.fixedPointStep).rounded())
        }
        return nil
    }

    /// Appends the last forward's first `count` losses and correctness to this rank's
    /// observations.
    func keepObservations(_ count: Int) {
        for slot in 0..<count {
            ownObservations[2 * (ownObserved + slot)] = model.losses[slot]
            ownObservations[2 * (ownObserved + slot) + 1] = Float(model.correct[slot])
        }
        ownObserved += count
    }

    /// Rank `rank`'s samples of `count` in batches of `config.batch` (its part of each), copied
    /// from `source` to `target` in order; their number.
    @discardableResult
    func dealt(_ source: UnsafePointer<Int32>?, count: Int, into target: UnsafeMutablePointer<Int32>?, rank: Int) -> Int {
        var written = 0
        var start = 0
        while start < count {
            let batch = min(config.batch, count - start)
            let part = Cluster.part(of: batch, rank: rank)
            if let source, let target {
                for position in part { target[written + position - part.lowerBound] = source[start + position] }
            }
            written += part.count
            start += batch
        }
        return written
    }

    /// Every rank's observations (allgather of the (loss, correct) pairs each kept, in its
    /// order), put back in the global order: `positionLosses[p]`, `positionCorrect[p]` for
    /// position p of the trained samples, then of the scored ones.
    func gatherObservations(trainCount: Int, scoreCount: Int) {
        var offset = 0
        for other in 0..<ranks {
            let records = dealt(nil, count: trainCount, into: nil, rank: other) + dealt(nil, count: scoreCount, into: nil, rank: other)
            rankBytes[other] = Int32(records * 8)
            rankOffsets[other] = Int32(offset)
            offset += records * 8
        }
        precondition(Int(rankBytes[rank]) == ownObserved * 8, "rank \(rank) observed \(ownObserved) samples, expected \(rankBytes[rank] / 8)")
        Cluster.gather(UnsafeRawPointer(ownObservations), into: UnsafeMutableRawPointer(allObservations),
                       counts: rankBytes, offsets: rankOffsets)
        for other in 0..<ranks {
            var cursor = Int(rankOffsets[other]) / 8
            for (first, total) in [(0, trainCount), (trainCount, scoreCount)] {
                var start = 0
                while start < total {
                    let batch = min(config.batch, total - start)
                    for position in Cluster.part(of: batch, rank: other) {
                        positionLosses[first + start + position] = allObservations[2 * cursor]
                        positionCorrect[first + start + position] = UInt8(allObservations[2 * cursor + 1])
                        cursor += 1
                    }
                    start += batch
                }
            }
        }
    }

    /// End of an epoch: rank 0's batch-norm running statistics to every rank, then the
    /// weights' checksum compared across ranks; when they differ every rank throws (all see the
    /// same gathered checksums), so every rank exits non-zero with the same message. With
    /// `--sync-bn` every rank updated its running statistics from the same global ones, so
    /// nothing is broadcast and the checksum checks that they agree.
    func synchronizeWeights() throws(TrainError) {
        if model.bufferCount > 0 && model.batchNormExchange == nil {
            Cluster.broadcast(UnsafeMutableRawPointer(model.buffers), bytes: model.bufferCount * 4)
        }
        var sum = UInt64(Checksum.crc32(UnsafeRawPointer(model.parameters), count: model.parameterCount * 4)) << 32
            | UInt64(Checksum.crc32(UnsafeRawPointer(model.buffers), count: model.bufferCount * 4))
        var sums = [UInt64](repeating: 0, count: ranks)
        sums.withUnsafeMutableBytes { all in Cluster.gather(&sum, bytes: 8, into: all.baseAddress!) }
        if sums.contains(where: { $0 != sums[0] }) {
            var list = ""
            for (index, value) in sums.enumerated() { list += (index > 0 ? ", " : "") + "rank \(index) \(String(value, radix: 16))" }
            throw TrainError("rank \(rank) of \(ranks): the weights differ across ranks after epoch \(epoch) (checksums \(list)); the ranks must run the same binary, data and options")
        }
    }
}
