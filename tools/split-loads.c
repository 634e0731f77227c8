// Why the direct weight gradient's correlation tile misses its llvm-mca figure on AVX-512:
// it loads nine shifted vectors per step, and a 64-byte load that is not 64-byte aligned
// always spans two cache lines. This times the tile's loop (Kernels/Correlate.swift and
// KernelsAVX512/Correlate.swift, re-written with intrinsics) on data in L1, with the tap
// offsets of resnet8's 16-16 @28 layer (padded row stride 29) against offsets that are
// multiples of the vector width, in alternating rounds, for the AVX-512 two-row tile (2 + 9
// loads, 18 FMAs per 16 positions) and the AVX2 one-row tile (1 + 9 loads, 9 FMAs per 8).
// llvm-mca assumes every load hits L1 at full rate, so it cannot see the difference.
//
//   gcc -O2 -mavx512f -mfma tools/split-loads.c -o /tmp/split-loads && /tmp/split-loads
// (an x86_64 CPU with AVX-512F; not part of the build or the tests)
#include <immintrin.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

// noipa: the call must not be hoisted out of the timing loop; the tap loops are unrolled so that
// the accumulators stay in registers, as in the Swift kernels.
__attribute__((noinline, noipa)) float tile512(const float *d0, const float *d1, const float *in, const long *o, long count) {
    __m512 a[9], b[9];
    for (int t = 0; t < 9; t++) { a[t] = _mm512_setzero_ps(); b[t] = _mm512_setzero_ps(); }
    for (long q = 0; q < count; q += 16) {
        __m512 x = _mm512_loadu_ps(d0 + q), y = _mm512_loadu_ps(d1 + q);
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) {
            __m512 v = _mm512_loadu_ps(in + q + o[t]);
            a[t] = _mm512_fmadd_ps(x, v, a[t]);
            b[t] = _mm512_fmadd_ps(y, v, b[t]);
        }
    }
    __m512 s = _mm512_setzero_ps();
    for (int t = 0; t < 9; t++) s = _mm512_add_ps(s, _mm512_add_ps(a[t], b[t]));
    return _mm512_reduce_add_ps(s);
}

__attribute__((noinline, noipa, target("avx2,fma"))) float tile256(const float *d0, const float *in, const long *o, long count) {
    __m256 a[9];
    for (int t = 0; t < 9; t++) a[t] = _mm256_setzero_ps();
    for (long q = 0; q < count; q += 8) {
        __m256 x = _mm256_loadu_ps(d0 + q);
#pragma GCC unroll 9
        for (int t = 0; t < 9; t++) a[t] = _mm256_fmadd_ps(x, _mm256_loadu_ps(in + q + o[t]), a[t]);
    }
    __m256 s = _mm256_setzero_ps();
    for (int t = 0; t < 9; t++) s = _mm256_add_ps(s, a[t]);
    float r[8];
    _mm256_storeu_ps(r, s);
    return r[0] + r[7];
}

int main(void) {
    const long count = 1024;   // 4 KiB per sequence: dOut rows and input stay in L1
    float *buf = aligned_alloc(64, 3 * 4096 * sizeof(float));
    for (int i = 0; i < 3 * 4096; i++) buf[i] = (float)(i % 7) * 0.01f;
    const float *d0 = buf, *d1 = buf + 4096, *in = buf + 8192;
    const long shifted[9] = {0, 1, 2, 29, 30, 31, 58, 59, 60};
    const long aligned16[9] = {0, 16, 32, 48, 64, 80, 96, 112, 128}, aligned8[9] = {0, 8, 16, 24, 32, 40, 48, 56, 64};
    const long reps = 200000;
    float sink = 0;
    for (int round = 1; round <= 5; round++) {
        double t0 = now();
        for (long r = 0; r < reps; r++) sink += tile512(d0, d1, in, shifted, count);
        double t1 = now();
        for (long r = 0; r < reps; r++) sink += tile512(d0, d1, in, aligned16, count);
        double t2 = now();
        for (long r = 0; r < reps; r++) sink += tile256(d0, in, shifted, count);
        double t3 = now();
        for (long r = 0; r < reps; r++) sink += tile256(d0, in, aligned8, count);
        double t4 = now();
        printf("round %d: 512-bit tile, shifted / aligned taps: %.2f / %.2f ns per 16 positions (%.2fx); "
               "256-bit tile: %.2f / %.2f ns per 8 positions (%.2fx)\n", round,
               1e9 * (t1 - t0) / (reps * count / 16.0), 1e9 * (t2 - t1) / (reps * count / 16.0), (t1 - t0) / (t2 - t1),
               1e9 * (t3 - t2) / (reps * count / 8.0), 1e9 * (t4 - t3) / (reps * count / 8.0), (t3 - t2) / (t4 - t3));
    }
    return sink == 12345.0f;   // keeps the sums live
}
