// int8 products on AVX2. vpmaddubsw multiplies unsigned activation bytes by signed weight
// bytes and adds adjacent pairs into 16 bits *with saturation*: 255 * 127 * 2 = 64,770
// does not fit. So each activation byte a is split, a = 128 * (a >> 7) + (a & 127): the
// low parts' pair sums are at most 127 * 127 * 2 = 32,258 and the high parts' (0 or 1 times
// a weight) at most 254 — neither saturates, and vpmaddwd widens them to 32 bits (times 1
// and times 128). Exact, like VNNI, at about a third of its rate. A panel of 8 rows is
// done as two halves of 4 rows times 16 positions (two registers of 8) in 8 accumulators.
#include "int8_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include "epilogue_x86.h"

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define ROWS CKERNELS_INT8_PANEL_ROWS
#define HALF 4

/// Rows half * 4 ... + 4 of a panel, 16 positions (masked: the lanes in mask[]).
TARGET INLINE void tile(const int masked, int half, int k4, const int8_t *a, const uint8_t *b, const ptrdiff_t *off,
                        float *c, ptrdiff_t ldc, int valid_rows, const __m256i *mask, const ckernels_epilogue *e, int row0) {
    const __m256i low7 = _mm256_set1_epi8(0x7F), one8 = _mm256_set1_epi8(1);
    const __m256i ones = _mm256_set1_epi16(1), times128 = _mm256_set1_epi16(128);
    __m256i acc[HALF][2];
    for (int r = 0; r < HALF; r++) acc[r][0] = acc[r][1] = _mm256_setzero_si256();
    for (int g = 0; g < k4; g++) {
        const uint8_t *bg = b + off[g];
        if (g + CKERNELS_INT8_PREFETCH_AHEAD < k4) _mm_prefetch((const char *)(b + off[g + CKERNELS_INT8_PREFETCH_AHEAD]), _MM_HINT_T0);
        __m256i lo[2], hi[2];
        for (int v = 0; v < 2; v++) {
            const int *p = (const int *)(bg + 32 * v);
            __m256i x = masked ? _mm256_maskload_epi32(p, mask[v]) : _mm256_loadu_si256((const __m256i *)p);
            lo[v] = _mm256_and_si256(x, low7);
            hi[v] = _mm256_and_si256(_mm256_srli_epi16(x, 7), one8);
        }
        const int8_t *ag = a + ((size_t)g * ROWS + half * HALF) * 4;
        for (int r = 0; r < HALF; r++) {
            __m256i w = _mm256_set1_epi32(ckernels_word(ag + 4 * r));
            for (int v = 0; v < 2; v++) {
                __m256i sl = _mm256_madd_epi16(_mm256_maddubs_epi16(lo[v], w), ones);
                __m256i sh = _mm256_madd_epi16(_mm256_maddubs_epi16(hi[v], w), times128);
                acc[r][v] = _mm256_add_epi32(acc[r][v], _mm256_add_epi32(sl, sh));
            }
        }
    }
    for (int r = 0; r < HALF; r++) {
        int row = half * HALF + r;
        if (row >= valid_rows) break;
        for (int v = 0; v < 2; v++) {
            float *cv = c + row * ldc + 8 * v;
            __m256 out = ckernels_epilogue256(_mm256_cvtepi32_ps(acc[r][v]), e, row0 + row);
            if (masked) _mm256_maskstore_ps(cv, mask[v], out);
            else _mm256_storeu_ps(cv, out);
        }
    }
}

#define TILE_ARGS int half, int k4, const int8_t *a, const uint8_t *b, const ptrdiff_t *off, float *c, ptrdiff_t ldc, \
                  int valid_rows, const __m256i *mask, const ckernels_epilogue *e, int row0
