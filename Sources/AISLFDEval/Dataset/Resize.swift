import Foundation

/// LISRD's resize_and_crop: scale by s = max(H'/H, W'/W) to round(H s) x round(W s)
/// (bilinear, OpenCV's pixel-centre mapping, clamped at the borders), then crop the centre
/// H' x W' starting at round((H s - H') / 2), round((W s - W') / 2). OpenCV interpolates 8-bit
/// images in fixed point; this interpolates in float64 and rounds, so the two agree to
/// within one grey level (docs/evaluation.md, section 1).
func resizeAndCrop(_ image: DecodedRGB, to size: (height: Int, width: Int)) -> DecodedRGB {
    let scale = max(Double(size.height) / Double(image.height), Double(size.width) / Double(image.width))
    let h = Int((Double(image.height) * scale).rounded(.toNearestOrEven)), w = Int((Double(image.width) * scale).rounded(.toNearestOrEven))
    let padY = Int(((Double(image.height) * scale - Double(size.height)) / 2).rounded(.toNearestOrEven))
    let padX = Int(((Double(image.width) * scale - Double(size.width)) / 2).rounded(.toNearestOrEven))
    func taps(_ out: Int, _ input: Int) -> [(Int, Int, Double)] {
        let ratio = Double(input) / Double(out)
        return (0..<out).map { o in
            var s = (Double(o) + 0.5) * ratio - 0.5
            var f = s - s.rounded(.down)
            if s < 0 { s = 0; f = 0 }
            var i0 = Int(s.rounded(.down))
            if i0 >= input - 1 { i0 = input - 1; f = 0 }
            return (i0, min(i0 + 1, input - 1), f)
        }
    }
    let ys = taps(h, image.height), xs = taps(w, image.width)
    var pixels = [UInt8](repeating: 0, count: size.height * size.width * 3)
    for oy in 0..<size.height {
        let (y0, y1, fy) = ys[min(max(oy + padY, 0), h - 1)]
        for ox in 0..<size.width {
            let (x0, x1, fx) = xs[min(max(ox + padX, 0), w - 1)]
            for c in 0..<3 {
                func p(_ x: Int, _ y: Int) -> Double { Double(image.pixels[(y * image.width + x) * 3 + c]) }
                let top = p(x0, y0) * (1 - fx) + p(x1, y0) * fx, bottom = p(x0, y1) * (1 - fx) + p(x1, y1) * fx
                pixels[(oy * size.width + ox) * 3 + c] = UInt8(min(max((top * (1 - fy) + bottom * fy).rounded(), 0), 255))
            }
        }
    }
    return DecodedRGB(pixels: pixels, height: size.height, width: size.width)
}

/// LISRD's adapt_homography_to_preprocessing, with the unrounded scales and pads as LISRD
/// has them: H' = T1 S1 H S0⁻¹ T0, S = diag(s, s, 1), T0 a translation by (+pad_x0, +pad_y0),
/// T1 by (-pad_x1, -pad_y1), pad = (shape * s - size) / 2.
func adaptHomography(_ h: Homography, shape0: (height: Int, width: Int), shape1: (height: Int, width: Int),
                     size: (height: Int, width: Int)) -> Homography {
    func frame(_ shape: (height: Int, width: Int)) -> (scale: Double, padY: Double, padX: Double) {
        let s = max(Double(size.height) / Double(shape.height), Double(size.width) / Double(shape.width))
        return (s, (Double(shape.height) * s - Double(size.height)) / 2, (Double(shape.width) * s - Double(size.width)) / 2)
    }
    let f0 = frame(shape0), f1 = frame(shape1)
    let s0Inverse = Homography([1 / f0.scale, 0, 0, 0, 1 / f0.scale, 0, 0, 0, 1])
    let s1 = Homography([f1.scale, 0, 0, 0, f1.scale, 0, 0, 0, 1])
    let t0 = Homography([1, 0, f0.padX, 0, 1, f0.padY, 0, 0, 1])
    let t1 = Homography([1, 0, -f1.padX, 0, 1, -f1.padY, 0, 0, 1])
    return t1.composed(after: s1).composed(after: h).composed(after: s0Inverse).composed(after: t0)
}
