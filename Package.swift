// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way:
//   C libraries -> Core -> Format / Readers / Images / Schema -> Runtime -> Inputs
//   -> Convert / Verify / Eval -> Commands -> executables.
// The AISLFDRuntime product is Core, Format, Runtime, CKernels and OpenBLAS only: an app
// that embeds it links no libhdf5, libpng, libjpeg or zlib. Only Commands imports ArgumentParser.
let package = Package(
    name: "aislfd",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "AISLFDRuntime", targets: ["AISLFDRuntime"]),
        .executable(name: "aislfd-convert", targets: ["aislfd-convert"]),
        .executable(name: "aislfd-inspect", targets: ["aislfd-inspect"]),
        .executable(name: "aislfd-run", targets: ["aislfd-run"]),
        .executable(name: "aislfd-match", targets: ["aislfd-match"]),
        .executable(name: "aislfd-verify", targets: ["aislfd-verify"]),
        .executable(name: "aislfd-eval", targets: ["aislfd-eval"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .systemLibrary(name: "CHDF5", pkgConfig: "hdf5", providers: [.apt(["libhdf5-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CPNG", pkgConfig: "libpng", providers: [.apt(["libpng-dev"])]),
        .systemLibrary(name: "CJPEG", pkgConfig: "libjpeg", providers: [.apt(["libjpeg-dev"])]),
        .systemLibrary(name: "COpenBLAS", pkgConfig: "openblas", providers: [.apt(["libopenblas-dev"])]),

        // libpng and libjpeg report errors by longjmp: the setjmp lives in this C target, never in Swift.
        .target(name: "CImageShims", dependencies: ["CPNG", "CJPEG"]),
        // AVX2 / AVX-512 kernels chosen at run time: Swift cannot target an instruction set per function.
        .target(name: "CKernels"),

        // Tensors, checksums, JSON, errors, the file system: what every other target shares.
        .target(name: "AISLFDCore"),
        // The .aisw format: reader (mapped), writer, metadata.
        .target(name: "AISLFDFormat", dependencies: ["AISLFDCore"]),
        // Source weights: HDF5, NPZ / NPY, PyTorch zip + pickle, safetensors.
        .target(name: "AISLFDReaders", dependencies: ["AISLFDCore", "CHDF5", "CZlib"]),
        // PNG and JPEG decoding and PNG writing.
        .target(name: "AISLFDImages", dependencies: ["AISLFDCore", "CPNG", "CJPEG", "CImageShims"]),
        .target(name: "AISLFDSchema", dependencies: ["AISLFDCore"]),
        // The networks, their kernels and matching; loads .aisw files.
        .target(name: "AISLFDRuntime", dependencies: ["AISLFDCore", "AISLFDFormat", "CKernels", "COpenBLAS"]),
        // Any model file (.aisw or validated source weights), images and keypoint files as the commands take them.
        .target(name: "AISLFDInputs", dependencies: ["AISLFDCore", "AISLFDFormat", "AISLFDReaders", "AISLFDImages",
                                                     "AISLFDSchema", "AISLFDRuntime"]),
        .target(name: "AISLFDConvert", dependencies: ["AISLFDCore", "AISLFDFormat", "AISLFDSchema", "AISLFDRuntime", "COpenBLAS"]),
        .target(name: "AISLFDVerify", dependencies: ["AISLFDCore", "AISLFDReaders", "AISLFDRuntime", "AISLFDInputs"]),
        // The paper's evaluation: homography estimation, datasets, metrics.
        .target(name: "AISLFDEval", dependencies: ["AISLFDCore", "AISLFDReaders", "AISLFDImages", "AISLFDRuntime", "AISLFDInputs"]),
        .target(name: "AISLFDCommands", dependencies: [
            "AISLFDCore", "AISLFDFormat", "AISLFDReaders", "AISLFDImages", "AISLFDSchema", "AISLFDRuntime",
            "AISLFDInputs", "AISLFDConvert", "AISLFDVerify", "AISLFDEval",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "aislfd-convert", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-inspect", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-run", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-match", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-verify", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-eval", dependencies: ["AISLFDCommands"]),

        .target(name: "AISLFDTestSupport", dependencies: ["AISLFDCore"], path: "Tests/TestSupport"),
        .testTarget(name: "AISLFDCoreTests", dependencies: ["AISLFDCore", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDFormatTests", dependencies: ["AISLFDFormat", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDReadersTests", dependencies: ["AISLFDReaders", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDImagesTests", dependencies: ["AISLFDImages", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDSchemaTests", dependencies: ["AISLFDSchema", "AISLFDReaders", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDConvertTests", dependencies: ["AISLFDConvert", "AISLFDFormat", "AISLFDReaders", "AISLFDRuntime",
                                                               "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDRuntimeTests", dependencies: ["AISLFDRuntime", "AISLFDCore", "AISLFDFormat", "AISLFDReaders", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDInputsTests", dependencies: ["AISLFDInputs", "AISLFDRuntime", "AISLFDSchema", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDVerifyTests", dependencies: ["AISLFDVerify", "AISLFDConvert", "AISLFDInputs", "AISLFDReaders",
                                                              "AISLFDSchema", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDEvalTests", dependencies: ["AISLFDEval", "AISLFDCore", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDCommandsTests", dependencies: ["AISLFDCommands", "AISLFDFormat", "AISLFDReaders", "AISLFDTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
