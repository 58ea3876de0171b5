// swift-tools-version:6.0
import Foundation
import PackageDescription

// An app that embeds the aislfd runtime: it depends on the AISLFDRuntime product only and
// brings its own pixels (here from binary PPM files it decodes itself).
//
// As an app would, it can depend on a tagged version: AISLFD_PACKAGE_URL names the aislfd git
// repository (tools/check_embedding.sh serves this checkout there, tagged 0.1.0). Without it,
// it builds against the checkout it sits in.
let url = Context.environment["AISLFD_PACKAGE_URL"]
let checkout = URL(fileURLWithPath: Context.packageDirectory).deletingLastPathComponent().deletingLastPathComponent()
let identity = url.map { URL(string: $0)?.deletingPathExtension().lastPathComponent ?? "aislfd" } ?? checkout.lastPathComponent

let package = Package(
    name: "MatchPhotos",
    platforms: [.macOS(.v13)],
    dependencies: [
        url.map { .package(url: $0, from: "0.1.0") } ?? .package(path: checkout.path),
    ],
    targets: [
        .executableTarget(name: "match-photos", dependencies: [.product(name: "AISLFDRuntime", package: identity)]),
    ]
)
