// AVX2 kernels: a panel of 6 rows times 16 positions (two registers) in 12 of
// the 16 registers; positions past the end are masked off.
#include "internal.h"

#ifdef CKERNELS_X86
#include <immintrin.h>
#include "epilogue_x86.h"
#include <math.h>

#define TARGET __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define ROWS CKERNELS_AVX2_PANEL_ROWS

/// A panel of 6 rows times 16 positions: 12 accumulators, the products
/// summed in blocks of 128 (a two-level sum). Unless `first`, the result is
/// added to the partial sums already in C; only the `last` call applies the
/// epilogue.
TARGET INLINE void tile(const int masked, int k, const float *a, const float *b, const ptrdiff_t *off, float *c,
                        ptrdiff_t ldc, int valid_rows, const __m256i *mask, const ckernels_epilogue *e, int row0,
                        int first, int last) {
    __m256 sums[ROWS][2];
    for (int r = 0; r < ROWS; r++) sums[r][0] = sums[r][1] = _mm256_setzero_ps();
    for (int j0 = 0; j0 < k; j0 += CKERNELS_SUM_BLOCK) {
        int j1 = j0 + CKERNELS_SUM_BLOCK < k ? j0 + CKERNELS_SUM_BLOCK : k;
        __m256 acc[ROWS][2];
        for (int r = 0; r < ROWS; r++) acc[r][0] = acc[r][1] = _mm256_setzero_ps();
        for (int j = j0; j < j1; j++) {
            const float *bj = b + off[j];
            if (j + CKERNELS_PREFETCH_AHEAD < k) _mm_prefetch((const char *)(b + off[j + CKERNELS_PREFETCH_AHEAD]), _MM_HINT_T0);
            __m256 b0 = masked ? _mm256_maskload_ps(bj, mask[0]) : _mm256_loadu_ps(bj);
            __m256 b1 = masked ? _mm256_maskload_ps(bj + 8, mask[1]) : _mm256_loadu_ps(bj + 8);
            const float *aj = a + j * ROWS;
            for (int r = 0; r < ROWS; r++) {
                __m256 w = _mm256_broadcast_ss(aj + r);
                acc[r][0] = _mm256_fmadd_ps(w, b0, acc[r][0]);
                acc[r][1] = _mm256_fmadd_ps(w, b1, acc[r][1]);
            }
        }
        for (int r = 0; r < ROWS; r++)
            for (int v = 0; v < 2; v++) sums[r][v] = j0 == 0 ? acc[r][v] : _mm256_add_ps(sums[r][v], acc[r][v]);
    }
    for (int r = 0; r < ROWS; r++) {
        if (r >= valid_rows) break;
        for (int v = 0; v < 2; v++) {
            float *cv = c + r * ldc + 8 * v;
            __m256 out = first ? sums[r][v]
                         : _mm256_add_ps(masked ? _mm256_maskload_ps(cv, mask[v]) : _mm256_loadu_ps(cv), sums[r][v]);
            if (last) out = ckernels_epilogue256(out, e, row0 + r);
            if (masked) _mm256_maskstore_ps(cv, mask[v], out);
            else _mm256_storeu_ps(cv, out);
        }
    }
}

#define TILE_ARGS int k, const float *a, const float *b, const ptrdiff_t *off, float *c, ptrdiff_t ldc, \
                  int valid_rows, const __m256i *mask, const ckernels_epilogue *e, int row0, int first, int last
