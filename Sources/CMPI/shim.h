// MPI's C API for the `MPI` package trait (Open MPI or MPICH), imported only by Platform.
// MPI_COMM_WORLD, MPI_FLOAT, MPI_SUM and MPI_IN_PLACE are macros over casts (Open MPI) or
// integer handles (MPICH) that Swift cannot import, and the two implementations' handle types
// differ: every call Leitner makes is wrapped here with plain C types, once.
#ifndef LEITNER_CMPI_SHIM_H
#define LEITNER_CMPI_SHIM_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <mpi.h>

/// MPI_Init_thread asking for MPI_THREAD_FUNNELED (only the main thread calls MPI; the kernel
/// thread pool never does). Errors on MPI_COMM_WORLD then return a code instead of aborting,
/// so that Platform can name the call that failed before it aborts the job.
static inline int leitner_mpi_init(void) {
    int provided = 0;
    int code = MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided);
    if (code != MPI_SUCCESS) return code;
    return MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
}
static inline int leitner_mpi_finalize(void) { return MPI_Finalize(); }
static inline int leitner_mpi_rank(int *rank) { return MPI_Comm_rank(MPI_COMM_WORLD, rank); }
static inline int leitner_mpi_size(int *size) { return MPI_Comm_size(MPI_COMM_WORLD, size); }

/// Sums `count` floats over all ranks, in place.
static inline int leitner_mpi_allreduce_sum_float(float *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
}
/// Sums `count` doubles over all ranks, in place.
static inline int leitner_mpi_allreduce_sum_double(double *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
}
/// Sums `count` 64-bit integers over all ranks, in place (exact in any order).
static inline int leitner_mpi_allreduce_sum_int64(int64_t *buffer, int count) {
    return MPI_Allreduce(MPI_IN_PLACE, buffer, count, MPI_INT64_T, MPI_SUM, MPI_COMM_WORLD);
}
/// Every rank's `count` bytes, concatenated in rank order into `receive` (size x count bytes).
static inline int leitner_mpi_allgather_bytes(const void *send, int count, void *receive) {
    return MPI_Allgather(send, count, MPI_BYTE, receive, count, MPI_BYTE, MPI_COMM_WORLD);
}
/// Rank r's `counts[r]` bytes at `receive + displacements[r]`, on every rank.
static inline int leitner_mpi_allgatherv_bytes(const void *send, int count, void *receive, const int *counts,
                                               const int *displacements) {
    return MPI_Allgatherv(send, count, MPI_BYTE, receive, counts, displacements, MPI_BYTE, MPI_COMM_WORLD);
}
/// Rank `root`'s `count` bytes into every rank's `buffer`.
static inline int leitner_mpi_broadcast_bytes(void *buffer, int count, int root) {
    return MPI_Bcast(buffer, count, MPI_BYTE, root, MPI_COMM_WORLD);
}
static inline int leitner_mpi_barrier(void) { return MPI_Barrier(MPI_COMM_WORLD); }
/// Ends every rank of the job: MPI_Abort, which Open MPI and MPICH never return from (exit
/// only if one did). The MPI build's one way out of a failed collective: see Cluster.check.
_Noreturn static inline void leitner_mpi_abort(int code) {
    MPI_Abort(MPI_COMM_WORLD, code);
    exit(code);
}

/// The library's version string ("Open MPI v4.1.4, ...", "MPICH Version: 4.0.2 ...") into
/// `buffer` (at least `leitner_mpi_version_capacity()` bytes).
static inline int leitner_mpi_version_capacity(void) { return MPI_MAX_LIBRARY_VERSION_STRING; }
static inline int leitner_mpi_library_version(char *buffer) {
    int length = 0;
    return MPI_Get_library_version(buffer, &length);
}
/// The text of an MPI error code into `buffer` (at least `leitner_mpi_error_capacity()` bytes).
static inline int leitner_mpi_error_capacity(void) { return MPI_MAX_ERROR_STRING; }
static inline void leitner_mpi_error_string(int code, char *buffer) {
    int length = 0;
    if (MPI_Error_string(code, buffer, &length) != MPI_SUCCESS) buffer[0] = 0;
}

#endif
