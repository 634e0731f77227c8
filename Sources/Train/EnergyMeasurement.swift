import Energy
import Platform

/// Energy per epoch: opens the meter, fills the epoch's energy fields at its end, prints the
/// source and the summary. The sampling happens on the recorder's thread; everything here
/// runs at epoch ends.
public enum EnergyMeasurement {
    /// Opens `settings`' meter (falling back with a message) and starts a recorder; nil when
    /// energy is off or the recorder cannot start.
    public static func startRecorder(_ settings: MeterSettings) -> EnergyRecorder? {
        guard let meter = MeterDiscovery.open(settings, note: { print($0) }) else { return nil }
        let recorder = EnergyRecorder(meter: meter, hz: settings.sampleHz)
        do throws(EnergyError) { try recorder.start() } catch {
            print("energy: " + error.message + "; no energy figures for this run")
            return nil
        }
        return recorder
    }

    /// "energy: SOURCE" and, for an estimate, that it is one.
    public static func sourceLine(_ meter: Meter) -> String {
        "energy: " + meter.label + (meter.isEstimate ? " -- an ESTIMATE, not a measurement" : " (measured)")
    }

    /// Fills the training loop's and the evaluation's joules and the source.
    public static func fill(_ metrics: inout EpochMetrics, recorder: EnergyRecorder) {
        let evaluationEnded = Clock.seconds()
        recorder.sampleNow()
        let trace = recorder.trace()
        metrics.energyJoules = trace.energy(from: metrics.trainStarted, to: metrics.trainEnded).joules
        metrics.evalEnergyJoules = trace.energy(from: metrics.trainEnded, to: evaluationEnded).joules
        metrics.energySource = trace.label
        metrics.energyEstimate = trace.isEstimate
    }

    /// Totals over the epochs: joules, mean watts and joules per trained sample of the training
    /// loops, the source, and the sampler's own cost.
    public static func summary(_ history: [EpochMetrics], recorder: EnergyRecorder) -> String {
        var joules = 0.0, seconds = 0.0, trained = 0
        for metrics in history where metrics.energyJoules.isFinite {
            joules += metrics.energyJoules
            seconds += metrics.wallSeconds
            trained += metrics.samplesTrained
        }
        return "energy (training loops): \(Format.fixed(joules, 1)) J over \(Format.fixed(seconds, 1)) s, mean \(Format.fixed(joules / max(seconds, 1e-9), 2)) W, "
            + "\(Format.fixed(1000 * joules / Double(max(trained, 1)), 3)) mJ per trained sample; source: \(recorder.meter.label)"
            + (recorder.meter.isEstimate ? " (estimate)" : "") + "\n" + recorder.overheadLine
    }
}