#define TILE_PASS k, a, b, off, c, ldc, valid_rows, mask, e, row0, first, last
TARGET __attribute__((noinline)) static void tile16(TILE_ARGS) { tile(0, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile16_masked(TILE_ARGS) { tile(1, TILE_PASS); }

TARGET static __m256i lanes(int count) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Groups of 16 panels; grid rows; 16 positions; panels. Half a panel's tile
/// reads twice the B values per product that AVX-512's does, so when the
/// product is long and C small (attention's A V: 128 x 32 results over 4800
/// products) the products are also split into blocks of 128 whose B values
/// stay in L1 while every panel passes, with the partial sums kept in C.
TARGET void ckernels_gemm_avx2(int m, int rows, int n, int k, const float *packed, const float *b,
                               ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                               ptrdiff_t c_grid_row, const ckernels_epilogue *e) {
    int panels = (m + ROWS - 1) / ROWS;
    int small_c = (size_t)m * rows * n <= CKERNELS_SMALL_RESULT;
    int block = small_c && k > CKERNELS_SUM_BLOCK ? CKERNELS_SUM_BLOCK : (k > 0 ? k : 1);
    for (int g0 = 0; g0 < panels; g0 += CKERNELS_PANEL_GROUP) {
        int g1 = g0 + CKERNELS_PANEL_GROUP < panels ? g0 + CKERNELS_PANEL_GROUP : panels;
        for (int j0 = 0; j0 < k || j0 == 0; j0 += block) {
            int count = k - j0 < block ? k - j0 : block;
            int first = j0 == 0, last = j0 + block >= k;
            for (int r = 0; r < rows; r++) {
                for (int x = 0; x < n; x += 16) {
                    int left = n - x;
                    __m256i mask[2] = {lanes(left), lanes(left - 8)};
                    const float *bx = b + r * b_grid_row + x;
                    for (int p = g0; p < g1; p++) {
                        int row0 = p * ROWS;
                        (left >= 16 ? tile16 : tile16_masked)(count, packed + (size_t)row0 * k + (size_t)j0 * ROWS, bx,
                                                            b_offsets + j0, c + row0 * c_matrix_row + r * c_grid_row + x,
                                                            c_matrix_row, m - row0, mask, e, row0, first, last);
                    }
                }
            }
            if (k <= 0) break;
        }
    }
}

TARGET INLINE __m256 exp256(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(CKERNELS_EXP_LOW)), _mm256_set1_ps(CKERNELS_EXP_HIGH));
    __m256 shifted = _mm256_fmadd_ps(x, _mm256_set1_ps(CKERNELS_LOG2E), _mm256_set1_ps(CKERNELS_ROUNDER));
    __m256 n = _mm256_sub_ps(shifted, _mm256_set1_ps(CKERNELS_ROUNDER));
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(CKERNELS_LN2_HIGH), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(CKERNELS_LN2_LOW), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1));
    __m256i bits = _mm256_add_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(127 - 0x4B400000));
    return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(bits, 23)));
}

/// Columns x .. x + 32 of the softmax. Masked loads and stores only where
/// `masked` (the last columns): AMD executes VMASKMOVPS stores slowly.
TARGET INLINE void exp_chunk(const int masked, float *s, int rows, ptrdiff_t row_stride, const __m256i *masks,
                             float *inverse_sums) {
    __m256 m[4];
    for (int v = 0; v < 4; v++) m[v] = _mm256_set1_ps(-INFINITY);
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < 4; v++) {
            const float *p = s + r * row_stride + 8 * v;
            // Masked-off lanes load 0; blending keeps them out of the maximum.
            __m256 x = masked ? _mm256_blendv_ps(m[v], _mm256_maskload_ps(p, masks[v]), _mm256_castsi256_ps(masks[v]))
                              : _mm256_loadu_ps(p);
            m[v] = _mm256_max_ps(m[v], x);
        }
    // Sums of 64 rows at a time, then added up: a two-level sum (registers
    // are too few for several partial sums of four registers each).
    __m256 sums[4];
    for (int v = 0; v < 4; v++) sums[v] = _mm256_setzero_ps();
    for (int r0 = 0; r0 < rows; r0 += 64) {
        int r1 = r0 + 64 < rows ? r0 + 64 : rows;
        __m256 part[4];
        for (int v = 0; v < 4; v++) part[v] = _mm256_setzero_ps();
        for (int r = r0; r < r1; r++)
            for (int v = 0; v < 4; v++) {
                float *p = s + r * row_stride + 8 * v;
                __m256 e = exp256(_mm256_sub_ps(masked ? _mm256_maskload_ps(p, masks[v]) : _mm256_loadu_ps(p), m[v]));
                if (masked) _mm256_maskstore_ps(p, masks[v], e);
                else _mm256_storeu_ps(p, e);
                part[v] = _mm256_add_ps(part[v], e);
            }
        for (int v = 0; v < 4; v++) sums[v] = _mm256_add_ps(sums[v], part[v]);
    }
    for (int v = 0; v < 4; v++)
        _mm256_maskstore_ps(inverse_sums + 8 * v, masks[v], _mm256_div_ps(_mm256_set1_ps(1), sums[v]));
}

TARGET void ckernels_exp_columns_avx2(float *s, int rows, int n, ptrdiff_t row_stride, float *inverse_sums) {
    for (int x = 0; x < n; x += 32) {
        __m256i masks[4] = {lanes(n - x), lanes(n - x - 8), lanes(n - x - 16), lanes(n - x - 24)};
        if (n - x >= 32) exp_chunk(0, s + x, rows, row_stride, masks, inverse_sums + x);
        else exp_chunk(1, s + x, rows, row_stride, masks, inverse_sums + x);
    }
}
#endif
