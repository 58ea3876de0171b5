#ifndef CKERNELS_INTERNAL_H
#define CKERNELS_INTERNAL_H

#include "ckernels.h"

#if defined(__x86_64__) || defined(_M_X64)
#define CKERNELS_X86 1
void ckernels_gemm_avx512(int m, int rows, int n, int k, const float *packed, const float *b, ptrdiff_t b_grid_row,
                          const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row, ptrdiff_t c_grid_row,
                          const ckernels_epilogue *e);
void ckernels_exp_columns_avx512(float *s, int rows, int n, ptrdiff_t row_stride, float *inverse_sums);
void ckernels_gemm_avx2(int m, int rows, int n, int k, const float *packed, const float *b, ptrdiff_t b_grid_row,
                        const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row, ptrdiff_t c_grid_row,
                        const ckernels_epilogue *e);
void ckernels_exp_columns_avx2(float *s, int rows, int n, ptrdiff_t row_stride, float *inverse_sums);
#endif

/// Rows per packed panel: 8 for AVX-512 (8 x 32 results in 16 of 32
/// registers), 6 for AVX2 (6 x 16 in 12 of 16).
#define CKERNELS_AVX512_PANEL_ROWS 8
#define CKERNELS_AVX2_PANEL_ROWS 6

/// Panels swept together over the positions: their packed rows (16 x 8 x k
/// floats) stay in L2 while each block of positions is reused from L1.
#define CKERNELS_PANEL_GROUP 16

/// Products summed in registers before they are added to the running sums:
/// a two-level sum, as accurate as a K-blocked BLAS (sqrt(128) + sqrt(K / 128)
/// roundings deep instead of sqrt(K)).
#define CKERNELS_SUM_BLOCK 128

/// Products per pass of a panel group over the positions (a multiple of
/// CKERNELS_SUM_BLOCK): 128 rows of A times 1024 floats is 512 KB, half of L2.
#define CKERNELS_REDUCTION_BLOCK 1024

/// Tiles of positions one AVX-512 product call covers at most (longer grid
/// rows go through in parts).
#define CKERNELS_MAX_TILES 1024

/// Results (floats) few enough to keep partial sums in cache (see avx2.c).
#define CKERNELS_SMALL_RESULT (16 * 1024)

/// Offsets ahead whose data is prefetched: one input channel of a 3x3 kernel.
#define CKERNELS_PREFETCH_AHEAD 9

/// The exp of FastExp.swift: exp(x) = 2^n exp(r), n = round(x / ln 2),
/// |r| <= ln(2) / 2, exp(r) by its Taylor series to degree 7.
#define CKERNELS_EXP_LOW (-87.0f)
#define CKERNELS_EXP_HIGH 88.0f
#define CKERNELS_LOG2E 1.44269504f
#define CKERNELS_ROUNDER 12582912.0f /* 1.5 * 2^23 */
#define CKERNELS_LN2_HIGH 0.693359375f
#define CKERNELS_LN2_LOW (-2.12194440e-4f)

#endif
