import Foundation
import Testing
import Energy
import Platform

@Suite(.serialized) struct MeterTests {
    /// hwmon0 a temperature sensor, hwmon1 an INA226, hwmon3 an INA3221 (numbers out of order on purpose).
    func hwmonTree() throws -> FixtureTree {
        let tree = FixtureTree("hwmon")
        try tree.write("class/hwmon/hwmon0/name", "cpu_thermal\n")
        try tree.write("class/hwmon/hwmon0/temp1_input", "45000\n")
        try tree.write("class/hwmon/hwmon1/name", "ina226\n")
        try tree.write("class/hwmon/hwmon1/power1_input", "2500000\n")
        try tree.write("class/hwmon/hwmon1/in1_input", "5000\n")
        try tree.write("class/hwmon/hwmon1/curr1_input", "500\n")
        try tree.write("class/hwmon/hwmon3/name", "ina3221\n")
        try tree.write("class/hwmon/hwmon3/in1_input", "5000\n")     // bus mV
        try tree.write("class/hwmon/hwmon3/curr1_input", "400\n")    // mA
        try tree.write("class/hwmon/hwmon3/in1_label", "VDD_IN\n")
        try tree.write("class/hwmon/hwmon3/in2_input", "3300\n")
        try tree.write("class/hwmon/hwmon3/curr2_input", "100\n")
        try tree.write("class/hwmon/hwmon3/in3_input", "1800\n")     // no curr3: not a channel
        try tree.write("class/hwmon/hwmon3/in4_input", "20000\n")    // shunt microvolts: ignored
        return tree
    }

    @Test func hwmonIsFoundByNameAndReadInMicrowatts() throws {
        let tree = try hwmonTree()
        defer { tree.remove() }
        var settings = MeterSettings(choice: .auto)
        settings.sysfsRoot = tree.root
        settings.procRoot = tree.root
        var notes: [String] = []
        let meter = try #require(MeterDiscovery.open(settings, note: { notes.append($0) }))
        #expect(meter.kind == "hwmon")
        #expect(meter.label.contains("ina226"), "\(meter.label)")
        #expect(!meter.isEstimate)
        #expect(watts(try meter.read(at: 0)) == 2.5)
        #expect(notes.isEmpty, "\(notes)")
    }

    @Test func ina3221IsBusVoltageTimesCurrentPerChannel() throws {
        let tree = try hwmonTree()
        defer { tree.remove() }
        var settings = MeterSettings(choice: .hwmon(name: "ina3221"))
        settings.sysfsRoot = tree.root
        let meter = try #require(MeterDiscovery.open(settings, note: { Issue.record("unexpected note \($0)") }))
        #expect(meter.label.contains("ina3221") && meter.label.contains("hwmon3") && meter.label.contains("VDD_IN"), "\(meter.label)")
        // 5000 mV x 400 mA + 3300 mV x 100 mA = 2.0 W + 0.33 W; in3 has no current.
        let value = try #require(watts(try meter.read(at: 0)))
        #expect(abs(value - 2.33) < 1e-12, "\(value)")
        // The reading follows the files.
        try tree.write("class/hwmon/hwmon3/curr1_input", "800\n")
        #expect(abs((watts(try meter.read(at: 0)) ?? 0) - 4.33) < 1e-12)
    }

    @Test func hwmonEnergyCountersAccumulateAndSurviveAReset() throws {
        let tree = FixtureTree("hwmon-energy")
        defer { tree.remove() }
        try tree.write("class/hwmon/hwmon0/name", "acme_energy\n")
        try tree.write("class/hwmon/hwmon0/energy1_input", "1000000\n")
        try tree.write("class/hwmon/hwmon0/energy2_input", "5000000\n")
        let meter = try HwmonMeter(directory: tree.root + "/class/hwmon/hwmon0", name: "acme_energy")
        #expect(meter.kind == .energy)
        #expect(joules(try meter.read()) == 0)
        try tree.write("class/hwmon/hwmon0/energy1_input", "3500000\n")   // +2.5 J
        try tree.write("class/hwmon/hwmon0/energy2_input", "5500000\n")   // +0.5 J
        #expect(joules(try meter.read()) == 3.0)
        try tree.write("class/hwmon/hwmon0/energy1_input", "250000\n")    // reset: counts 0.25 J
        #expect(joules(try meter.read()) == 3.25)
    }