#define TILE_PASS half, k4, a, b, off, c, ldc, valid_rows, mask, e, row0
TARGET __attribute__((noinline)) static void tile16(TILE_ARGS) { tile(0, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile16_masked(TILE_ARGS) { tile(1, TILE_PASS); }

TARGET static __m256i lanes(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

TARGET void ckernels_gemm_u8s8_avx2(int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                                    ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                                    ptrdiff_t c_grid_row, const ckernels_epilogue *e) {
    int panels = (m + ROWS - 1) / ROWS;
    for (int g0 = 0; g0 < panels; g0 += CKERNELS_INT8_PANEL_GROUP) {
        int g1 = g0 + CKERNELS_INT8_PANEL_GROUP < panels ? g0 + CKERNELS_INT8_PANEL_GROUP : panels;
        for (int r = 0; r < rows; r++) {
            for (int x = 0; x < n; x += 16) {
                int left = n - x;
                __m256i mask[2] = {lanes(left), lanes(left - 8)};
                void (*kernel)(TILE_ARGS) = left >= 16 ? tile16 : tile16_masked;
                const uint8_t *bx = b + r * b_grid_row + 4 * (ptrdiff_t)x;
                for (int p = g0; p < g1; p++) {
                    int row0 = p * ROWS;
                    for (int half = 0; half < 2 && half * HALF < m - row0; half++)
                        kernel(half, k4, packed + (size_t)row0 * k4 * 4, bx, b_offsets, c + row0 * c_matrix_row + r * c_grid_row + x,
                               c_matrix_row, m - row0, mask, e, row0);
                }
            }
        }
    }
}
/// As the AVX-512 version, 8 positions at a time; the last few one by one.
TARGET void ckernels_quantize_rows4_avx2(const float *const rows[4], int count, float inverse_scale, int zero_point, uint8_t *out) {
    const __m256 inverse = _mm256_set1_ps(inverse_scale);
    const __m256 low = _mm256_set1_ps((float)-zero_point), high = _mm256_set1_ps((float)(255 - zero_point));
    const __m256i zero = _mm256_set1_epi32(zero_point);
    int j = 0;
    for (; j + 8 <= count; j += 8) {
        __m256i word = _mm256_setzero_si256();
        for (int t = 0; t < 4; t++) {
            __m256i q = zero;
            if (rows[t]) {
                __m256 v = _mm256_mul_ps(_mm256_loadu_ps(rows[t] + j), inverse);
                v = _mm256_min_ps(_mm256_max_ps(v, low), high);
                q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zero);
            }
            word = _mm256_or_si256(word, _mm256_slli_epi32(q, 8 * t));
        }
        _mm256_storeu_si256((__m256i *)(out + 4 * (size_t)j), word);
    }
    if (j < count) {
        const float *rest[4];
        for (int t = 0; t < 4; t++) rest[t] = rows[t] ? rows[t] + j : NULL;
        ckernels_quantize_rows4_portable(rest, count - j, inverse_scale, zero_point, out + 4 * (size_t)j);
    }
}

/// The contiguous form of the above: out[j] for j < count, 8 at a time; the last few one by one.
TARGET void ckernels_quantize_bytes_avx2(const float *x, int count, float inverse_scale, int zero_point, uint8_t *out) {
    const __m256 inverse = _mm256_set1_ps(inverse_scale);
    const __m256 low = _mm256_set1_ps((float)-zero_point), high = _mm256_set1_ps((float)(255 - zero_point));
    const __m256i zero = _mm256_set1_epi32(zero_point);
    int j = 0;
    for (; j + 8 <= count; j += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), inverse);
        v = _mm256_min_ps(_mm256_max_ps(v, low), high);
        __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(v), zero);
        // 0 ... 255 already: packing saturates nothing. Each 128-bit lane keeps its own 4 values.
        __m256i b = _mm256_packus_epi16(_mm256_packus_epi32(q, q), _mm256_setzero_si256());
        int32_t lo = _mm_cvtsi128_si32(_mm256_castsi256_si128(b)), hi = _mm_cvtsi128_si32(_mm256_extracti128_si256(b, 1));
        memcpy(out + j, &lo, 4);
        memcpy(out + j + 4, &hi, 4);
    }
    if (j < count) ckernels_quantize_u8(x + j, count - j, inverse_scale, zero_point, out + j, 1);
}

#endif
