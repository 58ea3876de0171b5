// swift-tools-version:6.0
import PackageDescription

// Dependencies point one way: C libraries -> Core -> IO / Schema -> Runtime -> Convert
// -> Verify -> Commands -> executables. Only the command layer imports ArgumentParser.
let package = Package(
    name: "aislfd",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "aislfd-convert", targets: ["aislfd-convert"]),
        .executable(name: "aislfd-inspect", targets: ["aislfd-inspect"]),
        .executable(name: "aislfd-run", targets: ["aislfd-run"]),
        .executable(name: "aislfd-match", targets: ["aislfd-match"]),
        .executable(name: "aislfd-verify", targets: ["aislfd-verify"]),
        .library(name: "AISLFDRuntime", targets: ["AISLFDRuntime"]),
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

        .target(name: "AISLFDCore", dependencies: ["CZlib"]),
        .target(name: "AISLFDIO", dependencies: ["AISLFDCore", "CHDF5", "CZlib", "CPNG", "CJPEG", "CImageShims"]),
        .target(name: "AISLFDSchema", dependencies: ["AISLFDCore"]),
        .target(name: "AISLFDConvert", dependencies: ["AISLFDCore", "AISLFDIO", "AISLFDSchema", "AISLFDRuntime", "COpenBLAS"]),
        .target(name: "AISLFDRuntime", dependencies: ["AISLFDCore", "AISLFDIO", "AISLFDSchema", "COpenBLAS", "CKernels"],
                swiftSettings: [.unsafeFlags(["-Ounchecked"])]),
        .target(name: "AISLFDVerify", dependencies: ["AISLFDCore", "AISLFDIO", "AISLFDRuntime"]),
        .target(name: "AISLFDCommands", dependencies: [
            "AISLFDCore", "AISLFDIO", "AISLFDSchema", "AISLFDConvert", "AISLFDRuntime", "AISLFDVerify",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),

        .executableTarget(name: "aislfd-convert", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-inspect", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-run", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-match", dependencies: ["AISLFDCommands"]),
        .executableTarget(name: "aislfd-verify", dependencies: ["AISLFDCommands"]),

        .target(name: "AISLFDTestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "AISLFDCoreTests", dependencies: ["AISLFDCore"]),
        .testTarget(name: "AISLFDIOTests", dependencies: ["AISLFDIO", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDSchemaTests", dependencies: ["AISLFDSchema", "AISLFDIO", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDConvertTests", dependencies: ["AISLFDConvert", "AISLFDRuntime", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDRuntimeTests", dependencies: ["AISLFDRuntime", "AISLFDCore", "AISLFDIO", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDVerifyTests", dependencies: ["AISLFDVerify", "AISLFDConvert", "AISLFDIO", "AISLFDSchema", "AISLFDTestSupport"]),
        .testTarget(name: "AISLFDCommandsTests", dependencies: ["AISLFDCommands", "AISLFDTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
