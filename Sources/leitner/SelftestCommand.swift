import Platform
import Train

/// `leitner selftest`: the kernel checks inside the binary (for boards and emulation).
enum SelftestCommand {
    static let spec = CommandSpec(
        name: "selftest",
        summary: """
        Runs the kernel checks compiled into this binary: GEMM, conv, pooling, batch norm and
        softmax fast paths against their naive twins (one and several threads; GEMM over m, n, k
        in 1, 3, 7, 13, 17, 33 with ldc > n; guard words around every GEMM and conv output
        that must stay untouched), the naive conv
        gradients against central differences in Double, a whole-model directional derivative,
        and the shared activation memory against separate buffers. Exits 1 if any check fails.
        """,
        positionals: "",
        options: [threads.spec])

    static let threads = Option<Int>("threads", "N", default: 2, range: 1...256, help: "threads for the multi-threaded checks")

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let threads = try options.value(Self.threads)
        let start = Clock.seconds()
        let outcomes = SelfTest.run(threads: threads) { outcome in
            print((outcome.passed ? "PASS " : "FAIL ") + outcome.name + ": " + outcome.detail)
        }
        let failed = outcomes.filter { !$0.passed }.count
        print("selftest: \(outcomes.count - failed) of \(outcomes.count) checks passed in \(Format.fixed(Clock.seconds() - start, 1)) s")
        return failed == 0 ? 0 : 1
    }
}
