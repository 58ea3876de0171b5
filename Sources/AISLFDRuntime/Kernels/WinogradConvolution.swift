import CKernels

/// A 3x3 stride-1 convolution (padding 1) by Winograd's F(m x m, 3 x 3), m = 2
/// or 4: each m x m block of outputs comes from an (m + 2)^2 tile of input
/// through (m + 2)^2 products per channel pair instead of 9 m^2 (4x fewer
/// multiplications for m = 4, 2.25x for m = 2). The weights are transformed
/// once, at load, in Float64 (U = G g G^T) and packed as (m + 2)^2 matrices
/// Cout x Cin; a pass transforms each band's input tiles (V = B^T d B), runs
/// the (m + 2)^2 products through `ckernels_gemm`, and transforms back
/// (Y = A^T M A) with the epilogue applied on the way out (and, for
/// `applyThenPool2x2`, the 2x2 means of each tile taken before anything is
/// stored). Threads take bands of tile rows.
final class WinogradConvolution: Convolution {
    let geometry: ConvGeometry
    let level: SIMDLevel
    let workers: Workers
    /// Output tile side m.
    let tile: Int
    private var alpha: Int { tile + 2 }
    /// (m + 2)^2 packed Cout x Cin matrices, one after another.
    private let packed: UnsafeMutableBufferPointer<Float>
    private let packedMatrix: Int
    private let epilogue: StoredEpilogue
    private let lastOutput = ReusableBuffer<Float>()

    /// Whether Winograd can compute `geometry`: 3x3, stride 1, padding 1.
    static func computes(_ geometry: ConvGeometry) -> Bool {
        geometry.kernel == 3 && geometry.stride == 1 && geometry.padding == 1
    }

    private let scratch: ScratchPool

    init(_ geometry: ConvGeometry, weight: [Float], epilogue e: Epilogue, level: SIMDLevel, workers: Workers, tile: Int,
         scratch: ScratchPool) {
        precondition((tile == 2 || tile == 4) && WinogradConvolution.computes(geometry))
        self.geometry = geometry
        self.level = level
        self.workers = workers
        self.tile = tile
        self.scratch = scratch
        epilogue = StoredEpilogue(e)
        let cin = geometry.inChannels, cout = geometry.outChannels, alpha = tile + 2
        let lvl = Int32(level.rawValue)
        packedMatrix = ckernels_packed_count(lvl, Int32(cout), Int32(cin))
        packed = .allocate(capacity: alpha * alpha * packedMatrix)
        let g = WinogradConvolution.weightTransform(tile).flatMap { $0 }
        var u = [Float](repeating: 0, count: alpha * alpha * cout * cin)
        u.withUnsafeMutableBufferPointer { u in
            let u = u.baseAddress!
            weight.withUnsafeBufferPointer { w in
                // Each (co, ci) writes only its own alpha^2 values of u, so output channels can go side by side.
                workers.forEachChunk(cout) { channels in
                    for co in channels {
                        for ci in 0..<cin {
                            WinogradConvolution.transform(w.baseAddress! + (co * cin + ci) * 9, g, alpha: alpha,
                                                          into: u + co * cin + ci, stride: cout * cin)
                        }
                    }
                }
            }
        }
        let packed = self.packed.baseAddress!, packedMatrix = self.packedMatrix
        u.withUnsafeBufferPointer { u in
            let u = u.baseAddress!
            workers.forEachChunk(alpha * alpha) { elements in
                for e in elements {
                    ckernels_pack(lvl, u + e * cout * cin, cin, 1, Int32(cout), Int32(cin), 1, packed + e * packedMatrix)
                }
            }
        }
    }

    deinit { packed.deallocate() }

    /// G w G^T of one 3x3 kernel `w` in Float64, rounded once; `g` is G row-major, element
    /// (p, q) goes to `out[(p * alpha + q) * stride]`.
    private static func transform(_ w: UnsafePointer<Float>, _ g: [Double], alpha: Int,
                                  into out: UnsafeMutablePointer<Float>, stride: Int) {
        for p in 0..<alpha {
            // Row p of G w.
            let a = g[p * 3], b = g[p * 3 + 1], c = g[p * 3 + 2]
            let r0 = a * Double(w[0]) + b * Double(w[3]) + c * Double(w[6])
            let r1 = a * Double(w[1]) + b * Double(w[4]) + c * Double(w[7])
            let r2 = a * Double(w[2]) + b * Double(w[5]) + c * Double(w[8])
            for q in 0..<alpha {
                out[(p * alpha + q) * stride] = Float(r0 * g[q * 3] + r1 * g[q * 3 + 1] + r2 * g[q * 3 + 2])
            }
        }
    }

