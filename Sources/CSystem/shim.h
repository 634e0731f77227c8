// One header for every system facility Leitner uses. Swift code reaches C only through here.
#ifndef LEITNER_CSYSTEM_SHIM_H
#define LEITNER_CSYSTEM_SHIM_H


#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/auxv.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/// errno is a macro over a thread-local; Swift cannot read it directly in Embedded mode.
static inline int leitner_errno(void) { return errno; }
static inline void leitner_set_errno(int value) { errno = value; }

/// 1 when the running CPU has the instructions the binary was compiled for (AVX2 + FMA on x86_64).
static inline int leitner_cpu_has_avx2_fma(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

/// 1 when the running CPU (and the OS, which must save the zmm state) has the AVX-512 subsets
/// the KernelsAVX512 module is compiled for (skylake-avx512: F, CD, BW, DQ, VL).
static inline int leitner_cpu_has_avx512(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd")
        && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
        && __builtin_cpu_supports("avx512vl");
#else
    return 0;
#endif
}

/// 1 when the running aarch64 CPU has half-precision arithmetic, scalar and vector (ARMv8.2
/// FP16: HWCAP_FPHP bit 9 and HWCAP_ASIMDHP bit 10 of getauxval(AT_HWCAP)); 0 elsewhere.
/// The bits are spelled out because <asm/hwcap.h> is aarch64-only.
static inline int leitner_cpu_has_fp16_arithmetic(void) {
#if defined(__aarch64__)
    unsigned long hwcap = getauxval(16 /* AT_HWCAP */);
    return (hwcap & (1UL << 9)) && (hwcap & (1UL << 10));
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
/* Drops a file's clean pages from the page cache, so a read test measures the device. */
static inline int leitner_drop_cache(int fd) { return posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); }

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
/// Peak resident set size in KiB.
static inline long leitner_peak_rss_kib(void) {
    struct rusage usage;
    if (getrusage(RUSAGE_SELF, &usage) != 0) return -1;
    return usage.ru_maxrss;
}


/// CPU time of the calling thread in nanoseconds (the energy sampler reports its own cost).
static inline int64_t leitner_thread_cpu_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/// Initialises `cond` on the monotonic clock, so timed waits ignore wall-clock changes.
static inline int leitner_cond_init_monotonic(pthread_cond_t *cond) {
    pthread_condattr_t attributes;
    pthread_condattr_init(&attributes);
    pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC);
    int status = pthread_cond_init(cond, &attributes);
    pthread_condattr_destroy(&attributes);
    return status;
}

/// Waits on `cond` (initialised by leitner_cond_init_monotonic) for at most `nanoseconds`:
/// pthread_cond_timedwait takes an absolute deadline, computed here. Returns 0 when
/// signalled, ETIMEDOUT otherwise.
static inline int leitner_cond_wait_ns(pthread_cond_t *cond, pthread_mutex_t *mutex, int64_t nanoseconds) {
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    int64_t total = (int64_t)deadline.tv_nsec + (nanoseconds > 0 ? nanoseconds : 0);
    deadline.tv_sec += (time_t)(total / 1000000000LL);
    deadline.tv_nsec = (long)(total % 1000000000LL);
    return pthread_cond_timedwait(cond, mutex, &deadline);
}

/// Sequentially consistent 64-bit atomics and a spin-loop hint for the thread pool's spin phase
/// (workers and the caller poll these before they fall back to the condition variables).
static inline uint64_t leitner_atomic_load(const uint64_t *p) { return __atomic_load_n(p, __ATOMIC_SEQ_CST); }
static inline void leitner_atomic_store(uint64_t *p, uint64_t value) { __atomic_store_n(p, value, __ATOMIC_SEQ_CST); }
static inline uint64_t leitner_atomic_decrement(uint64_t *p) { return __atomic_sub_fetch(p, 1, __ATOMIC_SEQ_CST); }
static inline void leitner_cpu_relax(void) {
#if defined(__x86_64__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#endif
}

/// Sleeps for `nanoseconds` (nanosleep, resumed after signals).
static inline void leitner_sleep_ns(int64_t nanoseconds) {
    struct timespec request = { (time_t)(nanoseconds / 1000000000LL), (long)(nanoseconds % 1000000000LL) };
    struct timespec remaining;
    while (nanosleep(&request, &remaining) != 0 && errno == EINTR) request = remaining;
}

