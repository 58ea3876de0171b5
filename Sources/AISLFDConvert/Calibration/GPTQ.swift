import COpenBLAS

/// Second moments of the vectors a weight matrix multiplies: for a conv, every zero-padded
/// `in x k x k` patch it reads (in the weight's own order: input channel, kernel row, kernel
/// column); for a linear layer, every position's feature vector.
/// `matrix` is H = (1/count) Σ x xᵀ — not centred, so a constant input (a mean the rounding
/// errors would shift) counts like any other direction.
public struct InputMoments: Sendable {
    public let size: Int
    public private(set) var count: Int = 0
    /// Lower triangle of Σ x xᵀ.
    var sums: SquareMatrix

    public init(size: Int) {
        self.size = size
        sums = SquareMatrix(n: size)
    }

    /// Patches of a conv over `map` (channels x height x width, C order), as PyTorch's Conv2d
    /// reads them with zero padding. False (nothing added) when `channels * kernel * kernel`
    /// is not `size` or the map's value count does not match its sizes.
    @discardableResult
    public mutating func addConvolutionPatches(_ map: [Float], channels: Int, height: Int, width: Int,
                                               kernel: Int, stride: Int, padding: Int) -> Bool {
        guard channels > 0, kernel > 0, stride > 0, padding >= 0, channels * kernel * kernel == size,
              height > 0, width > 0, map.count == channels * height * width else { return false }
        let outH = (height + 2 * padding - kernel) / stride + 1
        let outW = (width + 2 * padding - kernel) / stride + 1
        guard outH > 0, outW > 0 else { return true }
        let chunk = max(1, min(outH * outW, 1 << 20 / max(size, 1)))
        var rows = [Double](repeating: 0, count: chunk * size)
        var filled = 0
        for oy in 0..<outH {
            for ox in 0..<outW {
                let base = filled * size
                for c in 0..<channels {
                    for ky in 0..<kernel {
                        let y = oy * stride - padding + ky
                        for kx in 0..<kernel {
                            let x = ox * stride - padding + kx
                            let inside = y >= 0 && y < height && x >= 0 && x < width
                            rows[base + (c * kernel + ky) * kernel + kx] = inside ? Double(map[(c * height + y) * width + x]) : 0
                        }
                    }
                }
                filled += 1
                if filled == chunk { flush(&rows, &filled) }
            }
        }
        flush(&rows, &filled)
        return true
    }

    /// Each position of `map` (channels x positions, C order) as one vector of `channels` = `size`
    /// values: what a linear layer applied per position (or a 1x1 conv) multiplies. False
    /// (nothing added) when `channels` is not `size` or does not divide the value count.
    @discardableResult
    public mutating func addPositions(_ map: [Float], channels: Int) -> Bool {
        guard channels == size, channels > 0, map.count % channels == 0 else { return false }
        let positions = map.count / channels
        let chunk = max(1, min(positions, 1 << 20 / size))
        var rows = [Double](repeating: 0, count: chunk * size)
        var filled = 0
        for p in 0..<positions {
            for c in 0..<channels { rows[filled * size + c] = Double(map[c * positions + p]) }
            filled += 1
            if filled == chunk { flush(&rows, &filled) }
        }
        flush(&rows, &filled)
        return true
    }

    private mutating func flush(_ rows: inout [Double], _ filled: inout Int) {
        guard filled > 0 else { return }
        rows.withUnsafeBufferPointer { sums.addGram(of: $0.baseAddress!, count: filled) }
        count += filled
        filled = 0
    }

    /// H = Σ x xᵀ / count, both triangles, row-major (size x size).
    public var matrix: [Double] {
        var m = sums
        m.symmetrizeFromLower()
        let scale = count > 0 ? 1 / Double(count) : 0
        return m.values.map { $0 * scale }
    }
}

/// Error-compensating rounding of a weight matrix to symmetric per-row int8 — GPTQ (Frantar
/// et al., 2022, "GPTQ: Accurate Post-Training Quantization for Generative Pre-trained
/// Transformers"), the column-by-column form of Optimal Brain Quantization. It minimises the
/// layer's output error on its calibration inputs, Σ_x |(Q - W) x|² = tr((Q - W) H (Q - W)ᵀ),
/// rather than the weights' own error: each column is rounded, and its rounding error,
/// weighted by H⁻¹, is taken off the columns not yet rounded, which absorb it where the
/// inputs are correlated (neighbouring pixels, correlated channels).
///
/// Scales are the plain ones, max |w| / 127 of each row before any update, so the stored form
/// and its reader are unchanged; updated values beyond ±127 steps are clamped. Columns go in
/// order of decreasing H[i, i] (GPTQ's "act order"), ties by index. H is damped by
/// `damping` times its mean diagonal; an input that was zero on every calibration vector
/// (H[i, i] = 0) gets 1 on its diagonal first, so its weights are rounded to nearest and
/// compensate nobody.
public enum GPTQ {
    public struct Result: Sendable {
        public var values: [Int8]
        public var scales: [Float]
        /// The damping actually used (raised tenfold, up to three times, while the damped H
        /// or its inverse failed to factor).
        public var damping: Double
    }

    public static let defaultDamping = 0.01
    static let block = 128

