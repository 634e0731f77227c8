import Platform

/// Streams a pack's samples in bounded memory: a prefetch thread reads and inflates the
/// blocks a pass needs, in the order the pass first needs them, one read per block, into a
/// ring of `ringSlots` block buffers; the consumer copies the samples it will need into a
/// buffer of sample slots and releases the block. When the whole decompressed set fits in
/// the budget, blocks are inflated into a cache instead and never read again.
///
/// Epoch orders come from `epochOrder`: the blocks in a random order, each block's samples
/// through a shuffle buffer of `shuffleBufferSamples`. Such an order (or any subsequence of
/// it, e.g. the samples a selection policy keeps) never holds more than shuffle buffer + one
/// block of samples pending. Any other order is still served, at the cost of extra reads
/// (a sample that does not fit in the slots is read again on its own).
public final class PackStream {
    public let pack: PackFile
    public let budgetBytes: Int
    public let shuffleBufferSamples: Int
    public let ringSlots: Int
    /// True when every block is kept decompressed after its first read.
    public let cacheMode: Bool
    /// Bytes this stream holds (buffers, cache and per-sample tables), fixed at init.
    public let plannedBytes: Int
    public let recordBytes: Int
    let sampleCount: Int
    let blockCount: Int
    let sampleSlotCount: Int
    let compressedStride: Int
    let outputStride: Int

    let compressedBuffers: UnsafeMutableRawPointer
    let outputBuffers: UnsafeMutableRawPointer
    let cache: UnsafeMutableRawPointer
    let loaded: UnsafeMutablePointer<UInt8>
    /// Per block: 2*pass when in the current pass's sequence, 2*pass+1 once taken.
    let blockState: UnsafeMutablePointer<UInt32>
    /// Per sample: the pass that still needs it (0 = none), and its sample slot (-1 = none).
    let passOfSample: UnsafeMutablePointer<UInt32>
    let slotOfSample: UnsafeMutablePointer<Int32>
    let sampleOfSlot: UnsafeMutablePointer<Int32>
    let freeSlots: UnsafeMutablePointer<Int32>
    var freeCount: Int
    let sampleSlots: UnsafeMutableRawPointer

    // Shared with the prefetch thread, guarded by `monitor`.
    let monitor = Monitor()
    let sequence: UnsafeMutablePointer<Int32>
    var sequenceCount = 0
    var produced = 0
    var taken = 0
    let slotBlock: UnsafeMutablePointer<Int32>
    var failure: DataError? = nil
    var stopping = false
    var thread: Thread? = nil

    var pass: UInt32 = 0
    /// A single block read outside the pass's sequence (a sample asked for out of order).
    let fallbackSource: PackSource
    let fallbackCodec = GzipCodec.decoder()
    let fallbackCompressed: UnsafeMutableRawPointer
    let fallbackOutput: UnsafeMutableRawPointer
    var fallbackBlock = -1
    /// Reads made outside the prefetch sequence (0 for orders from `epochOrder`).
    public private(set) var fallbackReads = 0
    /// Time the consumer waited for the prefetch thread, and CPU time the prefetch thread
    /// spent inflating and checking blocks (reads excluded): the two ways streaming can slow
    /// training. Read them between passes.
    public private(set) var stallNanoseconds: Int64 = 0
    public private(set) var decodeNanoseconds: Int64 = 0

    /// Fixed parts of a stream, for budgeting before anything is allocated.
    public static let defaultRingSlots = 4
    public static let defaultShuffleBufferSamples = 2048

    /// Bytes a stream over `pack` holds when it caches the whole set, and when it streams
    /// (block buffers, sample slots, per-sample tables), and its sample slot count.
    public static func requiredBytes(pack: PackFile, shuffleBufferSamples: Int = defaultShuffleBufferSamples,
                                     ringSlots: Int = defaultRingSlots) -> (cached: Int, streaming: Int, slots: Int) {
        let compressedStride = (pack.largestCompressedBlock + 63) & ~63
        let outputStride = (pack.largestBlock + 63) & ~63
        let largestBlockSamples = pack.blocks.reduce(0) { max($0, $1.sampleCount) }
        let tables = pack.header.sampleCount * 8 + pack.blocks.count * (4 + 4 + 4 + 1) + ringSlots * 4
        let fallback = compressedStride + outputStride
        let cached = tables + fallback + ringSlots * compressedStride + pack.uncompressedBytes
        let slots = min(shuffleBufferSamples, pack.header.sampleCount) + largestBlockSamples + 1
        let streaming = tables + fallback + ringSlots * (compressedStride + outputStride) + slots * (pack.header.recordBytes + 12)
        return (cached, streaming, slots)
    }

