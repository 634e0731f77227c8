import Platform

/// Why a memory plan or an arena refused a request.
public enum MemoryError: Error, CustomStringConvertible {
    /// An arena had fewer free bytes than a carve needed.
    case overflow(arena: String, label: String, neededBytes: Int, freeBytes: Int, capacityBytes: Int)
    /// The whole plan exceeds the budget the user allowed.
    case overBudget(neededBytes: Int, budgetBytes: Int)
    /// The system refused the one allocation.
    case system(SystemError)

    public var description: String {
        switch self {
        case let .overflow(arena, label, needed, free, capacity):
            return "arena '\(arena)' overflow: '\(label)' needs \(needed) bytes, \(free) free of \(capacity)"
        case let .overBudget(needed, budget):
            return "memory plan needs \(needed) bytes (\(Arena.mebibytes(needed)) MiB) but the budget is \(budget) bytes (\(Arena.mebibytes(budget)) MiB)"
        case let .system(error):
            return error.description
        }
    }
}

/// A fixed region of memory allocated once (mmap) and carved into 64-byte-aligned views by a
/// bump pointer. It never grows: a carve that does not fit throws `MemoryError.overflow` with
/// needed and free bytes. Sizes are computed before training (see `MemoryPlan`), so an overflow
/// is a planning bug, caught at start-up rather than mid-epoch.
public final class Arena {
    public static let alignment = 64
    public let name: String
    public let capacityBytes: Int
    private let memory: MappedMemory
    public private(set) var usedBytes = 0

    public init(name: String, capacityBytes: Int) throws(MemoryError) {
        self.name = name
        self.capacityBytes = capacityBytes
        do { memory = try MappedMemory.allocate(byteCount: capacityBytes, purpose: "arena '\(name)'") }
        catch { throw .system(error) }
    }

    deinit { memory.release() }

    public var freeBytes: Int { capacityBytes - usedBytes }

    /// Bytes a carve of `bytes` takes once rounded up to the alignment.
    @inline(__always)
    public static func rounded(_ bytes: Int) -> Int {
        (bytes + alignment - 1) / alignment * alignment
    }

    /// Carves `count` zeroed elements of `T`.
    public func carve<T>(_ type: T.Type, count: Int, label: String) throws(MemoryError) -> UnsafeMutablePointer<T> {
        let bytes = Arena.rounded(max(count, 0) * MemoryLayout<T>.stride)
        if bytes > freeBytes {
            throw .overflow(arena: name, label: label, neededBytes: bytes, freeBytes: freeBytes, capacityBytes: capacityBytes)
        }
        let pointer = (memory.base + usedBytes).bindMemory(to: T.self, capacity: max(count, 1))
        usedBytes += bytes
        return pointer
    }

    /// Carves `count` floats.
    public func floats(_ count: Int, label: String) throws(MemoryError) -> UnsafeMutablePointer<Float> {
        try carve(Float.self, count: count, label: label)
    }

    static func mebibytes(_ bytes: Int) -> String {
        let tenths = (bytes * 10 + 524_288) / 1_048_576
        return "\(tenths / 10).\(tenths % 10)"
    }
}

/// The sizes of every arena, computed before anything is allocated: each arena is made with
/// exactly its field's bytes and carved full.
public struct MemoryPlan {
    public var parameters = 0
    public var gradients = 0
    public var optimizerState = 0
    public var activations = 0
    public var scratch = 0
    /// A training run's per-sample buffers (epoch orders, the policy's plan, the validation
    /// split), sized by the trainer; 0 for a model alone.
    public var indices = 0
    /// Two batches of inputs and labels where Selective Backprop gathers the samples it
    /// scored into training batches; sized by the trainer; 0 for a model alone.
    public var staging = 0
    /// The binary16-rounded copy of the parameters that fp16 steps compute with (the
    /// parameters themselves stay the fp32 master weights); 0 under fp32.
    public var halfWeights = 0

    public init() {}

    public var totalBytes: Int { parameters + gradients + optimizerState + activations + scratch + indices + staging + halfWeights }

    /// Bytes of optimizer state for `parameterCount` parameters with `statePerParameter`
    /// floats each (momentum: 1, Adam: 2).
    public static func optimizerStateBytes(parameterCount: Int, statePerParameter: Int) -> Int {
        Arena.rounded(parameterCount * statePerParameter * MemoryLayout<Float>.stride)
    }

    /// One line for the start-up log: each arena in MiB and the total.
    public var budgetLine: String {
        "memory plan: parameters \(Arena.mebibytes(parameters)) MiB, gradients \(Arena.mebibytes(gradients)) MiB, "
            + "optimizer \(Arena.mebibytes(optimizerState)) MiB, activations \(Arena.mebibytes(activations)) MiB, "
            + "scratch \(Arena.mebibytes(scratch)) MiB, indices \(Arena.mebibytes(indices)) MiB, staging \(Arena.mebibytes(staging)) MiB, "
            + (halfWeights > 0 ? "fp16 compute weights \(Arena.mebibytes(halfWeights)) MiB, " : "") + "total \(Arena.mebibytes(totalBytes)) MiB"
    }

    /// Refuses a plan larger than `budgetBytes` (nil: no budget).
    public func check(budgetBytes: Int?) throws(MemoryError) {
        if let budget = budgetBytes, totalBytes > budget {
            throw .overBudget(neededBytes: totalBytes, budgetBytes: budget)
        }
    }
}
