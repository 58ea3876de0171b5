import AISLFDRuntime
import Foundation
import XCTest

/// Forward time at 480 x 640 on random weights. Skipped unless
/// AISLFD_BENCH=1 (run: AISLFD_BENCH=1 swift test -c release --filter ForwardTiming).
final class ForwardTiming: XCTestCase {
    /// User + system time of this process (other load on the machine does not count).
    static func cpuSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    func testForward480x640() throws {
        guard ProcessInfo.processInfo.environment["AISLFD_BENCH"] == "1" else { throw XCTSkip("set AISLFD_BENCH=1") }
        RuntimeThreads.set(Int(ProcessInfo.processInfo.environment["AISLFD_THREADS"] ?? "2") ?? 2)
        let image = try SpecWeights.image(height: 480, width: 640)
        let archs = (ProcessInfo.processInfo.environment["AISLFD_ARCHS"] ?? "lisrd,aislfd-c").split(separator: ",").map(String.init)
        for arch in archs {
            let model = try Model(weights: ModelWeights(arch: arch, tensors: SpecWeights.make(arch)))
            _ = try model.forward(image: image)
            var times: [Double] = []
            let cpuStart = ForwardTiming.cpuSeconds()
            for _ in 0..<5 {
                let start = DispatchTime.now().uptimeNanoseconds
                _ = try model.forward(image: image)
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let cpu = (ForwardTiming.cpuSeconds() - cpuStart) / Double(times.count)
            times.sort()
            print(String(format: "forward %@ 480x640, %d threads: min %.3f s, median %.3f s, cpu %.3f s per pass",
                         arch, RuntimeThreads.count, times[0], times[2], cpu))
        }
    }
}
