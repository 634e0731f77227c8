import Data
import Energy
import Platform
import Select

/// An energy measurement campaign (`leitner energy-run`): the meter's idle power first, then
/// a training run on the same meter; gross and net (above idle) energy per epoch, from the
/// meter and optionally from an external meter's log read afterwards. The table and
/// energy.csv, energy.jsonl, power.csv and power.svg are the reporter's.
public enum EnergyCampaign {
    public struct Settings {
        /// Length of the idle baseline.
        public var idleSeconds = 10.0
        /// An external meter's CSV (timestamp, watts), aligned by its timestamps after the run.
        public var externalLog: String? = nil
        /// Seconds to add to the external log's timestamps (its clock's error).
        public var externalLogOffset = 0.0
        public init() {}
    }

    /// One epoch's figures from one source.
    public struct Row {
        public var epoch: Int
        public var source: String
        public var estimate: Bool
        public var metrics: EpochMetrics
        public var gross: Double
        public var idleWatts: Double
        public var net: Double { gross - idleWatts * metrics.wallSeconds }
    }

    /// An idle baseline as one source saw it.
    public struct Idle {
        public var source: String
        public var estimate: Bool
        public var figures: EnergyFigures
    }

    /// Everything the campaign measured.
    public struct Result {
        /// Per source (the meter, then the external log), per epoch.
        public var rows: [Row]
        public var idle: [Idle]
        /// The idle baseline's start and end (monotonic seconds).
        public var idleStart: Double
        public var idleEnd: Double
        /// The meter's trace, and the external log's aligned to it.
        public var trace: PowerTrace
        public var external: PowerTrace?
        public var history: [EpochMetrics]
        /// When the meter started (monotonic seconds): time zero of the reports.
        public var origin: Double
        /// The sampler's own cost.
        public var overheadLine: String
    }

    /// Measures the idle baseline, trains `config` with the policy `kind` names on the same
    /// meter, reads the external log, and reports the result to `reporter`.
    public static func run(_ config: TrainConfig, policy kind: PolicyKind, settings: PolicySettings, campaign: Settings,
                           train: Dataset, test: Dataset, reporter: Reporter) throws(TrainError) -> Result {
        do { try FileSystem.makeDirectories(config.outputDirectory) } catch { throw TrainError(error) }
        guard let recorder = EnergyMeasurement.startRecorder(config.energy, reporter: reporter) else {
            throw TrainError("no meter could be started")
        }
        reporter.energySource(recorder.meter)
        reporter.note("idle baseline: \(Format.fixed(campaign.idleSeconds, 1)) s, keep the board otherwise idle")
        let idleStart = Clock.seconds()
        // In slices, so SIGINT/SIGTERM end the baseline at once (the handlers only set a flag).
        while Clock.seconds() - idleStart < campaign.idleSeconds {
            if StopRequest.requested {
                recorder.stop()
                throw TrainError("stopped by \(StopRequest.signalName) during the idle baseline; no epoch was trained")
            }
            Thread.sleep(seconds: min(0.1, max(0, campaign.idleSeconds - (Clock.seconds() - idleStart))))
        }
        let idleEnd = Clock.seconds()
        let idle = recorder.energy(from: idleStart, to: idleEnd)
        reporter.note("idle: \(Format.fixed(idle.joules, 2)) J over \(Format.fixed(idle.seconds, 2)) s = \(Format.fixed(idle.meanWatts, 3)) W")

        reporter.note("policy: \(kind.name)")
        let history: [EpochMetrics]
        do {
            history = try Training.run(config, policy: kind, settings: settings, train: train, test: test, reporter: reporter,
                                       recorder: recorder)
            recorder.stop()
        } catch {
            recorder.stop()
            throw error
        }
        let trace = recorder.trace()
        var result = Result(
            rows: history.map {
                Row(epoch: $0.epoch, source: trace.label, estimate: trace.isEstimate, metrics: $0, gross: $0.energyJoules, idleWatts: idle.meanWatts)
            },
            idle: [Idle(source: trace.label, estimate: trace.isEstimate, figures: idle)], idleStart: idleStart, idleEnd: idleEnd,
            trace: trace, external: nil, history: history, origin: recorder.startTime, overheadLine: recorder.overheadLine)
        var externalLogFailure: String? = nil
        if let path = campaign.externalLog {
            do throws(EnergyError) {
                let log = try ExternalLog.load(path)
                let aligned = log.trace(wallMinusMonotonic: recorder.wallMinusMonotonic, offset: campaign.externalLogOffset)
                let externalIdle = aligned.energy(from: idleStart, to: idleEnd, tolerance: 1)
                reporter.note("external log \(path): \(log.unixTimes.count) samples (\(log.skipped) lines skipped); idle \(Format.fixed(externalIdle.meanWatts, 3)) W")
                result.idle.append(Idle(source: aligned.label, estimate: false, figures: externalIdle))
                for metrics in history {
                    let figures = aligned.energy(from: metrics.trainStarted, to: metrics.trainEnded, tolerance: 1)
                    result.rows.append(Row(epoch: metrics.epoch, source: aligned.label, estimate: false, metrics: metrics,
                                           gross: figures.joules, idleWatts: externalIdle.meanWatts))
                }
                if history.contains(where: { aligned.energy(from: $0.trainStarted, to: $0.trainEnded, tolerance: 1).joules.isNaN }) {
                    reporter.note("external log \(path): does not cover every epoch (check its clock, --external-log-offset)")
                }
                result.external = aligned
            } catch {
                reporter.warning("leitner energy-run: " + error.message)
                externalLogFailure = error.message
            }
        }
        reporter.energyCampaignFinished(result, directory: config.outputDirectory)
        // The reports with the meter's own source are written; a missing or unreadable external
        // log still fails the command (it was asked for).
        if let externalLogFailure { throw TrainError("the external log was not read: " + externalLogFailure) }
        return result
    }
}
