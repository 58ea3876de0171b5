#ifndef CKERNELS_EPILOGUE_X86_H
#define CKERNELS_EPILOGUE_X86_H
// The epilogue every x86 kernel applies to a register of one output row's values (row i):
// scale, bias, ReLU, then the post affine. One definition for the fp32 and int8 kernels, so
// both round the same way.
#include "ckernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static inline __attribute__((always_inline))
__m256 ckernels_epilogue256(__m256 v, const ckernels_epilogue *e, int i) {
    if (e->scale) v = _mm256_mul_ps(v, _mm256_set1_ps(e->scale[i]));
    if (e->bias) v = _mm256_add_ps(v, _mm256_set1_ps(e->bias[i]));
    if (e->relu) v = _mm256_max_ps(v, _mm256_setzero_ps());
    if (e->post_scale) v = _mm256_fmadd_ps(v, _mm256_set1_ps(e->post_scale[i]), _mm256_set1_ps(e->post_shift[i]));
    return v;
}

__attribute__((target("avx512f,avx512vl,avx2,fma"))) static inline __attribute__((always_inline))
__m512 ckernels_epilogue512(__m512 v, const ckernels_epilogue *e, int i) {
    if (e->scale) v = _mm512_mul_ps(v, _mm512_set1_ps(e->scale[i]));
    if (e->bias) v = _mm512_add_ps(v, _mm512_set1_ps(e->bias[i]));
    if (e->relu) v = _mm512_max_ps(v, _mm512_setzero_ps());
    if (e->post_scale) v = _mm512_fmadd_ps(v, _mm512_set1_ps(e->post_scale[i]), _mm512_set1_ps(e->post_shift[i]));
    return v;
}
#endif

#endif