    /// Plans the buffers; throws when even the streaming buffers exceed `budgetBytes`.
    public init(pack: PackFile, budgetBytes: Int, shuffleBufferSamples: Int = PackStream.defaultShuffleBufferSamples,
                ringSlots: Int = PackStream.defaultRingSlots) throws(DataError) {
        precondition(ringSlots >= 1 && shuffleBufferSamples >= 0)
        self.pack = pack
        self.budgetBytes = budgetBytes
        self.ringSlots = ringSlots
        sampleCount = pack.header.sampleCount
        blockCount = pack.blocks.count
        recordBytes = pack.header.recordBytes
        self.shuffleBufferSamples = min(shuffleBufferSamples, sampleCount)
        compressedStride = (pack.largestCompressedBlock + 63) & ~63
        outputStride = (pack.largestBlock + 63) & ~63
        let (cachedBytes, streamingBytes, slots) = PackStream.requiredBytes(pack: pack, shuffleBufferSamples: shuffleBufferSamples, ringSlots: ringSlots)
        if cachedBytes <= budgetBytes {
            cacheMode = true
            sampleSlotCount = 0
            plannedBytes = cachedBytes
        } else if streamingBytes <= budgetBytes {
            cacheMode = false
            sampleSlotCount = slots
            plannedBytes = streamingBytes
        } else {
            throw DataError(path: pack.path, kind: .invalidArgument(
                "streaming needs \(streamingBytes) bytes (\(ringSlots) block buffers, \(slots) sample slots, per-sample tables) but the data memory budget is \(budgetBytes) bytes"))
        }
        compressedBuffers = .allocate(byteCount: ringSlots * compressedStride, alignment: 64)
        outputBuffers = .allocate(byteCount: cacheMode ? 64 : ringSlots * outputStride, alignment: 64)
        cache = .allocate(byteCount: cacheMode ? max(pack.uncompressedBytes, 1) : 64, alignment: 64)
        loaded = .allocate(capacity: blockCount)
        loaded.initialize(repeating: 0, count: blockCount)
        blockState = .allocate(capacity: blockCount)
        blockState.initialize(repeating: 0, count: blockCount)
        passOfSample = .allocate(capacity: sampleCount)
        passOfSample.initialize(repeating: 0, count: sampleCount)
        slotOfSample = .allocate(capacity: sampleCount)
        slotOfSample.initialize(repeating: -1, count: sampleCount)
        sampleOfSlot = .allocate(capacity: max(sampleSlotCount, 1))
        sampleOfSlot.initialize(repeating: -1, count: max(sampleSlotCount, 1))
        freeSlots = .allocate(capacity: max(sampleSlotCount, 1))
        for slot in 0..<sampleSlotCount { freeSlots[slot] = Int32(sampleSlotCount - 1 - slot) }
        freeCount = sampleSlotCount
        sampleSlots = .allocate(byteCount: max(sampleSlotCount * recordBytes, 1), alignment: 64)
        sequence = .allocate(capacity: blockCount)
        slotBlock = .allocate(capacity: ringSlots)
        slotBlock.initialize(repeating: -1, count: ringSlots)
        fallbackSource = try PackSource(path: pack.path, throttle: pack.source.throttle)
        fallbackCompressed = .allocate(byteCount: max(compressedStride, 1), alignment: 64)
        fallbackOutput = .allocate(byteCount: max(outputStride, 1), alignment: 64)
    }

    deinit {
        monitor.lock()
        stopping = true
        monitor.broadcast()
        monitor.unlock()
        thread?.join()
        compressedBuffers.deallocate(); outputBuffers.deallocate(); cache.deallocate()
        loaded.deallocate(); blockState.deallocate(); passOfSample.deallocate(); slotOfSample.deallocate()
        sampleOfSlot.deallocate(); freeSlots.deallocate(); sampleSlots.deallocate(); sequence.deallocate()
        slotBlock.deallocate(); fallbackCompressed.deallocate(); fallbackOutput.deallocate()
    }

    /// True when every block has been read into the cache (later passes read nothing).
    public var isFullyCached: Bool {
        guard cacheMode else { return false }
        for block in 0..<blockCount where loaded[block] == 0 { return false }
        return true
    }

