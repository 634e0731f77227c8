import Energy
import Platform

/// Energy per epoch: opens the meter and fills the epoch's energy fields at its end (the
/// reporter prints the source and the totals). The sampling happens on the recorder's thread;
/// everything here runs at epoch ends.
public enum EnergyMeasurement {
    /// Opens `settings`' meter (falling back with a message) and starts a recorder; nil when
    /// energy is off or the recorder cannot start.
    public static func startRecorder(_ settings: MeterSettings, reporter: Reporter) -> EnergyRecorder? {
        guard let meter = MeterDiscovery.open(settings, note: { reporter.note($0) }) else { return nil }
        let recorder = EnergyRecorder(meter: meter, hz: settings.sampleHz)
        do throws(EnergyError) { try recorder.start() } catch {
            reporter.note("energy: " + error.message + "; no energy figures for this run")
            return nil
        }
        return recorder
    }

    /// How long an epoch boundary waits for a fresh reading: a meter slower than this (a PMIC
    /// command of seconds) no longer holds training; the epoch's last stretch then uses the
    /// latest reading's power, and the run's summary counts such boundaries.
    public static let boundaryWaitSeconds = 0.5

    /// Fills the training loop's and the evaluation's joules and the source.
    public static func fill(_ metrics: inout EpochMetrics, recorder: EnergyRecorder) {
        let evaluationEnded = Clock.seconds()
        recorder.sampleNow(waitingAtMost: boundaryWaitSeconds)
        let trace = recorder.trace()
        metrics.energyJoules = trace.energy(from: metrics.trainStarted, to: metrics.trainEnded).joules
        metrics.evalEnergyJoules = trace.energy(from: metrics.trainEnded, to: evaluationEnded).joules
        metrics.energySource = trace.label
        metrics.energyEstimate = trace.isEstimate
    }
}
