/// A 3x3 projective transform of pixel coordinates, row-major, as HPatches' `H_1_i` files and
/// OpenCV store it: (x', y') = (h0 x + h1 y + h2, h3 x + h4 y + h5) / (h6 x + h7 y + h8).
public struct Homography: Sendable, Equatable {
    public var values: [Double]

    public init(_ values: [Double]) {
        precondition(values.count == 9, "a homography has 9 entries")
        self.values = values
    }

    public static let identity = Homography([1, 0, 0, 0, 1, 0, 0, 0, 1])

    public subscript(row: Int, column: Int) -> Double { values[row * 3 + column] }

    /// The image of (x, y), or nil where the point maps to infinity.
    public func apply(_ x: Double, _ y: Double) -> (x: Double, y: Double)? {
        let v = values
        let w = v[6] * x + v[7] * y + v[8]
        guard w != 0, w.isFinite else { return nil }
        let px = (v[0] * x + v[1] * y + v[2]) / w, py = (v[3] * x + v[4] * y + v[5]) / w
        return px.isFinite && py.isFinite ? (px, py) : nil
    }

    public var determinant: Double {
        let v = values
        return v[0] * (v[4] * v[8] - v[5] * v[7]) - v[1] * (v[3] * v[8] - v[5] * v[6]) + v[2] * (v[3] * v[7] - v[4] * v[6])
    }

    /// The inverse, or nil for a singular (or numerically singular) matrix.
    public var inverse: Homography? {
        let v = values, det = determinant
        let scale = values.map(abs).max() ?? 0
        guard det.isFinite, scale > 0, abs(det) > 1e-12 * scale * scale * scale else { return nil }
        let adjugate = [
            v[4] * v[8] - v[5] * v[7], v[2] * v[7] - v[1] * v[8], v[1] * v[5] - v[2] * v[4],
            v[5] * v[6] - v[3] * v[8], v[0] * v[8] - v[2] * v[6], v[2] * v[3] - v[0] * v[5],
            v[3] * v[7] - v[4] * v[6], v[1] * v[6] - v[0] * v[7], v[0] * v[4] - v[1] * v[3],
        ]
        return Homography(adjugate.map { $0 / det })
    }

    /// self after other: (self * other)(p) = self(other(p)).
    public func composed(after other: Homography) -> Homography {
        var out = [Double](repeating: 0, count: 9)
        for r in 0..<3 {
            for c in 0..<3 { out[r * 3 + c] = (0..<3).reduce(0) { $0 + self[r, $1] * other[$1, c] } }
        }
        return Homography(out)
    }

    /// Scaled so that the bottom-right entry is 1 (OpenCV's convention), when it can be.
    public var normalized: Homography {
        guard values[8] != 0, values[8].isFinite else { return self }
        return Homography(values.map { $0 / values[8] })
    }
}
