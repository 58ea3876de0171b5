#ifndef CKERNELS_INT8_INTERNAL_H
#define CKERNELS_INT8_INTERNAL_H

#include "ckernels.h"
#include <stdint.h>
#include <string.h>

/// Rows per packed int8 panel at every level, so one packing serves all of them.
#define CKERNELS_INT8_PANEL_ROWS 8
/// Panels swept together over the positions (their weights stay in L2), as for fp32.
#define CKERNELS_INT8_PANEL_GROUP 16
/// Groups of 4 taps ahead whose activations are prefetched.
#define CKERNELS_INT8_PREFETCH_AHEAD 9

/// The 4 bytes at p as one 32-bit word (the packed weights are bytes; memcpy keeps the
/// load free of aliasing questions and compiles to one load).
static inline int32_t ckernels_word(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}

/// Four channels' rows quantized and interleaved: byte t of word j of `out` is
/// clamp(round_half_even(rows[t][j] * inverse_scale) + zero_point, 0, 255), or zero_point
/// where rows[t] is NULL (channels past the last), for j < count.
void ckernels_quantize_rows4_portable(const float *const rows[4], int count, float inverse_scale, int zero_point, uint8_t *out);
#if defined(__x86_64__) || defined(_M_X64)
void ckernels_quantize_rows4_avx512(const float *const rows[4], int count, float inverse_scale, int zero_point, uint8_t *out);
void ckernels_quantize_rows4_avx2(const float *const rows[4], int count, float inverse_scale, int zero_point, uint8_t *out);
void ckernels_quantize_bytes_avx512(const float *x, int count, float inverse_scale, int zero_point, uint8_t *out);
void ckernels_quantize_bytes_avx2(const float *x, int count, float inverse_scale, int zero_point, uint8_t *out);
void ckernels_gemm_u8s8_avx512vnni(int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                                   ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                                   ptrdiff_t c_grid_row, const ckernels_epilogue *e);
void ckernels_gemm_u8s8_avx2(int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                             ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                             ptrdiff_t c_grid_row, const ckernels_epilogue *e);
#endif
void ckernels_gemm_u8s8_portable(int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                                 ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                                 ptrdiff_t c_grid_row, const ckernels_epilogue *e);

/// The fp32 epilogue on one value (portable path).
static inline float ckernels_epilogue_scalar(float v, const ckernels_epilogue *e, int i) {
    if (e->scale) v *= e->scale[i];
    if (e->bias) v += e->bias[i];
    if (e->relu) v = v > 0 ? v : 0;
    if (e->post_scale) v = v * e->post_scale[i] + e->post_shift[i];
    return v;
}

#endif
