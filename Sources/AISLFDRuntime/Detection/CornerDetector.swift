import Foundation

/// A keypoint found by the detector: pixel coordinates (x, y) and its response.
public struct DetectedKeypoint: Sendable, Equatable {
    public var x: Double
    public var y: Double
    public var score: Double

    public var keypoint: Keypoint { Keypoint(x: Float(x), y: Float(y)) }
}

/// The built-in keypoint detector, exactly as docs/detector.md defines it: Shi-Tomasi (the
/// smaller eigenvalue of the Gaussian-windowed structure tensor, sigma 1.5) with a 5x5
/// square non-maximum suppression, an 8-pixel border, a threshold relative to the strongest
/// response, at most 2000 keypoints, best first, refined to sub-pixel by a quadratic fit.
/// All in float64, each sum in the order the document writes, so its keypoints equal those
/// of `tools/detector_reference.py`.
public enum CornerDetector {
    public static let sigma = 1.5
    public static let radius = 5
    public static let suppressionRadius = 2
    public static let border = 8
    public static let quality = 0.001
    public static let absoluteFloor = 1e-7
    public static let maximumKeypoints = 2000

    /// Every stage of one detection, row-major `height x width` maps (for tests and tools).
    public struct Stages: Sendable {
        public let height: Int, width: Int
        public var gray: [Double] = [], ix: [Double] = [], iy: [Double] = []
        public var sxx: [Double] = [], sxy: [Double] = [], syy: [Double] = [], response: [Double] = []
        /// Integer (x, y) of the maxima, in raster order.
        public var maxima: [(x: Int, y: Int)] = []
        public var keypoints: [DetectedKeypoint] = []
    }

    /// Keypoints of an 8-bit RGB image (row-major, 3 bytes per pixel).
    public static func detect(rgb: [UInt8], height: Int, width: Int) -> [DetectedKeypoint] {
        stages(gray: gray(rgb: rgb, height: height, width: width), height: height, width: width).keypoints
    }

    /// Keypoints of an input image. Values that are bytes / 255 (a decoded PNG, JPEG or PPM)
    /// are taken back to their byte exactly; others (an .npy image) are used times 255.
    public static func detect(image: Image) -> [DetectedKeypoint] {
        guard image.channels == 3 else { return [] }
        let plane = image.planeSize
        var g = [Double](repeating: 0, count: plane)
        image.values.withUnsafeBufferPointer { v in
            for i in 0..<plane {
                g[i] = luminance(level(v[i]), level(v[plane + i]), level(v[2 * plane + i]))
            }
        }
        return stages(gray: g, height: image.height, width: image.width).keypoints
    }

    private static func level(_ v: Float) -> Double {
        let x = Double(v) * 255, nearest = x.rounded()
        return abs(x - nearest) < 1e-3 ? nearest : x
    }

    /// Step 1: (0.299 R + 0.587 G + 0.114 B) / 255, the products added left to right.
    static func luminance(_ r: Double, _ g: Double, _ b: Double) -> Double { (0.299 * r + 0.587 * g + 0.114 * b) / 255 }

    public static func gray(rgb: [UInt8], height: Int, width: Int) -> [Double] {
        (0..<(height * width)).map { luminance(Double(rgb[3 * $0]), Double(rgb[3 * $0 + 1]), Double(rgb[3 * $0 + 2])) }
    }

