/// PyTorch's `grid_sample(mode='bilinear', padding_mode='zeros',
/// align_corners=False)` at single points.
enum GridSample {
    static func bilinearZeros(_ map: FeatureMap, gridX: [Float], gridY: [Float], workers: Workers) -> [Float] {
        let count = gridX.count, channels = map.channels, h = map.height, w = map.width, plane = map.planeSize
        var out = [Float](repeating: 0, count: count * channels)
        let halfW = Float(w) / 2, halfH = Float(h) / 2
        map.values.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                let dst = dst
                workers.forEachChunk(count, minimumChunk: 64) { points in
                    for n in points {
                        // Unnormalise as PyTorch's CPU kernel: (g + 1) * size / 2 - 0.5.
                        let ix = (gridX[n] + 1) * halfW - 0.5
                        let iy = (gridY[n] + 1) * halfH - 0.5
                        // Far outside (or NaN) every tap is padding; also keeps Int() in range.
                        guard ix > -1, iy > -1, ix < Float(w), iy < Float(h) else { continue }
                        let fx = ix.rounded(.down), fy = iy.rounded(.down)
                        let x0 = Int(fx), y0 = Int(fy)
                        let wx = ix - fx, wy = iy - fy
                        let ex = 1 - wx, ey = 1 - wy
                        let taps = [(x0, y0, ex * ey), (x0 + 1, y0, wx * ey), (x0, y0 + 1, ex * wy), (x0 + 1, y0 + 1, wx * wy)]
                        let o = dst.baseAddress! + n * channels
                        for (tx, ty, weight) in taps where tx >= 0 && tx < w && ty >= 0 && ty < h {
                            let s = src.baseAddress! + ty * w + tx
                            for c in 0..<channels { o[c] += s[c * plane] * weight }
                        }
                    }
                }
            }
        }
        return out
    }
}
