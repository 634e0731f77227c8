import Platform

/// `leitner boards`: the board profiles compiled into the binary, or one profile file checked.
enum BoardsCommand {
    static let spec = CommandSpec(
        name: "boards",
        summary: """
        Lists the board profiles this binary knows (from the repository's boards/*.board):
        build target, threads, memory budget, peak GFLOP/s, energy sensors and power model.
        With a FILE, parses that profile (for your own board) and prints it, or says what is wrong.
        'leitner train --board NAME|FILE' takes threads and memory budget from a profile.
        """,
        positionals: "[FILE]",
        options: [])

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        guard options.positionals.count <= 1 else {
            throw UsageError(message: "leitner boards: give at most one profile file (see leitner boards --help)")
        }
        if let path = options.positionals.first {
            do {
                let profile = try BoardProfile.load(path.contains("/") || path.hasSuffix(".board") ? path : "./" + path)
                print(profile.summary)
                return 0
            } catch {
                Console.error("leitner boards: " + error.description)
                return 1
            }
        }
        let here = MachineInfo.read().board?.name
        for profile in BoardProfile.builtin() {
            print(profile.summary + (profile.name == here ? "\n  (matches this machine)" : ""))
        }
        return 0
    }
}
