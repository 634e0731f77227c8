import Kernels

/// Where every node's output, output gradient and max-pool argmax live in the activation
/// arena. Offsets come from the liveness of each tensor over one training step, so tensors
/// whose lifetimes do not overlap share memory (ggml's graph allocator, worked out once):
///
/// - time runs forward node 0 ..< L, then the loss at L, then backward of node i at 2L - i;
/// - an output lives from its forward until its last reader: a consumer's forward, the
///   backward of a consumer that reads its input (conv, linear, batch norm), its own backward
///   for ReLU (the mask), the loss for the logits;
/// - a ReLU, ReLU6, dropout or add whose input's buffer has no later reader writes over it (in
///   place); hardswish and hardsigmoid do not (their backward reads x);
/// - an output gradient lives from the backward of its last consumer (the first writer) to
///   its own backward, and is zeroed when it comes alive, unless that first writer's backward
///   writes it instead of adding into it (a convolution's, batch norm's, pooling's or linear
///   node's data gradient, an add's copy: `overwriteBeforeBackward`); the input of an
///   elementwise node (ReLU, ReLU6, hardswish, hardsigmoid, dropout) or an add that has no other consumer shares
///   its consumer's gradient buffer (the elementwise node scales it in place, add passes it
///   through untouched);
/// - a dropout node keeps its mask as bits in the Int32 region from its forward to its backward;
/// - blocks are placed largest first at the lowest offset free over their lifetime;
/// - under a partial update (`Trainability`) a node that requires no gradient has no gradient
///   buffer and no backward, a frozen weight's input is not kept for dW, and a ReLU keeps its
///   backward mask as bits (in the Int32 region) instead of its Float output.
/// - Shapes: every offset and size is in elements (Float or Int32, 4 bytes) for `batch` samples.
struct ActivationLayout {
    /// Element offset of each node's output.
    var output: [Int]
    /// Element offset of each node's output gradient.
    var gradient: [Int]
    /// Element offset of each max-pool node's argmax in the separate Int32 region, else -1.
    var indices: [Int]
    /// The output is written over its first input's buffer (ReLU) or the named input (add).
    var outputInPlaceOf: [Int]
    /// The gradient buffer is its consumer's (-1: its own). For a ReLU consumer the backward
    /// masks in place; for an add consumer it passes through without work.
    var gradientSharedWith: [Int]
    /// For a convolution or batch-norm node, the ReLU that writes its output in place over the
    /// node's (whose output has no other reader), else -1: `Model.fusedReLU(after:)`.
    var inPlaceReLU: [Int]
    /// Node indices whose gradient buffer must be zeroed just before node j's backward, and
    /// those zeroed before the loss (the logits, and any node nothing reads).
    var zeroBeforeBackward: [[Int]]
    var zeroBeforeLoss: [Int]
    /// Node indices whose gradient buffer comes alive at node j's backward and is written, not
    /// added into, by it (so nothing zeroes it): see `overwritesInputGradient`. Before, every
    /// such buffer was zeroed, then read and added into by that writer: resnet8 at batch 64
    /// zeroed 20 buffers, about 33 MB, a step.
    var overwriteBeforeBackward: [[Int]]
    /// Float elements of the output and gradient region.
    var floatElements: Int
    /// Int32 elements of the argmax region (kept apart so no memory changes type).
    var indexElements: Int
    /// Element offset of each ReLU's bit mask (partial updates) or dropout's mask in the Int32
    /// region, else -1.
    var bitMask: [Int]

    private struct Block {
        var size: Int
        var start: Int
        var end: Int
        var offset = 0
    }

    /// 16 elements: 64-byte alignment for every block.
    private static func aligned(_ elements: Int) -> Int { (elements + 15) / 16 * 16 }

