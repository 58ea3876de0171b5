// int8 products in plain C: the reference layout of every int8 level, and the path on
// CPUs without AVX2. Also the packing and the quantizing window fill all levels share.
#include "int8_internal.h"

int ckernels_int8_level(void) {
#if defined(__x86_64__) || defined(_M_X64)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vnni")) return 2;
    if (__builtin_cpu_supports("avx2")) return 1;
#endif
    return 0;
}

size_t ckernels_int8_packed_count(int m, int k4) {
    size_t rows = CKERNELS_INT8_PANEL_ROWS;
    return ((size_t)m + rows - 1) / rows * rows * (size_t)k4 * 4;
}

void ckernels_int8_pack(const int8_t *a, int m, int k4, int8_t *packed, int32_t *row_sums) {
    const int rows = CKERNELS_INT8_PANEL_ROWS;
    int panels = (m + rows - 1) / rows;
    for (int i = 0; i < m; i++) {
        int32_t s = 0;
        for (int j = 0; j < 4 * k4; j++) s += a[(size_t)i * 4 * k4 + j];
        row_sums[i] = s;
    }
    for (int p = 0; p < panels; p++) {
        int8_t *out = packed + (size_t)p * rows * k4 * 4;
        for (int g = 0; g < k4; g++)
            for (int r = 0; r < rows; r++) {
                int i = p * rows + r;
                for (int t = 0; t < 4; t++) out[(g * rows + r) * 4 + t] = i < m ? a[(size_t)i * 4 * k4 + 4 * g + t] : 0;
            }
    }
}

void ckernels_quantize_u8(const float *x, int count, float inverse_scale, int zero_point, uint8_t *out, ptrdiff_t out_stride) {
    // Round half to even by the 1.5 * 2^23 trick (exact for |v| < 2^22, which the clamp ensures).
    const float low = (float)-zero_point, high = (float)(255 - zero_point), rounder = 12582912.0f;
    for (int i = 0; i < count; i++) {
        float v = x[i] * inverse_scale;
        v = v < low ? low : v > high ? high : v;
        v = (v + rounder) - rounder;
        out[i * out_stride] = (uint8_t)((int)v + zero_point);
    }
}

void ckernels_gemm_u8s8_portable(int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                                 ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                                 ptrdiff_t c_grid_row, const ckernels_epilogue *e) {
    const int R = CKERNELS_INT8_PANEL_ROWS;
    for (int i = 0; i < m; i++) {
        const int8_t *panel = packed + (size_t)(i / R) * R * k4 * 4 + (i % R) * 4;
        for (int r = 0; r < rows; r++)
            for (int x = 0; x < n; x++) {
                int32_t acc = 0;
                const uint8_t *bx = b + r * b_grid_row + 4 * x;
                for (int g = 0; g < k4; g++) {
                    const uint8_t *q = bx + b_offsets[g];
                    const int8_t *w = panel + (size_t)g * R * 4;
                    acc += q[0] * w[0] + q[1] * w[1] + q[2] * w[2] + q[3] * w[3];
                }
                c[i * c_matrix_row + r * c_grid_row + x] = ckernels_epilogue_scalar((float)acc, e, i);
            }
    }
}

void ckernels_gemm_u8s8(int level, int m, int rows, int n, int k4, const int8_t *packed, const uint8_t *b,
                        ptrdiff_t b_grid_row, const ptrdiff_t *b_offsets, float *c, ptrdiff_t c_matrix_row,
                        ptrdiff_t c_grid_row, const ckernels_epilogue *epilogue) {
    if (m <= 0 || rows <= 0 || n <= 0) return;
#if defined(__x86_64__) || defined(_M_X64)
    if (level >= 2) { ckernels_gemm_u8s8_avx512vnni(m, rows, n, k4, packed, b, b_grid_row, b_offsets, c, c_matrix_row, c_grid_row, epilogue); return; }
    if (level == 1) { ckernels_gemm_u8s8_avx2(m, rows, n, k4, packed, b, b_grid_row, b_offsets, c, c_matrix_row, c_grid_row, epilogue); return; }
#endif
    ckernels_gemm_u8s8_portable(m, rows, n, k4, packed, b, b_grid_row, b_offsets, c, c_matrix_row, c_grid_row, epilogue);
}

void ckernels_quantize_rows4_portable(const float *const rows[4], int count, float inverse_scale, int zero_point, uint8_t *out) {
    for (int t = 0; t < 4; t++) {
        if (rows[t]) {
            ckernels_quantize_u8(rows[t], count, inverse_scale, zero_point, out + t, 4);
        } else {
            for (int j = 0; j < count; j++) out[4 * j + t] = (uint8_t)zero_point;
        }
    }
}

void ckernels_quantize_bytes(int level, const float *x, int count, float inverse_scale, int zero_point, uint8_t *out) {
#if defined(__x86_64__) || defined(_M_X64)
    if (level >= 2) { ckernels_quantize_bytes_avx512(x, count, inverse_scale, zero_point, out); return; }
    if (level == 1) { ckernels_quantize_bytes_avx2(x, count, inverse_scale, zero_point, out); return; }
#endif
    ckernels_quantize_u8(x, count, inverse_scale, zero_point, out, 1);
}

static void quantize_rows4(int level, const float *const rows[4], int count, float inverse_scale, int zero_point, uint8_t *out) {
#if defined(__x86_64__) || defined(_M_X64)
    if (level >= 2) { ckernels_quantize_rows4_avx512(rows, count, inverse_scale, zero_point, out); return; }
    if (level == 1) { ckernels_quantize_rows4_avx2(rows, count, inverse_scale, zero_point, out); return; }
#endif
    ckernels_quantize_rows4_portable(rows, count, inverse_scale, zero_point, out);
}

