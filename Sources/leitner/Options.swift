import Platform

/// A command-line mistake: the message says what was wrong and how to get help.
struct UsageError: Error {
    let message: String
}

/// One option a subcommand accepts, with its help line and default.
struct OptionSpec {
    let name: String
    let value: String?  // placeholder for the value ("N", "SECONDS"); nil for a flag
    let help: String
    let defaultText: String?

    init(_ name: String, value: String? = nil, help: String, default defaultText: String? = nil) {
        self.name = name
        self.value = value
        self.help = help
        self.defaultText = defaultText
    }
}

/// A subcommand's name, summary, positional arguments and options, and the help text from them.
struct CommandSpec {
    let name: String
    let summary: String
    let positionals: String  // e.g. "[SECTION...]"
    let options: [OptionSpec]

    var help: String {
        var text = "usage: leitner \(name)\(positionals.isEmpty ? "" : " " + positionals) [options]\n\n\(summary)\n\noptions:\n"
        for option in options + [OptionSpec("help", help: "show this help")] {
            var left = "  --" + option.name
            if let value = option.value { left += " " + value }
            var line = left.count < 28 ? left + String(repeating: " ", count: 28 - left.count) : left + "  "
            line += option.help
            if let value = option.defaultText { line += " (default: \(value))" }
            text += line + "\n"
        }
        return text
    }
}

/// Parsed `--name value` options and positionals, checked against a `CommandSpec`.
struct ParsedOptions {
    private(set) var values: [String: String] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positionals: [String] = []
    let wantsHelp: Bool

    init(_ arguments: ArraySlice<String>, spec: CommandSpec) throws(UsageError) {
        var help = false
        var index = arguments.startIndex
        while index < arguments.endIndex {
            let argument = arguments[index]
            index += 1
            if argument == "--help" || argument == "-h" { help = true; continue }
            guard argument.hasPrefix("--") else { positionals.append(argument); continue }
            var name = String(argument.dropFirst(2))
            var inlineValue: String? = nil
            if let equals = name.firstIndex(of: "=") {
                inlineValue = String(name[name.index(after: equals)...])
                name = String(name[..<equals])
            }
            guard let option = spec.options.first(where: { $0.name == name }) else {
                throw UsageError(message: "leitner \(spec.name): unknown option --\(name) (see leitner \(spec.name) --help)")
            }
            if option.value == nil {
                if inlineValue != nil { throw UsageError(message: "leitner \(spec.name): --\(name) takes no value") }
                flags.insert(name)
            } else if let value = inlineValue {
                values[name] = value
            } else {
                guard index < arguments.endIndex else {
                    throw UsageError(message: "leitner \(spec.name): --\(name) needs a value (\(option.value!))")
                }
                values[name] = arguments[index]
                index += 1
            }
        }
        wantsHelp = help
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// Overrides an option's value (compare sets random-remove's budget from IES's run).
    mutating func set(_ name: String, _ value: String) { values[name] = value }

    func string(_ name: String, default fallback: String) -> String { values[name] ?? fallback }

    func int(_ name: String, default fallback: Int, range: ClosedRange<Int>) throws(UsageError) -> Int {
        guard let text = values[name] else { return fallback }
        guard let value = Int(text), range.contains(value) else {
            throw UsageError(message: "leitner: --\(name) must be an integer in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }

    func double(_ name: String, default fallback: Double, range: ClosedRange<Double>) throws(UsageError) -> Double {
        guard let text = values[name] else { return fallback }
        guard let value = Double(text), value.isFinite, range.contains(value) else {
            throw UsageError(message: "leitner: --\(name) must be a number in \(range.lowerBound)...\(range.upperBound), got '\(text)'")
        }
        return value
    }
}
