import Platform

/// A command-line mistake: the message says what was wrong and how to get help.
struct UsageError: Error {
    let message: String
}

/// How an option's text is checked; the help and the messages say it from this.
enum OptionCheck {
    case flag
    case integer(ClosedRange<Int>)
    case number(ClosedRange<Double>)
    case text
    /// One of these names (`Choice.values` holds the value of each).
    case oneOf([String])
    /// The option's own parser (`Parsed.parse`); the text says what a valid value is.
    case custom(String)
}

/// An option's default as its help line shows it.
enum DefaultText {
    case none
    case text(String)
    case integer(Int)
    case number(Double)
}

/// One option's help line and check: its name, the placeholder of its value (nil for a flag),
/// the help and the default as shown. Not generic, so that parsing and help are one copy of
/// code; a value type of literals, so that most declarations are static data, not code (the
/// binary has a size bar).
final class OptionSpec {
    let name: String
    let value: String?
    let help: String
    let shown: DefaultText
    let check: OptionCheck

    init(_ name: String, value: String? = nil, help: String, shown: DefaultText = .none, check: OptionCheck = .flag) {
        self.name = name
        self.value = value
        self.help = help
        self.shown = shown
        self.check = check
    }

    var defaultText: String? {
        switch shown {
        case .none: return nil
        case .text(let text): return text
        case .integer(let value): return "\(value)"
        case .number(let value): return value == value.rounded() && abs(value) < 1e15 ? "\(Int(value))" : "\(value)"
        }
    }

    /// What a valid value is, for a message ("an integer in 1...100000").
    var expected: String {
        switch check {
        case .flag: return "given without a value"
        case .integer(let range): return "an integer in \(range.lowerBound)...\(range.upperBound)"
        case .number(let range): return "a number in \(range.lowerBound)...\(range.upperBound)"
        case .text: return "a text"
        case .oneOf(let names):
            var text = ""
            for (index, name) in names.enumerated() {
                if index > 0 { text += index == names.count - 1 ? " or " : ", " }
                text += name
            }
            return text
        case .custom(let text): return text
        }
    }
}

/// A typed option: its help line and check, and its default (written once, here: the help
/// shows it). Commands declare each option once and read it with `options.value(option)`,
/// so a misspelt option does not compile.
struct Option<Value> {
    let spec: OptionSpec
    let defaultValue: Value

    init(spec: OptionSpec, default value: Value) {
        self.spec = spec
        defaultValue = value
    }
}

/// An option its own function parses (a list, a pair, a library type's syntax); `expected`
/// says what a valid value is.
struct Parsed<Value> {
    let spec: OptionSpec
    let defaultValue: Value
    /// The value a text spells, or nil when it spells none.
    let parse: (String) -> Value?

    init(_ name: String, _ placeholder: String, default value: Value, shown: String?, help: String,
         expected: String, parse: @escaping (String) -> Value?) {
        spec = OptionSpec(name, value: placeholder, help: help, shown: shown.map { .text($0) } ?? .none, check: .custom(expected))
        defaultValue = value
        self.parse = parse
    }
}

extension Option where Value == Int {
    init(_ name: String, _ placeholder: String, default value: Int, range: ClosedRange<Int>, help: String) {
        self.init(spec: OptionSpec(name, value: placeholder, help: help, shown: .integer(value), check: .integer(range)), default: value)
    }
}

extension Option where Value == Int? {
    /// nil unless given; `shown` says what that means ("all", "none").
    init(_ name: String, _ placeholder: String, range: ClosedRange<Int>, shown: String?, help: String) {
        self.init(spec: OptionSpec(name, value: placeholder, help: help, shown: shown.map { .text($0) } ?? .none, check: .integer(range)),
                  default: nil)
    }
}

extension Option where Value == Double {
    init(_ name: String, _ placeholder: String, default value: Double, range: ClosedRange<Double>, help: String) {
        self.init(spec: OptionSpec(name, value: placeholder, help: help, shown: .number(value), check: .number(range)), default: value)
    }
}

extension Option where Value == Double? {
    /// nil unless given; `shown` says what that means.
    init(_ name: String, _ placeholder: String, range: ClosedRange<Double>, shown: String?, help: String) {
        self.init(spec: OptionSpec(name, value: placeholder, help: help, shown: shown.map { .text($0) } ?? .none, check: .number(range)),
                  default: nil)
    }
}

extension Option where Value == String {
    init(_ name: String, _ placeholder: String, default value: String, help: String) {
        self.init(spec: OptionSpec(name, value: placeholder, help: help, shown: .text(value), check: .text), default: value)
    }
}