/// Directory listing without exposing struct dirent's per-architecture layout: the next
/// entry's name, or NULL at the end.
static inline DIR *leitner_opendir(const char *path) { return opendir(path); }
static inline const char *leitner_readdir_name(DIR *dir) {
    struct dirent *entry = readdir(dir);
    return entry ? entry->d_name : NULL;
}
static inline int leitner_closedir(DIR *dir) { return closedir(dir); }

/// Runs `command` through /bin/sh (popen) and copies up to `capacity - 1` bytes of its standard
/// output into `out`, NUL-terminated; the rest is drained. Returns the byte count or -1 when
/// popen fails; `*status_out` receives pclose's status (0 when the command succeeded).
static inline long leitner_run_capture(const char *command, char *out, size_t capacity, int *status_out) {
    FILE *pipe = popen(command, "r");
    if (!pipe) return -1;
    size_t total = 0;
    while (total + 1 < capacity) {
        size_t got = fread(out + total, 1, capacity - 1 - total, pipe);
        if (got == 0) break;
        total += got;
    }
    char sink[256];
    while (fread(sink, 1, sizeof sink, pipe) > 0) {}
    out[total] = 0;
    *status_out = pclose(pipe);
    return (long)total;
}

/// zlib's init macros take sizeof(z_stream) and the version string: fixed-argument wrappers.
/// windowBits 15 + 16: write or read a gzip member (header and CRC-32/ISIZE trailer).
static inline int leitner_deflate_init_gzip(z_stream *stream, int level) {
    return deflateInit2(stream, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY);
}
static inline int leitner_inflate_init_gzip(z_stream *stream) {
    return inflateInit2(stream, 15 + 16);
}

/// An advisory exclusive lock on an open file, without waiting: 0, or -1 with errno
/// (EWOULDBLOCK when another process holds it). Released when the process ends.
static inline int leitner_try_lock(int fd) { return flock(fd, LOCK_EX | LOCK_NB); }

/// SIGINT/SIGTERM set a flag the training loop reads between steps (and count, so a second
/// signal can end the process the default way); SIGPIPE is ignored so that a closed pipe on
/// standard output makes writes fail instead of killing a run.
static volatile sig_atomic_t leitner_stop_signal = 0;
static void leitner_on_stop_signal(int signal) {
    if (leitner_stop_signal != 0) {  /* the second one: stop now, the default way */
        struct sigaction deflt;
        memset(&deflt, 0, sizeof deflt);
        deflt.sa_handler = SIG_DFL;
        sigaction(signal, &deflt, 0);
        raise(signal);
        return;
    }
    leitner_stop_signal = signal;
}
static inline int leitner_install_stop_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = leitner_on_stop_signal;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGINT, &action, 0) != 0 || sigaction(SIGTERM, &action, 0) != 0) return -1;
    /* A parent may have started us with these blocked (the mask is inherited): unblock them,
       or a SIGTERM would stay pending forever. Threads started later inherit this mask. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    if (pthread_sigmask(SIG_UNBLOCK, &stops, 0) != 0) return -1;
    struct sigaction ignore;
    memset(&ignore, 0, sizeof ignore);
    ignore.sa_handler = SIG_IGN;
    return sigaction(SIGPIPE, &ignore, 0);
}
/* SIGINT and SIGTERM back to their default action (end the process), for commands that never
   read the stop flag: with the handler installed they would swallow the first Ctrl-C. */
static inline int leitner_default_stop_handlers(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = SIG_DFL;
    sigemptyset(&action.sa_mask);
    if (sigaction(SIGINT, &action, 0) != 0 || sigaction(SIGTERM, &action, 0) != 0) return -1;
    return 0;
}
static inline int leitner_stop_signal_received(void) { return leitner_stop_signal; }
static inline void leitner_clear_stop_signal(void) { leitner_stop_signal = 0; }

/// The device and inode of `path` (following links): 0, or -1 with errno.
static inline int leitner_file_id(const char *path, uint64_t *device_out, uint64_t *inode_out) {
    struct stat info;
    if (stat(path, &info) != 0) return -1;
    *device_out = (uint64_t)info.st_dev;
    *inode_out = (uint64_t)info.st_ino;
    return 0;
}

/// Image decoders (pack images): libjpeg-turbo's TurboJPEG API and libpng's simplified API.
/// The helpers below keep both libraries' structs and enums out of Swift: plain ints in and
/// out, and each library's error text copied into a caller buffer.
#include <turbojpeg.h>
#include <png.h>