    /// An epoch order of samples 0..<count: blocks in a random order (Fisher-Yates), their
    /// samples (those below `count`) through a shuffle buffer: once it holds S samples, each
    /// new sample takes the place of a uniformly drawn one, which is emitted; the remainder
    /// is emitted Fisher-Yates shuffled. Depends only on the generator, not on the budget.
    public func epochOrder(count: Int, generator: inout SeededGenerator, into output: UnsafeMutableBufferPointer<Int32>) {
        precondition(count >= 0 && count <= sampleCount && count <= output.count, "epoch order of \(count) samples")
        var blockOrder = [Int32](repeating: 0, count: blockCount)
        for block in 0..<blockCount { blockOrder[block] = Int32(block) }
        var position = blockCount - 1
        while position > 0 {
            blockOrder.swapAt(position, generator.below(position + 1))
            position -= 1
        }
        let capacity = min(shuffleBufferSamples, count)
        var buffer = [Int32](repeating: 0, count: max(capacity, 1))
        var filled = 0, emitted = 0
        for block in blockOrder {
            let entry = pack.blocks[Int(block)]
            // Blocks past a subset (`count` below the pack's size) hold no sample of this order.
            let end = min(entry.firstSample + entry.sampleCount, count)
            guard entry.firstSample < end else { continue }
            for sample in entry.firstSample..<end {
                if filled < capacity {
                    buffer[filled] = Int32(sample)
                    filled += 1
                } else if capacity == 0 {
                    output[emitted] = Int32(sample)
                    emitted += 1
                } else {
                    let drawn = generator.below(capacity)
                    output[emitted] = buffer[drawn]
                    emitted += 1
                    buffer[drawn] = Int32(sample)
                }
            }
        }
        var last = filled - 1
        while last > 0 {
            buffer.swapAt(last, generator.below(last + 1))
            last -= 1
        }
        for slot in 0..<filled { output[emitted + slot] = buffer[slot] }
    }

    /// Starts a pass over `order`: marks the samples needed, lists the blocks holding them in
    /// the order first needed (skipping cached ones) and hands the list to the prefetch thread.
    public func beginPass(_ order: UnsafeBufferPointer<Int32>) throws(DataError) {
        try finishPass()
        pass &+= 1
        if pass == 0 || pass >= UInt32.max / 2 {  // wrapped: clear the marks
            pass = 1
            passOfSample.update(repeating: 0, count: sampleCount)
            blockState.update(repeating: 0, count: blockCount)
        }
        var count = 0
        for raw in order {
            let sample = Int(raw)
            precondition(sample >= 0 && sample < sampleCount, "sample \(sample) is outside the pack's 0..<\(sampleCount)")
            passOfSample[sample] = pass
            let block = pack.block(holding: sample)
            if blockState[block] != 2 * pass && loaded[block] == 0 {
                blockState[block] = 2 * pass
                sequence[count] = Int32(block)
                count += 1
            }
        }
        if thread == nil && count > 0 {
            // Not retained by the thread: deinit stops and joins it before the stream goes away.
            let stream = Unmanaged.passUnretained(self)
            do { thread = try Thread(name: "pack prefetch") { stream.takeUnretainedValue().producerLoop() } }
            catch { throw DataError(error) }
        }
        monitor.lock()
        sequenceCount = count
        produced = 0
        taken = 0
        monitor.broadcast()
        monitor.unlock()
    }

    /// Waits for the prefetch thread to finish the current pass, dropping blocks not taken,
    /// and empties the sample slots.
    func finishPass() throws(DataError) {
        while true {
            monitor.lock()
            let remaining = taken < sequenceCount
            monitor.unlock()
            if !remaining { break }
            let (block, _) = try takeNext()
            if cacheMode { loaded[block] = 1 }
            release()
        }
        for slot in 0..<sampleSlotCount where sampleOfSlot[slot] >= 0 {
            slotOfSample[Int(sampleOfSlot[slot])] = -1
            sampleOfSlot[slot] = -1
        }
        freeCount = sampleSlotCount
        for slot in 0..<sampleSlotCount { freeSlots[slot] = Int32(sampleSlotCount - 1 - slot) }
    }

