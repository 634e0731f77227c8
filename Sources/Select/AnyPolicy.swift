import Platform

/// One of the built-in policies, dispatched by a switch: the closed-world stand-in for
/// `any SelectionPolicy`, which Embedded Swift does not have. The training loop is generic over
/// its policy and Embedded Swift specializes every generic per concrete type, so running every
/// policy through this one type compiles the loop, the state store and the command runners
/// once instead of once per policy (~15 KB of binary per policy on aarch64).
///
/// Every requirement goes through one of two switches, `read` and `call`, with a small visitor
/// per requirement (specialized, so the call is as direct as a hand-written switch). The calls
/// are per batch or per epoch, never per sample. A mutating call copies the payload out, sets
/// `self` to `.moved` (releasing the enum's reference, so the policy's arrays are uniquely
/// referenced and mutate in place, never copied), calls the policy and puts it back.
public enum AnyPolicy: SelectionPolicy {
    case full(FullPolicy)
    case randomRemove(RandomRemovePolicy)
    case ies(IESPolicy)
    case dihcl(DIHCLPolicy)
    case infoBatch(InfoBatchPolicy)
    case selectiveBackprop(SelectiveBackpropPolicy)
    case earlyStop(EarlyStopPolicy)
    /// Transient: only while a mutating call has moved the payload out.
    case moved

    /// The policy `kind` names, configured from `settings` for `sampleCount` samples and a
    /// run of `epochs` epochs.
    public init(_ kind: PolicyKind, settings: PolicySettings, sampleCount: Int, epochs: Int) {
        switch kind {
        case .full:
            self = .full(FullPolicy(sampleCount: sampleCount))
        case .randomRemove:
            self = .randomRemove(RandomRemovePolicy(fraction: settings.removeFraction, sampleCount: sampleCount, removedByEpoch: settings.removeCounts))
        case .ies:
            self = .ies(IESPolicy(sampleCount: sampleCount, order: settings.iesOrder, threshold: settings.iesThreshold,
                                  rescoreEvery: settings.iesRescoreEvery, fullDataLast: settings.fullDataLast))
        case .dihcl:
            self = .dihcl(DIHCLPolicy(sampleCount: sampleCount, epochs: epochs, options: settings.dihcl))
        case .infoBatch:
            self = .infoBatch(InfoBatchPolicy(sampleCount: sampleCount, ratio: settings.infoBatchRatio,
                                              annealFraction: settings.infoBatchAnneal))
        case .selectiveBackprop:
            self = .selectiveBackprop(SelectiveBackpropPolicy(sampleCount: sampleCount, beta: settings.selectiveBackpropBeta))
        case .earlyStop:
            self = .earlyStop(EarlyStopPolicy(sampleCount: sampleCount, patience: settings.patience,
                                              validationFraction: settings.validationFraction))
        }
    }

    /// Something read from the wrapped policy.
    protocol Reader {
        associatedtype Value
        func read<Policy: SelectionPolicy>(_ policy: Policy) -> Value
    }

