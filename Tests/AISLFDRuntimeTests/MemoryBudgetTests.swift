import AISLFDRuntime
import XCTest

/// The forward pass's memory budget: estimated from the image size and the
/// architecture, refused beyond the budget before anything is allocated.
final class MemoryBudgetTests: XCTestCase {
    func testSizesParse() {
        XCTAssertEqual(MemoryBudget.parse("2G"), 2 << 30)
        XCTAssertEqual(MemoryBudget.parse("1.5GB"), 3 << 29)
        XCTAssertEqual(MemoryBudget.parse("500MiB"), 500 << 20)
        XCTAssertEqual(MemoryBudget.parse("64k"), 64 << 10)
        XCTAssertEqual(MemoryBudget.parse("123456"), 123456)
        for bad in ["", "G", "0", "-1G", "2X", "nan", "1e400", "two"] { XCTAssertNil(MemoryBudget.parse(bad), bad) }
    }

    /// A 3 GB budget (the default on a 24 GB machine) lets real photos through
    /// and refuses a 4000 x 4000 image, for every architecture.
    func testPhotosPassAndBombsAreRefused() {
        let budget = 3 << 30
        for arch in Architecture.allCases {
            for (h, w) in [(480, 640), (1080, 1920), (1500, 2000)] {
                XCTAssertLessThanOrEqual(MemoryBudget.passBytes(arch, height: h, width: w, threads: 2), budget, "\(arch) \(h)x\(w)")
            }
            XCTAssertGreaterThan(MemoryBudget.passBytes(arch, height: 4000, width: 4000, threads: 2), budget, "\(arch)")
            // Larger images and recorded activations need more.
            XCTAssertLessThan(MemoryBudget.passBytes(arch, height: 480, width: 640, threads: 2),
                              MemoryBudget.passBytes(arch, height: 481, width: 640, threads: 2))
            XCTAssertLessThan(MemoryBudget.passBytes(arch, height: 480, width: 640, threads: 2),
                              MemoryBudget.passBytes(arch, height: 480, width: 640, threads: 2, recordActivations: true))
        }
    }

    func testAPassBeyondTheBudgetIsRefusedWithNeededAndAllowed() throws {
        let weights = ModelWeights(architecture: .lisrd, tensors: SpecWeights.make("lisrd"))
        let image = try SpecWeights.image(height: 48, width: 64)
        let open = try Model(weights: weights, configuration: RuntimeConfiguration(threads: 1))
        let needed = open.memoryNeeded(height: 48, width: 64)
        XCTAssertNoThrow(try Model(weights: weights, configuration: RuntimeConfiguration(threads: 1, maximumMemory: needed)).forward(image: image))
        let tight = try Model(weights: weights, configuration: RuntimeConfiguration(threads: 1, maximumMemory: needed - 1))
        XCTAssertThrowsError(try tight.forward(image: image)) { error in
            XCTAssertEqual(error as? RuntimeError, .memoryBudgetExceeded(height: 48, width: 64, needed: needed, allowed: needed - 1))
            let text = String(describing: error)
            XCTAssertTrue(text.contains("needs about") && text.contains("allowed"), text)
            XCTAssertFalse(text.contains("\n"))
        }
        XCTAssertThrowsError(try tight.checkMemory(height: 4000, width: 4000))
        XCTAssertThrowsError(try tight.checkMemory(height: Int.max, width: Int.max))
        XCTAssertEqual(MemoryBudget.passBytes(.lisrd, height: Int.max, width: 3, threads: 1), Int.max)
        XCTAssertEqual(RuntimeConfiguration().maximumMemory, MemoryBudget.defaultMaximum)
        XCTAssertEqual(Int(ProcessInfo.processInfo.physicalMemory / 8), MemoryBudget.defaultMaximum)
    }
}
