// AVX-512 kernels: a panel of 8 rows times up to 48 positions (three registers
// of 16) accumulates in 24 of the 32 registers; widths are covered by whole
// tiles, and only the last n mod 16 positions are masked.
#include "internal.h"

#ifdef CKERNELS_X86
#include <immintrin.h>
#include "epilogue_x86.h"
#include <math.h>

#define TARGET __attribute__((target("avx512f,avx512vl,avx2,fma")))
#define INLINE static inline __attribute__((always_inline))
#define ROWS CKERNELS_AVX512_PANEL_ROWS

/// One tile of a panel: 8 rows times `vectors` (1 to 3) registers of 16
/// positions (8 x 48: 24 accumulators, 3 position loads and 8 broadcasts per
/// 24 products) over `k` products. They are summed in blocks of
/// CKERNELS_SUM_BLOCK, each block's sums added to the partial sums in C
/// (unless `first`, which starts them), so a product split over several
/// calls adds in the same order as one call. Only the `last` call applies
/// the epilogue. `masked` (one register) loads and stores only the lanes in
/// `mask`; rows past `valid_rows` are not stored.
TARGET INLINE void tile(const int vectors, const int masked, int k, const float *a, const float *b,
                        const ptrdiff_t *off, float *c, ptrdiff_t ldc, int valid_rows, __mmask16 mask,
                        const ckernels_epilogue *e, int row0, int first, int last) {
    for (int j0 = 0; j0 < k || j0 == 0; j0 += CKERNELS_SUM_BLOCK) {
        int j1 = j0 + CKERNELS_SUM_BLOCK < k ? j0 + CKERNELS_SUM_BLOCK : k;
        __m512 acc[ROWS][3];
        for (int r = 0; r < ROWS; r++)
            for (int v = 0; v < vectors; v++) acc[r][v] = _mm512_setzero_ps();
        for (int j = j0; j < j1; j++) {
            const float *bj = b + off[j];
            if (j + CKERNELS_PREFETCH_AHEAD < k) {
                const float *ahead = b + off[j + CKERNELS_PREFETCH_AHEAD];
                _mm_prefetch((const char *)ahead, _MM_HINT_T0);
                _mm_prefetch((const char *)(ahead + 16 * vectors - 1), _MM_HINT_T0);
            }
            __m512 bv[3];
            for (int v = 0; v < vectors; v++)
                bv[v] = masked ? _mm512_maskz_loadu_ps(mask, bj + 16 * v) : _mm512_loadu_ps(bj + 16 * v);
            const float *aj = a + j * ROWS;
            for (int r = 0; r < ROWS; r++) {
                __m512 w = _mm512_set1_ps(aj[r]);
                for (int v = 0; v < vectors; v++) acc[r][v] = _mm512_fmadd_ps(w, bv[v], acc[r][v]);
            }
        }
        int starts = first && j0 == 0, ends = last && j1 >= k;
        for (int r = 0; r < ROWS; r++) {
            if (r >= valid_rows) break;
            for (int v = 0; v < vectors; v++) {
                float *cv = c + r * ldc + 16 * v;
                __m512 out = acc[r][v];
                if (!starts) out = _mm512_add_ps(masked ? _mm512_maskz_loadu_ps(mask, cv) : _mm512_loadu_ps(cv), out);
                if (ends) out = ckernels_epilogue512(out, e, row0 + r);
                if (masked) _mm512_mask_storeu_ps(cv, mask, out);
                else _mm512_storeu_ps(cv, out);
            }
        }
    }
}

#define TILE_ARGS int k, const float *a, const float *b, const ptrdiff_t *off, float *c, ptrdiff_t ldc, \
                  int valid_rows, __mmask16 mask, const ckernels_epilogue *e, int row0, int first, int last
