import Foundation
import AllocCounting
import Testing
import Energy
import Platform

@Suite(.serialized) struct TraceTests {
    @Test func powerSamplesIntegrateByTheTrapezoidRule() {
        let trace = PowerTrace(label: "t", isEstimate: false, times: [0, 1, 2, 4], watts: [2, 4, 4, 0])
        #expect(trace.joules == [0, 3, 7, 11])
        #expect(trace.energy(from: 0, to: 4).joules == 11)
        #expect(trace.energy(from: 0.5, to: 1.5).joules == 3.5)   // 1.5 + 2: interpolated cumulative joules
        #expect(trace.energy(from: 1, to: 2).meanWatts == 4)
        #expect(trace.energy(from: -1, to: 2).joules.isNaN, "outside the trace: unavailable")
        #expect(trace.energy(from: -1, to: 2, tolerance: 1).joules == 9)   // extends the first sample's 2 W
        #expect(trace.energy(from: 3, to: 2).joules.isNaN)
    }

    @Test func externalLogParsesTimestampsAndAlignsToTheRun() {
        let csv = """
        timestamp,watts
        2026-11-23 09:15:00,5.0
        2026-11-23T09:15:01.5Z,6.0
        2026-11-23 09:15:02.5;7.0
        not a line
        1795425303.5,7.0
        """
        let log = ExternalLog.parse(csv)
        #expect(log.unixTimes.count == 4 && log.skipped == 2, "\(log.unixTimes) \(log.skipped)")
        // A meter's Windows software writes CRLF ("\r\n" is one Swift Character: splitting on
        // "\n" or "\r" alone saw one line and refused the log).
        let crlf = ExternalLog.parse(csv.split(separator: "\n").joined(separator: "\r\n") + "\r\n")
        #expect(crlf.unixTimes == log.unixTimes && crlf.watts == log.watts && crlf.skipped == 2, "\(crlf.unixTimes) \(crlf.skipped)")
        #expect(ExternalLog.timestamp("1970-01-02 00:00:00") == 86400)
        #expect(ExternalLog.timestamp("2000-03-01T00:00:00Z") == 951868800)
        #expect(ExternalLog.timestamp("2026-11-23 09:15:00") == 1795425300)
        #expect(ExternalLog.timestamp("2026-13-23 09:15:00") == nil)
        // The run's monotonic clock was 1000 s behind the wall clock's 1795424300.
        let trace = log.trace(wallMinusMonotonic: 1795424300)
        #expect(trace.times == [1000, 1001.5, 1002.5, 1003.5])
        // 1000..1001.5 at 5->6 W: 8.25 J; 1001.5..1002.5 at 6->7 W: 6.5 J.
        #expect(abs(trace.energy(from: 1000, to: 1002.5).joules - 14.75) < 1e-9)
        // A meter clock 0.5 s fast is corrected by the offset.
        #expect(log.trace(wallMinusMonotonic: 1795424300, offset: -0.5).times.first == 999.5)
    }

    func constantMeter(_ tree: FixtureTree) throws -> Meter {
        try tree.write("class/hwmon/hwmon0/name", "ina219\n")
        try tree.write("class/hwmon/hwmon0/power1_input", "2500000\n")
        return .hwmon(try HwmonMeter(directory: tree.root + "/class/hwmon/hwmon0", name: "ina219"))
    }

    @Test func recorderIntegratesAConstantMeterExactly() throws {
        let tree = FixtureTree("recorder")
        defer { tree.remove() }
        let recorder = EnergyRecorder(meter: try constantMeter(tree), hz: 50)
        try recorder.start()
        let start = Clock.seconds()
        for _ in 0..<5 { recorder.sampleNow() }
        let end = Clock.seconds()
        recorder.stop()
        let figures = recorder.trace().energy(from: start, to: end)
        #expect(abs(figures.joules - 2.5 * (end - start)) < 1e-9, "\(figures)")
        #expect(abs(figures.meanWatts - 2.5) < 1e-9)
        #expect(recorder.readingCount >= 6)
        #expect(recorder.trace().label.contains("ina219"))
        #expect(recorder.failures == 0)
    }

    @Test func aFullTraceKeepsEveryOtherSampleAndTheTotal() throws {
        let tree = FixtureTree("decimate")
        defer { tree.remove() }
        let recorder = EnergyRecorder(meter: try constantMeter(tree), hz: 0.01, capacity: 8)
        try recorder.start()
        for _ in 0..<40 { recorder.sampleNow() }
        recorder.stop()
        let trace = recorder.trace()
        #expect(trace.times.count <= 9, "\(trace.times.count)")   // 8 stored + the latest reading
        #expect(zip(trace.times, trace.times.dropFirst()).allSatisfy { $0 < $1 })
        let span = trace.times.last! - trace.times.first!
        #expect(abs(trace.joules.last! - 2.5 * span) < 1e-9)
        #expect(recorder.readingCount >= 41)
    }

    @Test func unreadableReadingsAreCountedNotStored() throws {
        let bad = FixtureTree("failing2")
        defer { bad.remove() }
        try bad.write("class/hwmon/hwmon0/name", "ina219\n")
        try bad.write("class/hwmon/hwmon0/power1_input", "2500000\n")
        let meter2 = Meter.hwmon(try HwmonMeter(directory: bad.root + "/class/hwmon/hwmon0", name: "ina219"))
        let recorder2 = EnergyRecorder(meter: meter2, hz: 0.01)
        try recorder2.start()
        try bad.write("class/hwmon/hwmon0/power1_input", "n/a\n")
        recorder2.sampleNow()
        recorder2.sampleNow()
        recorder2.stop()
        #expect(recorder2.failures >= 2)
        #expect(recorder2.lastError?.contains("power1_input") == true, "\(recorder2.lastError ?? "")")
        #expect(recorder2.trace().times.count == 1)
    }

    @Test func theSamplingThreadAllocatesNothingInSteadyState() throws {
        let tree = FixtureTree("noalloc")
        defer { tree.remove() }
        try tree.write("stat", "cpu  100 0 50 1000 20 5 5 0 0 0\n")
        let meter = Meter.model(try ModelMeter(model: .generic, source: .system, procRoot: tree.root))
        // Created before the recorder's thread: that thread is tracked (Tests/CAllocCounter).
        let tracker = AllocationTracker()
        defer { tracker.end() }
        let recorder = EnergyRecorder(meter: meter, hz: 0.01)
        try recorder.start()
        for _ in 0..<10 { recorder.sampleNow() }
        let (_, calls) = tracker.counting { for _ in 0..<200 { recorder.sampleNow() } }
        recorder.stop()
        #expect(AllocationTracker.isInterposing, "malloc is not the counting interposer")
        #expect(calls.total == 0, "200 readings made \(calls); callers:\n\(AllocationTracker.callSites().joined(separator: "\n"))")
        #expect(recorder.readingCount >= 211)
    }
}
