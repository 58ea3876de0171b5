/// exp over 16 lanes at a time for the attention softmax, where libm's
/// scalar expf would dominate. exp(x) = 2^n * exp(r) with n = round(x / ln 2)
/// and |r| <= ln(2) / 2; exp(r) by its Taylor series to degree 7, whose
/// remainder (< 6e-9 relative) is below float precision.
enum FastExp {
    typealias Vector = SIMD16<Float>

    @inline(__always)
    static func exp(_ x: Vector) -> Vector {
        // Below -87.3 the result would be subnormal; softmax only needs it tiny.
        let x = x.clamped(lowerBound: Vector(repeating: -87.3), upperBound: Vector(repeating: 88.7))
        let n = (x * 1.442_695_04).rounded(.toNearestOrEven)
        // ln 2 split in two so n * ln2High is exact.
        let r = (x - n * 0.693_359_375) + n * 2.121_944_4e-4
        var p = Vector(repeating: 1.0 / 5040)
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let exponent = SIMD16<Int32>(truncatingIfNeeded: SIMD16<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
        return p * unsafeBitCast(exponent, to: Vector.self)
    }

    /// `v[i] = exp(v[i] - shift)` for all i; returns the sum of the results.
    static func expSubtracting(_ shift: Float, _ v: UnsafeMutablePointer<Float>, count: Int) -> Float {
        var i = 0
        var acc = Vector()
        let s = Vector(repeating: shift)
        while i + 16 <= count {
            let raw = UnsafeMutableRawPointer(v + i)
            let e = exp(raw.loadUnaligned(as: Vector.self) - s)
            raw.storeBytes(of: e, as: Vector.self)
            acc += e
            i += 16
        }
        var sum = acc.sum()
        while i < count {
            var lane = Vector(repeating: -Float.infinity)
            lane[0] = v[i] - shift
            let e = exp(lane)[0]
            v[i] = e
            sum += e
            i += 1
        }
        return sum
    }
}
