// Register-only peaks of this CPU for tools/bench_runtime.py: fp32 FMA (vfmadd231ps) and
// int8 VNNI (vpdpbusd) on 16 independent accumulator chains per thread, no memory traffic.
// Prints "fp32_gflops <x>" and "int8_gops <y>" (2 operations per multiply-add; y is 0 without
// AVX-512 VNNI). Built and run by the benchmark: cc -O2 -pthread tools/peak.c.
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static long iterations = 20000000;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

__attribute__((target("avx512f,fma"))) static void *fp32(void *out) {
    __m512 acc[16], a = _mm512_set1_ps(1.0000001f), b = _mm512_set1_ps(0.9999999f);
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_ps((float)i);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 16; i++) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
        __asm__ volatile("" : "+v"(a), "+v"(b));
    }
    float s = 0;
    for (int i = 0; i < 16; i++) s += _mm512_reduce_add_ps(acc[i]);
    *(float *)out = s;
    return NULL;
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void *int8(void *out) {
    __m512i acc[16], a = _mm512_set1_epi8(1), w = _mm512_set1_epi8(-1);
    for (int i = 0; i < 16; i++) acc[i] = _mm512_set1_epi32(i);
    for (long n = 0; n < iterations; n++) {
        for (int i = 0; i < 16; i++) acc[i] = _mm512_dpbusd_epi32(acc[i], a, w);
        __asm__ volatile("" : "+v"(a), "+v"(w));
    }
    int s = 0;
    for (int i = 0; i < 16; i++) s += _mm512_reduce_add_epi32(acc[i]);
    *(int *)out = s;
    return NULL;
}

static double run(void *(*body)(void *), int threads, double ops_per_iteration) {
    pthread_t t[256];
    int sink[256];
    double t0 = now();
    for (int i = 0; i < threads; i++) pthread_create(&t[i], NULL, body, &sink[i]);
    for (int i = 0; i < threads; i++) pthread_join(t[i], NULL);
    return ops_per_iteration * iterations * threads / (now() - t0) / 1e9;
}

int main(int argc, char **argv) {
    int threads = argc > 1 ? atoi(argv[1]) : 1;
    if (threads < 1 || threads > 256) threads = 1;
    __builtin_cpu_init();
    // 16 chains x 16 lanes x 2 operations per FMA; x 4 multiply-adds per lane for vpdpbusd.
    if (__builtin_cpu_supports("avx512f")) printf("fp32_gflops %.1f\n", run(fp32, threads, 16 * 16 * 2.0));
    else printf("fp32_gflops 0\n");
    if (__builtin_cpu_supports("avx512vnni")) printf("int8_gops %.1f\n", run(int8, threads, 16 * 16 * 4 * 2.0));
    else printf("int8_gops 0\n");
    return 0;
}
