import Energy

/// The energy options shared by train, compare and energy-run; the defaults are
/// `MeterSettings`' except the meter (auto here, none in the library).
enum EnergyOptions {
    static let standard = MeterSettings()

    static let meter = Parsed<MeterSettings.Choice>(
        "meter", "KIND", default: .auto, shown: "auto",
        help: "energy meter: " + MeterSettings.syntax + "; falls back in that order with a message",
        expected: MeterSettings.syntax, parse: MeterSettings.parseChoice)
    static let sysfsRoot = Option<String>("sysfs-root", "DIR", default: standard.sysfsRoot,
                                          help: "where sysfs is (hwmon and powercap are looked up below it)")
    static let powerModel = Parsed<PowerModel?>(
        "power-model", "IDLE,PER_CORE", default: nil,
        shown: "\(Energy.watts(standard.powerModel.idleWatts)),\(Energy.watts(standard.powerModel.activeWattsPerCore)) (\(standard.powerModel.name))",
        help: "the estimate's watts at idle and per busy core",
        expected: "IDLE,PER_CORE in watts (e.g. 2.7,0.9)") { PowerModel.parse($0).map { Optional($0) } }
    static let powerModelCPU = Choice<ModelMeter.CPUSource>(
        "power-model-cpu", "system|process", names: ["system", "process"], values: [.system, .process], default: standard.cpuSource,
        help: "the estimate's CPU time: all processes (/proc/stat) or this process only")
    static let sampleHz = Option<Double>("sample-hz", "HZ", default: standard.sampleHz, range: 0.01...1000,
                                         help: "meter readings per second")
    static let pmicCommand = Option<String>("pmic-command", "CMD", default: standard.pmicCommand, help: "the Pi 5 PMIC command")
    static let pmicBoardEstimate = Flag(
        "pmic-board-estimate",
        help: "report the Pi 5 board input estimated from the rails (sum x 1.1451 + 0.5879 W) instead of the rail sum")

    static let specs = [meter.spec, sysfsRoot.spec, powerModel.spec, powerModelCPU.spec, sampleHz.spec, pmicCommand.spec,
                        pmicBoardEstimate.spec]

    static func settings(_ options: ParsedOptions) throws(UsageError) -> MeterSettings {
        var settings = MeterSettings(choice: try options.value(meter))
        settings.sysfsRoot = try options.value(sysfsRoot)
        if let model = try options.value(powerModel) { settings.powerModel = model }
        settings.cpuSource = try options.value(powerModelCPU)
        settings.sampleHz = try options.value(sampleHz)
        settings.pmicCommand = try options.value(pmicCommand)
        settings.pmicBoardEstimate = options.isSet(pmicBoardEstimate)
        return settings
    }
}
