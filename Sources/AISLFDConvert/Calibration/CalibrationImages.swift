import AISLFDCore

/// Seeded calibration images: the "dead leaves" model (Matheron; Lee, Mumford and Huang,
/// "Occlusion models for natural images", 2001) — opaque discs of random colour whose radii
/// follow a power law r^-3, stacked front to back until every pixel is covered. The result
/// has what natural images have and a conv net's statistics depend on: flat regions, sharp
/// occluding edges at every scale, a 1/f² power spectrum. Its pixels are not the images the
/// network will see, and need not be: only the second moments of each layer's inputs are
/// taken from them.
///
/// Exactly (all in Double, then 8-bit, so the same seed gives the same pixels in any
/// language; `tools/make_quant_fixtures.py` repeats it in NumPy):
/// - random numbers: SplitMix64 from `seed`; a uniform is the top 53 bits times 2^-53;
/// - background colour: 3 uniforms (R, G, B);
/// - up to `maxDiscs` discs, each: radius r = 1 / sqrt(1/rmin² - u (1/rmin² - 1/rmax²))
///   with rmin = 3, rmax = max(H, W) / 2; centre x = -r + u (W + 2r), y = -r + u (H + 2r);
///   colour 3 uniforms; it paints the not yet painted pixels (x, y) (integer coordinates)
///   with (x - cx)² + (y - cy)² <= r². It stops early once every pixel is painted;
/// - unpainted pixels take the background colour;
/// - grain: to each value, channel by channel, row by row, (u - 0.5) / 50;
/// - 8 bits: round-half-even of 255 · clamp(v, 0, 1), then float32(q) / 255, as an 8-bit
///   image is read.
public enum CalibrationImages {
    public static let smallestRadius = 3.0
    public static let maxDiscs = 20_000

    /// RGB, channel-major (3 x height x width), values k / 255.
    public static func deadLeaves(seed: UInt64, height: Int, width: Int) -> [Float] {
        guard height > 0, width > 0 else { return [] }
        var random = SplitMix64(seed: seed)
        let plane = height * width
        let background = (0..<3).map { _ in random.uniform() }
        var colour = [Double](repeating: 0, count: 3 * plane)
        var painted = [Bool](repeating: false, count: plane)
        var left = plane
        let rmin = smallestRadius, rmax = max(Double(max(height, width)) / 2, smallestRadius)
        let a = 1 / (rmin * rmin), b = 1 / (rmax * rmax)
        var discs = 0
        while left > 0 && discs < maxDiscs {
            discs += 1
            let r = 1 / (a - random.uniform() * (a - b)).squareRoot()
            let cx = -r + random.uniform() * (Double(width) + 2 * r)
            let cy = -r + random.uniform() * (Double(height) + 2 * r)
            let rgb = (0..<3).map { _ in random.uniform() }
            let y0 = max(0, Int((cy - r).rounded(.up))), y1 = min(height - 1, Int((cy + r).rounded(.down)))
            let x0 = max(0, Int((cx - r).rounded(.up))), x1 = min(width - 1, Int((cx + r).rounded(.down)))
            guard y0 <= y1, x0 <= x1 else { continue }
            for y in y0...y1 {
                let dy = Double(y) - cy
                for x in x0...x1 where !painted[y * width + x] {
                    let dx = Double(x) - cx
                    guard dx * dx + dy * dy <= r * r else { continue }
                    painted[y * width + x] = true
                    left -= 1
                    for c in 0..<3 { colour[c * plane + y * width + x] = rgb[c] }
                }
            }
        }
        for p in 0..<plane where !painted[p] {
            for c in 0..<3 { colour[c * plane + p] = background[c] }
        }
        return colour.map { v in
            let grained = v + (random.uniform() - 0.5) / 50
            let q = (min(max(grained, 0), 1) * 255).rounded(.toNearestOrEven)
            return Float(q) / 255
        }
    }
}
