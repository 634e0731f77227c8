import Kernels
import Platform

/// What a model needs to normalise over the ranks of a data-parallel run (`--sync-bn`): the
/// samples each rank holds in the global batch being trained (the trainer writes them before
/// every step) and the buffers of the per-layer exchanges, carved once by the trainer (a step
/// allocates nothing). `ranks` must be `Cluster.size`: every collective goes to all ranks.
///
/// Cost: one collective per batch-norm layer per pass, an allgather of K x C x 3 doubles in the
/// forward and an allreduce of C x 2 doubles in the backward (18 small exchanges a step for
/// resnet8's 9 layers). They cannot be batched: a layer's statistics are needed before the next
/// layer's input exists, and a layer's dInput before the layer below it can start; each is
/// latency, not bandwidth (a few hundred bytes).
public final class BatchNormExchange {
    public let ranks: Int
    /// Samples of each rank in the current global batch, [K].
    public let rankSamples: UnsafeMutablePointer<Int>
    /// Values a channel of each rank covers in the layer at hand (samples x H x W), [K].
    let rankSpatial: UnsafeMutablePointer<Int>
    /// This rank's (S, Q, c) per channel, [C_max, 3]; everyone's, [K, C_max, 3].
    let partial: UnsafeMutablePointer<Double>
    let gathered: UnsafeMutablePointer<Double>
    /// The backward sums, [C_max, 2] reduced over the ranks, then this rank's own [C_max, 2].
    let sums: UnsafeMutablePointer<Double>
    let maxChannels: Int
    /// Seconds spent in the exchanges (mostly waiting for the slower rank) and their count.
    public var seconds = 0.0
    public var exchanges = 0

    /// Bytes `init` carves for `ranks` ranks and the widest batch-norm layer of `description`.
    public static func bytes(ranks: Int, description: ModelDescription) -> Int {
        let channels = maxChannels(description)
        let stats = BatchNorm.partialStatisticsPerChannel, sums = BatchNorm.gradientSumsPerChannel
        return 2 * Arena.rounded(ranks * MemoryLayout<Int>.stride) + Arena.rounded(channels * stats * 8)
            + Arena.rounded(ranks * channels * stats * 8) + Arena.rounded(2 * channels * sums * 8)
    }

    /// Channels of the widest batch-norm layer (0 without one).
    public static func maxChannels(_ description: ModelDescription) -> Int {
        guard let shapes = try? description.shapes() else { return 0 }
        var channels = 0
        for (index, layer) in description.layers.enumerated() where layer.kind == .batchNorm {
            channels = max(channels, shapes[index].channels)
        }
        return channels
    }

    public init(ranks: Int, description: ModelDescription, arena: Arena) throws(MemoryError) {
        self.ranks = ranks
        let channels = BatchNormExchange.maxChannels(description)
        maxChannels = channels
        rankSamples = try arena.carve(Int.self, count: ranks, label: "samples per rank")
        rankSpatial = try arena.carve(Int.self, count: ranks, label: "batch-norm values per rank")
        partial = try arena.carve(Double.self, count: channels * BatchNorm.partialStatisticsPerChannel, label: "batch-norm partial statistics")
        gathered = try arena.carve(Double.self, count: ranks * channels * BatchNorm.partialStatisticsPerChannel,
                                   label: "batch-norm gathered statistics")
        sums = try arena.carve(Double.self, count: 2 * channels * BatchNorm.gradientSumsPerChannel, label: "batch-norm gradient sums")
    }
}