    /// Steps 2-7 on a gray image.
    public static func stages(gray g: [Double], height h: Int, width w: Int) -> Stages {
        var s = Stages(height: h, width: w)
        s.gray = g
        guard h > 0, w > 0, g.count == h * w else { return s }
        func at(_ m: [Double], _ x: Int, _ y: Int) -> Double { m[min(max(y, 0), h - 1) * w + min(max(x, 0), w - 1)] }

        // 2. Sobel / 8 with replicated borders.
        var ix = [Double](repeating: 0, count: h * w), iy = ix
        for y in 0..<h {
            for x in 0..<w {
                func dX(_ r: Int) -> Double { at(g, x + 1, r) - at(g, x - 1, r) }
                func dY(_ c: Int) -> Double { at(g, c, y + 1) - at(g, c, y - 1) }
                ix[y * w + x] = (dX(y - 1) + 2 * dX(y) + dX(y + 1)) / 8
                iy[y * w + x] = (dY(x - 1) + 2 * dY(x) + dY(x + 1)) / 8
            }
        }
        s.ix = ix
        s.iy = iy

        // 3. Structure tensor: separable Gaussian, horizontal then vertical, clamped.
        let weights = gaussianWeights()
        func smooth(_ a: [Double]) -> [Double] {
            var horizontal = [Double](repeating: 0, count: h * w), out = horizontal
            for y in 0..<h {
                for x in 0..<w {
                    var sum = 0.0
                    for k in -radius...radius { sum += weights[k + radius] * at(a, x + k, y) }
                    horizontal[y * w + x] = sum
                }
            }
            for y in 0..<h {
                for x in 0..<w {
                    var sum = 0.0
                    for k in -radius...radius { sum += weights[k + radius] * at(horizontal, x, y + k) }
                    out[y * w + x] = sum
                }
            }
            return out
        }
        s.sxx = smooth(zip(ix, ix).map { $0 * $1 })
        s.sxy = smooth(zip(ix, iy).map { $0 * $1 })
        s.syy = smooth(zip(iy, iy).map { $0 * $1 })

        // 4. The smaller eigenvalue.
        var r = [Double](repeating: 0, count: h * w)
        for i in 0..<(h * w) {
            let a = s.sxx[i], b = s.sxy[i], c = s.syy[i]
            let half = (a - c) / 2
            r[i] = (a + c) / 2 - (half * half + b * b).squareRoot()
        }
        s.response = r

        // 5. Maxima inside the margin above the threshold, first in raster order on ties.
        guard w - 1 - border >= border, h - 1 - border >= border else { return s }
        let xs = border...(w - 1 - border), ys = border...(h - 1 - border)
        var largest = -Double.infinity
        for y in ys { for x in xs { largest = max(largest, r[y * w + x]) } }
        let threshold = max(quality * largest, absoluteFloor)
        for y in ys {
            for x in xs {
                let v = r[y * w + x]
                guard v > threshold else { continue }
                var isMaximum = true
                search: for qy in max(0, y - suppressionRadius)...min(h - 1, y + suppressionRadius) {
                    for qx in max(0, x - suppressionRadius)...min(w - 1, x + suppressionRadius) where qx != x || qy != y {
                        let q = r[qy * w + qx]
                        let before = qy < y || (qy == y && qx < x)
                        if before ? !(q < v) : !(q <= v) { isMaximum = false; break search }
                    }
                }
                if isMaximum { s.maxima.append((x, y)) }
            }
        }

        // 6. Best first; equal scores by y, then x; at most maximumKeypoints.
        let ordered = s.maxima.sorted {
            let a = r[$0.y * w + $0.x], b = r[$1.y * w + $1.x]
            return a != b ? a > b : ($0.y != $1.y ? $0.y < $1.y : $0.x < $1.x)
        }.prefix(maximumKeypoints)

        // 7. Sub-pixel offset of the fitted quadratic's maximum, clamped to half a pixel.
        s.keypoints = ordered.map { p in
            let (x, y) = (p.x, p.y)
            func R(_ i: Int, _ j: Int) -> Double { r[j * w + i] }
            let dx = (R(x + 1, y) - R(x - 1, y)) / 2
            let dy = (R(x, y + 1) - R(x, y - 1)) / 2
            let dxx = R(x + 1, y) - 2 * R(x, y) + R(x - 1, y)
            let dyy = R(x, y + 1) - 2 * R(x, y) + R(x, y - 1)
            let dxy = (R(x + 1, y + 1) - R(x - 1, y + 1) - R(x + 1, y - 1) + R(x - 1, y - 1)) / 4
            let det = dxx * dyy - dxy * dxy
            var ox = 0.0, oy = 0.0
            if dxx < 0 && det > 0 {
                ox = min(max(-(dyy * dx - dxy * dy) / det, -0.5), 0.5)
                oy = min(max(-(dxx * dy - dxy * dx) / det, -0.5), 0.5)
            }
            return DetectedKeypoint(x: Double(x) + ox, y: Double(y) + oy, score: R(x, y))
        }
        return s
    }

    /// exp(-k^2 / (2 sigma^2)) for k = -5..5, each divided by their sum (summed in order).
    static func gaussianWeights() -> [Double] {
        let raw = (-radius...radius).map { k in exp(-Double(k * k) / (2 * sigma * sigma)) }
        var sum = 0.0
        for v in raw { sum += v }
        return raw.map { $0 / sum }
    }
}
