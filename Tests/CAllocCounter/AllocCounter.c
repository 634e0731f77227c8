// The allocator interposer behind CAllocCounter.h (test binary only).
//
// Interposition: the test executable defines malloc & co.; glibc, libswiftCore and every other
// library resolve their calls to these definitions (glibc routes its own internal malloc calls
// through the interposable symbols too). Each entry counts, then forwards to glibc's allocator
// through its exported `__libc_*` entry points, so no dlsym is needed on the allocation path:
// dlsym itself may call malloc/calloc, and a lookup from inside malloc would recurse before
// the real allocator is known. Only pthread_create is found with dlsym(RTLD_NEXT), lazily,
// from outside any allocation (dlsym's own allocations then land in the counting malloc below,
// which forwards without needing anything resolved).
//
// Threads: a thread's tag lives in an initial-exec TLS variable (no allocation to reach it).
// pthread_create passes the creating thread's tag to the new thread, so tagging the thread that
// builds a trainer also tags the trainer's pool workers and a pack's prefetch thread, and no
// other thread of the test runner.
#define _GNU_SOURCE
#include "CAllocCounter.h"

#include <dlfcn.h>
#include <errno.h>
#include <execinfo.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#if defined(__has_feature)
#  if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#    define ALLOC_COUNTER_SANITIZED 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#  define ALLOC_COUNTER_SANITIZED 1
#endif
// Sanitizers bring their own malloc; glibc is needed for the __libc_* entry points.
#if defined(__GLIBC__) && !defined(ALLOC_COUNTER_SANITIZED)
#  define ALLOC_COUNTER_INTERPOSE 1
#endif

enum { MALLOC_CALLS, CALLOC_CALLS, REALLOC_CALLS, FREE_CALLS, ALIGNED_CALLS, BYTES, FIELDS };

static uint64_t tagged_counts[FIELDS];
static uint64_t all_counts[FIELDS];
/// The tag being counted; 0 = counting off.
static uint32_t counted_tag;
static uint32_t next_tag;
static __thread uint32_t thread_tag __attribute__((tls_model("initial-exec")));
/// Set while this thread records a call site (backtrace must not count itself).
static __thread int recording_site __attribute__((tls_model("initial-exec")));

static void *site_frames[ALLOC_COUNTER_SITES][ALLOC_COUNTER_FRAMES];
static int site_depth[ALLOC_COUNTER_SITES];
static const char *site_call[ALLOC_COUNTER_SITES];
static uint32_t sites_taken;

static alloc_counter_counts read_counts(const uint64_t *counts) {
    alloc_counter_counts result;
    result.malloc_calls = __atomic_load_n(&counts[MALLOC_CALLS], __ATOMIC_SEQ_CST);
    result.calloc_calls = __atomic_load_n(&counts[CALLOC_CALLS], __ATOMIC_SEQ_CST);
    result.realloc_calls = __atomic_load_n(&counts[REALLOC_CALLS], __ATOMIC_SEQ_CST);
    result.free_calls = __atomic_load_n(&counts[FREE_CALLS], __ATOMIC_SEQ_CST);
    result.aligned_calls = __atomic_load_n(&counts[ALIGNED_CALLS], __ATOMIC_SEQ_CST);
    result.bytes = __atomic_load_n(&counts[BYTES], __ATOMIC_SEQ_CST);
    return result;
}

alloc_counter_counts alloc_counter_read_tagged(void) { return read_counts(tagged_counts); }
alloc_counter_counts alloc_counter_read_all(void) { return read_counts(all_counts); }

uint32_t alloc_counter_new_tag(void) { return __atomic_add_fetch(&next_tag, 1, __ATOMIC_SEQ_CST); }
void alloc_counter_set_thread_tag(uint32_t tag) { thread_tag = tag; }
uint32_t alloc_counter_thread_tag(void) { return thread_tag; }

void alloc_counter_reset_sites(void) {
    for (int site = 0; site < ALLOC_COUNTER_SITES; site++) __atomic_store_n(&site_depth[site], 0, __ATOMIC_SEQ_CST);
    __atomic_store_n(&sites_taken, 0, __ATOMIC_SEQ_CST);
}

