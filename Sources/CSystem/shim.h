// One header for every system facility Leitner uses. Swift code reaches C only through here.
#ifndef LEITNER_CSYSTEM_SHIM_H
#define LEITNER_CSYSTEM_SHIM_H


#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/// errno is a macro over a thread-local; Swift cannot read it directly in Embedded mode.
static inline int leitner_errno(void) { return errno; }
static inline void leitner_set_errno(int value) { errno = value; }

/// Heap bytes in use according to glibc (mallinfo2.uordblks); used to prove a step allocates nothing.
static inline size_t leitner_heap_in_use(void) {
    struct mallinfo2 info = mallinfo2();
    return info.uordblks;
}
/// Number of heap chunks handed out by mmap plus arena bytes: a second, coarser allocation witness.
static inline size_t leitner_heap_mmapped(void) {
    struct mallinfo2 info = mallinfo2();
    return info.hblkhd;
}

/// 1 when the running CPU has the instructions the binary was compiled for (AVX2 + FMA on x86_64).
static inline int leitner_cpu_has_avx2_fma(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}







/// open(2) is variadic, which Swift cannot call: fixed-argument wrappers.
static inline int leitner_open_read(const char *path) { return open(path, O_RDONLY | O_CLOEXEC); }
static inline int leitner_open_create(const char *path) { return open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644); }
static inline int leitner_open_append(const char *path) { return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644); }
static inline int leitner_open_rdwr(const char *path) { return open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644); }
/// mmap's failure value as a plain pointer comparison.
static inline int leitner_mmap_failed(void *p) { return p == MAP_FAILED; }

/// True when file descriptor `fd` is a terminal (progress bars only on terminals).
static inline int leitner_isatty(int fd) { return isatty(fd); }

/// stat(2) st_size and st_mode without exposing struct stat's per-architecture layout to Swift.
static inline int leitner_file_size(const char *path, int64_t *size_out, int *is_dir_out) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    *size_out = (int64_t)st.st_size;
    *is_dir_out = S_ISDIR(st.st_mode) ? 1 : 0;
    return 0;
}

/// Monotonic clock in nanoseconds.
static inline int64_t leitner_monotonic_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
/// Wall clock in nanoseconds since the epoch.
static inline int64_t leitner_realtime_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
/// CPU time of this process in nanoseconds (all threads).
static inline int64_t leitner_process_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
/// CPU time of the calling thread in nanoseconds.
static inline int64_t leitner_thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}
/// Peak resident set size in KiB.
static inline long leitner_peak_rss_kib(void) {
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
    return usage.ru_maxrss;
}

/// zlib's init macros take sizeof(z_stream) and the version string: fixed-argument wrappers.
/// windowBits 15 + 16: write or read a gzip member (header and CRC-32/ISIZE trailer).
static inline int leitner_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
static inline int leitner_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}

/// Sleeps for `nanoseconds` (nanosleep, restarted after signals).
static inline void leitner_sleep_ns(int64_t nanoseconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)(nanoseconds / 1000000000LL);
    ts.tv_nsec = (long)(nanoseconds % 1000000000LL);
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

#endif