    /// Something done to the wrapped policy (the generator is the caller's, when it passes one).
    protocol Call {
        associatedtype Value
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) -> Value
    }

    func read<R: Reader>(_ reader: R) -> R.Value {
        switch self {
        case .full(let policy): return reader.read(policy)
        case .randomRemove(let policy): return reader.read(policy)
        case .ies(let policy): return reader.read(policy)
        case .dihcl(let policy): return reader.read(policy)
        case .infoBatch(let policy): return reader.read(policy)
        case .selectiveBackprop(let policy): return reader.read(policy)
        case .earlyStop(let policy): return reader.read(policy)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    mutating func call<C: Call>(_ call: C, generator: inout SeededGenerator) -> C.Value {
        let result: C.Value
        switch self {
        case .full(var policy): self = .moved; result = call.call(&policy, generator: &generator); self = .full(policy)
        case .randomRemove(var policy): self = .moved; result = call.call(&policy, generator: &generator); self = .randomRemove(policy)
        case .ies(var policy): self = .moved; result = call.call(&policy, generator: &generator); self = .ies(policy)
        case .dihcl(var policy): self = .moved; result = call.call(&policy, generator: &generator); self = .dihcl(policy)
        case .infoBatch(var policy): self = .moved; result = call.call(&policy, generator: &generator); self = .infoBatch(policy)
        case .selectiveBackprop(var policy): self = .moved; result = call.call(&policy, generator: &generator); self = .selectiveBackprop(policy)
        case .earlyStop(var policy): self = .moved; result = call.call(&policy, generator: &generator); self = .earlyStop(policy)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
        return result
    }

    /// `call` for a requirement that draws no random numbers.
    mutating func call<C: Call>(_ call: C) -> C.Value {
        var unused = SeededGenerator(seed: 0)
        return self.call(call, generator: &unused)
    }

    struct ID: Reader { func read<Policy: SelectionPolicy>(_ policy: Policy) -> PolicyID { policy.id } }
    struct StateStride: Reader { func read<Policy: SelectionPolicy>(_ policy: Policy) -> Int { policy.stateStride } }
    struct SelectsWithinBatches: Reader { func read<Policy: SelectionPolicy>(_ policy: Policy) -> Bool { policy.selectsWithinBatches } }
    struct ValidationFraction: Reader { func read<Policy: SelectionPolicy>(_ policy: Policy) -> Double { policy.validationFraction } }
    struct LastEpochReentries: Reader { func read<Policy: SelectionPolicy>(_ policy: Policy) -> Int { policy.lastEpochReentries } }

    public var id: PolicyID { read(ID()) }
    public var stateStride: Int { read(StateStride()) }
    public var selectsWithinBatches: Bool { read(SelectsWithinBatches()) }
    public var validationFraction: Double { read(ValidationFraction()) }
    public var lastEpochReentries: Int { read(LastEpochReentries()) }

    struct WantsFeatures: Reader { func read<Policy: SelectionPolicy>(_ policy: Policy) -> Bool { policy.wantsFeatures } }
    public var wantsFeatures: Bool { read(WantsFeatures()) }

    struct PrepareFeatures: Call {
        let dimension: Int
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) {
            policy.prepareFeatures(dimension: dimension)
        }
    }

    public mutating func prepareFeatures(dimension: Int) {
        call(PrepareFeatures(dimension: dimension))
    }

    struct ObserveFeatures: Call {
        let indices: UnsafeBufferPointer<Int32>
        let rows: UnsafePointer<Float>
        let dimension: Int
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) {
            policy.observeFeatures(indices: indices, rows: rows, dimension: dimension)
        }
    }

    public mutating func observeFeatures(indices: UnsafeBufferPointer<Int32>, rows: UnsafePointer<Float>, dimension: Int) {
        call(ObserveFeatures(indices: indices, rows: rows, dimension: dimension))
    }

    struct EncodeState: Reader {
        let index: Int
        let record: UnsafeMutableRawPointer
        func read<Policy: SelectionPolicy>(_ policy: Policy) { policy.encodeState(index: index, into: record) }
    }

    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {
        read(EncodeState(index: index, record: record))
    }

    struct PlanEpoch: Call {
        let context: EpochContext
        let plan: EpochPlan
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) {
            policy.planEpoch(context, plan: plan, generator: &generator)
        }
    }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        call(PlanEpoch(context: context, plan: plan), generator: &generator)
    }

    struct ObserveTrained: Call {
        let indices: UnsafeBufferPointer<Int32>
        let losses: UnsafePointer<Float>
        let correct: UnsafePointer<UInt8>
        let epoch: Int
        let learningRate: Double
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) {
            policy.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate)
        }
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
        call(ObserveTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate))
    }

    struct ObserveScored: Call {
        let indices: UnsafeBufferPointer<Int32>
        let losses: UnsafePointer<Float>
        let correct: UnsafePointer<UInt8>
        let epoch: Int
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) {
            policy.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch)
        }
    }

    public mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                       correct: UnsafePointer<UInt8>, epoch: Int) {
        call(ObserveScored(indices: indices, losses: losses, correct: correct, epoch: epoch))
    }

    struct SelectWithinBatch: Call {
        let indices: UnsafeBufferPointer<Int32>
        let losses: UnsafePointer<Float>
        let selected: UnsafeMutablePointer<UInt8>
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) {
            policy.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator)
        }
    }

    public mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                           selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
        call(SelectWithinBatch(indices: indices, losses: losses, selected: selected), generator: &generator)
    }

    struct EndEpoch: Call {
        let epoch: Int
        let validationAccuracy: Double?
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) -> Bool {
            policy.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy)
        }
    }

    public mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool {
        call(EndEpoch(epoch: epoch, validationAccuracy: validationAccuracy))
    }

    struct DecodeState: Call {
        let index: Int
        let record: UnsafeRawPointer
        func call<Policy: SelectionPolicy>(_ policy: inout Policy, generator: inout SeededGenerator) {
            policy.decodeState(index: index, from: record)
        }
    }

    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {
        call(DecodeState(index: index, record: record))
    }
}