int alloc_counter_start(uint32_t tag) {
    // The first backtrace loads the unwinder (dlopen, which allocates): do it before counting.
    void *warm[2];
    (void)backtrace(warm, 2);
    uint32_t expected = 0;
    if (!__atomic_compare_exchange_n(&counted_tag, &expected, UINT32_MAX, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
    for (int field = 0; field < FIELDS; field++) {
        __atomic_store_n(&tagged_counts[field], 0, __ATOMIC_SEQ_CST);
        __atomic_store_n(&all_counts[field], 0, __ATOMIC_SEQ_CST);
    }
    alloc_counter_reset_sites();
    // UINT32_MAX while zeroing: counts into all_counts only, and no thread carries that tag.
    __atomic_store_n(&counted_tag, tag, __ATOMIC_SEQ_CST);
    return 1;
}

int alloc_counter_stop(uint32_t tag, alloc_counter_counts *tagged, alloc_counter_counts *all) {
    // UINT32_MAX while copying: no thread counts as tagged, and no other window can start.
    uint32_t expected = tag;
    if (tag == 0 || !__atomic_compare_exchange_n(&counted_tag, &expected, UINT32_MAX, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) return 0;
    if (tagged) *tagged = read_counts(tagged_counts);
    if (all) *all = read_counts(all_counts);
    __atomic_store_n(&counted_tag, 0, __ATOMIC_SEQ_CST);
    return 1;
}

uint32_t alloc_counter_counted_tag(void) { return __atomic_load_n(&counted_tag, __ATOMIC_SEQ_CST); }

int alloc_counter_site_count(void) {
    uint32_t taken = __atomic_load_n(&sites_taken, __ATOMIC_SEQ_CST);
    return taken < ALLOC_COUNTER_SITES ? (int)taken : ALLOC_COUNTER_SITES;
}

int alloc_counter_site_frames(int site, void **frames) {
    if (site < 0 || site >= alloc_counter_site_count()) return 0;
    int depth = __atomic_load_n(&site_depth[site], __ATOMIC_SEQ_CST);
    for (int frame = 0; frame < depth; frame++) frames[frame] = site_frames[site][frame];
    return depth;
}

const char *alloc_counter_site_call(int site) {
    if (site < 0 || site >= alloc_counter_site_count()) return "";
    return site_call[site] ? site_call[site] : "";
}

void alloc_counter_describe(void *address, char *buffer, int capacity) {
    Dl_info info;
    if (dladdr(address, &info) && info.dli_fname) {
        const char *object = strrchr(info.dli_fname, '/');
        object = object ? object + 1 : info.dli_fname;
        if (info.dli_sname) {
            snprintf(buffer, (size_t)capacity, "%s+0x%lx (%s)", info.dli_sname,
                     (unsigned long)((char *)address - (char *)info.dli_saddr), object);
        } else {
            snprintf(buffer, (size_t)capacity, "%s+0x%lx", object, (unsigned long)((char *)address - (char *)info.dli_fbase));
        }
    } else {
        snprintf(buffer, (size_t)capacity, "%p", address);
    }
}

/// Keeps the callers of one tagged call (the first ALLOC_COUNTER_SITES of a window).
__attribute__((noinline)) static void record_site(const char *call) {
    if (recording_site) return;
    uint32_t site = __atomic_fetch_add(&sites_taken, 1, __ATOMIC_SEQ_CST);
    if (site >= ALLOC_COUNTER_SITES) return;
    recording_site = 1;
    void *frames[ALLOC_COUNTER_FRAMES + 2];
    int depth = backtrace(frames, ALLOC_COUNTER_FRAMES + 2);
    // Frames 0 and 1 are this function and the allocator entry.
    int kept = depth > 2 ? depth - 2 : 0;
    for (int frame = 0; frame < kept; frame++) site_frames[site][frame] = frames[frame + 2];
    site_call[site] = call;
    __atomic_store_n(&site_depth[site], kept, __ATOMIC_SEQ_CST);
    recording_site = 0;
}

__attribute__((always_inline)) static inline void count(int field, size_t bytes, const char *call) {
    uint32_t tag = __atomic_load_n(&counted_tag, __ATOMIC_RELAXED);
    if (__builtin_expect(tag == 0, 1)) return;
    __atomic_fetch_add(&all_counts[field], 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&all_counts[BYTES], bytes, __ATOMIC_SEQ_CST);
    if (thread_tag != tag) return;
    __atomic_fetch_add(&tagged_counts[field], 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&tagged_counts[BYTES], bytes, __ATOMIC_SEQ_CST);
    record_site(call);
}

#ifdef ALLOC_COUNTER_INTERPOSE

extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t count, size_t size);
extern void *__libc_realloc(void *pointer, size_t size);
extern void __libc_free(void *pointer);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);

int alloc_counter_is_interposing(void) { return 1; }

void *malloc(size_t size) {
    count(MALLOC_CALLS, size, "malloc");
    return __libc_malloc(size);
}

void *calloc(size_t count_, size_t size) {
    count(CALLOC_CALLS, count_ * size, "calloc");
    return __libc_calloc(count_, size);
}

void *realloc(void *pointer, size_t size) {
    count(REALLOC_CALLS, size, "realloc");
    return __libc_realloc(pointer, size);
}

void *reallocarray(void *pointer, size_t count_, size_t size) {
    size_t bytes;
    if (__builtin_mul_overflow(count_, size, &bytes)) {
        errno = ENOMEM;
        return NULL;
    }
    count(REALLOC_CALLS, bytes, "reallocarray");
    return __libc_realloc(pointer, bytes);
}

void free(void *pointer) {
    count(FREE_CALLS, 0, "free");
    __libc_free(pointer);
}

void *memalign(size_t alignment, size_t size) {
    count(ALIGNED_CALLS, size, "memalign");
    return __libc_memalign(alignment, size);
}

void *aligned_alloc(size_t alignment, size_t size) {
    count(ALIGNED_CALLS, size, "aligned_alloc");
    return __libc_memalign(alignment, size);
}

int posix_memalign(void **result, size_t alignment, size_t size) {
    count(ALIGNED_CALLS, size, "posix_memalign");
    if (alignment == 0 || alignment % sizeof(void *) != 0 || (alignment & (alignment - 1)) != 0) return EINVAL;
    int saved = errno;
    void *pointer = __libc_memalign(alignment, size);
    if (!pointer) {
        errno = saved;
        return ENOMEM;
    }
    *result = pointer;
    return 0;
}

void *valloc(size_t size) {
    count(ALIGNED_CALLS, size, "valloc");
    return __libc_valloc(size);
}

void *pvalloc(size_t size) {
    count(ALIGNED_CALLS, size, "pvalloc");
    return __libc_pvalloc(size);
}

typedef int (*pthread_create_function)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

struct tagged_start {
    void *(*routine)(void *);
    void *argument;
    uint32_t tag;
};

static void *run_tagged(void *raw) {
    struct tagged_start start = *(struct tagged_start *)raw;
    __libc_free(raw);
    thread_tag = start.tag;
    return start.routine(start.argument);
}

int pthread_create(pthread_t *thread, const pthread_attr_t *attributes, void *(*routine)(void *), void *argument) {
    static pthread_create_function real;
    pthread_create_function create = __atomic_load_n(&real, __ATOMIC_ACQUIRE);
    if (!create) {
        create = (pthread_create_function)dlsym(RTLD_NEXT, "pthread_create");
        if (!create) return EAGAIN;
        __atomic_store_n(&real, create, __ATOMIC_RELEASE);
    }
    uint32_t tag = thread_tag;
    if (tag == 0) return create(thread, attributes, routine, argument);
    // The interposer's own bookkeeping is not counted: the new thread may start (and free
    // this) after a window has begun, long after the code under test created it.
    struct tagged_start *start = __libc_malloc(sizeof *start);
    if (!start) return EAGAIN;
    start->routine = routine;
    start->argument = argument;
    start->tag = tag;
    int status = create(thread, attributes, run_tagged, start);
    if (status != 0) __libc_free(start);
    return status;
}

#else

int alloc_counter_is_interposing(void) { return 0; }

#endif
