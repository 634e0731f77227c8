import Data
import Energy
import Platform
import Train

/// `leitner doctor`: what the machine is and whether Leitner will run well on it.
enum DoctorCommand {
    static let spec = CommandSpec(
        name: "doctor",
        summary: """
        Prints the CPU model and features, cores, memory, the matching board profile, the
        vector instructions this binary was built for, a sequential-read test of the dataset
        files (page cache dropped first where the kernel allows), and the energy sensors found.
        """,
        positionals: "",
        options: [data.spec, readMB.spec])

    static let data = Option<String?>("data", "DIR", shown: "Fashion-MNIST", help: "dataset directory to read-test")
    static let readMB = Option<Int>("read-mb", "MB", default: 64, range: 1...1 << 20, help: "read at most this many MB per file")

    static func run(_ arguments: ArraySlice<String>) throws(UsageError) -> Int32 {
        let options = try ParsedOptions(arguments, spec: spec)
        if options.wantsHelp { print(spec.help); return 0 }
        let readLimit = try options.value(readMB) << 20
        let directory = try options.value(data)
        let machine = MachineInfo.read()
        print("cpu: \(machine.cpuModel), \(machine.onlineCores) online core(s)")
        let interesting = ["avx2", "fma", "avx512f", "asimd", "fphp", "asimdhp", "asimddp", "atomics"]
        let present = interesting.filter { machine.cpuFlags.contains($0) }
        print("cpu features: " + (present.isEmpty ? "(none of \(interesting.joined(separator: " ")))" : present.joined(separator: " ")))
        print("memory: \(mebibytes(machine.memoryTotalBytes)) MiB total, \(mebibytes(machine.memoryAvailableBytes)) MiB available")
        print("kernels: " + Platform.vectorISA)
        #if arch(arm64)
        print("fp16: " + (SystemInfo.hasHalfPrecisionArithmetic()
            ? "this CPU has FP16 arithmetic (HWCAP fphp+asimdhp); --precision fp16 runs its numerics through software rounding (no fp16 kernel yet)"
            : "this CPU has no FP16 arithmetic (HWCAP fphp/asimdhp absent, as on the Cortex-A72): --precision fp16 falls back to fp32"))
        #else
        print("fp16: not an aarch64 CPU (no FP16 arithmetic detected); --precision fp16 is emulated in software: its numerics, not its speed")
        #endif
        print("mpi: " + (Cluster.libraryVersion.map { "built with " + $0 + " (mpirun -np K leitner train ...)" } ?? "not built (swift build --traits MPI)"))
        if let problem = SystemInfo.checkBuildTarget() { print("binary: WARNING " + problem) }
        if let board = machine.board {
            print("board profile: \(board.name) (\(board.description)); train --board \(board.name) uses "
                  + "\(board.threads(onlineCores: machine.onlineCores)) thread(s), \(board.memoryBudgetMB) MiB budget")
        } else {
            print("board profile: none matches (see leitner boards; write your own .board file)")
        }
        do throws(DataError) {
            let files = try DatasetLocator.fashionMNIST(dataDirectory: directory)
            print("data: " + files.description)
            // Packed data has no IDX image files: the packs are what training reads.
            let paths = files.trainPack.map { [$0] + (files.testPack.map { [$0] } ?? []) } ?? [files.trainImages, files.testImages]
            for path in paths where !path.isEmpty {
                do {
                    let test = try ReadTest.run(path: path, limitBytes: readLimit)
                    let rate = test.megabytesPerSecond
                    print("  read \(path): \(test.bytes) bytes in \(test.reads) reads, "
                          + "\(Format.fixed(rate, 1)) MB/s"
                          + (test.cacheDropped ? "" : " (page cache not dropped: may be the cache's speed)"))
                } catch {
                    print("  read \(path): " + error.description)
                }
            }
        } catch {
            print("data: " + error.description)
        }
        print("energy sensors: " + EnergyProbe.found().joined(separator: "; "))
        return 0
    }

    static func mebibytes(_ bytes: Int) -> Int { bytes >> 20 }
}
