import AISLFDRuntime
import Foundation
import XCTest

/// Forward time at 480 x 640 on random weights. Skipped unless
/// AISLFD_BENCH=1 (run: AISLFD_BENCH=1 swift test -c release --filter ForwardTiming).
final class ForwardTiming: XCTestCase {
    func testForward480x640() throws {
        guard ProcessInfo.processInfo.environment["AISLFD_BENCH"] == "1" else { throw XCTSkip("set AISLFD_BENCH=1") }
        RuntimeThreads.set(Int(ProcessInfo.processInfo.environment["AISLFD_THREADS"] ?? "2") ?? 2)
        let image = try SpecWeights.image(height: 480, width: 640)
        let archs = (ProcessInfo.processInfo.environment["AISLFD_ARCHS"] ?? "lisrd,aislfd-c").split(separator: ",").map(String.init)
        for arch in archs {
            let model = try Model(weights: ModelWeights(arch: arch, tensors: SpecWeights.make(arch)))
            _ = try model.forward(image: image)
            var times: [Double] = []
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try model.forward(image: image)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            times.sort()
            print(String(format: "forward %@ 480x640, %d threads: min %.3f s, median %.3f s", arch, RuntimeThreads.count, times[0], times[2]))
        }
    }
}