    /// The record (label, then elements) of `sample`; valid until the next call.
    public func record(_ sample: Int) throws(DataError) -> UnsafePointer<UInt8> {
        precondition(sample >= 0 && sample < sampleCount, "sample \(sample) is outside the pack's 0..<\(sampleCount)")
        let block = pack.block(holding: sample)
        if cacheMode {
            while loaded[block] == 0 && blockState[block] == 2 * pass {
                let (next, _) = try takeNext()
                loaded[next] = 1
                blockState[next] = 2 * pass + 1
                release()
            }
            if loaded[block] == 0 { try readOutOfSequence(block, into: cache + pack.blocks[block].firstSample * recordBytes); loaded[block] = 1 }
            return UnsafePointer((cache + sample * recordBytes).assumingMemoryBound(to: UInt8.self))
        }
        if passOfSample[sample] == pass {
            while slotOfSample[sample] < 0 && blockState[block] == 2 * pass {
                let (next, slot) = try takeNext()
                ingest(next, from: outputBuffers + slot * outputStride)
                blockState[next] = 2 * pass + 1
                release()
            }
            let slot = Int(slotOfSample[sample])
            if slot >= 0 {
                slotOfSample[sample] = -1
                sampleOfSlot[slot] = -1
                passOfSample[sample] = 0
                freeSlots[freeCount] = Int32(slot)
                freeCount += 1
                return UnsafePointer((sampleSlots + slot * recordBytes).assumingMemoryBound(to: UInt8.self))
            }
            passOfSample[sample] = 0
        }
        if fallbackBlock != block {
            fallbackBlock = -1
            try readOutOfSequence(block, into: fallbackOutput)
            fallbackBlock = block
        }
        return UnsafePointer((fallbackOutput + (sample - pack.blocks[block].firstSample) * recordBytes).assumingMemoryBound(to: UInt8.self))
    }

    /// Copies the records of `block` that this pass still needs into free sample slots.
    func ingest(_ block: Int, from records: UnsafeMutableRawPointer) {
        let entry = pack.blocks[block]
        for record in 0..<entry.sampleCount {
            let sample = entry.firstSample + record
            guard passOfSample[sample] == pass, slotOfSample[sample] < 0, freeCount > 0 else { continue }
            freeCount -= 1
            let slot = Int(freeSlots[freeCount])
            (sampleSlots + slot * recordBytes).copyMemory(from: records + record * recordBytes, byteCount: recordBytes)
            slotOfSample[sample] = Int32(slot)
            sampleOfSlot[slot] = Int32(sample)
        }
    }

    func readOutOfSequence(_ block: Int, into output: UnsafeMutableRawPointer) throws(DataError) {
        let entry = pack.blocks[block]
        fallbackReads += 1
        try fallbackSource.read(into: fallbackCompressed, count: entry.compressedBytes, at: entry.offset, block: block)
        try pack.decodeBlock(block, compressed: fallbackCompressed, into: output, codec: fallbackCodec)
    }

    /// The next block of the sequence and its ring slot, waiting for the prefetch thread.
    func takeNext() throws(DataError) -> (block: Int, slot: Int) {
        monitor.lock()
        if produced <= taken && failure == nil {
            let started = Clock.nanoseconds()
            while produced <= taken && failure == nil { monitor.wait() }
            stallNanoseconds += Clock.nanoseconds() - started
        }
        // The blocks read before a failure are handed out first: the error surfaces when the
        // consumer reaches the block that failed, however far ahead the prefetch thread ran.
        if produced <= taken, let failure {
            monitor.unlock()
            throw failure
        }
        let slot = taken % ringSlots
        let block = Int(slotBlock[slot])
        monitor.unlock()
        return (block, slot)
    }

    /// Gives the taken block's ring slot back to the prefetch thread.
    func release() {
        monitor.lock()
        taken += 1
        monitor.broadcast()
        monitor.unlock()
    }

    /// The prefetch thread: reads and inflates the sequence's blocks ahead of the consumer,
    /// at most `ringSlots` ahead. Stops at the first error and hands it to the consumer.
    func producerLoop() {
        let codec = GzipCodec.decoder()
        monitor.lock()
        while true {
            while !stopping && !(failure == nil && produced < sequenceCount && produced - taken < ringSlots) { monitor.wait() }
            if stopping { break }
            let block = Int(sequence[produced])
            let slot = produced % ringSlots
            monitor.unlock()
            var problem: DataError? = nil
            let compressed = compressedBuffers + slot * compressedStride
            let output = cacheMode ? cache + pack.blocks[block].firstSample * recordBytes : outputBuffers + slot * outputStride
            var decodeStarted: Int64 = 0
            do throws(DataError) {
                try pack.readBlock(block, into: compressed)
                decodeStarted = Clock.threadCPUNanoseconds()
                try pack.decodeBlock(block, compressed: compressed, into: output, codec: codec)
            } catch { problem = error }
            let decoded = decodeStarted > 0 ? Clock.threadCPUNanoseconds() - decodeStarted : 0
            monitor.lock()
            decodeNanoseconds += decoded
            if let problem {
                failure = problem  // the failed block is not produced; nothing after it is read
            } else {
                slotBlock[slot] = Int32(block)
                produced += 1
            }
            monitor.broadcast()
        }
        monitor.unlock()
    }
}
