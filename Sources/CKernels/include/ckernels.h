#ifndef CKERNELS_H
#define CKERNELS_H

// Matrix products, the softmax's exponentials and Winograd's 3x3 transforms in AVX-512 and AVX2 (x86-64),
// chosen at run time, so a generic x86-64 build runs everywhere and still uses
// the wide registers where the CPU has them. The runtime's portable path
// (OpenBLAS and plain Swift) is used where ckernels_simd_level() is 0.

#include <stddef.h>

/// What this CPU supports: 0 neither (or not x86-64), 1 AVX2 with FMA, 2 AVX-512F.
int ckernels_simd_level(void);

/// Rows per panel of a matrix packed for `level` (8 for AVX-512, 6 for AVX2).
int ckernels_panel_rows(int level);

/// Floats taken by an m x k matrix once packed for `level`.
size_t ckernels_packed_count(int level, int m, int k);

/// Packs A (m x k; element (i, j) at a[i * row_stride + j * column_stride]),
/// each value times `scale`, into panels of ckernels_panel_rows(level) rows:
/// panel p holds, for each j, its rows next to each other (zeros past row m).
/// A matrix packed for one level is multiplied at that level only.
void ckernels_pack(int level, const float *a, ptrdiff_t row_stride, ptrdiff_t column_stride, int m, int k,
                   float scale, float *packed);

/// Applied to each result of row i before it is stored:
/// v = v * scale[i] + bias[i]; v = max(v, 0) if relu; v = v * post_scale[i] + post_shift[i].
/// A NULL array is the identity (post_scale and post_shift go together).
typedef struct {
    const float *scale;
    const float *bias;
    int relu;
    const float *post_scale;
    const float *post_shift;
} ckernels_epilogue;

/// C = epilogue(A B) where the columns of B are a grid of `rows` x `n`
/// positions read from memory through offsets:
///   c[i * c_matrix_row + r * c_grid_row + x] =
///       epilogue_i( sum_j A[i][j] * b[r * b_grid_row + x + b_offsets[j]] )
/// for i < m, r < rows, x < n. A is `packed` (ckernels_pack at the same
/// level, m x k). A 3x3
/// convolution reads its (padded) input through 9 * Cin offsets, a 1x1
/// convolution through Cin offsets one plane apart; no im2col matrix exists.
/// `level` is 1 or 2 and at most ckernels_simd_level(); at level 0 nothing runs (the
/// runtime's portable path uses OpenBLAS instead).
void ckernels_gemm(int level, int m, int rows, int n, int k, const float *packed, const float *b,
                   ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                   ptrdiff_t c_grid_row, const ckernels_epilogue *epilogue);

/// Softmax down the columns of S (rows x n, `row_stride` floats apart), all
/// but the division: s = exp(s - max of its column); inverse_sums[x] = 1 /
/// (sum of column x). `level` as for ckernels_gemm.
void ckernels_exp_columns(int level, float *s, int rows, int n, ptrdiff_t row_stride, float *inverse_sums);

/// Winograd F(m x m, 3 x 3) for 3x3 stride-1 convolutions (m = 2 or 4, tiles
/// alpha = m + 2 wide), `level` as for ckernels_gemm. Input transform of one
/// row of `tiles` tiles: tile t of channel c is the alpha x alpha block at
/// window[c * channel_stride + i * row_stride + t * m + j] (the padded input;
/// the caller provides tiles * m + 2 columns and alpha rows), and
///   v[(e * channels + c) * v_row + t] = (B^T d B)[e], e = p * alpha + q.
void ckernels_winograd_input(int level, int m, const float *window, ptrdiff_t channel_stride, ptrdiff_t row_stride,
                             int channels, int tiles, float *v, ptrdiff_t v_row);

