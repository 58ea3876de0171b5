import AISLFDImages
import Foundation

/// `--plot`: the MMA curves (mean matching accuracy against the threshold, 1..10 px), one
/// line per subset and model, with axes, ticks, labels and a legend, as a PNG.
public enum MMAPlot {
    public struct Curve {
        public var label: String
        public var values: [Double]

        public init(label: String, values: [Double]) {
            self.label = label
            self.values = values
        }
    }

    static let palette: [(UInt8, UInt8, UInt8)] = [(31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189),
                                                    (255, 127, 14), (23, 190, 207), (140, 86, 75), (127, 127, 127)]

    /// Solid lines for the first model, dashed for the second (`dashedFrom` curves on).
    public static func render(_ curves: [Curve], dashedFrom: Int? = nil, width: Int = 800, height: Int = 560) -> (rgb: [UInt8], height: Int, width: Int) {
        var r = Raster(width: width, height: height)
        let left = 90, right = 20, top = 34, bottom = 70
        let plotW = width - left - right, plotH = height - top - bottom
        func px(_ t: Double) -> Double { Double(left) + (t - 1) / 9 * Double(plotW) }
        func py(_ v: Double) -> Double { Double(top) + (1 - min(max(v, 0), 1)) * Double(plotH) }
        let axis: (UInt8, UInt8, UInt8) = (0, 0, 0), grid: (UInt8, UInt8, UInt8) = (225, 225, 225)
        for i in 0...10 {
            let v = Double(i) / 10
            r.line(Double(left), py(v), Double(left + plotW), py(v), grid)
            r.line(Double(left - 6), py(v), Double(left), py(v), axis)
            let label = String(format: "%.1f", v)
            r.text(label, x: left - 10 - Raster.textWidth(label), y: Int(py(v)) - 7, axis)
        }
        for t in 1...10 {
            r.line(px(Double(t)), Double(top), px(Double(t)), Double(top + plotH), grid)
            r.line(px(Double(t)), Double(top + plotH), px(Double(t)), Double(top + plotH + 6), axis)
            let label = "\(t)"
            r.text(label, x: Int(px(Double(t))) - Raster.textWidth(label) / 2, y: top + plotH + 12, axis)
        }
        r.line(Double(left), Double(top), Double(left), Double(top + plotH), axis, thickness: 2)
        r.line(Double(left), Double(top + plotH), Double(left + plotW), Double(top + plotH), axis, thickness: 2)
        let xLabel = "THRESHOLD (PX)"
        r.text(xLabel, x: left + plotW / 2 - Raster.textWidth(xLabel) / 2, y: height - 32, axis)
        r.text("MMA", x: left - Raster.textWidth("MMA") / 2, y: 6, axis)

        for (n, curve) in curves.enumerated() {
            let colour = palette[n % palette.count]
            let dashed = dashedFrom.map { n >= $0 } ?? false
            for t in 0..<(min(curve.values.count, 10) - 1) {
                let (x0, y0) = (px(Double(t + 1)), py(curve.values[t])), (x1, y1) = (px(Double(t + 2)), py(curve.values[t + 1]))
                if dashed {
                    for d in stride(from: 0.0, to: 1.0, by: 0.25) {
                        r.line(x0 + (x1 - x0) * d, y0 + (y1 - y0) * d, x0 + (x1 - x0) * (d + 0.14), y0 + (y1 - y0) * (d + 0.14), colour, thickness: 3)
                    }
                } else {
                    r.line(x0, y0, x1, y1, colour, thickness: 3)
                }
            }
            for (t, v) in curve.values.prefix(10).enumerated() { r.fill(x: Int(px(Double(t + 1))) - 3, y: Int(py(v)) - 3, width: 7, height: 7, colour) }
        }
        // The legend, bottom right of the plot area.
        let rowHeight = 22, legendW = 40 + (curves.map { Raster.textWidth($0.label) }.max() ?? 0) + 16
        let lx = left + plotW - legendW - 10, ly = top + plotH - rowHeight * curves.count - 14
        r.fill(x: lx, y: ly, width: legendW, height: rowHeight * curves.count + 8, (255, 255, 255))
        for (n, curve) in curves.enumerated() {
            let y = ly + 6 + n * rowHeight
            r.line(Double(lx + 6), Double(y + 7), Double(lx + 34), Double(y + 7), palette[n % palette.count], thickness: 3)
            r.text(curve.label, x: lx + 40, y: y, (0, 0, 0))
        }
        return (r.pixels, height, width)
    }

    public static func write(_ curves: [Curve], dashedFrom: Int? = nil, to path: String) throws {
        let image = render(curves, dashedFrom: dashedFrom)
        try PNGWriter.write(rgb: image.rgb, height: image.height, width: image.width, to: path)
    }
}