    /// With `sharing` false every tensor gets its own block, nothing runs in place and every
    /// gradient buffer is zeroed and added into: the naive twin the shared layout is tested
    /// against.
    init(_ description: ModelDescription, shapes: [TensorShape], batch: Int, sharing: Bool = true,
         trainability: Trainability? = nil) {
        let layers = description.layers
        let trainable = trainability ?? Trainability.all(description)
        let requires = trainable.requiresGradient
        // Bit masks only in partial updates: plain training keeps every ReLU output for the
        // next layer's dW anyway, and its arithmetic stays exactly as it was.
        let masked = layers.indices.map { sharing && trainable.isPartial && requires[$0] && layers[$0].kind == .relu }
        let count = layers.count
        let lossTime = count
        func backwardTime(_ node: Int) -> Int { 2 * count - node }

        var consumers = [[Int]](repeating: [], count: count)
        for (index, layer) in layers.enumerated() {
            for input in layer.inputs where input >= 0 && !consumers[input].contains(index) {
                consumers[input].append(index)
            }
        }

        // Outputs: each node's own last read, then in-place aliasing in forward order.
        var ownEnd = [Int](repeating: 0, count: count)
        for index in 0..<count {
            var end = index
            for consumer in consumers[index] {
                end = max(end, consumer)
                if trainable.backwardReadsInput(consumer, layers[consumer].kind) { end = max(end, backwardTime(consumer)) }
            }
            // ReLU and ReLU6 backward read their own output.
            if (layers[index].kind == .relu || layers[index].kind == .relu6) && requires[index] && !masked[index] {
                end = max(end, backwardTime(index))
                // (A batch norm with this ReLU fused into it recomputes the mask from its own
                // input in its backward: `BatchNorm.backward(reluBeta:)`.)
            }
            if index == count - 1 { end = max(end, lossTime) }
            ownEnd[index] = end
        }
        var blocks: [Block] = []
        var outputBlock = [Int](repeating: -1, count: count)
        var inPlaceOf = [Int](repeating: -1, count: count)
        for index in 0..<count {
            let layer = layers[index]
            var host = -1
            if sharing && [LayerKind.relu, .relu6, .dropout, .add].contains(layer.kind) {
                // The first input whose buffer nothing reads after this forward, and (for add)
                // not read twice by it.
                for input in layer.inputs where input >= 0 && host < 0 {
                    let distinct = layer.inputs.filter { $0 == input }.count == 1
                    if distinct && blocks[outputBlock[input]].end == index { host = input }
                }
            }
            if host >= 0 {
                outputBlock[index] = outputBlock[host]
                inPlaceOf[index] = host
                blocks[outputBlock[host]].end = max(blocks[outputBlock[host]].end, ownEnd[index])
            } else {
                outputBlock[index] = blocks.count
                blocks.append(Block(size: Self.aligned(batch * shapes[index].count), start: index, end: ownEnd[index]))
            }
        }

        // Argmax of max pooling: written at its forward, read at its backward.
        var indexBlock = [Int](repeating: -1, count: count)
        for index in 0..<count where layers[index].kind == .maxPool {
            indexBlock[index] = blocks.count
            blocks.append(Block(size: Self.aligned(batch * shapes[index].count), start: index,
                                end: requires[index] ? backwardTime(index) : index))
        }
        var maskBlock = [Int](repeating: -1, count: count)
        for index in 0..<count where masked[index] || layers[index].kind == .dropout {
            maskBlock[index] = blocks.count
            blocks.append(Block(size: Self.aligned(ReLU.maskWords(batch * shapes[index].count)), start: index,
                                end: requires[index] ? backwardTime(index) : index))
        }

        // Gradients, from the logits backwards so a consumer's block exists before its input's.
        var gradientBlock = [Int](repeating: -1, count: count)
        var sharedWith = [Int](repeating: -1, count: count)
        var zeroBefore = [[Int]](repeating: [], count: count)
        var overwriteBefore = [[Int]](repeating: [], count: count)
        var zeroLoss: [Int] = []
        var addPassedThrough = [Bool](repeating: false, count: count)
        var index = count - 1
        while index >= 0 {
            guard requires[index] else { index -= 1; continue }
            let users = consumers[index]
            if sharing, users.count == 1, Self.scalesGradientInPlace(layers[users[0]].kind)
                || (layers[users[0]].kind == .add && !addPassedThrough[users[0]]
                    && layers[users[0]].inputs.filter({ $0 == index }).count == 1) {
                let consumer = users[0]
                if layers[consumer].kind == .add { addPassedThrough[consumer] = true }
                gradientBlock[index] = gradientBlock[consumer]
                sharedWith[index] = consumer
                blocks[gradientBlock[consumer]].end = max(blocks[gradientBlock[consumer]].end, backwardTime(index))
            } else {
                let start: Int
                if let last = users.max() {
                    start = backwardTime(last)
                    if sharing && Self.overwritesInputGradient(layers[last], input: index) { overwriteBefore[last].append(index) }
                    else { zeroBefore[last].append(index) }
                } else {
                    // The logits (or a node nothing reads): written first by the loss.
                    start = lossTime
                    zeroLoss.append(index)
                }
                gradientBlock[index] = blocks.count
                blocks.append(Block(size: Self.aligned(batch * shapes[index].count), start: start, end: backwardTime(index)))
            }
            index -= 1
        }

        var isIndexBlock = [Bool](repeating: false, count: blocks.count)
        for block in indexBlock + maskBlock where block >= 0 { isIndexBlock[block] = true }
        let floatTotal = Self.place(&blocks, blocks.indices.filter { !isIndexBlock[$0] }, sharing: sharing)
        let indexTotal = Self.place(&blocks, blocks.indices.filter { isIndexBlock[$0] }, sharing: sharing)

        output = outputBlock.map { blocks[$0].offset }
        gradient = gradientBlock.map { $0 < 0 ? 0 : blocks[$0].offset }
        bitMask = maskBlock.map { $0 < 0 ? -1 : blocks[$0].offset }
        indices = indexBlock.map { $0 < 0 ? -1 : blocks[$0].offset }
        outputInPlaceOf = inPlaceOf
        var reluOver = [Int](repeating: -1, count: count)
        for index in 0..<count where layers[index].kind == .relu && inPlaceOf[index] >= 0
            && [LayerKind.conv2d, .batchNorm].contains(layers[inPlaceOf[index]].kind) {
            reluOver[inPlaceOf[index]] = index
        }
        inPlaceReLU = reluOver
        gradientSharedWith = sharedWith
        zeroBeforeBackward = zeroBefore
        overwriteBeforeBackward = overwriteBefore
        zeroBeforeLoss = zeroLoss
        floatElements = floatTotal
        indexElements = indexTotal
    }

