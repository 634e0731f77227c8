import Data
import NN
import Platform
import Energy
import Select

extension Training {
    /// Trains one run of `config` with the policy `kind` names (configured from `settings`)
    /// and returns the epochs' metrics; the events go to `reporter`. `recorder`: a running
    /// energy recorder to share (the energy campaign's); nil: the session opens its own.
    public static func run(_ config: TrainConfig, policy kind: PolicyKind, settings: PolicySettings, train: Dataset, test: Dataset,
                           reporter: Reporter, recorder: EnergyRecorder? = nil) throws(TrainError) -> [EpochMetrics] {
        let sampleCount = config.trainLimit > 0 ? min(config.trainLimit, train.count) : train.count
        let policy = AnyPolicy(kind, settings: settings, sampleCount: sampleCount, epochs: config.epochs)
        var config = config
        // --schedule episodes: a cosine within each of DIHCL's episodes of this run.
        if case let .perEpisode(boundaries, minimum) = config.schedule, boundaries.isEmpty {
            config.schedule = .perEpisode(boundaries: settings.dihcl.boundaries(epochs: config.epochs), minimum: minimum)
        }
        config.runFacts.add(policy: kind, settings: settings)
        if Cluster.size > 1 {
            if policy.selectsWithinBatches {
                throw TrainError("policy \(kind.name) selects within batches from losses seen during the epoch, which ranks do not share until its end: it runs on one rank only")
            }
            if Cluster.rank != 0 {
                config.lossDumpDirectory = nil
                config.progress = false
            }
        }
        let session = try TrainingSession(config: config, train: train, test: test, validationFraction: policy.validationFraction,
                                          reporter: reporter)
        session.recorder = recorder
        // Always wrapped (a no-op without a directory): one specialization of the session.
        var wrapped = try LossDumpingPolicy(policy, sampleCount: session.trainer.train.count, directory: config.lossDumpDirectory,
                                            reporter: reporter)
        if let directory = config.lossDumpDirectory { reporter.note("loss dump: \(directory)/losses-EEEE.bin after each epoch") }
        try session.run(policy: &wrapped)
        if wrapped.failures > 0 {
            throw TrainError("the loss dump of \(wrapped.failures) epoch(s) was not written to \(config.lossDumpDirectory ?? "")")
        }
        return session.history
    }
}
