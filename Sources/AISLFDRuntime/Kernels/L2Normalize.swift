/// `F.normalize` of `count` floats: each divided by max(||v||, 1e-12), the norm summed in
/// Double (one rounding, whatever the length: NetVLAD's vectors have 1024 values). Maps
/// normalised at every position use `Kernels.normalizePositions`, blocked for the cache.
func normalizeL2(_ v: UnsafeMutablePointer<Float>, count: Int) {
    var sum: Double = 0
    for i in 0..<count { sum += Double(v[i]) * Double(v[i]) }
    let norm = max(Float(sum.squareRoot()), 1e-12)
    for i in 0..<count { v[i] /= norm }
}
