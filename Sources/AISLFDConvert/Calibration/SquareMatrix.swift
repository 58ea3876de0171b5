import COpenBLAS

/// A dense n x n matrix of Doubles, row-major, for the second moments of a layer's inputs and
/// the factorisations GPTQ needs. Heavy products go through OpenBLAS.
struct SquareMatrix {
    let n: Int
    var values: [Double]

    init(n: Int) {
        self.n = n
        values = [Double](repeating: 0, count: n * n)
    }

    init(n: Int, values: [Double]) {
        self.n = n
        self.values = values
    }

    subscript(i: Int, j: Int) -> Double {
        get { values[i * n + j] }
        set { values[i * n + j] = newValue }
    }

    /// Adds `rowsᵀ rows` to the lower triangle, `rows` being `count` rows of n values.
    mutating func addGram(of rows: UnsafePointer<Double>, count: Int) {
        guard count > 0, n > 0 else { return }
        values.withUnsafeMutableBufferPointer { h in
            cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(n), Int32(count), 1, rows, Int32(n), 1, h.baseAddress, Int32(n))
        }
    }

    /// Copies the lower triangle onto the upper one.
    mutating func symmetrizeFromLower() {
        for i in 0..<n {
            for j in (i + 1)..<max(i + 1, n) { values[i * n + j] = values[j * n + i] }
        }
    }

    /// The rows and columns in `order` (a permutation of 0..<n).
    func permuted(_ order: [Int]) -> SquareMatrix {
        var out = SquareMatrix(n: n)
        for (a, i) in order.enumerated() {
            for (b, j) in order.enumerated() { out.values[a * n + b] = values[i * n + j] }
        }
        return out
    }

    /// In place, the lower Cholesky factor L (A = L Lᵀ) of this symmetric positive definite
    /// matrix, reading only the lower triangle; the upper triangle is zeroed. False when a
    /// pivot is not positive (the matrix is not positive definite to working precision).
    /// Blocked: each diagonal block is factored directly, the panel below it solved with a
    /// triangular solve and the rest updated with a rank-k product.
    mutating func choleskyLower(block: Int = 96) -> Bool {
        let n = self.n
        var ok = true
        values.withUnsafeMutableBufferPointer { a in
            guard let base = a.baseAddress else { return }
            var k = 0
            while k < n && ok {
                let kb = min(block, n - k)
                for j in k..<(k + kb) {
                    var d = a[j * n + j]
                    for p in k..<j { d -= a[j * n + p] * a[j * n + p] }
                    guard d > 0, d.isFinite else { ok = false; return }
                    let l = d.squareRoot()
                    a[j * n + j] = l
                    for i in (j + 1)..<(k + kb) {
                        var s = a[i * n + j]
                        for p in k..<j { s -= a[i * n + p] * a[j * n + p] }
                        a[i * n + j] = s / l
                    }
                }
                let rest = n - k - kb
                if rest > 0 {
                    let diagonal = base + k * n + k
                    let panel = base + (k + kb) * n + k
                    cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, Int32(rest), Int32(kb), 1,
                                diagonal, Int32(n), panel, Int32(n))
                    cblas_dsyrk(CblasRowMajor, CblasLower, CblasNoTrans, Int32(rest), Int32(kb), -1, panel, Int32(n), 1,
                                base + (k + kb) * n + (k + kb), Int32(n))
                }
                k += kb
            }
        }
        guard ok else { return false }
        for i in 0..<n {
            for j in (i + 1)..<max(i + 1, n) { values[i * n + j] = 0 }
        }
        return true
    }

    /// For a lower Cholesky factor L of A, the upper triangular U with A⁻¹ = Uᵀ U — what GPTQ
    /// walks along: row i of U, divided by U[i, i], spreads the rounding error of column i over
    /// the columns after it. Computed as L⁻¹, then A⁻¹ = L⁻ᵀ L⁻¹, then U = Lᵀ of A⁻¹'s lower
    /// Cholesky factor. Nil when A⁻¹ is not positive definite to working precision.
    func inverseUpperCholesky() -> SquareMatrix? {
        var inverse = SquareMatrix(n: n)
        for i in 0..<n { inverse.values[i * n + i] = 1 }
        values.withUnsafeBufferPointer { l in
            inverse.values.withUnsafeMutableBufferPointer { x in
                cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, Int32(n), Int32(n), 1,
                            l.baseAddress, Int32(n), x.baseAddress, Int32(n))
            }
        }
        // A⁻¹ = (L⁻¹)ᵀ L⁻¹, lower triangle.
        var aInverse = SquareMatrix(n: n)
        inverse.values.withUnsafeBufferPointer { x in
            aInverse.values.withUnsafeMutableBufferPointer { h in
                cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(n), Int32(n), 1, x.baseAddress, Int32(n), 0, h.baseAddress, Int32(n))
            }
        }
        guard aInverse.choleskyLower() else { return nil }
        var upper = SquareMatrix(n: n)
        for i in 0..<n {
            for j in i..<n { upper.values[i * n + j] = aInverse.values[j * n + i] }
        }
        return upper
    }
}