    /// Whether `consumer`'s backward writes (rather than adds into) the gradient of `input`
    /// when it is that gradient's first writer: the data gradient of a convolution, batch norm,
    /// pooling, flatten or linear node (`accumulate: false`; the pooling nodes zero each plane
    /// just before their scatter), or an add's pass to an input it reads once (a copy).
    static func overwritesInputGradient(_ consumer: LayerSpec, input: Int) -> Bool {
        switch consumer.kind {
        case .conv2d, .batchNorm, .maxPool, .avgPool, .globalAvgPool, .flatten, .linear: return consumer.inputs == [input]
        case .add: return consumer.inputs.filter { $0 == input }.count == 1
        default: return false
        }
    }

    /// Elementwise kinds whose backward can overwrite the output gradient with the input's
    /// (dx = dy * f'(x), nothing accumulated when the input has no other consumer).
    static func scalesGradientInPlace(_ kind: LayerKind) -> Bool {
        [LayerKind.relu, .relu6, .hardSwish, .hardSigmoid, .dropout].contains(kind)
    }

    /// Places `members` largest first, each at the lowest offset that no placed block alive at
    /// an overlapping time uses. Returns the extent in elements.
    private static func place(_ blocks: inout [Block], _ members: [Int], sharing: Bool) -> Int {
        if !sharing {
            var total = 0
            for member in members {
                blocks[member].offset = total
                total += blocks[member].size
            }
            return total
        }
        let order = members.sorted { left, right in
            blocks[left].size != blocks[right].size ? blocks[left].size > blocks[right].size : left < right
        }
        var placed: [Int] = []
        var total = 0
        for candidate in order {
            let block = blocks[candidate]
            let busy = placed.filter { other in blocks[other].start <= block.end && block.start <= blocks[other].end }
                .map { (blocks[$0].offset, blocks[$0].offset + blocks[$0].size) }
                .sorted { $0.0 < $1.0 }
            var offset = 0
            for (begin, end) in busy {
                if offset + block.size <= begin { break }
                offset = max(offset, end)
            }
            blocks[candidate].offset = offset
            placed.append(candidate)
            total = max(total, offset + block.size)
        }
        return total
    }
}
