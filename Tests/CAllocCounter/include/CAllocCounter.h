// Test-only allocator interposer: counts every call to malloc, calloc, realloc, free and the
// aligned family (posix_memalign, aligned_alloc, memalign, valloc, pvalloc) made while counting
// is on, in two sets: calls from the threads carrying the counted tag, and calls from any thread.
// Linked only into the test binary (never into `leitner` or a library target).
#ifndef LEITNER_CALLOC_COUNTER_H
#define LEITNER_CALLOC_COUNTER_H

#include <stdint.h>

/// Calls per entry point. `aligned` sums posix_memalign, aligned_alloc, memalign, valloc and
/// pvalloc; `bytes` is the sum of the sizes requested (realloc's new size included).
typedef struct {
    uint64_t malloc_calls;
    uint64_t calloc_calls;
    uint64_t realloc_calls;
    uint64_t free_calls;
    uint64_t aligned_calls;
    uint64_t bytes;
} alloc_counter_counts;

/// 1 when this binary's malloc is the interposer (0 when it was compiled out, e.g. under a sanitizer).
int alloc_counter_is_interposing(void);

/// A tag not handed out before (never 0).
uint32_t alloc_counter_new_tag(void);
/// Sets the calling thread's tag (0 = none). Threads the calling thread creates from now on
/// start with the same tag (pthread_create is interposed too), and so on down.
void alloc_counter_set_thread_tag(uint32_t tag);
uint32_t alloc_counter_thread_tag(void);

/// Zeroes the counters and counts from now on; calls from threads tagged `tag` go to the
/// tagged set. Returns 0 when another tag is being counted (one counting window at a time).
int alloc_counter_start(uint32_t tag);
/// Stops the window of `tag` and copies its final counters into `tagged` and `all` (either may
/// be NULL); returns 0, changing nothing, when `tag` is not the tag being counted (never started,
/// stopped already: a second stop must not end a window another tracker started meanwhile).
int alloc_counter_stop(uint32_t tag, alloc_counter_counts *tagged, alloc_counter_counts *all);
/// The tag being counted (0: none).
uint32_t alloc_counter_counted_tag(void);
/// The counters so far: `tagged` = calls from threads with the counted tag, `all` = every thread.
alloc_counter_counts alloc_counter_read_tagged(void);
alloc_counter_counts alloc_counter_read_all(void);

/// Up to `ALLOC_COUNTER_SITES` tagged calls keep the return addresses of their callers (the
/// first frame is the allocator entry's caller, e.g. swift_slowAlloc).
#define ALLOC_COUNTER_SITES 8
#define ALLOC_COUNTER_FRAMES 16
/// Forgets the recorded sites: the next tagged calls are recorded (allocation-free).
void alloc_counter_reset_sites(void);
/// Recorded sites (at most ALLOC_COUNTER_SITES).
int alloc_counter_site_count(void);
/// Frames of site `site`; returns how many were written (at most ALLOC_COUNTER_FRAMES).
int alloc_counter_site_frames(int site, void **frames);
/// The entry point a site called ("malloc", "free", ...).
const char *alloc_counter_site_call(int site);
/// "symbol+0xoffset (object)" for a code address, written into `buffer` (NUL-terminated).
void alloc_counter_describe(void *address, char *buffer, int capacity);

#endif