/// Output transform of one row of `tiles` tiles: from the products
/// M[e][c][t] = products[(e * channels + c) * products_row + t], the m x m
/// block Y = A^T M A of channel c (the epilogue of channel first_channel + c
/// applied) is stored at out[c * out_channel + i * out_row + t * m + j] for
/// i < valid_rows and t * m + j < valid_columns; with `pooled`, its 2x2 means
/// at out[c * out_channel + i * out_row + t * m / 2 + j] (i, j < m / 2, within
/// the valid pooled rows and columns).
void ckernels_winograd_output(int level, int m, const float *products, ptrdiff_t products_row, int channels,
                              int tiles, float *out, ptrdiff_t out_channel, ptrdiff_t out_row, int valid_rows,
                              int valid_columns, int pooled, const ckernels_epilogue *epilogue, int first_channel);

// ---- int8: u8 activations x s8 weights, exact int32 sums (int8_*.c) ----

#include <stdint.h>

/// The int8 kernels this CPU runs: 0 portable C, 1 AVX2, 2 AVX-512 VNNI (vpdpbusd).
int ckernels_int8_level(void);

/// Bytes taken by an m x (4 * k4) int8 matrix once packed (panels of 8 rows, any level).
size_t ckernels_int8_packed_count(int m, int k4);

/// Packs A (m x 4 * k4, row-major) into panels of 8 rows: for each group g of 4 columns,
/// the 8 rows' 4 bytes next to each other (zeros past row m); row_sums[i] = sum of row i
/// (the zero-point correction). One packing serves every level.
void ckernels_int8_pack(const int8_t *a, int m, int k4, int8_t *packed, int32_t *row_sums);

/// out[i * out_stride] = clamp(round_half_even(x[i] * inverse_scale) + zero_point, 0, 255).
void ckernels_quantize_u8(const float *x, int count, float inverse_scale, int zero_point, uint8_t *out, ptrdiff_t out_stride);

/// ckernels_quantize_u8 into consecutive bytes (out_stride 1), at `level` (as for
/// ckernels_gemm_u8s8; the same bytes at every level).
void ckernels_quantize_bytes(int level, const float *x, int count, float inverse_scale, int zero_point, uint8_t *out);

/// The int8 window of a band of output rows of a convolution: input rows
/// stride * first_output_row - padding ... quantized (ckernels_quantize_u8), zero-padded
/// (padding is the value 0, i.e. zero_point), each channel's columns split into `stride`
/// phases, and groups of 4 channels interleaved: byte t of the word at
/// ((g * stride + phase) * window_rows + row) * phase_width + column is channel 4 g + t
/// (channels past the last are zero_point), with phase_width = ceil((width + 2 padding) /
/// stride), for rows < stride * (output_rows - 1) + kernel <= window_rows (a band's window
/// is laid out for its longest band, so the offsets are the same for every band).
/// `level` as for ckernels_gemm_u8s8 (the same bytes at every level).
void ckernels_int8_fill(int level, const float *input, int channels, int height, int width, int stride, int padding, int kernel,
                        int first_output_row, int output_rows, int window_rows, float inverse_scale, int zero_point,
                        uint8_t *window);

/// ckernels_int8_fill from input already quantized: `input` holds the bytes ckernels_quantize_u8
/// would make of it, channel after channel, and is copied into the same window.
void ckernels_int8_fill_bytes(const uint8_t *input, int channels, int height, int width, int stride, int padding, int kernel,
                              int first_output_row, int output_rows, int window_rows, int zero_point, uint8_t *window);

/// C = epilogue(float(A Q)) for an int8 A (ckernels_int8_pack) and u8 activations read
/// through offsets, as ckernels_gemm but in words of 4 bytes:
///   c[i * c_matrix_row + r * c_grid_row + x] = epilogue_i( sum_g sum_t
///       A[i][4 g + t] * b[r * b_grid_row + 4 x + b_offsets[g] + t] )
/// summed exactly in int32 (|sum| < 2^31 needs 4 * k4 * 255 * 127 < 2^31: k4 < 16,500).
/// `level` at most ckernels_int8_level(); 0 runs the portable loops.
void ckernels_gemm_u8s8(int level, int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                        ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                        ptrdiff_t c_grid_row, const ckernels_epilogue *epilogue);

#endif
