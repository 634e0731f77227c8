#if LEITNER_MPI
import CMPI
#endif

/// The ranks of a data-parallel run under `mpirun` (the `MPI` package trait): this process's
/// rank and the number of ranks, and the few collectives training needs. Every call is made
/// by the main thread of every rank in the same order; a failed call prints which one failed
/// and ends the whole job with MPI_Abort, so no rank is left waiting in a collective.
///
/// Without the trait (the default binary) there is one rank and the collectives do nothing;
/// `start` refuses a launch by mpirun with more than one process, which would otherwise be K
/// independent runs writing the same files.
public enum Cluster {
    /// This process's rank, 0..<size (0 without MPI).
    public private(set) static var rank = 0
    /// The number of ranks (1 without MPI).
    public private(set) static var size = 1
    /// Whether MPI_Init ran (and MPI_Finalize must).
    public private(set) static var started = false
    /// Seconds spent in collectives and bytes each rank contributed to them, since start
    /// (the communication cost a report divides by the steps).
    public static var communicationSeconds = 0.0
    public static var communicatedBytes = 0
    public static var collectiveCalls = 0

    /// Whether this binary was built with the MPI trait.
    public static var isBuiltWithMPI: Bool {
        #if LEITNER_MPI
        return true
        #else
        return false
        #endif
    }

    /// The process count the launcher announced in the environment (Open MPI's
    /// OMPI_COMM_WORLD_SIZE, MPICH/Hydra's and Slurm's PMI_SIZE, PMIx's PMIX_SIZE), or nil
    /// when the process was not started by an MPI launcher.
    public static var launcherSize: Int? {
        for name in ["OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"] {
            if let text = Environment.value(name), let value = Int(text) { return value }
        }
        return nil
    }

    /// Joins the job when an MPI launcher started this process; otherwise (or size 1 without
    /// the trait) stays the only rank. Returns a message when the process must not go on.
    public static func start() -> String? {
        guard let announced = launcherSize else { return nil }
        #if LEITNER_MPI
        check(leitner_mpi_init(), "MPI_Init_thread")
        started = true
        var value: Int32 = 0
        check(leitner_mpi_rank(&value), "MPI_Comm_rank")
        rank = Int(value)
        check(leitner_mpi_size(&value), "MPI_Comm_size")
        size = Int(value)
        return nil
        #else
        if announced > 1 {
            return "this leitner binary was built without MPI, but it was started by mpirun as one of \(announced) processes: each would train alone and write the same files. Build with `swift build -c release --traits MPI` (see docs/several-boards.md)"
        }
        return nil
        #endif
    }

    /// MPI_Finalize, once, when MPI was started.
    public static func finish() {
        guard started else { return }
        started = false
        #if LEITNER_MPI
        _ = leitner_mpi_finalize()
        #endif
    }

    /// The MPI library's version line ("Open MPI v4.1.4, ...", "MPICH Version: 4.0.2"), or nil
    /// without the trait.
    public static var libraryVersion: String? {
        #if LEITNER_MPI
        var buffer = [CChar](repeating: 0, count: Int(leitner_mpi_version_capacity()) + 1)
        let code = buffer.withUnsafeMutableBufferPointer { leitner_mpi_library_version($0.baseAddress!) }
        guard code == 0 else { return nil }
        let text = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        return String(text.split(separator: "\n").first ?? "")
        #else
        return nil
        #endif
    }

    /// This rank's part of `count` items dealt in rank order: floor or ceil of count / size,
    /// the first ranks getting the smaller parts. Every rank computes every rank's part.
    @inline(__always)
    public static func part(of count: Int, rank: Int = Cluster.rank) -> Range<Int> {
        (count * rank / size)..<(count * (rank + 1) / size)
    }

    /// Sums `count` floats over all ranks, in place (nothing with one rank).
    public static func sum(_ buffer: UnsafeMutablePointer<Float>, count: Int) {
        #if LEITNER_MPI
        timed("MPI_Allreduce", bytes: count * 4) { leitner_mpi_allreduce_sum_float(buffer, Int32(count)) }
        #endif
    }

