// Winograd F(m x m, 3 x 3) transforms (m = 2 or 4, tiles alpha = m + 2 wide)
// for 3x3 stride-1 convolutions: Y = A^T [ (G g G^T) .* (B^T d B) ] A. The
// elementwise products over channels are alpha^2 matrix products done by
// ckernels_gemm; these are the transforms on each side, 16 tiles at a time in
// one vector (GCC vector extensions: one AVX-512 register or two AVX2 ones).
// Coefficients are those of Lavin & Gray (2016), points 0, +-1, +-2 (and +-1/2
// through G) for m = 4, 0, +-1 for m = 2.
#include "internal.h"
#include <string.h>

#ifdef CKERNELS_X86

#define INLINE static inline __attribute__((always_inline))
#define LANES 16
#define MAX_ALPHA 6

typedef float vf __attribute__((vector_size(4 * LANES)));

static const float bt4[6][6] = {
    {4, 0, -5, 0, 1, 0}, {0, -4, -4, 1, 1, 0}, {0, 4, -4, -1, 1, 0},
    {0, -2, -1, 2, 1, 0}, {0, 2, -1, -2, 1, 0}, {0, 4, 0, -5, 0, 1},
};
static const float at4[4][6] = {
    {1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 0}, {0, 1, 1, 4, 4, 0}, {0, 1, -1, 8, -8, 1},
};
static const float bt2[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const float at2[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

INLINE float bt(int m, int p, int q) { return m == 4 ? bt4[p][q] : bt2[p][q]; }
INLINE float at(int m, int p, int q) { return m == 4 ? at4[p][q] : at2[p][q]; }

/// sum_q coefficient(q) * x[q], skipping zero coefficients and multiplying
/// only by those other than +-1 (the coefficients are constants once the
/// loops are unrolled, so the tests vanish).
#define COMBINE(out, count, coefficient, x)                          \
    do {                                                             \
        vf sum_ = {0};                                               \
        for (int q_ = 0; q_ < (count); q_++) {                       \
            float c_ = (coefficient);                                \
            if (c_ == 1) sum_ += (x)[q_];                            \
            else if (c_ == -1) sum_ -= (x)[q_];                      \
            else if (c_ != 0) sum_ += c_ * (x)[q_];                  \
        }                                                            \
        (out) = sum_;                                                \
    } while (0)

typedef float vf8 __attribute__((vector_size(32)));

/// row[j + m * u] for u < 16: every m-th value of the 16 * m values from row + j.
/// (Vectors pass through pointers: these helpers are inlined into both ISAs' code.)
INLINE void strided(const int m, const float *row, vf *out) {
    vf a, b;
    memcpy(&a, row, sizeof a);
    memcpy(&b, row + 16, sizeof b);
    if (m == 2) { *out = __builtin_shufflevector(a, b, 0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); return; }
    vf c, d;
    memcpy(&c, row + 32, sizeof c);
    memcpy(&d, row + 48, sizeof d);
    vf8 low = __builtin_shufflevector(a, b, 0, 4, 8, 12, 16, 20, 24, 28);
    vf8 high = __builtin_shufflevector(c, d, 0, 4, 8, 12, 16, 20, 24, 28);
    *out = __builtin_shufflevector(low, high, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
}

/// V = B^T d B for `count` (<= 16) tiles of one channel; d[i][j][u] is
/// element (i, j) of tile u. A full group of tiles reads up to 16 * m + m - 1
/// values past the tiles' first column (the caller leaves that much room).
INLINE void input_tiles(const int m, const float *in, ptrdiff_t row_stride, int count, float *v, ptrdiff_t v_matrix) {
    const int alpha = m + 2;
    vf d[MAX_ALPHA][MAX_ALPHA];
    for (int i = 0; i < alpha; i++) {
        const float *row = in + i * row_stride;
        if (count == LANES) {
            for (int j = 0; j < alpha; j++) strided(m, row + j, &d[i][j]);
            continue;
        }
        float lanes[MAX_ALPHA][LANES];
        memset(lanes, 0, sizeof lanes);
        for (int u = 0; u < count; u++)
            for (int j = 0; j < alpha; j++) lanes[j][u] = row[u * m + j];
        for (int j = 0; j < alpha; j++) memcpy(&d[i][j], lanes[j], sizeof(vf));
    }
    // Columns first: t[i][q] = sum_j d[i][j] B[j][q] = sum_j B^T[q][j] d[i][j].
    vf t[MAX_ALPHA][MAX_ALPHA];
    for (int i = 0; i < alpha; i++)
        for (int q = 0; q < alpha; q++) COMBINE(t[i][q], alpha, bt(m, q, q_), d[i]);
    for (int p = 0; p < alpha; p++) {
        for (int q = 0; q < alpha; q++) {
            vf column[MAX_ALPHA];
            for (int i = 0; i < alpha; i++) column[i] = t[i][q];
            vf out;
            COMBINE(out, alpha, bt(m, p, q_), column);
            float *dst = v + (p * alpha + q) * v_matrix;
            if (count == LANES) memcpy(dst, &out, sizeof out);
            else {
                float lanes[LANES];
                memcpy(lanes, &out, sizeof out);
                for (int u = 0; u < count; u++) dst[u] = lanes[u];
            }
        }
    }
}

INLINE void input_transform(const int m, const float *window, ptrdiff_t channel_stride, ptrdiff_t row_stride,
                            int channels, int tiles, float *v, ptrdiff_t v_row) {
    for (int ci = 0; ci < channels; ci++)
        for (int t = 0; t < tiles; t += LANES)
            input_tiles(m, window + ci * channel_stride + t * m, row_stride, tiles - t < LANES ? tiles - t : LANES,
                        v + ci * v_row + t, (ptrdiff_t)channels * v_row);
}

INLINE void epilogue(vf *v, const ckernels_epilogue *e, int i) {
    vf x = *v;
    if (e->scale) x *= e->scale[i];
    if (e->bias) x += e->bias[i];
    if (e->relu) { vf zero = {0}; x = __builtin_elementwise_max(x, zero); }
    if (e->post_scale) x = x * e->post_scale[i] + e->post_shift[i];
    *v = x;
}

/// Row i of `count` (<= 16) blocks n x n wide, block u's values y[i][j][u],
/// stored at out[i * out_row + u * n + j] within the valid rows and columns;
/// a full row of 16 blocks as whole vectors, interleaved in registers.
INLINE void store_rows(const int n, vf y[4][4], int count, float *out, ptrdiff_t out_row, int valid_rows,
                       int valid_columns) {
    for (int i = 0; i < n && i < valid_rows; i++) {
        float *row = out + i * out_row;
        if (count == LANES && LANES * n <= valid_columns) {
            if (n == 1) { memcpy(row, &y[i][0], sizeof(vf)); continue; }
            vf pairs[4];
            pairs[0] = __builtin_shufflevector(y[i][0], y[i][1], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            pairs[1] = __builtin_shufflevector(y[i][0], y[i][1], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            if (n == 2) { memcpy(row, &pairs[0], sizeof(vf)); memcpy(row + 16, &pairs[1], sizeof(vf)); continue; }
            pairs[2] = __builtin_shufflevector(y[i][2], y[i][3], 0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
            pairs[3] = __builtin_shufflevector(y[i][2], y[i][3], 8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
            vf quads[4];
            quads[0] = __builtin_shufflevector(pairs[0], pairs[2], 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
            quads[1] = __builtin_shufflevector(pairs[0], pairs[2], 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
            quads[2] = __builtin_shufflevector(pairs[1], pairs[3], 0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
            quads[3] = __builtin_shufflevector(pairs[1], pairs[3], 8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
            for (int q = 0; q < 4; q++) memcpy(row + 16 * q, &quads[q], sizeof(vf));
            continue;
        }
        float lanes[4][LANES];
        for (int j = 0; j < n; j++) memcpy(lanes[j], &y[i][j], sizeof(vf));
        for (int u = 0; u < count; u++)
            for (int j = 0; j < n && u * n + j < valid_columns; j++) row[u * n + j] = lanes[j][u];
    }
}

/// Y = A^T M A for `count` tiles of one output channel, the epilogue, then
/// either the valid part of each m x m tile stored, or (pooled) its 2x2 means.
INLINE void output_tiles(const int m, const float *mm, ptrdiff_t m_matrix, int count, float *out, ptrdiff_t out_row,
                         int valid_rows, int valid_columns, int pooled, const ckernels_epilogue *e, int channel) {
    const int alpha = m + 2;
    vf x[MAX_ALPHA][MAX_ALPHA];
    for (int p = 0; p < alpha; p++)
        for (int q = 0; q < alpha; q++) {
            const float *src = mm + (p * alpha + q) * m_matrix;
            if (count == LANES) memcpy(&x[p][q], src, sizeof(vf));
            else {
                float lanes[LANES] = {0};
                for (int u = 0; u < count; u++) lanes[u] = src[u];
                memcpy(&x[p][q], lanes, sizeof(vf));
            }
        }
    // Rows first: t[i][q] = sum_p A^T[i][p] x[p][q]; then y[i][j] = sum_q t[i][q] A[q][j].
    vf t[4][MAX_ALPHA], y[4][4];
    for (int i = 0; i < m; i++)
        for (int q = 0; q < alpha; q++) {
            vf column[MAX_ALPHA];
            for (int p = 0; p < alpha; p++) column[p] = x[p][q];
            COMBINE(t[i][q], alpha, at(m, i, q_), column);
        }
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            COMBINE(y[i][j], alpha, at(m, j, q_), t[i]);
            epilogue(&y[i][j], e, channel);
        }
    if (pooled) {
        // PyTorch's order: the four values summed row by row, then / 4.
        vf mean[4][4];
        for (int i = 0; i < m / 2; i++)
            for (int j = 0; j < m / 2; j++)
                mean[i][j] = (y[2 * i][2 * j] + y[2 * i][2 * j + 1] + y[2 * i + 1][2 * j] + y[2 * i + 1][2 * j + 1]) / 4;
        store_rows(m / 2, mean, count, out, out_row, valid_rows, valid_columns);
        return;
    }
    store_rows(m, y, count, out, out_row, valid_rows, valid_columns);
}

INLINE void output_transform(const int m, const float *mm, ptrdiff_t m_row, int channels, int tiles, float *out,
                             ptrdiff_t out_channel, ptrdiff_t out_row, int valid_rows, int valid_columns, int pooled,
                             const ckernels_epilogue *e, int first_channel) {
    int step = pooled ? m / 2 : m;
    for (int co = 0; co < channels; co++)
        for (int t = 0; t < tiles; t += LANES)
            output_tiles(m, mm + co * m_row + t, (ptrdiff_t)channels * m_row, tiles - t < LANES ? tiles - t : LANES,
                         out + co * out_channel + t * step, out_row, valid_rows, valid_columns - t * step, pooled, e,
                         first_channel + co);
}

#define INSTANCES(suffix, isa)                                                                                     \
    __attribute__((target(isa))) static void input_##suffix(int m, const float *w, ptrdiff_t cs, ptrdiff_t rs,       \
                                                            int channels, int tiles, float *v, ptrdiff_t v_row) {  \
        if (m == 4) input_transform(4, w, cs, rs, channels, tiles, v, v_row);                                      \
        else input_transform(2, w, cs, rs, channels, tiles, v, v_row);                                             \
    }                                                                                                              \
    __attribute__((target(isa))) static void output_##suffix(int m, const float *mm, ptrdiff_t m_row, int channels, \
                                                             int tiles, float *out, ptrdiff_t oc, ptrdiff_t orow,  \
                                                             int vr, int vc, int pooled,                           \
                                                             const ckernels_epilogue *e, int c0) {                 \
        if (m == 4) output_transform(4, mm, m_row, channels, tiles, out, oc, orow, vr, vc, pooled, e, c0);          \
        else output_transform(2, mm, m_row, channels, tiles, out, oc, orow, vr, vc, pooled, e, c0);                 \
    }

INSTANCES(avx512, "avx512f,avx512vl,avx2,fma")
INSTANCES(avx2, "avx2,fma")
#endif

void ckernels_winograd_input(int level, int m, const float *window, ptrdiff_t channel_stride, ptrdiff_t row_stride,
                             int channels, int tiles, float *v, ptrdiff_t v_row) {
    if (channels <= 0 || tiles <= 0 || (m != 2 && m != 4)) return;
#ifdef CKERNELS_X86
    if (level >= 2) { input_avx512(m, window, channel_stride, row_stride, channels, tiles, v, v_row); return; }
    if (level == 1) { input_avx2(m, window, channel_stride, row_stride, channels, tiles, v, v_row); return; }
#endif
    (void)level; (void)window; (void)channel_stride; (void)row_stride; (void)v; (void)v_row;
}

void ckernels_winograd_output(int level, int m, const float *products, ptrdiff_t products_row, int channels,
                              int tiles, float *out, ptrdiff_t out_channel, ptrdiff_t out_row, int valid_rows,
                              int valid_columns, int pooled, const ckernels_epilogue *epilogue, int first_channel) {
    if (channels <= 0 || tiles <= 0 || (m != 2 && m != 4)) return;
#ifdef CKERNELS_X86
    if (level >= 2) {
        output_avx512(m, products, products_row, channels, tiles, out, out_channel, out_row, valid_rows, valid_columns,
                      pooled, epilogue, first_channel);
        return;
    }
    if (level == 1) {
        output_avx2(m, products, products_row, channels, tiles, out, out_channel, out_row, valid_rows, valid_columns,
                    pooled, epilogue, first_channel);
        return;
    }
#endif
    (void)level; (void)products; (void)products_row; (void)out; (void)out_channel; (void)out_row; (void)valid_rows;
    (void)valid_columns; (void)pooled; (void)epilogue; (void)first_channel;
}
