import Platform

/// Learning-rate schedules defined over epochs (fractional), never over step counts: a
/// selection policy changes how many steps an epoch has, and the schedule must not notice.
/// `progress` is epochs completed, e.g. 2.25 = a quarter into the third epoch, where the
/// fraction counts samples trained in this epoch over samples to be trained in it.
public struct LearningRateSchedule {
    public enum Kind: Equatable {
        /// The base rate throughout.
        case constant
        /// base x gamma^floor(progress / every) (PyTorch StepLR stepped per epoch).
        case step(every: Double, gamma: Double)
        /// base x gamma^floor(progress) (PyTorch ExponentialLR stepped per epoch).
        case exponential(gamma: Double)
        /// minimum + (base - minimum)(1 + cos(pi x progress / total)) / 2, continuous.
        case cosine(minimum: Double)
        /// Cosine restarted every `period` epochs (SGDR without period growth).
        case cyclicCosine(period: Double, minimum: Double)
        /// Cosine from base to `minimum` within each episode, restarted at every boundary
        /// (epochs, ascending; the last is the run's end): DIHCL's learning rate per episode.
        /// Empty boundaries mean "DIHCL's episodes of this run", filled in by the trainer.
        case perEpisode(boundaries: [Int], minimum: Double)
    }

    public var base: Double
    public var kind: Kind
    /// Linear warm-up from base / (warmup epochs x 10) ... base over the first `warmupEpochs`.
    public var warmupEpochs: Double
    /// Epochs in the whole run (cosine needs it).
    public var totalEpochs: Double

    public init(base: Double, kind: Kind, warmupEpochs: Double = 0, totalEpochs: Double) {
        self.base = base
        self.kind = kind
        self.warmupEpochs = warmupEpochs
        self.totalEpochs = totalEpochs
    }

    /// The rate at `progress` epochs.
    public func rate(at progress: Double) -> Double {
        var rate: Double
        switch kind {
        case .constant:
            rate = base
        case let .step(every, gamma):
            rate = base * FloatMath.pow(gamma, (progress / every).rounded(.down))
        case let .exponential(gamma):
            rate = base * FloatMath.pow(gamma, progress.rounded(.down))
        case let .cosine(minimum):
            let fraction = min(max(progress / max(totalEpochs, 1e-9), 0), 1)
            rate = minimum + (base - minimum) * (1 + FloatMath.cos(Double.pi * fraction)) / 2
        case let .cyclicCosine(period, minimum):
            let phase = progress - (progress / period).rounded(.down) * period
            rate = minimum + (base - minimum) * (1 + FloatMath.cos(Double.pi * phase / period)) / 2
        case let .perEpisode(boundaries, minimum):
            var start = 0.0, end = max(totalEpochs, 1e-9)
            for boundary in boundaries {
                let value = Double(boundary)
                if value <= progress { start = value } else { end = value; break }
            }
            let fraction = min(max((progress - start) / max(end - start, 1e-9), 0), 1)
            rate = minimum + (base - minimum) * (1 + FloatMath.cos(Double.pi * fraction)) / 2
        }
        if warmupEpochs > 0 && progress < warmupEpochs {
            rate *= max(progress / warmupEpochs, 0.1 / max(warmupEpochs, 1))
        }
        return rate
    }

    /// Parses "constant", "step:EVERY:GAMMA", "exp:GAMMA", "cosine[:MIN]", "cyclic:PERIOD[:MIN]",
    /// "episodes[:MIN]".
    public static func parseKind(_ text: String) -> Kind? {
        let parts = text.split(separator: ":").map(String.init)
        guard let name = parts.first else { return nil }
        let numbers = parts.dropFirst().compactMap { Double($0) }
        guard numbers.count == parts.count - 1, numbers.allSatisfy({ $0.isFinite && $0 >= 0 }) else { return nil }
        switch (name, numbers.count) {
        case ("constant", 0): return .constant
        case ("step", 2) where numbers[0] > 0: return .step(every: numbers[0], gamma: numbers[1])
        case ("exp", 1), ("exponential", 1): return .exponential(gamma: numbers[0])
        case ("cosine", 0): return .cosine(minimum: 0)
        case ("cosine", 1): return .cosine(minimum: numbers[0])
        case ("cyclic", 1) where numbers[0] > 0: return .cyclicCosine(period: numbers[0], minimum: 0)
        case ("cyclic", 2) where numbers[0] > 0: return .cyclicCosine(period: numbers[0], minimum: numbers[1])
        case ("episodes", 0): return .perEpisode(boundaries: [], minimum: 0)
        case ("episodes", 1): return .perEpisode(boundaries: [], minimum: numbers[0])
        default: return nil
        }
    }

    /// Help text for the schedule option.
    public static let syntax = "constant | step:EVERY:GAMMA | exp:GAMMA | cosine[:MIN] | cyclic:PERIOD[:MIN] | episodes[:MIN] (cosine within each DIHCL episode)"
}
