import AISLFDCore
import AISLFDImages
import AISLFDInputs
import AISLFDReaders
import AISLFDRuntime
import ArgumentParser

extension DistanceKind: ExpressibleByArgument {}

/// `aislfd-match MODEL IMAGE0 IMAGE1 ...`: mutual nearest neighbours under Eq. 1.
public struct MatchCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aislfd-match",
        abstract: "Match keypoints of two images: mutual nearest neighbours under Eq. 1.",
        discussion: """
        Eq. 1: dis(q, k) = sum_s softmax_s(m_s^q . m_s^k) * ||l_s^q - l_s^k||, the meta descriptors \
        weighting the four invariances per pair. --distance squared uses LISRD's 2 - 2 l.l instead \
        of the L2 distance. Writes matches int64 [M, 2] and distance float32 [M]. Without keypoint files, \
        the built-in detector (docs/detector.md) finds the --num-kp strongest corners of each image, and \
        their coordinates are written too (keypoints0, keypoints1, float32 [N, 2], x, y). With --draw also \
        a picture: both files or neither, never one of the inputs (exit 2).

        \(imageReadingHelp)
        """,
        version: AISLFDVersion.text)

    @Argument(help: ArgumentHelp("A .aisw model or a source weights file.", valueName: "model"))
    var model: String
    @Argument(help: ArgumentHelp("First image (PNG, JPEG or .npy).", valueName: "image0"))
    var image0: String
    @Argument(help: ArgumentHelp("Second image.", valueName: "image1"))
    var image1: String

    @Option(help: ArgumentHelp("Keypoints of the first image, .npy [N, 2] (x, y): float32, float64 or integers; default: the built-in detector's.", valueName: "k0.npy"))
    var keypoints0: String?
    @Option(help: ArgumentHelp("Keypoints of the second image (with --keypoints0).", valueName: "k1.npy"))
    var keypoints1: String?
    @Option(name: .customLong("num-kp"), help: ArgumentHelp("Detected keypoints kept per image, the strongest first.", valueName: "count"))
    var numberOfKeypoints = 1000
    @Option(name: .short, help: ArgumentHelp("The match file to write (NPZ).", valueName: "m.npz"))
    var output: String
    @Option(help: ArgumentHelp("eq1 (Eq. 1, the default) or squared.", valueName: "eq1|squared"))
    var distance: DistanceKind = .eq1
    @Option(help: ArgumentHelp("Also draw the two images side by side with a line per match (PNG).", valueName: "m.png"))
    var draw: String?

    @OptionGroup var runtime: RuntimeOptions
    @OptionGroup var architecture: ArchitectureOption
    @OptionGroup var stateDict: StateDictOptions
    @OptionGroup var imageOptions: ImageOptions
    @OptionGroup var format: OutputOptions

    public init() {}

    public func validate() throws {
        if (keypoints0 == nil) != (keypoints1 == nil) { throw ValidationError("give both --keypoints0 and --keypoints1, or neither (the detector finds them)") }
        if numberOfKeypoints < 1 { throw ValidationError("--num-kp must be at least 1") }
    }

    public func run() throws {
        let console = Console.current
        try FileSystem.refuseOverwriting(outputs: [output] + (draw.map { [$0] } ?? []),
                                         inputs: [model, image0, image1] + [keypoints0, keypoints1].compactMap { $0 })
        // The inputs first: a bad image is refused before the model is loaded.
        let input0 = try console.image(image0, imageOptions), input1 = try console.image(image1, imageOptions)
        func keypoints(_ file: String?, _ image: Image) throws -> [Keypoint] {
            if let file { return try console.keypoints(file, for: image) }
            return CornerDetector.detect(image: image).prefix(numberOfKeypoints).map(\.keypoint)
        }
        let points0 = try keypoints(keypoints0, input0), points1 = try keypoints(keypoints1, input1)
        let network = try console.model(model, architecture, stateDict).makeModel(runtime.configuration)
        let matches = try console.withProgress("aislfd-match") { step -> [Match] in
            step("first image")
            let d0 = try describe(network, input0, image0, points0, keypoints0 ?? image0)
            step("second image")
            let d1 = try describe(network, input1, image1, points1, keypoints1 ?? image1)
            step("matching")
            return try Matching.mutualNearestNeighbours(d0, d1, kind: distance, threads: network.configuration.threads)
        }

        var arrays = [
            NamedTensor(key: "matches", shape: [matches.count, 2], int64: matches.flatMap { [Int64($0.index0), Int64($0.index1)] }),
            NamedTensor(key: "distance", shape: [matches.count], floats: matches.map(\.distance)),
        ]
        if keypoints0 == nil {
            arrays.append(NamedTensor(key: "keypoints0", shape: [points0.count, 2], floats: points0.flatMap { [$0.x, $0.y] }))
            arrays.append(NamedTensor(key: "keypoints1", shape: [points1.count, 2], floats: points1.flatMap { [$0.x, $0.y] }))
        }
        var files = [(path: output, bytes: try blame(output) { try NPZWriter.encode(arrays) })]
        if let draw { files.append((draw, try blame(draw) { try picture(matches, input0, input1, points0, points1) })) }
        try FileSystem.writeAtomically(files)

        struct Summary: Encodable { var keypoints0: Int; var keypoints1: Int; var matches: Int; var distance: String; var output: String; var picture: String? }
        let summary = Summary(keypoints0: points0.count, keypoints1: points1.count, matches: matches.count,
                              distance: distance.rawValue, output: output, picture: draw)
        try console.report(human: "\(matches.count) mutual nearest neighbours of \(points0.count) x \(points1.count) keypoints (\(distance.rawValue) distance)\n"
                           + "wrote \(output)" + (draw.map { " and \($0)" } ?? ""), document: summary)
    }

    private func describe(_ network: Model, _ input: Image, _ image: String, _ points: [Keypoint], _ keypointsPath: String) throws -> KeypointDescriptors {
        let outputs = try blame(image) { try network.forward(image: input) }
        return try blame(keypointsPath) { try outputs.describe(points) }
    }

    /// The PNG bytes of the two images side by side, a line per match.
    private func picture(_ matches: [Match], _ image0: Image, _ image1: Image, _ points0: [Keypoint], _ points1: [Keypoint]) throws -> [UInt8] {
        let left = rgb(image0), right = rgb(image1)
        var picture = MatchPicture(left: left, right: right, scale: MatchPicture.scale(forHeight: 480, left: left, right: right))
        for (i, m) in matches.enumerated() {
            let a = points0[m.index0], b = points1[m.index1]
            picture.connect(left: (a.x, a.y), right: (b.x, b.y), index: i)
        }
        let canvas = picture.canvas
        return try PNGWriter.encode(rgb: canvas.pixels, height: canvas.height, width: canvas.width)
    }

    /// 8-bit pixels of an input image: values in [0, 1] scaled to 255 (a PNG's or JPEG's own
    /// bytes come back exactly, since they were read as byte / 255).
    private func rgb(_ image: Image) -> MatchPicture.RGBImage {
        let plane = image.height * image.width
        var pixels = [UInt8](repeating: 0, count: plane * 3)
        for c in 0..<3 {
            for p in 0..<plane { pixels[p * 3 + c] = UInt8((min(max(image.values[c * plane + p], 0), 1) * 255).rounded()) }
        }
        return MatchPicture.RGBImage(pixels: pixels, height: image.height, width: image.width)
    }
}