    @Test func raplUnwrapsAtTheMaximumRange() throws {
        let tree = FixtureTree("rapl")
        defer { tree.remove() }
        let range: Int64 = 262_143_328_850
        try tree.write("class/powercap/intel-rapl:0/name", "package-0\n")
        try tree.write("class/powercap/intel-rapl:0/max_energy_range_uj", "\(range)\n")
        try tree.write("class/powercap/intel-rapl:0/energy_uj", "\(range - 1_000_000)\n")
        try tree.write("class/powercap/intel-rapl:0:0/name", "core\n")       // a subzone: not summed
        try tree.write("class/powercap/intel-rapl:0:0/energy_uj", "7\n")
        try tree.write("class/powercap/intel-rapl:0:0/max_energy_range_uj", "\(range)\n")
        var settings = MeterSettings(choice: .rapl)
        settings.sysfsRoot = tree.root
        let meter = try #require(MeterDiscovery.open(settings, note: { Issue.record("unexpected note \($0)") }))
        #expect(meter.kind == "rapl")
        #expect(meter.label.contains("package-0") && !meter.label.contains("core"), "\(meter.label)")
        let first = try #require(joules(try meter.read(at: 0)))
        try tree.write("class/powercap/intel-rapl:0/energy_uj", "500000\n")   // wrapped: 1 J before, 0.5 J after
        let second = try #require(joules(try meter.read(at: 0)))
        #expect(abs(second - first - 1.5) < 1e-9, "\(second - first)")
        try tree.write("class/powercap/intel-rapl:0/energy_uj", "2500000\n")
        #expect(abs((joules(try meter.read(at: 0)) ?? 0) - first - 3.5) < 1e-9)
        #expect(RAPLMeter.delta(from: 10, to: 25, range: 100) == 15)
        #expect(RAPLMeter.delta(from: 90, to: 5, range: 100) == 15)
    }

    @Test func raplPermissionErrorsSayHowToGetAccess() throws {
        // Tests run as root here, so the error is constructed: the message must say what to do.
        let meterError = RAPLMeterMessage.explain(code: EACCES)
        #expect(meterError.contains("root") && meterError.contains("energy_uj"), "\(meterError)")
        #expect(!RAPLMeterMessage.explain(code: ENOENT).contains("root only"))
    }

    @Test func missingAndUnreadableFilesFallBackToTheNextMeterWithAMessage() throws {
        let tree = FixtureTree("fallback")
        defer { tree.remove() }
        try tree.write("class/hwmon/hwmon0/name", "ina226\n")
        try tree.makeDirectory("class/hwmon/hwmon0/power1_input")  // opens, cannot be read
        try tree.write("stat", "cpu  100 0 50 1000 20 5 5 0 0 0\ncpu0 100 0 50 1000 20 5 5 0 0 0\n")
        var settings = MeterSettings(choice: .hwmon(name: "ina226"))
        settings.sysfsRoot = tree.root
        settings.procRoot = tree.root
        settings.pmicCommand = "false"
        var notes: [String] = []
        let meter = try #require(MeterDiscovery.open(settings, note: { notes.append($0) }))
        #expect(meter.kind == "model")
        #expect(meter.isEstimate)
        #expect(meter.label.contains("estimate"))
        #expect(notes.count == 3, "\(notes)")
        #expect(notes.count == 3 && notes[0].contains("power1_input") && notes[0].contains("hwmon"), "\(notes)")
        #expect(notes.count == 3 && notes[1].contains("rapl"), "\(notes)")
        #expect(notes.count == 3 && notes[2].contains("pmic"), "\(notes)")
        // A missing device by name says which devices exist.
        settings.choice = .hwmon(name: "ina219")
        notes = []
        _ = MeterDiscovery.open(settings, note: { notes.append($0) })
        #expect(notes.first?.contains("no device named 'ina219'") == true && notes.first?.contains("ina226") == true, "\(notes)")
        // Without a readable /proc/stat the model uses the process's CPU clock.
        settings.choice = .model
        settings.procRoot = tree.root + "/nowhere"
        notes = []
        let fallback = try #require(MeterDiscovery.open(settings, note: { notes.append($0) }))
        #expect(fallback.label.contains("this process"), "\(fallback.label)")
        #expect(notes.count == 1)
    }