/// TurboJPEG pixel formats the helpers accept, as plain ints for Swift.
enum { LEITNER_JPEG_GRAY = 0, LEITNER_JPEG_RGB = 1, LEITNER_JPEG_CMYK = 2 };

/// Copies TurboJPEG's last error text for `handle` into `message` (NUL-terminated).
static inline void leitner_jpeg_error(tjhandle handle, char *message, size_t capacity) {
    const char *text = tjGetErrorStr2(handle);
    snprintf(message, capacity, "%s", text ? text : "unknown TurboJPEG error");
}

/// Reads a JPEG's header: size and colour space (0 grey, 1 colour (RGB or YCbCr), 2 CMYK or
/// YCCK). 0, or -1 with the error text in `message`.
static inline int leitner_jpeg_header(tjhandle handle, const unsigned char *data, unsigned long size,
                                      int *width, int *height, int *space, char *message, size_t capacity) {
    int subsampling = 0, colorspace = 0;
    if (tjDecompressHeader3(handle, data, size, width, height, &subsampling, &colorspace) != 0) {
        leitner_jpeg_error(handle, message, capacity);
        return -1;
    }
    *space = colorspace == TJCS_GRAY ? 0 : (colorspace == TJCS_CMYK || colorspace == TJCS_YCCK) ? 2 : 1;
    return 0;
}

/// Decodes a JPEG into `out` (width x height x 1, 3 or 4 bytes for LEITNER_JPEG_GRAY/RGB/CMYK,
/// rows packed). Accurate DCT (as PIL and libjpeg's default); at most 500 progressive scans
/// (TJFLAG_LIMITSCANS: a crafted file cannot make the decoder loop for minutes); a warning
/// (such as a truncated file) stops the decode and is reported like an error.
/// 0, or -1 with the error text in `message`.
static inline int leitner_jpeg_decode(tjhandle handle, const unsigned char *data, unsigned long size,
                                      unsigned char *out, int width, int height, int format,
                                      char *message, size_t capacity) {
    int pixel = format == LEITNER_JPEG_GRAY ? TJPF_GRAY : format == LEITNER_JPEG_CMYK ? TJPF_CMYK : TJPF_RGB;
    int flags = TJFLAG_ACCURATEDCT | TJFLAG_STOPONWARNING | TJFLAG_LIMITSCANS;
    if (tjDecompress2(handle, data, size, out, width, 0, height, pixel, flags) != 0) {
        leitner_jpeg_error(handle, message, capacity);
        return -1;
    }
    return 0;
}

/// Reads a PNG's header from memory: size and whether it has colour (palette images count as
/// colour) or alpha. The png_image stays in `*image` for leitner_png_decode (or must be freed
/// with png_image_free). 0, or -1 with libpng's message.
static inline int leitner_png_header(png_image *image, const void *data, size_t size,
                                     uint32_t *width, uint32_t *height, int *color, int *alpha,
                                     char *message, size_t capacity) {
    memset(image, 0, sizeof *image);
    image->version = PNG_IMAGE_VERSION;
    if (!png_image_begin_read_from_memory(image, data, size)) {
        snprintf(message, capacity, "%s", image->message);
        png_image_free(image);
        return -1;
    }
    *width = image->width;
    *height = image->height;
    *color = (image->format & PNG_FORMAT_FLAG_COLOR) ? 1 : 0;
    *alpha = (image->format & PNG_FORMAT_FLAG_ALPHA) ? 1 : 0;
    return 0;
}

/// Finishes reading the PNG begun by leitner_png_header into `out` as 8-bit grey (`color` 0)
/// or RGB (`color` 1), rows packed: palette, 16-bit and alpha are converted by libpng; 16-bit
/// samples without gAMA/sRGB are taken as sRGB (value / 257, as most tools read them), alpha
/// is composited on black. Frees the png_image. 0, or -1 with libpng's message.
static inline int leitner_png_decode(png_image *image, unsigned char *out, int color, char *message, size_t capacity) {
    image->format = color ? PNG_FORMAT_RGB : PNG_FORMAT_GRAY;
    image->flags |= PNG_IMAGE_FLAG_16BIT_sRGB;
    png_color black = { 0, 0, 0 };
    int ok = png_image_finish_read(image, &black, out, 0, NULL);
    if (!ok) snprintf(message, capacity, "%s", image->message);
    png_image_free(image);
    return ok ? 0 : -1;
}

#endif
