import Platform

/// One of the built-in policies, dispatched by a switch: the closed-world stand-in for
/// `any SelectionPolicy`, which Embedded Swift does not have. The training loop is generic over
/// its policy and Embedded Swift specializes every generic per concrete type, so running every
/// policy through this one type compiles the loop, the state store and the command runners
/// once instead of once per policy (~15 KB of binary per policy on aarch64).
///
/// The calls are per batch or per epoch, never per sample, so the switch costs nothing
/// measurable. A mutating call copies the payload out, sets `self` to `.moved` (releasing the
/// enum's reference, so the policy's arrays are uniquely referenced and mutate in place, never
/// copied), calls the policy and puts it back.
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

    public var id: PolicyID {
        switch self {
        case .full(let p): return p.id
        case .randomRemove(let p): return p.id
        case .ies(let p): return p.id
        case .dihcl(let p): return p.id
        case .infoBatch(let p): return p.id
        case .selectiveBackprop(let p): return p.id
        case .earlyStop(let p): return p.id
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public var stateStride: Int {
        switch self {
        case .full(let p): return p.stateStride
        case .randomRemove(let p): return p.stateStride
        case .ies(let p): return p.stateStride
        case .dihcl(let p): return p.stateStride
        case .infoBatch(let p): return p.stateStride
        case .selectiveBackprop(let p): return p.stateStride
        case .earlyStop(let p): return p.stateStride
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public var selectsWithinBatches: Bool {
        switch self {
        case .full(let p): return p.selectsWithinBatches
        case .randomRemove(let p): return p.selectsWithinBatches
        case .ies(let p): return p.selectsWithinBatches
        case .dihcl(let p): return p.selectsWithinBatches
        case .infoBatch(let p): return p.selectsWithinBatches
        case .selectiveBackprop(let p): return p.selectsWithinBatches
        case .earlyStop(let p): return p.selectsWithinBatches
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public var validationFraction: Double {
        switch self {
        case .full(let p): return p.validationFraction
        case .randomRemove(let p): return p.validationFraction
        case .ies(let p): return p.validationFraction
        case .dihcl(let p): return p.validationFraction
        case .infoBatch(let p): return p.validationFraction
        case .selectiveBackprop(let p): return p.validationFraction
        case .earlyStop(let p): return p.validationFraction
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public var lastEpochReentries: Int {
        switch self {
        case .full(let p): return p.lastEpochReentries
        case .randomRemove(let p): return p.lastEpochReentries
        case .ies(let p): return p.lastEpochReentries
        case .dihcl(let p): return p.lastEpochReentries
        case .infoBatch(let p): return p.lastEpochReentries
        case .selectiveBackprop(let p): return p.lastEpochReentries
        case .earlyStop(let p): return p.lastEpochReentries
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public func encodeState(index: Int, into record: UnsafeMutableRawPointer) {
        switch self {
        case .full(let p): p.encodeState(index: index, into: record)
        case .randomRemove(let p): p.encodeState(index: index, into: record)
        case .ies(let p): p.encodeState(index: index, into: record)
        case .dihcl(let p): p.encodeState(index: index, into: record)
        case .infoBatch(let p): p.encodeState(index: index, into: record)
        case .selectiveBackprop(let p): p.encodeState(index: index, into: record)
        case .earlyStop(let p): p.encodeState(index: index, into: record)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public mutating func planEpoch(_ context: EpochContext, plan: EpochPlan, generator: inout SeededGenerator) {
        switch self {
        case .full(var p): self = .moved; p.planEpoch(context, plan: plan, generator: &generator); self = .full(p)
        case .randomRemove(var p): self = .moved; p.planEpoch(context, plan: plan, generator: &generator); self = .randomRemove(p)
        case .ies(var p): self = .moved; p.planEpoch(context, plan: plan, generator: &generator); self = .ies(p)
        case .dihcl(var p): self = .moved; p.planEpoch(context, plan: plan, generator: &generator); self = .dihcl(p)
        case .infoBatch(var p): self = .moved; p.planEpoch(context, plan: plan, generator: &generator); self = .infoBatch(p)
        case .selectiveBackprop(var p): self = .moved; p.planEpoch(context, plan: plan, generator: &generator); self = .selectiveBackprop(p)
        case .earlyStop(var p): self = .moved; p.planEpoch(context, plan: plan, generator: &generator); self = .earlyStop(p)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public mutating func observeTrained(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                        correct: UnsafePointer<UInt8>, epoch: Int, learningRate: Double) {
        switch self {
        case .full(var p): self = .moved; p.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate); self = .full(p)
        case .randomRemove(var p): self = .moved; p.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate); self = .randomRemove(p)
        case .ies(var p): self = .moved; p.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate); self = .ies(p)
        case .dihcl(var p): self = .moved; p.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate); self = .dihcl(p)
        case .infoBatch(var p): self = .moved; p.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate); self = .infoBatch(p)
        case .selectiveBackprop(var p): self = .moved; p.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate); self = .selectiveBackprop(p)
        case .earlyStop(var p): self = .moved; p.observeTrained(indices: indices, losses: losses, correct: correct, epoch: epoch, learningRate: learningRate); self = .earlyStop(p)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public mutating func observeScored(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                       correct: UnsafePointer<UInt8>, epoch: Int) {
        switch self {
        case .full(var p): self = .moved; p.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch); self = .full(p)
        case .randomRemove(var p): self = .moved; p.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch); self = .randomRemove(p)
        case .ies(var p): self = .moved; p.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch); self = .ies(p)
        case .dihcl(var p): self = .moved; p.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch); self = .dihcl(p)
        case .infoBatch(var p): self = .moved; p.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch); self = .infoBatch(p)
        case .selectiveBackprop(var p): self = .moved; p.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch); self = .selectiveBackprop(p)
        case .earlyStop(var p): self = .moved; p.observeScored(indices: indices, losses: losses, correct: correct, epoch: epoch); self = .earlyStop(p)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public mutating func selectWithinBatch(indices: UnsafeBufferPointer<Int32>, losses: UnsafePointer<Float>,
                                           selected: UnsafeMutablePointer<UInt8>, generator: inout SeededGenerator) {
        switch self {
        case .full(var p): self = .moved; p.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator); self = .full(p)
        case .randomRemove(var p): self = .moved; p.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator); self = .randomRemove(p)
        case .ies(var p): self = .moved; p.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator); self = .ies(p)
        case .dihcl(var p): self = .moved; p.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator); self = .dihcl(p)
        case .infoBatch(var p): self = .moved; p.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator); self = .infoBatch(p)
        case .selectiveBackprop(var p): self = .moved; p.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator); self = .selectiveBackprop(p)
        case .earlyStop(var p): self = .moved; p.selectWithinBatch(indices: indices, losses: losses, selected: selected, generator: &generator); self = .earlyStop(p)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public mutating func endEpoch(epoch: Int, validationAccuracy: Double?) -> Bool {
        switch self {
        case .full(var p): self = .moved; let r = p.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy); self = .full(p); return r
        case .randomRemove(var p): self = .moved; let r = p.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy); self = .randomRemove(p); return r
        case .ies(var p): self = .moved; let r = p.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy); self = .ies(p); return r
        case .dihcl(var p): self = .moved; let r = p.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy); self = .dihcl(p); return r
        case .infoBatch(var p): self = .moved; let r = p.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy); self = .infoBatch(p); return r
        case .selectiveBackprop(var p): self = .moved; let r = p.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy); self = .selectiveBackprop(p); return r
        case .earlyStop(var p): self = .moved; let r = p.endEpoch(epoch: epoch, validationAccuracy: validationAccuracy); self = .earlyStop(p); return r
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }

    public mutating func decodeState(index: Int, from record: UnsafeRawPointer) {
        switch self {
        case .full(var p): self = .moved; p.decodeState(index: index, from: record); self = .full(p)
        case .randomRemove(var p): self = .moved; p.decodeState(index: index, from: record); self = .randomRemove(p)
        case .ies(var p): self = .moved; p.decodeState(index: index, from: record); self = .ies(p)
        case .dihcl(var p): self = .moved; p.decodeState(index: index, from: record); self = .dihcl(p)
        case .infoBatch(var p): self = .moved; p.decodeState(index: index, from: record); self = .infoBatch(p)
        case .selectiveBackprop(var p): self = .moved; p.decodeState(index: index, from: record); self = .selectiveBackprop(p)
        case .earlyStop(var p): self = .moved; p.decodeState(index: index, from: record); self = .earlyStop(p)
        case .moved: preconditionFailure("AnyPolicy used while moved")
        }
    }
}