extension Option where Value == String? {
    /// nil unless given; `shown` says what that means.
    init(_ name: String, _ placeholder: String, shown: String? = nil, help: String) {
        self.init(spec: OptionSpec(name, value: placeholder, help: help, shown: shown.map { .text($0) } ?? .none, check: .text),
                  default: nil)
    }
}

/// An option whose value is one of a few names: `names[i]` means `values[i]`; the help shows
/// the default by its name.
struct Choice<Value: Equatable> {
    let spec: OptionSpec
    let values: [Value]
    let defaultValue: Value

    init(_ name: String, _ placeholder: String, names: [String], values: [Value], default value: Value, help: String) {
        precondition(names.count == values.count, "a choice needs one value per name")
        let index = values.firstIndex(of: value)
        spec = OptionSpec(name, value: placeholder, help: help, shown: index.map { .text(names[$0]) } ?? .none, check: .oneOf(names))
        self.values = values
        defaultValue = value
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
            } else {
                let value: String
                if let inlineValue {
                    value = inlineValue
                } else {
                    guard index < arguments.endIndex else {
                        throw UsageError(message: "leitner \(spec.name): --\(name) needs a value (\(option.value!))")
                    }
                    value = arguments[index]
                    index += 1
                }
                // No option takes an empty text: `--out ''` would otherwise write into the
                // current directory's root, `--policies ''` compare nothing.
                guard !value.isEmpty else {
                    throw UsageError(message: "leitner \(spec.name): --\(name) needs a value (\(option.value!)), got an empty text")
                }
                values[name] = value
            }
        }
        wantsHelp = help
    }

    /// The option's value: its text checked and converted, or its default when not given.
    func value(_ option: Option<Int>) throws(UsageError) -> Int { try integer(option.spec) ?? option.defaultValue }
    func value(_ option: Option<Int?>) throws(UsageError) -> Int? { try integer(option.spec) }
    func value(_ option: Option<Double>) throws(UsageError) -> Double { try number(option.spec) ?? option.defaultValue }
    func value(_ option: Option<Double?>) throws(UsageError) -> Double? { try number(option.spec) }
    func value(_ option: Option<String>) throws(UsageError) -> String { values[option.spec.name] ?? option.defaultValue }
    func value(_ option: Option<String?>) throws(UsageError) -> String? { values[option.spec.name] }

    func value<Value>(_ option: Parsed<Value>) throws(UsageError) -> Value {
        guard let text = values[option.spec.name] else { return option.defaultValue }
        guard let value = option.parse(text) else { throw invalid(option.spec, text) }
        return value
    }

    func value<Value>(_ choice: Choice<Value>) throws(UsageError) -> Value {
        guard let index = try self.index(choice.spec) else { return choice.defaultValue }
        return choice.values[index]
    }

    /// The index of the name given for a `.oneOf` option, nil when not given.
    private func index(_ spec: OptionSpec) throws(UsageError) -> Int? {
        guard let text = values[spec.name] else { return nil }
        guard case .oneOf(let names) = spec.check, let index = names.firstIndex(of: text) else { throw invalid(spec, text) }
        return index
    }

    private func integer(_ spec: OptionSpec) throws(UsageError) -> Int? {
        guard let text = values[spec.name] else { return nil }
        guard case .integer(let range) = spec.check, let value = Int(text), range.contains(value) else { throw invalid(spec, text) }
        return value
    }

    private func number(_ spec: OptionSpec) throws(UsageError) -> Double? {
        guard let text = values[spec.name] else { return nil }
        guard case .number(let range) = spec.check, let value = Double(text), value.isFinite, range.contains(value) else {
            throw invalid(spec, text)
        }
        return value
    }

    private func invalid(_ spec: OptionSpec, _ text: String) -> UsageError {
        UsageError(message: "leitner: --\(spec.name) must be \(spec.expected), got '\(text)'")
    }

    /// Whether the option was given (its default may be spelt out, so the value cannot say).
    func isGiven<Value>(_ option: Option<Value>) -> Bool { values[option.spec.name] != nil }
    func isGiven<Value>(_ option: Parsed<Value>) -> Bool { values[option.spec.name] != nil }
    func isGiven<Value>(_ option: Choice<Value>) -> Bool { values[option.spec.name] != nil }

    func isSet(_ flag: Flag) -> Bool { flags.contains(flag.spec.name) }

    /// The names of the options given (with or without a value), in no particular order.
    var givenNames: [String] { Array(values.keys) + Array(flags) }
}