    /// G of F(m, 3) (Lavin & Gray 2016): rows of (m + 2) x 3.
    static func weightTransform(_ m: Int) -> [[Double]] {
        if m == 2 { return [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]] }
        return [[1.0 / 4, 0, 0], [-1.0 / 6, -1.0 / 6, -1.0 / 6], [-1.0 / 6, 1.0 / 6, -1.0 / 6],
                [1.0 / 24, 1.0 / 12, 1.0 / 6], [1.0 / 24, -1.0 / 12, 1.0 / 6], [0, 0, 1]]
    }

    func apply(_ x: FeatureMap) -> FeatureMap { apply(x, channels: 0..<x.channels) }

    func apply(_ x: FeatureMap, channels: Range<Int>) -> FeatureMap {
        let h = x.height, w = x.width, cout = geometry.outChannels
        var values = lastOutput.take(count: cout * h * w)
        defer { lastOutput.keep(values) }
        if h > 0 && w > 0 {
            values.withUnsafeMutableBufferPointer { out in
                x.values.withUnsafeBufferPointer { input in
                    run(input.baseAddress! + channels.lowerBound * x.planeSize, height: h, width: w, rows: h, columns: w,
                        output: out.baseAddress!, pooled: false)
                }
            }
        }
        return FeatureMap(trustedChannels: cout, height: h, width: w, values: values)
    }

    func applyThenPool2x2(_ x: FeatureMap) -> FeatureMap {
        let pooledH = x.height / 2, pooledW = x.width / 2, cout = geometry.outChannels
        guard pooledH > 0, pooledW > 0 else { return AveragePool.pool2x2(apply(x), workers: workers) }
        var values = lastOutput.take(count: cout * pooledH * pooledW)
        defer { lastOutput.keep(values) }
        values.withUnsafeMutableBufferPointer { out in
            x.values.withUnsafeBufferPointer { input in
                run(input.baseAddress!, height: x.height, width: x.width, rows: pooledH, columns: pooledW,
                    output: out.baseAddress!, pooled: true)
            }
        }
        return FeatureMap(trustedChannels: cout, height: pooledH, width: pooledW, values: values)
    }

    /// Tiles per band at least (the products' width), and the floats of
    /// transformed products held per block of output channels (in L2).
    static let bandTiles = 64
    static let productBudget = 1 << 17

    /// `rows x columns` outputs per channel (pooled ones when `pooled`) of an
    /// input `height x width`.
    private func run(_ input: UnsafePointer<Float>, height: Int, width: Int, rows: Int, columns: Int,
                     output: UnsafeMutablePointer<Float>, pooled: Bool) {
        let m = tile, alpha = self.alpha, cin = geometry.inChannels, cout = geometry.outChannels
        let step = pooled ? m / 2 : m
        // Output rows and columns computed (before pooling).
        let fullRows = pooled ? 2 * rows : rows, fullColumns = pooled ? 2 * columns : columns
        let tilesW = (fullColumns + m - 1) / m, tileRows = (fullRows + m - 1) / m
        let threads = workers.pieces
        var bandRows = max(1, (WinogradConvolution.bandTiles + tilesW - 1) / tilesW)
        bandRows = min(bandRows, max(1, (tileRows + threads - 1) / threads))
        let bands = (tileRows + bandRows - 1) / bandRows
        // Products over whole 16-wide tiles: the columns past a band's last tile are never read back.
        let tiles = (bandRows * tilesW + 15) / 16 * 16
        let windowRow = tilesW * m + 2, windowRows = bandRows * m + 2
        let windowChannel = windowRows * windowRow
        let panel = Int(ckernels_panel_rows(Int32(level.rawValue)))
        let channelBlock = min(cout, max(panel, WinogradConvolution.productBudget / (alpha * alpha * tiles) / panel * panel))
        let offsets = (0..<cin).map { $0 * tiles }
        let lvl = Int32(level.rawValue), m32 = Int32(m)
        let outPlane = rows * columns
        let windowCount = cin * windowChannel, vCount = alpha * alpha * cin * tiles
        workers.forEachChunk(bands) { range in
          scratch.withBuffer(windowCount + vCount + alpha * alpha * channelBlock * tiles) { buffer in
            // The input transform reads up to 3 floats past a row's last tile; past
            // the window's end they are V's, never used.
            let window = buffer, v = buffer + windowCount, products = buffer + windowCount + vCount
            var none = ckernels_epilogue()
            for band in range {
                let r0 = band * bandRows, bandTileRows = min(bandRows, tileRows - r0)
                let bandTiles = (bandTileRows * tilesW + 15) / 16 * 16
                // Zero-padded input rows r0 * m - 1 ..< (r0 + bandTileRows) * m + 1, columns -1 ..< tilesW * m + 1.
                for c in 0..<cin {
                    for wr in 0..<(bandTileRows * m + 2) {
                        let row = window + c * windowChannel + wr * windowRow
                        let y = r0 * m + wr - 1
                        guard y >= 0 && y < height else { row.update(repeating: 0, count: windowRow); continue }
                        let copied = min(width, windowRow - 1)
                        row[0] = 0
                        (row + 1).update(from: input + (c * height + y) * width, count: copied)
                        (row + 1 + copied).update(repeating: 0, count: windowRow - 1 - copied)
                    }
                }
                for r in 0..<bandTileRows {
                    ckernels_winograd_input(lvl, m32, window + r * m * windowRow, windowChannel, windowRow, Int32(cin),
                                            Int32(tilesW), v + r * tilesW, tiles)
                }
                offsets.withUnsafeBufferPointer { offsets in
                    for c0 in stride(from: 0, to: cout, by: channelBlock) {
                        let count = min(channelBlock, cout - c0)
                        for e in 0..<(alpha * alpha) {
                            ckernels_gemm(lvl, Int32(count), 1, Int32(bandTiles), Int32(cin),
                                          packed.baseAddress! + e * packedMatrix + c0 * cin, v + e * cin * tiles, 0,
                                          offsets.baseAddress!, products + e * count * tiles, tiles, 0, &none)
                        }
                        epilogue.withPointer { e in
                            for r in 0..<bandTileRows {
                                let outRow = (r0 + r) * step
                                ckernels_winograd_output(lvl, m32, products + r * tilesW, tiles, Int32(count), Int32(tilesW),
                                                         output + c0 * outPlane + outRow * columns, outPlane, columns,
                                                         Int32(rows - outRow), Int32(columns), pooled ? 1 : 0, e, Int32(c0))
                            }
                        }
                    }
                }
            }
          }
        }
    }
}
