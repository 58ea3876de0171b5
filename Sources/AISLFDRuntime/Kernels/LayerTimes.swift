import Dispatch
import Foundation

/// Wall time spent per kind of layer, summed over every pass of the process,
/// when the environment variable AISLFD_PROFILE=1 is set (for the benchmark's
/// per-kind share of peak), and also per convolution (by its first weight key) with
/// AISLFD_PROFILE=layers; otherwise nothing is timed and nothing is kept.
public enum LayerTimes {
    /// The kinds timed: 3x3 and 1x1 convolutions (of any stride), and the
    /// attention products with their softmax (PSA's QK^T, softmax, AV).
    public static let kinds = ["conv3x3", "conv1x1", "attention"]

    public static let isEnabled = ["1", "layers"].contains(ProcessInfo.processInfo.environment["AISLFD_PROFILE"])
    public static let byLayer = ProcessInfo.processInfo.environment["AISLFD_PROFILE"] == "layers"

    private static let lock = NSLock()
    nonisolated(unsafe) private static var seconds: [String: Double] = [:]

    /// Seconds per kind so far.
    public static var totals: [String: Double] {
        lock.lock()
        defer { lock.unlock() }
        return seconds
    }

    /// Seconds per convolution so far, by its first weight key, in the order first run.
    public static var layerTotals: [(key: String, seconds: Double)] {
        lock.lock()
        defer { lock.unlock() }
        return layerOrder.map { ($0, layerSeconds[$0] ?? 0) }
    }
    nonisolated(unsafe) private static var layerSeconds: [String: Double] = [:]
    nonisolated(unsafe) private static var layerOrder: [String] = []

    static func timeLayer<R>(_ key: String, _ body: () -> R) -> R {
        guard byLayer else { return body() }
        return timed(body) { elapsed in
            if layerSeconds[key] == nil { layerOrder.append(key) }
            layerSeconds[key, default: 0] += elapsed
        }
    }

    static func time<R>(_ kind: String, _ body: () -> R) -> R {
        guard isEnabled else { return body() }
        return timed(body) { seconds[kind, default: 0] += $0 }
    }

    /// Runs `body`, then hands its wall time to `record` under the lock.
    private static func timed<R>(_ body: () -> R, record: (Double) -> Void) -> R {
        let start = DispatchTime.now().uptimeNanoseconds
        let result = body()
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        lock.lock()
        record(elapsed)
        lock.unlock()
        return result
    }
}

/// A convolution whose calls are timed under its kind (`LayerTimes`).
final class TimedConvolution: Convolution {
    let inner: Convolution
    let kind: String
    var geometry: ConvGeometry { inner.geometry }
    var workers: Workers { inner.workers }

    init(_ inner: Convolution) {
        self.inner = inner
        kind = "conv\(inner.geometry.kernel)x\(inner.geometry.kernel)"
    }

    func apply(_ x: FeatureMap) -> FeatureMap { LayerTimes.time(kind) { inner.apply(x) } }
    func apply(_ x: FeatureMap, channels: Range<Int>) -> FeatureMap { LayerTimes.time(kind) { inner.apply(x, channels: channels) } }
    func applyThenPool2x2(_ x: FeatureMap) -> FeatureMap { LayerTimes.time(kind) { inner.applyThenPool2x2(x) } }
    var int8Input: ActivationQuantization? { inner.int8Input }
    func applyQuantized(_ x: FeatureMap, for next: ActivationQuantization) -> ByteMap {
        LayerTimes.time(kind) { inner.applyQuantized(x, for: next) }
    }
    func applyQuantized(_ x: ByteMap, for next: ActivationQuantization) -> ByteMap {
        LayerTimes.time(kind) { inner.applyQuantized(x, for: next) }
    }
    func apply(_ x: ByteMap) -> FeatureMap { LayerTimes.time(kind) { inner.apply(x) } }
    func applyThenPool2x2(_ x: ByteMap) -> FeatureMap { LayerTimes.time(kind) { inner.applyThenPool2x2(x) } }
}