extension Model {
    /// Training-mode forward of batch-norm node `index` over the ranks (see `BatchNormExchange`):
    /// this rank's partial statistics, one allgather, the global statistics (the same on every
    /// rank, running statistics included), the normalisation. `input` is nil on a rank with no
    /// samples in this global batch, which still takes part in the exchange.
    func forwardExchangedBatchNorm(_ index: Int, exchange: BatchNormExchange, input: UnsafePointer<Float>?, batch: Int) {
        let layer = description.layers[index]
        let node = nodes[index]
        let shape = shapes[index]
        let plane = shape.height * shape.width
        let channels = shape.channels
        let spatial = batch * plane
        let stride = BatchNorm.partialStatisticsPerChannel
        if let input {
            BatchNorm.partialStatistics(partial: exchange.partial, input: input, channels: channels, spatial: spatial, context: context)
        } else {
            exchange.partial.update(repeating: 0, count: channels * stride)
        }
        for rank in 0..<exchange.ranks { exchange.rankSpatial[rank] = exchange.rankSamples[rank] * plane }
        let started = Clock.seconds()
        Cluster.gather(UnsafeRawPointer(exchange.partial), bytes: channels * stride * 8, into: UnsafeMutableRawPointer(exchange.gathered))
        exchange.seconds += Clock.seconds() - started
        exchange.exchanges += 1
        BatchNorm.combineStatistics(
            savedMean: node.savedMean!, savedInvStd: node.savedInverseStd!, runningMean: node.runningMean!,
            runningVariance: node.runningVariance!, gathered: exchange.gathered, rankSpatial: exchange.rankSpatial,
            ranks: exchange.ranks, channels: channels, epsilon: Float(layer.epsilon), momentum: Float(layer.momentum))
        if let input {
            BatchNorm.normaliseTraining(output: node.output, input: input, savedMean: node.savedMean!, savedInvStd: node.savedInverseStd!,
                                        gamma: node.weight!, beta: node.bias!, channels: channels, spatial: spatial, context: context)
        }
    }

    /// Backward of batch-norm node `index` over the ranks: this rank's sums of dy and
    /// dy * (x - mean), one allreduce, dInput from the global sums, dGamma and dBeta from the
    /// local ones. `dInput` nil: a rank with no samples, which only takes part in the exchange.
    func backwardExchangedBatchNorm(_ index: Int, exchange: BatchNormExchange, dInput: UnsafeMutablePointer<Float>?, batch: Int) {
        let node = nodes[index]
        let shape = shapes[index]
        let plane = shape.height * shape.width
        let channels = shape.channels
        let spatial = batch * plane
        let count = channels * BatchNorm.gradientSumsPerChannel
        let local = exchange.sums + count
        let input = source(description.layers[index].inputs[0])
        if dInput != nil {
            BatchNorm.partialGradientSums(sums: local, dOutput: node.dOutput, input: input, savedMean: node.savedMean!,
                                          channels: channels, spatial: spatial, context: context)
        } else {
            local.update(repeating: 0, count: count)
        }
        exchange.sums.update(from: local, count: count)
        let started = Clock.seconds()
        Cluster.sum(exchange.sums, count: count)
        exchange.seconds += Clock.seconds() - started
        exchange.exchanges += 1
        guard let dInput else { return }
        var globalSpatial = 0
        for rank in 0..<exchange.ranks { globalSpatial += exchange.rankSamples[rank] * plane }
        BatchNorm.backwardWithSums(
            dInput: dInput, dGamma: node.dWeight!, dBeta: node.dBias!, dOutput: node.dOutput, savedMean: node.savedMean!,
            savedInvStd: node.savedInverseStd!, input: input, gamma: node.weight!, globalSums: exchange.sums, localSums: local,
            channels: channels, spatial: spatial, globalSpatial: globalSpatial, context: context)
    }

    /// A rank with no samples in the current global batch (a last batch smaller than the
    /// number of ranks) joins the other ranks' batch-norm exchanges in their order: each
    /// layer's forward exchange (it updates its running statistics as they do), then the
    /// backward exchanges of the layers backward visits, in reverse order. Its gradients stay
    /// zero. Nothing without an exchange.
    public func joinBatchNormExchanges() {
        guard let exchange = batchNormExchange, !trainability.frozenStatistics else { return }
        for index in 0..<description.layers.count where description.layers[index].kind == .batchNorm {
            forwardExchangedBatchNorm(index, exchange: exchange, input: nil, batch: 0)
        }
        var index = description.layers.count - 1
        while index >= 0 {
            if description.layers[index].kind == .batchNorm && trainability.requiresGradient[index] {
                backwardExchangedBatchNorm(index, exchange: exchange, dInput: nil, batch: 0)
            }
            index -= 1
        }
    }
}