    /// `weight` is rows x columns, row-major (a conv's [out, in, k, k] flattened);
    /// `moments` columns x columns, symmetric. Nil when the sizes disagree or no damping up to
    /// 1000x makes H factorable (then round to nearest instead).
    public static func quantize(weight: [Float], rows: Int, columns n: Int, moments: [Double],
                                damping: Double = defaultDamping) -> Result? {
        guard rows > 0, n > 0, weight.count == rows * n, moments.count == n * n, damping >= 0 else { return nil }
        let scales = rowScales(weight, rows: rows, columns: n)
        let diagonal = (0..<n).map { moments[$0 * n + $0] }
        let order = (0..<n).sorted { diagonal[$0] != diagonal[$1] ? diagonal[$0] > diagonal[$1] : $0 < $1 }
        var base = SquareMatrix(n: n, values: moments).permuted(order)
        for i in 0..<n where base[i, i] == 0 { base[i, i] = 1 }
        let mean = n > 0 ? (0..<n).reduce(0.0) { $0 + base[$1, $1] } / Double(n) : 0

        var lambda = damping
        for _ in 0..<4 {
            var h = base
            for i in 0..<n { h[i, i] += lambda * mean }
            if h.choleskyLower(), let u = h.inverseUpperCholesky() {
                let permuted = roundColumns(weight, rows: rows, columns: n, order: order, scales: scales, u: u)
                var values = [Int8](repeating: 0, count: rows * n)
                for r in 0..<rows {
                    for (a, j) in order.enumerated() { values[r * n + j] = permuted[r * n + a] }
                }
                return Result(values: values, scales: scales, damping: lambda)
            }
            lambda *= 10
        }
        return nil
    }

    /// max |w| / 127 per row, in float32 as the plain quantizer computes it.
    static func rowScales(_ weight: [Float], rows: Int, columns: Int) -> [Float] {
        (0..<rows).map { r in
            var m: Float = 0
            for j in (r * columns)..<((r + 1) * columns) { m = max(m, abs(weight[j])) }
            return m / 127
        }
    }

    /// The GPTQ loop over columns in `order`, in blocks: inside a block the error of each
    /// column goes to the block's later columns at once; the block's errors reach the columns
    /// after it in one matrix product. Returns q with columns in `order`.
    private static func roundColumns(_ weight: [Float], rows: Int, columns n: Int, order: [Int], scales: [Float],
                                     u: SquareMatrix) -> [Int8] {
        var w = [Double](repeating: 0, count: rows * n)
        for r in 0..<rows {
            for (a, j) in order.enumerated() { w[r * n + a] = Double(weight[r * n + j]) }
        }
        var q = [Int8](repeating: 0, count: rows * n)
        var errors = [Double](repeating: 0, count: rows * block)
        var i1 = 0
        while i1 < n {
            let i2 = min(i1 + block, n), b = i2 - i1
            for a in i1..<i2 {
                let d = u[a, a]
                for r in 0..<rows {
                    let x = w[r * n + a]
                    let s = scales[r]
                    var v: Int8 = 0
                    if s > 0 { v = Int8(min(max((x / Double(s)).rounded(.toNearestOrEven), -127), 127)) }
                    q[r * n + a] = v
                    let e = (x - Double(Float(v) * s)) / d
                    errors[r * b + (a - i1)] = e
                    if e != 0 {
                        for c in (a + 1)..<i2 { w[r * n + c] -= e * u.values[a * n + c] }
                    }
                }
            }
            if i2 < n {
                errors.withUnsafeBufferPointer { e in
                    u.values.withUnsafeBufferPointer { uu in
                        w.withUnsafeMutableBufferPointer { ww in
                            cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n - i2), Int32(b), -1,
                                        e.baseAddress, Int32(b), uu.baseAddress! + i1 * n + i2, Int32(n), 1,
                                        ww.baseAddress! + i2, Int32(n))
                        }
                    }
                }
            }
            i1 = i2
        }
        return q
    }

    /// Σ_x |(stored - W) x|² / Σ_x |W x|² over the calibration inputs, i.e.
    /// tr(Δ H Δᵀ) / tr(W H Wᵀ): the layer's output noise-to-signal ratio.
    public static func outputNoiseRatio(weight: [Float], stored: [Float], rows: Int, columns n: Int, moments: [Double]) -> Double {
        guard rows > 0, n > 0, weight.count == rows * n, stored.count == weight.count, moments.count == n * n else { return .nan }
        let delta = zip(stored, weight).map { Double($0) - Double($1) }
        let w = weight.map(Double.init)
        func quadratic(_ x: [Double]) -> Double {
            var product = [Double](repeating: 0, count: rows * n)
            x.withUnsafeBufferPointer { xx in
                moments.withUnsafeBufferPointer { h in
                    product.withUnsafeMutableBufferPointer { p in
                        cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(n), Int32(n), 1,
                                    xx.baseAddress, Int32(n), h.baseAddress, Int32(n), 0, p.baseAddress, Int32(n))
                    }
                }
            }
            var total = 0.0
            for i in 0..<(rows * n) { total += product[i] * x[i] }
            return total
        }
        let signal = quadratic(w)
        return signal > 0 ? quadratic(delta) / signal : 0
    }
}
