// libFuzzer target for command-line parsing (Sources/leitner/Options.swift, compiled in):
// the input is NUL-separated arguments checked against a spec with flags, integer, number,
// choice and text options, declared as `leitner train` declares them.
let epochs = Option<Int>("epochs", "N", default: 1, range: 1...100_000, help: "")
let learningRate = Option<Double?>("lr", "RATE", range: 1e-9...100, shown: nil, help: "")
let out = Option<String>("out", "DIR", default: "runs/latest", help: "")
let resume = Flag("resume", help: "")
let memoryBudget = Option<Int?>("memory-budget-mb", "MB", range: 1...1 << 30, shown: "none", help: "")
let onNaN = Choice<Int>("on-nan", "stop|backoff", names: ["stop", "backoff"], values: [0, 1], default: 0, help: "")
let spec = CommandSpec(name: "train", summary: "", positionals: "", options: [
    epochs.spec, learningRate.spec, out.spec, resume.spec, memoryBudget.spec, onNaN.spec,
])

@_cdecl("LLVMFuzzerTestOneInput")
public func cliFuzzOne(_ data: UnsafePointer<UInt8>, _ size: Int) -> Int32 {
    let arguments = UnsafeBufferPointer(start: data, count: size).split(separator: 0, omittingEmptySubsequences: false)
        .map { String(decoding: $0, as: UTF8.self) }
    do throws(UsageError) {
        let options = try ParsedOptions(arguments[...], spec: spec)
        _ = try options.value(epochs)
        _ = try options.value(memoryBudget)
        _ = try options.value(learningRate)
        _ = try options.value(out)
        _ = try options.value(onNaN)
        _ = options.isSet(resume)
        _ = spec.help
    } catch {
        precondition(error.message.hasPrefix("leitner"), "a usage error without the program name: \(error.message)")
    }
    return 0
}
