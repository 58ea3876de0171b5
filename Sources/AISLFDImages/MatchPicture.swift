/// Two images side by side with a line per match, for a person to look at.
public struct MatchPicture {
    public struct RGBImage {
        public var pixels: [UInt8]  // [H, W, 3]
        public var height: Int
        public var width: Int

        public init(pixels: [UInt8], height: Int, width: Int) {
            self.pixels = pixels
            self.height = height
            self.width = width
        }
    }

    public private(set) var canvas: RGBImage
    private let offset: Int
    private let scale: Int

    /// `left` at x = 0, `right` beside it, both enlarged `scale` times (nearest pixel) so
    /// small images stay readable; the canvas is as tall as the taller image.
    public init(left: RGBImage, right: RGBImage, scale: Int = 1) {
        self.scale = max(1, scale)
        let height = max(left.height, right.height) * self.scale, width = (left.width + right.width) * self.scale
        canvas = RGBImage(pixels: [UInt8](repeating: 0, count: height * width * 3), height: height, width: width)
        offset = left.width * self.scale
        paste(left, atX: 0)
        paste(right, atX: offset)
    }

    /// The integer enlargement that makes the taller image about `height` pixels tall.
    public static func scale(forHeight height: Int, left: RGBImage, right: RGBImage) -> Int {
        max(1, height / max(1, max(left.height, right.height)))
    }

    /// A line from a point of the left image to a point of the right image, each
    /// end marked with a small cross; colours cycle so neighbouring lines differ.
    public mutating func connect(left: (x: Float, y: Float), right: (x: Float, y: Float), index: Int) {
        let palette: [(UInt8, UInt8, UInt8)] = [(255, 64, 64), (64, 255, 64), (64, 160, 255), (255, 220, 0), (255, 64, 255), (0, 255, 255)]
        let colour = palette[index % palette.count]
        // Pixel centres: pixel x spans [x - 0.5, x + 0.5] in keypoint coordinates.
        func place(_ v: Float) -> Int { Int(((v + 0.5) * Float(scale) - 0.5).rounded()) }
        let x0 = place(left.x), y0 = place(left.y)
        let x1 = place(right.x) + offset, y1 = place(right.y)
        line(x0, y0, x1, y1, colour)
        let arm = 2 * scale
        for (x, y) in [(x0, y0), (x1, y1)] {
            for d in -arm...arm { plot(x + d, y, colour); plot(x, y + d, colour) }
        }
    }

    private mutating func paste(_ image: RGBImage, atX x0: Int) {
        for y in 0..<image.height * scale {
            for x in 0..<image.width * scale {
                let source = ((y / scale) * image.width + x / scale) * 3, target = (y * canvas.width + x0 + x) * 3
                for c in 0..<3 { canvas.pixels[target + c] = image.pixels[source + c] }
            }
        }
    }

    private mutating func plot(_ x: Int, _ y: Int, _ colour: (UInt8, UInt8, UInt8)) {
        guard x >= 0, y >= 0, x < canvas.width, y < canvas.height else { return }
        let i = (y * canvas.width + x) * 3
        canvas.pixels[i] = colour.0
        canvas.pixels[i + 1] = colour.1
        canvas.pixels[i + 2] = colour.2
    }

    /// Bresenham: every step moves one pixel along the major axis.
    private mutating func line(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ colour: (UInt8, UInt8, UInt8)) {
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy, x = x0, y = y0
        while true {
            plot(x, y, colour)
            if x == x1 && y == y1 { return }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x += sx }
            if e2 <= dx { err += dx; y += sy }
        }
    }
}