#define TILE_PASS k, a, b, off, c, ldc, valid_rows, mask, e, row0, first, last
TARGET __attribute__((noinline)) static void tile48(TILE_ARGS) { tile(3, 0, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile32(TILE_ARGS) { tile(2, 0, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile16(TILE_ARGS) { tile(1, 0, TILE_PASS); }
TARGET __attribute__((noinline)) static void tile16_masked(TILE_ARGS) { tile(1, 1, TILE_PASS); }

static __mmask16 lanes(int count) { return count >= 16 ? 0xFFFF : count <= 0 ? 0 : (__mmask16)((1u << count) - 1); }

/// Widths of the tiles that cover `n` positions, widest first: 48s, then a 32
/// or 16 (or two 32s) so any multiple of 16 is covered by whole tiles, then
/// one masked tile for the last n mod 16. Returns the count.
static int tile_widths(int n, int *widths) {
    int count = 0, sixteens = n / 16;
    int wide = sixteens / 3, rest = sixteens % 3; // 48-wide tiles, and what is left in 16s
    // 48 + 16 is covered as 32 + 32 (wider tiles reuse each weight more).
    if (rest == 1 && wide > 0) { wide -= 1; rest = 4; }
    for (int i = 0; i < wide; i++) widths[count++] = 48;
    if (rest == 4) { widths[count++] = 32; widths[count++] = 32; }
    else if (rest == 2) widths[count++] = 32;
    else if (rest == 1) widths[count++] = 16;
    if (n % 16) widths[count++] = n % 16;
    return count;
}

/// Groups of 16 panels; blocks of up to CKERNELS_REDUCTION_BLOCK products
/// (the group's block of A, at most 512 KB, stays in L2; partial sums wait
/// in C); grid rows; tiles of positions (a tile's B values stay in cache while
/// every panel of the group passes); panels.
TARGET void ckernels_gemm_avx512(int m, int rows, int n, int k, const float *packed, const float *b,
                                 ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                                 ptrdiff_t c_grid_row, const ckernels_epilogue *e) {
    int panels = (m + ROWS - 1) / ROWS;
    int widths[CKERNELS_MAX_TILES];
    // Wider grids than the table holds go through in parts (never in practice: 16 * 1024 positions).
    if (n > 16 * (CKERNELS_MAX_TILES - 1)) {
        int part = 16 * (CKERNELS_MAX_TILES - 1);
        for (int x = 0; x < n; x += part)
            ckernels_gemm_avx512(m, rows, n - x < part ? n - x : part, k, packed, b + x, b_grid_row, b_offsets, c + x,
                                 c_matrix_row, c_grid_row, e);
        return;
    }
    int tiles = tile_widths(n, widths);
    for (int g0 = 0; g0 < panels; g0 += CKERNELS_PANEL_GROUP) {
        int g1 = g0 + CKERNELS_PANEL_GROUP < panels ? g0 + CKERNELS_PANEL_GROUP : panels;
        for (int j0 = 0; j0 < k || j0 == 0; j0 += CKERNELS_REDUCTION_BLOCK) {
            int count = k - j0 < CKERNELS_REDUCTION_BLOCK ? k - j0 : CKERNELS_REDUCTION_BLOCK;
            int first = j0 == 0, last = j0 + CKERNELS_REDUCTION_BLOCK >= k;
            for (int r = 0; r < rows; r++) {
                for (int t = 0, x = 0; t < tiles; x += widths[t], t++) {
                    int width = widths[t];
                    void (*kernel)(TILE_ARGS) = width == 48 ? tile48 : width == 32 ? tile32 : width == 16 ? tile16 : tile16_masked;
                    __mmask16 mask = lanes(width);
                    const float *bx = b + r * b_grid_row + x;
                    for (int p = g0; p < g1; p++) {
                        int row0 = p * ROWS;
                        kernel(count, packed + (size_t)row0 * k + (size_t)j0 * ROWS, bx, b_offsets + j0,
                               c + row0 * c_matrix_row + r * c_grid_row + x, c_matrix_row, m - row0, mask, e, row0,
                               first, last);
                    }
                }
            }
        }
    }
}

TARGET INLINE __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(CKERNELS_EXP_LOW)), _mm512_set1_ps(CKERNELS_EXP_HIGH));
    __m512 shifted = _mm512_fmadd_ps(x, _mm512_set1_ps(CKERNELS_LOG2E), _mm512_set1_ps(CKERNELS_ROUNDER));
    __m512 n = _mm512_sub_ps(shifted, _mm512_set1_ps(CKERNELS_ROUNDER));
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(CKERNELS_LN2_HIGH), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(CKERNELS_LN2_LOW), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1));
    // The rounded n sits in the low bits of `shifted`; n + 127 in the exponent field is 2^n.
    __m512i bits = _mm512_add_epi32(_mm512_castps_si512(shifted), _mm512_set1_epi32(127 - 0x4B400000));
    return _mm512_mul_ps(p, _mm512_castsi512_ps(_mm512_slli_epi32(bits, 23)));
}

/// Columns x .. x + 16 * vectors of the softmax (masked: only the lanes in masks[]).
TARGET INLINE void exp_chunk(const int vectors, const int masked, float *s, int rows, ptrdiff_t row_stride,
                             const __mmask16 *masks, float *inverse_sums) {
    __m512 m[2];
    for (int v = 0; v < vectors; v++) m[v] = _mm512_set1_ps(-INFINITY);
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vectors; v++) {
            const float *p = s + r * row_stride + 16 * v;
            m[v] = _mm512_max_ps(m[v], masked ? _mm512_mask_loadu_ps(m[v], masks[v], p) : _mm512_loadu_ps(p));
        }
    // Four partial sums per register (rows mod 4): shorter dependency chains, smaller rounding error.
    __m512 sums[4][2];
    for (int i = 0; i < 4; i++)
        for (int v = 0; v < vectors; v++) sums[i][v] = _mm512_setzero_ps();
    for (int r = 0; r < rows; r++)
        for (int v = 0; v < vectors; v++) {
            float *p = s + r * row_stride + 16 * v;
            __m512 e = exp512(_mm512_sub_ps(masked ? _mm512_maskz_loadu_ps(masks[v], p) : _mm512_loadu_ps(p), m[v]));
            if (masked) _mm512_mask_storeu_ps(p, masks[v], e);
            else _mm512_storeu_ps(p, e);
            sums[r & 3][v] = _mm512_add_ps(sums[r & 3][v], e);
        }
    for (int v = 0; v < vectors; v++) {
        __m512 sum = _mm512_add_ps(_mm512_add_ps(sums[0][v], sums[1][v]), _mm512_add_ps(sums[2][v], sums[3][v]));
        _mm512_mask_storeu_ps(inverse_sums + 16 * v, masks[v], _mm512_div_ps(_mm512_set1_ps(1), sum));
    }
}

TARGET void ckernels_exp_columns_avx512(float *s, int rows, int n, ptrdiff_t row_stride, float *inverse_sums) {
    // 32 columns per pass over the rows: whole cache lines of a 32-wide block.
    for (int x = 0; x < n; x += 32) {
        __mmask16 masks[2] = {lanes(n - x), lanes(n - x - 16)};
        if (n - x >= 32) exp_chunk(2, 0, s + x, rows, row_stride, masks, inverse_sums + x);
        else exp_chunk(2, 1, s + x, rows, row_stride, masks, inverse_sums + x);
    }
}
#endif
