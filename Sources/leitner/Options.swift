import Platform

/// A command-line mistake: the message says what was wrong and how to get help.
struct UsageError: Error {
    let message: String
}

/// One option's help line: its name, the placeholder of its value (nil for a flag), the help
/// and the default as shown.
struct OptionSpec {
    let name: String
    let value: String?
    let help: String
    let defaultText: String?

    init(_ name: String, value: String? = nil, help: String, default defaultText: String? = nil) {
        self.name = name
        self.value = value
        self.help = help
        self.defaultText = defaultText
    }
}

/// A typed option: its help line, its default (written once, here: the help shows it) and how
/// the text after `--name` becomes a value. Commands declare each option once as a constant
/// and read it with `options.value(option)`, so a misspelt option does not compile.
struct Option<Value> {
    let spec: OptionSpec
    let defaultValue: Value
    /// What a valid value is, for the message ("an integer in 1...100000").
    let expected: String
    /// The value `text` spells, or nil when it spells none.
    let parse: (String) -> Value?

    init(_ name: String, _ placeholder: String, default value: Value, shown: String?, help: String,
         expected: String, parse: @escaping (String) -> Value?) {
        spec = OptionSpec(name, value: placeholder, help: help, default: shown)
        defaultValue = value
        self.expected = expected
        self.parse = parse
    }

    var name: String { spec.name }
}

extension Option where Value == Int {
    init(_ name: String, _ placeholder: String, default value: Int, range: ClosedRange<Int>, help: String) {
        self.init(name, placeholder, default: value, shown: "\(value)", help: help,
                  expected: "an integer in \(range.lowerBound)...\(range.upperBound)") { text in
            guard let number = Int(text), range.contains(number) else { return nil }
            return number
        }
    }
}

extension Option where Value == Int? {
    /// nil unless given; `shown` says what that means ("all", "none").
    init(_ name: String, _ placeholder: String, range: ClosedRange<Int>, shown: String?, help: String) {
        let base = Option<Int>(name, placeholder, default: 0, range: range, help: help)
        self.init(name, placeholder, default: nil, shown: shown, help: help, expected: base.expected) { text in
            base.parse(text).map { Optional($0) }
        }
    }
}

extension Option where Value == Double {
    init(_ name: String, _ placeholder: String, default value: Double, range: ClosedRange<Double>, help: String) {
        self.init(name, placeholder, default: value, shown: Option.text(value), help: help,
                  expected: "a number in \(range.lowerBound)...\(range.upperBound)") { text in
            guard let number = Double(text), number.isFinite, range.contains(number) else { return nil }
            return number
        }
    }
}

extension Option where Value == Double? {
    /// nil unless given; `shown` says what that means.
    init(_ name: String, _ placeholder: String, range: ClosedRange<Double>, shown: String?, help: String) {
        let base = Option<Double>(name, placeholder, default: 0, range: range, help: help)
        self.init(name, placeholder, default: nil, shown: shown, help: help, expected: base.expected) { text in
            base.parse(text).map { Optional($0) }
        }
    }
}

extension Option where Value == String {
    init(_ name: String, _ placeholder: String, default value: String, help: String) {
        self.init(name, placeholder, default: value, shown: value, help: help, expected: "a text") { $0 }
    }
}

extension Option where Value == String? {
    /// nil unless given; `shown` says what that means.
    init(_ name: String, _ placeholder: String, shown: String? = nil, help: String) {
        self.init(name, placeholder, default: nil, shown: shown, help: help, expected: "a text") { $0 }
    }
}

extension Option where Value: Equatable {
    /// One of `choices`, by name; the default is shown by its name.
    init(_ name: String, _ placeholder: String, choices: [(name: String, value: Value)], default value: Value, help: String) {
        let names = choices.map { $0.name }
        let shown = choices.first { $0.value == value }?.name
        precondition(shown != nil, "--\(name): the default is not one of the choices")
        var expected = names.dropLast().joined(separator: ", ")
        expected += (expected.isEmpty ? "" : " or ") + (names.last ?? "")
        self.init(name, placeholder, default: value, shown: shown, help: help, expected: expected) { text in
            choices.first { $0.name == text }?.value
        }
    }
}

extension Option {
    /// A default as the help shows it: "3" rather than "3.0".
    static func text(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
    }
}

/// An option without a value (`--name`): set or not.
struct Flag {
    let spec: OptionSpec

    init(_ name: String, help: String) {
        spec = OptionSpec(name, help: help)
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

/// Parsed `--name value` options and positionals, checked against a `CommandSpec`; values are
/// read through their typed declarations.
struct ParsedOptions {
    private var values: [String: String] = [:]
    private var flags: Set<String> = []
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

    /// The option's value: its text parsed, or its default when it was not given.
    func value<Value>(_ option: Option<Value>) throws(UsageError) -> Value {
        guard let text = values[option.name] else { return option.defaultValue }
        guard let value = option.parse(text) else {
            throw UsageError(message: "leitner: --\(option.name) must be \(option.expected), got '\(text)'")
        }
        return value
    }

    /// Whether the option was given (its default may be spelt out, so the value cannot say).
    func isGiven<Value>(_ option: Option<Value>) -> Bool { values[option.name] != nil }

    func isSet(_ flag: Flag) -> Bool { flags.contains(flag.spec.name) }
}