    /// Sums `count` doubles over all ranks, in place (nothing with one rank).
    public static func sum(_ buffer: UnsafeMutablePointer<Double>, count: Int) {
        #if LEITNER_MPI
        timed("MPI_Allreduce", bytes: count * 8) { leitner_mpi_allreduce_sum_double(buffer, Int32(count)) }
        #endif
    }

    /// Sums `count` 64-bit integers over all ranks, in place: exact, so the result does not
    /// depend on the order in which the library adds (nothing with one rank).
    public static func sum(_ buffer: UnsafeMutablePointer<Int64>, count: Int) {
        #if LEITNER_MPI
        timed("MPI_Allreduce", bytes: count * 8) { leitner_mpi_allreduce_sum_int64(buffer, Int32(count)) }
        #endif
    }

    /// Every rank's `bytes` bytes from `send`, in rank order, into `receive` (size x bytes).
    public static func gather(_ send: UnsafeRawPointer, bytes: Int, into receive: UnsafeMutableRawPointer) {
        guard size > 1 else {
            receive.copyMemory(from: send, byteCount: bytes)
            return
        }
        #if LEITNER_MPI
        timed("MPI_Allgather", bytes: bytes) { leitner_mpi_allgather_bytes(send, Int32(bytes), receive) }
        #endif
    }

    /// Rank r's `counts[r]` bytes at `receive + offsets[r]` on every rank; this rank sends
    /// `counts[rank]` bytes from `send`.
    public static func gather(_ send: UnsafeRawPointer, into receive: UnsafeMutableRawPointer,
                              counts: UnsafePointer<Int32>, offsets: UnsafePointer<Int32>) {
        guard size > 1 else {
            (receive + Int(offsets[0])).copyMemory(from: send, byteCount: Int(counts[0]))
            return
        }
        #if LEITNER_MPI
        timed("MPI_Allgatherv", bytes: Int(counts[rank])) {
            leitner_mpi_allgatherv_bytes(send, counts[rank], receive, counts, offsets)
        }
        #endif
    }

    /// Rank `root`'s `bytes` bytes into `buffer` on every rank.
    public static func broadcast(_ buffer: UnsafeMutableRawPointer, bytes: Int, root: Int = 0) {
        #if LEITNER_MPI
        timed("MPI_Bcast", bytes: bytes) { leitner_mpi_broadcast_bytes(buffer, Int32(bytes), Int32(root)) }
        #endif
    }

    /// Waits until every rank got here.
    public static func barrier() {
        guard size > 1 else { return }
        #if LEITNER_MPI
        check(leitner_mpi_barrier(), "MPI_Barrier")
        #endif
    }

    #if LEITNER_MPI
    /// One collective (nothing with one rank): `call` runs it, a failure ends the job (`check`),
    /// and its time and this rank's bytes are counted for the epoch's communication line.
    @inline(__always)
    static func timed(_ name: String, bytes: Int, _ call: () -> Int32) {
        guard size > 1 else { return }
        let started = Clock.seconds()
        check(call(), name)
        communicationSeconds += Clock.seconds() - started
        communicatedBytes += bytes
        collectiveCalls += 1
    }
    #endif

    #if LEITNER_MPI
    /// A failed MPI call (errors return, see leitner_mpi_init): usually a rank that died. Names
    /// the call and the library's reason, then ends the job with MPI_Abort. This is the one
    /// place a library target ends the process, and only in the MPI build: a collective cannot
    /// be retried or unwound from inside a training step, and the surviving ranks would wait in
    /// their next collective forever; MPI_Abort is how MPI itself ends such a job.
    static func check(_ code: Int32, _ call: String) {
        guard code != 0 else { return }
        var buffer = [CChar](repeating: 0, count: Int(leitner_mpi_error_capacity()) + 1)
        buffer.withUnsafeMutableBufferPointer { leitner_mpi_error_string(code, $0.baseAddress!) }
        let reason = buffer.withUnsafeBufferPointer { String(cString: $0.baseAddress!) }
        Console.error("leitner: rank \(rank) of \(size): \(call) failed (\(reason)); another rank has probably died, so the job stops")
        leitner_mpi_abort(3)
    }
    #endif
}
