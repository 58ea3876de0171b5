// int8 products on AVX-512 VNNI: vpdpbusd multiplies 4 unsigned activation bytes by 4
// signed weight bytes and adds the four products to a 32-bit lane, exactly. A panel of 8
// rows times 32 positions (two registers of 16) accumulates in 16 registers; each row's 4
// weights are one broadcast 32-bit word; 48 positions (24 accumulators) where the row is
// long enough, which loads fewer activation vectors per product. Positions past the end
// are masked off.
#include "int8_internal.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#include "epilogue_x86.h"

#define TARGET __attribute__((target("avx512f,avx512vl,avx512bw,avx512vnni,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define ROWS CKERNELS_INT8_PANEL_ROWS

TARGET INLINE void tile(const int vectors, const int masked, int k4, const int8_t *a, const uint8_t *b,
                        const ptrdiff_t *off, float *c, ptrdiff_t ldc, int valid_rows, const __mmask16 *masks,
                        const ckernels_epilogue *e, int row0) {
    __m512i acc[ROWS][3];
    for (int r = 0; r < ROWS; r++)
        for (int v = 0; v < vectors; v++) acc[r][v] = _mm512_setzero_si512();
    for (int g = 0; g < k4; g++) {
        const uint8_t *bg = b + off[g];
        if (g + CKERNELS_INT8_PREFETCH_AHEAD < k4) {
            const char *ahead = (const char *)(b + off[g + CKERNELS_INT8_PREFETCH_AHEAD]);
            _mm_prefetch(ahead, _MM_HINT_T0);
            if (vectors >= 2) _mm_prefetch(ahead + 64, _MM_HINT_T0);
            if (vectors == 3) _mm_prefetch(ahead + 128, _MM_HINT_T0);
        }
        __m512i bv[3];
        for (int v = 0; v < vectors; v++)
            bv[v] = masked ? _mm512_maskz_loadu_epi32(masks[v], bg + 64 * v) : _mm512_loadu_si512((const void *)(bg + 64 * v));
        const int8_t *ag = a + (size_t)g * ROWS * 4;
        for (int r = 0; r < ROWS; r++) {
            __m512i w = _mm512_set1_epi32(ckernels_word(ag + 4 * r));
            for (int v = 0; v < vectors; v++) acc[r][v] = _mm512_dpbusd_epi32(acc[r][v], bv[v], w);
        }
    }
    for (int r = 0; r < ROWS; r++) {
        if (r >= valid_rows) break;
        for (int v = 0; v < vectors; v++) {
            __m512 out = ckernels_epilogue512(_mm512_cvtepi32_ps(acc[r][v]), e, row0 + r);
            if (masked) _mm512_mask_storeu_ps(c + r * ldc + 16 * v, masks[v], out);
            else _mm512_storeu_ps(c + r * ldc + 16 * v, out);
        }
    }
}

#define TILE_ARGS int k4, const int8_t *a, const uint8_t *b, const ptrdiff_t *off, float *c, ptrdiff_t ldc, \
                  int valid_rows, const __mmask16 *masks, const ckernels_epilogue *e, int row0
#define TILE_PASS k4, a, b, off, c, ldc, valid_rows, masks, e, row0
TARGET __attribute__((noinline)) static void tile48(TILE_ARGS) { tile(3, 0, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile48_masked(TILE_ARGS) { tile(3, 1, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile32(TILE_ARGS) { tile(2, 0, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile32_masked(TILE_ARGS) { tile(2, 1, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile16_masked(TILE_ARGS) { tile(1, 1, TILE_PASS); }

static __mmask16 lanes(int count) { return count >= 16 ? 0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1); }

TARGET void ckernels_gemm_u8s8_avx512vnni(int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                                          ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                                          ptrdiff_t c_grid_row, const ckernels_epilogue *e) {
    int panels = (m + ROWS - 1) / ROWS;
    for (int g0 = 0; g0 < panels; g0 += CKERNELS_INT8_PANEL_GROUP) {
        int g1 = g0 + CKERNELS_INT8_PANEL_GROUP < panels ? g0 + CKERNELS_INT8_PANEL_GROUP : panels;
        for (int r = 0; r < rows; r++) {
            for (int x = 0; x < n;) {
                int left = n - x;
                __mmask16 masks[3] = {lanes(left), lanes(left - 16), lanes(left - 32)};
                void (*kernel)(TILE_ARGS) = left >= 48 ? tile48 : left > 32 ? tile48_masked : left >= 32 ? tile32
                                          : left > 16 ? tile32_masked : tile16_masked;
                const uint8_t *bx = b + r * b_grid_row + 4 * (ptrdiff_t)x;
                for (int p = g0; p < g1; p++) {
                    int row0 = p * ROWS;
                    kernel(k4, packed + (size_t)row0 * k4 * 4, bx, b_offsets, c + row0 * c_matrix_row + r * c_grid_row + x,
                           c_matrix_row, m - row0, masks, e, row0);
                }
                x += left >= 48 || left > 32 ? 48 : 32;
            }
        }
    }
}

/// Clamped in float first (so values beyond the int32 range still end at 0 or 255), then
/// rounded by the conversion (round half to even, the default rounding mode).
TARGET void ckernels_quantize_rows4_avx512(const float *const rows[4], int count, float inverse_scale, int zero_point, uint8_t *out) {
    const __m512 inverse = _mm512_set1_ps(inverse_scale);
    const __m512 low = _mm512_set1_ps((float)-zero_point), high = _mm512_set1_ps((float)(255 - zero_point));
    const __m512i zero = _mm512_set1_epi32(zero_point);
    for (int j = 0; j < count; j += 16) {
        __mmask16 m = lanes(count - j);
        __m512i word = _mm512_setzero_si512();
        for (int t = 0; t < 4; t++) {
            __m512i q = zero;
            if (rows[t]) {
                __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, rows[t] + j), inverse);
                v = _mm512_min_ps(_mm512_max_ps(v, low), high);
                q = _mm512_add_epi32(_mm512_cvtps_epi32(v), zero);
            }
            word = _mm512_or_si512(word, _mm512_slli_epi32(q, 8 * t));
        }
        _mm512_mask_storeu_epi32(out + 4 * (size_t)j, m, word);
    }
}

/// The contiguous form of the above: out[j] for j < count, 16 at a time.
TARGET void ckernels_quantize_bytes_avx512(const float *x, int count, float inverse_scale, int zero_point, uint8_t *out) {
    const __m512 inverse = _mm512_set1_ps(inverse_scale);
    const __m512 low = _mm512_set1_ps((float)-zero_point), high = _mm512_set1_ps((float)(255 - zero_point));
    const __m512i zero = _mm512_set1_epi32(zero_point);
    for (int j = 0; j < count; j += 16) {
        __mmask16 m = lanes(count - j);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + j), inverse);
        v = _mm512_min_ps(_mm512_max_ps(v, low), high);
        _mm512_mask_cvtepi32_storeu_epi8(out + j, m, _mm512_add_epi32(_mm512_cvtps_epi32(v), zero));
    }
}

#endif
