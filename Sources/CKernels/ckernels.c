#include "internal.h"

int ckernels_simd_level(void) {
#ifdef CKERNELS_X86
    // The compiler runtime's checks include the operating system's support for the registers (XGETBV).
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")) return 2;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return 1;
#endif
    return 0;
}

int ckernels_panel_rows(int level) {
#ifdef CKERNELS_X86
    if (level == 1) return CKERNELS_AVX2_PANEL_ROWS;
    if (level >= 2) return CKERNELS_AVX512_PANEL_ROWS;
#endif
    (void)level;
    return CKERNELS_AVX512_PANEL_ROWS;
}

size_t ckernels_packed_count(int level, int m, int k) {
    size_t rows = (size_t)ckernels_panel_rows(level);
    return ((size_t)m + rows - 1) / rows * rows * (size_t)k;
}

void ckernels_pack(int level, const float *a, ptrdiff_t row_stride, ptrdiff_t column_stride, int m, int k,
                   float scale, float *packed) {
    int rows = ckernels_panel_rows(level);
    int panels = (m + rows - 1) / rows;
    for (int p = 0; p < panels; p++) {
        float *out = packed + (size_t)p * rows * k;
        for (int j = 0; j < k; j++) {
            for (int r = 0; r < rows; r++) {
                int i = p * rows + r;
                out[j * rows + r] = i < m ? a[i * row_stride + j * column_stride] * scale : 0;
            }
        }
    }
}

void ckernels_gemm(int level, int m, int rows, int n, int k, const float *packed, const float *b,
                   ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                   ptrdiff_t c_grid_row, const ckernels_epilogue *epilogue) {
    if (m <= 0 || rows <= 0 || n <= 0) return;
#ifdef CKERNELS_X86
    if (level >= 2) { ckernels_gemm_avx512(m, rows, n, k, packed, b, b_grid_row, b_offsets, c, c_matrix_row, c_grid_row, epilogue); return; }
    if (level == 1) { ckernels_gemm_avx2(m, rows, n, k, packed, b, b_grid_row, b_offsets, c, c_matrix_row, c_grid_row, epilogue); return; }
#endif
    (void)level; (void)k; (void)packed; (void)b; (void)b_grid_row; (void)b_offsets; (void)c; (void)c_matrix_row;
    (void)c_grid_row; (void)epilogue;
}

void ckernels_exp_columns(int level, float *s, int rows, int n, ptrdiff_t row_stride, float *inverse_sums) {
    if (rows <= 0 || n <= 0) return;
#ifdef CKERNELS_X86
    if (level >= 2) { ckernels_exp_columns_avx512(s, rows, n, row_stride, inverse_sums); return; }
    if (level == 1) { ckernels_exp_columns_avx2(s, rows, n, row_stride, inverse_sums); return; }
#endif
    (void)level; (void)s; (void)row_stride; (void)inverse_sums;
}
