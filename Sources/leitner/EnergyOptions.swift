import Energy

/// The energy options shared by train, compare and energy-run.
enum EnergyOptions {
    static let specs: [OptionSpec] = [
        OptionSpec("meter", value: "KIND", help: "energy meter: " + MeterSettings.syntax + "; falls back in that order with a message", default: "auto"),
        OptionSpec("sysfs-root", value: "DIR", help: "where sysfs is (hwmon and powercap are looked up below it)", default: "/sys"),
        OptionSpec("power-model", value: "IDLE,PER_CORE", help: "the estimate's watts at idle and per busy core", default: "3,1.5 (generic)"),
        OptionSpec("power-model-cpu", value: "system|process", help: "the estimate's CPU time: all processes (/proc/stat) or this process only", default: "system"),
        OptionSpec("sample-hz", value: "HZ", help: "meter readings per second", default: "10"),
        OptionSpec("pmic-command", value: "CMD", help: "the Pi 5 PMIC command", default: PMICMeter.defaultCommand),
        OptionSpec("pmic-board-estimate", help: "report the Pi 5 board input estimated from the rails (sum x 1.1451 + 0.5879 W) instead of the rail sum"),
    ]

    static func settings(_ options: ParsedOptions) throws(UsageError) -> MeterSettings {
        let text = options.string("meter", default: "auto")
        guard let choice = MeterSettings.parseChoice(text) else {
            throw UsageError(message: "leitner: --meter must be \(MeterSettings.syntax), got '\(text)'")
        }
        var settings = MeterSettings(choice: choice)
        settings.sysfsRoot = options.string("sysfs-root", default: "/sys")
        if let model = options.values["power-model"] {
            guard let parsed = PowerModel.parse(model) else {
                throw UsageError(message: "leitner: --power-model takes IDLE,PER_CORE in watts (e.g. 2.7,0.9), got '\(model)'")
            }
            settings.powerModel = parsed
        }
        switch options.string("power-model-cpu", default: "system") {
        case "system": settings.cpuSource = .system
        case "process": settings.cpuSource = .process
        case let other: throw UsageError(message: "leitner: --power-model-cpu must be system or process, got '\(other)'")
        }
        settings.sampleHz = try options.double("sample-hz", default: 10, range: 0.01...1000)
        settings.pmicCommand = options.string("pmic-command", default: PMICMeter.defaultCommand)
        settings.pmicBoardEstimate = options.flag("pmic-board-estimate")
        return settings
    }
}
