/// exp for the attention softmax, where libm's expf would dominate. Plain
/// loops of scalar operations that LLVM vectorises (no libm call, no
/// reduction inside the exp loop): exp(x) = 2^n * exp(r) with
/// n = round(x / ln 2) and |r| <= ln(2) / 2; exp(r) by its Taylor series to
/// degree 7, whose remainder (< 6e-9 relative) is below float precision.
enum FastExp {
    /// `v[i] = exp(v[i] - shift)` for all i; returns the sum of the results.
    static func expSubtracting(_ shift: Float, _ v: UnsafeMutablePointer<Float>, count: Int) -> Float {
        for i in 0..<count { v[i] = exp(v[i] - shift) }
        return sum(v, count: count)
    }

    @inline(__always)
    static func exp(_ x: Float) -> Float {
        // Below -87 the result would be subnormal; softmax only needs it tiny.
        let x = min(max(x, -87), 88)
        // Adding 1.5 * 2^23 rounds x / ln 2 to the nearest integer n and leaves
        // n in the low bits of the sum's bit pattern.
        let shifted = x * 1.442_695_04 + 12_582_912
        let n = shifted - 12_582_912
        // ln 2 split in two so n * ln2High is exact.
        let r = (x - n * 0.693_359_375) + n * 2.121_944_4e-4
        var p: Float = 1.0 / 5040
        p = p * r + 1.0 / 720
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        // 2^n: n + 127 in the exponent field.
        let twoToN = Float(bitPattern: (shifted.bitPattern &+ (127 &- 0x4B40_0000)) &<< 23)
        return p * twoToN
    }

    /// Sum of `count` floats, eight partial sums at a time.
    static func sum(_ v: UnsafePointer<Float>, count: Int) -> Float {
        var acc = SIMD8<Float>()
        var i = 0
        while i + 8 <= count {
            acc += UnsafeRawPointer(v + i).loadUnaligned(as: SIMD8<Float>.self)
            i += 8
        }
        var total = acc.sum()
        while i < count { total += v[i]; i += 1 }
        return total
    }
}
