// libFuzzer target for command-line parsing (Sources/leitner/Options.swift, compiled in):
// the input is NUL-separated arguments checked against a spec with flags, integer, number
// and text options, as `leitner train` declares them.
let spec = CommandSpec(name: "train", summary: "", positionals: "", options: [
    OptionSpec("epochs", value: "N", help: ""), OptionSpec("lr", value: "RATE", help: ""),
    OptionSpec("out", value: "DIR", help: ""), OptionSpec("resume", help: ""),
    OptionSpec("memory-budget-mb", value: "MB", help: ""), OptionSpec("on-nan", value: "stop|backoff", help: ""),
])

@_cdecl("LLVMFuzzerTestOneInput")
public func cliFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let arguments = UnsafeBufferPointer(start: data, count: size).split(separator: 0, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    do throws(UsageError) {
        let options = try ParsedOptions(arguments[...], spec: spec)
        _ = try options.int("epochs", default: 1, range: 1...100_000)
        _ = try options.int("memory-budget-mb", default: 1, range: 1...1 << 30)
        _ = try options.double("lr", default: 0.05, range: 1e-9...100)
        _ = options.string("out", default: "runs/latest")
        _ = options.flag("resume")
        _ = spec.help
    } catch {
        precondition(error.message.hasPrefix("leitner"), "a usage error without the program name: \(error.message)")
    }
    return 0
}
