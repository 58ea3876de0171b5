/// How one output of a run compares with the same output of a reference.
public struct ArrayComparison: Codable, Equatable, Sendable {
    public var name: String
    public var shape: [Int]
    public var maxAbsError: Double
    public var meanAbsError: Double
    /// The reference's largest magnitude, the scale `relativeMaxError` is measured against.
    public var referenceMaxAbs: Double
    public var relativeMaxError: Double
    /// Cosine of the whole arrays, flattened.
    public var cosine: Double
    /// Least cosine over the vectors: one per position of a [1, C, H, W] map (along C),
    /// one per row of anything else (the last dimension: a keypoint's descriptor of one
    /// variant, a PSA position). Vectors that are zero in both arrays are skipped.
    public var minCosine: Double
    /// For `kp_desc`: the share of (keypoint, variant) pairs whose nearest other
    /// keypoint is the same in both.
    public var nearestNeighbourAgreement: Double?
    /// What decides this output, e.g. `relative max error <= 1e-4`; nil when it is only reported.
    public var criterion: String?
    public var pass: Bool
}

/// Elementwise and vector-wise figures of two arrays of the same shape.
enum Figures {
    static func compare(name: String, shape: [Int], run: [Float], reference: [Float]) -> ArrayComparison {
        var maxAbs = 0.0, sumAbs = 0.0, refMax = 0.0, dot = 0.0, runNorm = 0.0, refNorm = 0.0
        for i in 0..<min(run.count, reference.count) {
            let a = Double(run[i]), b = Double(reference[i])
            let e = abs(a - b)
            if !(e <= maxAbs) { maxAbs = e.isNaN ? .infinity : e }
            sumAbs += e
            refMax = max(refMax, abs(b))
            dot += a * b; runNorm += a * a; refNorm += b * b
        }
        let count = max(reference.count, 1)
        return ArrayComparison(
            name: name, shape: shape, maxAbsError: maxAbs, meanAbsError: sumAbs / Double(count), referenceMaxAbs: refMax,
            relativeMaxError: refMax > 0 ? maxAbs / refMax : (maxAbs == 0 ? 0 : .infinity),
            cosine: cosine(dot, runNorm, refNorm), minCosine: minimumVectorCosine(shape: shape, run: run, reference: reference),
            nearestNeighbourAgreement: nil, criterion: nil, pass: true)
    }

    static func cosine(_ dot: Double, _ a2: Double, _ b2: Double) -> Double {
        if a2 == 0 && b2 == 0 { return 1 }
        if a2 == 0 || b2 == 0 { return 0 }
        return dot / (a2.squareRoot() * b2.squareRoot())
    }

    /// (vector count, vector length, stride between a vector's elements, start of vector v)
    static func vectorLayout(_ shape: [Int]) -> (count: Int, length: Int, stride: Int, start: (Int) -> Int) {
        if shape.count == 4, shape[0] == 1 {
            let plane = shape[2] * shape[3]
            return (plane, shape[1], plane, { $0 })
        }
        let length = shape.last ?? 1
        let total = shape.reduce(1, *)
        return (length == 0 ? 0 : total / length, length, 1, { $0 * length })
    }

    /// Vectors whose norm in both arrays is below 1e-3 of the reference's largest vector
    /// norm are skipped: after a ReLU many positions are zero, and their direction means nothing.
    static func minimumVectorCosine(shape: [Int], run: [Float], reference: [Float]) -> Double {
        let layout = vectorLayout(shape)
        guard layout.count > 0, run.count == reference.count, reference.count == layout.count * layout.length else { return 0 }
        var norms: [(Double, Double, Double)] = []
        norms.reserveCapacity(layout.count)
        var largest = 0.0
        for v in 0..<layout.count {
            var dot = 0.0, a2 = 0.0, b2 = 0.0
            var i = layout.start(v)
            for _ in 0..<layout.length {
                let a = Double(run[i]), b = Double(reference[i])
                dot += a * b; a2 += a * a; b2 += b * b
                i += layout.stride
            }
            norms.append((dot, a2, b2))
            largest = max(largest, b2)
        }
        let floor = largest * 1e-6  // squared norms: 1e-3 of the norm
        var least = 1.0
        for (dot, a2, b2) in norms where a2 > floor || b2 > floor {
            least = min(least, cosine(dot, a2, b2))
        }
        return least
    }

    /// For [N, V, D] keypoint descriptors: per variant, each keypoint's nearest other
    /// keypoint (L2, lowest index on ties) in the run and in the reference; the share that agree.
    static func nearestNeighbourAgreement(shape: [Int], run: [Float], reference: [Float]) -> Double {
        guard shape.count == 3, shape[0] > 1 else { return 1 }
        let n = shape[0], variants = shape[1], d = shape[2]
        func nearest(_ x: [Float], _ i: Int, _ s: Int) -> Int {
            var best = -1, bestDistance = Double.infinity
            for j in 0..<n where j != i {
                var dist = 0.0
                for k in 0..<d {
                    let e = Double(x[(i * variants + s) * d + k]) - Double(x[(j * variants + s) * d + k])
                    dist += e * e
                }
                if dist < bestDistance { bestDistance = dist; best = j }
            }
            return best
        }
        var agree = 0
        for s in 0..<variants {
            for i in 0..<n where nearest(run, i, s) == nearest(reference, i, s) { agree += 1 }
        }
        return Double(agree) / Double(n * variants)
    }
}
