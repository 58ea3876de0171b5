// The machine's register-only peaks: each thread runs fp32 fused multiply-adds (AVX-512 and
// AVX2) or int8 dot products (AVX-512 VNNI vpdpbusd: 4 u8 x s8 multiply-adds per 32-bit lane)
// on registers only (independent accumulators, enough to hide the latency), no memory
// traffic, timed by each thread's CPU time. Prints one JSON object: GFLOP/s or G int-ops/s
// (2 operations per multiply-add) on 1 and N threads. Built and run by tools/bench_runtime.py:
//   cc -O2 -pthread tools/peak.c -o peak && ./peak THREADS
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define ITERATIONS 20000000L
#define ACCUMULATORS 12
// Written out: a loop over the accumulators may keep them in memory at -O2.
#define TWELVE(F) F(0) F(1) F(2) F(3) F(4) F(5) F(6) F(7) F(8) F(9) F(10) F(11)

/// This thread's CPU time.
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

// Each returns a sum of its accumulators so the compiler cannot drop the loop.
#define DECLARE(i) V a##i = SET1((float)i);
#define STEP(i) a##i = FMA(a##i, x, y);
#define ADD(i) s = ADDV(s, a##i);
#define LOOP(name, isa)                                                      \
    __attribute__((target(isa))) static float name      (long n) {              \
        V x = SET1(0.999999f), y = SET1(1e-7f), s = SET1(0);                 \
        TWELVE(DECLARE)                                                      \
        for (long j = 0; j < n; j++) { TWELVE(STEP) }                        \
        TWELVE(ADD)                                                          \
        float out[16];                                                       \
        STORE(out, s);                                                       \
        return out[0];                                                       \
    }

#define V __m512
#define SET1 _mm512_set1_ps
#define FMA _mm512_fmadd_ps
#define ADDV _mm512_add_ps
#define STORE _mm512_storeu_ps
LOOP(loop512, "avx512f")
#undef V
#undef SET1
#undef FMA
#undef ADDV
#undef STORE
#define V __m256
#define SET1 _mm256_set1_ps
#define FMA _mm256_fmadd_ps
#define ADDV _mm256_add_ps
#define STORE _mm256_storeu_ps
LOOP(loop256, "avx2,fma")

#define DECLARE_I(i) __m512i a##i = _mm512_set1_epi32(i);
#define STEP_I(i) a##i = _mm512_dpbusd_epi32(a##i, x, w);
#define ADD_I(i) s = _mm512_add_epi32(s, a##i);
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static float loopvnni(long n) {
    __m512i x = _mm512_set1_epi8(1), w = _mm512_set1_epi8(-1), s = _mm512_setzero_si512();
    TWELVE(DECLARE_I)
    for (long j = 0; j < n; j++) { TWELVE(STEP_I) }
    TWELVE(ADD_I)
    return (float)_mm512_reduce_add_epi32(s);
}

enum kind { AVX512, AVX2, VNNI };
typedef struct { enum kind kind; float sink; double seconds; } job;

static void *run(void *p) {
    job *j = p;
    double start = now();
    j->sink = j->kind == AVX512 ? loop512(ITERATIONS) : j->kind == AVX2 ? loop256(ITERATIONS) : loopvnni(ITERATIONS);
    j->seconds = now() - start;
    return NULL;
}

/// Operations per second (G) of `threads` threads running the loop at once: the sum of each
/// thread's rate over the CPU time it got (other processes on a shared machine take wall
/// time, not arithmetic units).
static double measure(enum kind kind, int threads) {
    pthread_t ids[256];
    job jobs[256];
    for (int t = 0; t < threads; t++) { jobs[t].kind = kind; pthread_create(&ids[t], NULL, run, &jobs[t]); }
    for (int t = 0; t < threads; t++) pthread_join(ids[t], NULL);
    // Multiply-adds per instruction: 16 or 8 fp32 lanes; 16 lanes x 4 bytes for vpdpbusd.
    double per = kind == AVX512 ? 16 : kind == AVX2 ? 8 : 64, rate = 0;
    for (int t = 0; t < threads; t++) rate += (double)ITERATIONS * ACCUMULATORS * per * 2 / jobs[t].seconds / 1e9;
    return rate;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 2;
    if (threads < 1 || threads > 256) threads = 2;
    __builtin_cpu_init();
    int has[3] = {__builtin_cpu_supports("avx512f"), __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"),
                  __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw")};
    const char *names[3] = {"avx512", "avx2", "vnni"};
    printf("{\"threads\": %d", threads);
    // Best of three: other work on the machine only ever slows a run down.
    for (enum kind k = AVX512; k <= VNNI; k++) {
        if (!has[k]) continue;
        double one = 0, all = 0;
        for (int r = 0; r < 3; r++) {
            double a = measure(k, 1), b = measure(k, threads);
            if (a > one) one = a;
            if (b > all) all = b;
        }
        printf(", \"%s_1\": %.1f, \"%s_n\": %.1f", names[k], one, names[k], all);
    }
    printf("}\n");
    return 0;
}