    @Test func modelIntegratesIdleWattsAndBusyCPUTime() throws {
        let tree = FixtureTree("model")
        defer { tree.remove() }
        try tree.write("stat", "cpu  100 10 50 1000 20 5 5 3 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
        let model = PowerModel(idleWatts: 2.5, activeWattsPerCore: 1.25, name: "test")
        let meter = try ModelMeter(model: model, source: .system, procRoot: tree.root)
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        #expect(joules(try meter.read(at: 100)) == 0)
        // 4 busy seconds' worth of jiffies over 10 s of wall time: idle and iowait do not count.
        let busy = Int(4 * ticks)
        try tree.write("stat", "cpu  \(100 + busy / 2) 10 \(50 + busy / 2) 5000 900 5 5 3 0 0\n")
        let value = try #require(joules(try meter.read(at: 110)))
        #expect(abs(value - (2.5 * 10 + 1.25 * 4)) < 1e-9, "\(value)")
        #expect(meter.label.contains("2.5 W idle") && meter.label.contains("1.25 W per busy core"), "\(meter.label)")
    }

    @Test func procStatBusyTicks() {
        let text = Array("cpu  100 10 50 1000 20 5 6 3 0 0\ncpu0 9 9 9 9 9 9 9 9 9 9\n".utf8)
        let busy = text.withUnsafeBufferPointer { ModelMeter.busyTicks($0) }
        let expected: Int64 = 100 + 10 + 50 + 5 + 6 + 3  // user nice system irq softirq steal
        #expect(busy == expected)
        // An old kernel with four fields: the next line's numbers are not read.
        let old = Array("cpu  100 10 50 1000\ncpu0 9 9 9 9 9 9 9 9\n".utf8)
        #expect(old.withUnsafeBufferPointer { ModelMeter.busyTicks($0) } == 160)
        let wrong = Array("intr 1 2 3\n".utf8)
        #expect(wrong.withUnsafeBufferPointer { ModelMeter.busyTicks($0) } == nil)
    }

    @Test func powerModelOption() {
        #expect(PowerModel.parse("2.7,0.9") == PowerModel(idleWatts: 2.7, activeWattsPerCore: 0.9, name: "--power-model"))
        #expect(PowerModel.parse("2.7") == nil)
        #expect(PowerModel.parse("-1,2") == nil)
        #expect(PowerModel.parse("a,b") == nil)
        #expect(PowerModel.generic.watts(busyCores: 2) == 6.0)
        #expect(MeterSettings.parseChoice("hwmon:ina3221") == .hwmon(name: "ina3221"))
        #expect(MeterSettings.parseChoice("bogus") == nil)
    }
}

/// The RAPL permission message, reached through the public error path.
enum RAPLMeterMessage {
    static func explain(code: Int32) -> String {
        // A tree whose energy_uj is a directory reports EISDIR; for EACCES build the error the
        // way the meter does, through the same public initializer chain.
        RAPLMeter.message(for: SystemError(call: "open", subject: "/sys/class/powercap/intel-rapl:0/energy_uj", code: code))
    }
}
