import NN
import Platform

/// `leitner bench allreduce`, run under `mpirun -np K`: the time of one gradient allreduce
/// (sum of every parameter's Float gradient over the ranks) for each reference model, the
/// figure a data-parallel step pays once. Each round starts at a barrier, so the time is the
/// exchange itself, not waiting for a slower rank.
enum AllreduceBench {
    static func run(rounds: Int) -> Bool {
        guard Cluster.size > 1 else {
            print("allreduce: one rank: run under mpirun -np K (an MPI build: swift build --traits MPI)")
            return Cluster.isBuiltWithMPI
        }
        print("allreduce: \(Cluster.size) ranks, \(Cluster.libraryVersion ?? "MPI"); median and best of \(rounds) rounds, each after a barrier")
        print("model      parameters   bytes/step   median ms   best ms   bus GB/s (2(K-1)/K x bytes / median)")
        for name in ModelZoo.names {
            guard let description = try? ModelZoo.description(named: name), let shapes = try? description.shapes() else { continue }
            let count = Model.countParameters(description, shapes).parameters
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: count)
            defer { buffer.deallocate() }
            BenchSupport.fill(buffer, count: count, seed: 7)
            var times: [Double] = []
            for round in 0..<(rounds + 2) {
                Cluster.barrier()
                let started = Clock.seconds()
                Cluster.sum(buffer, count: count)
                if round >= 2 { times.append(Clock.seconds() - started) }
            }
            let median = BenchSupport.median(times), best = times.min() ?? 0
            let factor = 2 * Double(Cluster.size - 1) / Double(Cluster.size)
            print(Format.padRight(name, 10) + Format.pad("\(count)", 11) + Format.pad("\(count * 4)", 13)
                  + Format.pad(Format.fixed(median * 1000, 3), 12) + Format.pad(Format.fixed(best * 1000, 3), 10)
                  + Format.pad(Format.fixed(factor * Double(count * 4) / median / 1e9, 2), 11))
        }
        return true
    }
}