/// out[4 j + t] = rows[t][j] (zero_point where rows[t] is NULL), one 32-bit word per column.
static void interleave_rows4(const uint8_t *const rows[4], int count, int zero_point, uint8_t *out) {
    uint32_t fill = (uint32_t)zero_point;
    const uint8_t *r0 = rows[0], *r1 = rows[1], *r2 = rows[2], *r3 = rows[3];
    if (r0 && r1 && r2 && r3) {
        // The common case without a test per byte, which the compiler vectorizes.
        for (int j = 0; j < count; j++) {
            uint32_t word = (uint32_t)r0[j] | (uint32_t)r1[j] << 8 | (uint32_t)r2[j] << 16 | (uint32_t)r3[j] << 24;
            memcpy(out + 4 * (size_t)j, &word, 4);
        }
        return;
    }
    for (int j = 0; j < count; j++) {
        uint32_t word = (uint32_t)(r0 ? r0[j] : fill) | (uint32_t)(r1 ? r1[j] : fill) << 8
                      | (uint32_t)(r2 ? r2[j] : fill) << 16 | (uint32_t)(r3 ? r3[j] : fill) << 24;
        memcpy(out + 4 * (size_t)j, &word, 4);
    }
}

/// The window of ckernels_int8_fill from float input (quantized on the way) or from input
/// already in bytes (copied): exactly one of `floats` and `bytes` is set.
static void fill(int level, const float *floats, const uint8_t *bytes, int channels, int height, int width, int stride, int padding,
                 int kernel, int first_output_row, int output_rows, int window_rows, float inverse_scale, int zero_point,
                 uint8_t *window) {
    int phase_width = (width + 2 * padding + stride - 1) / stride;
    int padded_rows = stride * (output_rows - 1) + kernel;
    int groups = (channels + 3) / 4;
    size_t row_bytes = (size_t)phase_width * 4;
    for (int cg = 0; cg < groups; cg++)
        for (int phase = 0; phase < stride; phase++)
            for (int wr = 0; wr < padded_rows; wr++) {
                uint8_t *row = window + ((size_t)(cg * stride + phase) * window_rows + wr) * row_bytes;
                int y = stride * first_output_row + wr - padding;
                // Padding, rows outside the input and channels past the last are the real value 0.
                if (y < 0 || y >= height) { memset(row, zero_point, row_bytes); continue; }
                // Column j of this phase is input column j * stride + phase - padding.
                int first = (padding - phase + stride - 1) / stride;
                if (first < 0) first = 0;
                int last_column = width - 1 + padding - phase;
                int end = last_column < 0 ? 0 : last_column / stride + 1;
                if (end > phase_width) end = phase_width;
                if (end <= first) { memset(row, zero_point, row_bytes); continue; }
                if (stride == 1) {
                    // Every word from first to end is written whole below: only the padding columns first.
                    // (A column or two: words written directly, not a call each.)
                    uint32_t pad = (uint32_t)zero_point * 0x01010101u;
                    for (int j = 0; j < first; j++) memcpy(row + 4 * (size_t)j, &pad, 4);
                    for (int j = end; j < phase_width; j++) memcpy(row + 4 * (size_t)j, &pad, 4);
                    size_t start = (size_t)y * width + (first - padding);
                    if (floats) {
                        const float *lines[4];
                        for (int t = 0; t < 4; t++) lines[t] = 4 * cg + t < channels ? floats + (size_t)(4 * cg + t) * height * width + start : NULL;
                        quantize_rows4(level, lines, end - first, inverse_scale, zero_point, row + (size_t)first * 4);
                    } else {
                        const uint8_t *lines[4];
                        for (int t = 0; t < 4; t++) lines[t] = 4 * cg + t < channels ? bytes + (size_t)(4 * cg + t) * height * width + start : NULL;
                        interleave_rows4(lines, end - first, zero_point, row + (size_t)first * 4);
                    }
                    continue;
                }
                // A strided row writes its channels' bytes one by one: the rest stay the real 0.
                memset(row, zero_point, row_bytes);
                for (int t = 0; t < 4 && 4 * cg + t < channels; t++) {
                    size_t start = ((size_t)(4 * cg + t) * height + y) * width + (first * stride + phase - padding);
                    uint8_t *out = row + (size_t)first * 4 + t;
                    if (floats) {
                        for (int j = 0; j < end - first; j++) ckernels_quantize_u8(floats + start + j * stride, 1, inverse_scale, zero_point, out + 4 * j, 4);
                    } else {
                        for (int j = 0; j < end - first; j++) out[4 * j] = bytes[start + (size_t)j * stride];
                    }
                }
            }
}

void ckernels_int8_fill(int level, const float *input, int channels, int height, int width, int stride, int padding, int kernel,
                        int first_output_row, int output_rows, int window_rows, float inverse_scale, int zero_point,
                        uint8_t *window) {
    fill(level, input, NULL, channels, height, width, stride, padding, kernel, first_output_row, output_rows, window_rows,
         inverse_scale, zero_point, window);
}

void ckernels_int8_fill_bytes(const uint8_t *input, int channels, int height, int width, int stride, int padding, int kernel,
                              int first_output_row, int output_rows, int window_rows, int zero_point, uint8_t *window) {
    fill(0, NULL, input, channels, height, width, stride, padding, kernel, first_output_row, output_rows, window_rows,
         1, zero_point, window);
}
