import AISLFDRuntime
import Foundation

// match-photos MODEL.aisw A.ppm B.ppm: matches two photos with the runtime's public API only.

/// A binary PPM (P6, 8-bit): the app's own decoder, standing in for the platform's.
func readPPM(_ path: String) throws -> (pixels: [UInt8], height: Int, width: Int) {
    let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
    var fields: [String] = [], i = 0
    while fields.count < 4, i < bytes.count {
        if bytes[i] == UInt8(ascii: "#") { while i < bytes.count, bytes[i] != 10 { i += 1 }; continue }
        if bytes[i] <= 32 { i += 1; continue }
        var word = ""
        while i < bytes.count, bytes[i] > 32 { word.append(Character(UnicodeScalar(bytes[i]))); i += 1 }
        fields.append(word)
    }
    guard fields.count == 4, fields[0] == "P6", let width = Int(fields[1]), let height = Int(fields[2]), fields[3] == "255",
          width > 0, height > 0, bytes.count - (i + 1) >= width * height * 3
    else { throw NSError(domain: "match-photos", code: 1, userInfo: [NSLocalizedDescriptionKey: "\(path): not an 8-bit binary PPM"]) }
    return (Array(bytes[(i + 1)..<(i + 1 + width * height * 3)]), height, width)
}

let arguments = CommandLine.arguments
guard arguments.count == 4 else {
    FileHandle.standardError.write(Data("usage: match-photos MODEL.aisw A.ppm B.ppm\n".utf8))
    exit(2)
}
do {
    let model = try Model(contentsOf: URL(fileURLWithPath: arguments[1]), configuration: RuntimeConfiguration(threads: 2))
    var described: [KeypointDescriptors] = []
    for path in arguments[2...3] {
        let ppm = try readPPM(path)
        let image = try Image(rgb: ppm.pixels, height: ppm.height, width: ppm.width)
        let keypoints = CornerDetector.detect(image: image).prefix(500).map(\.keypoint)   // the strongest 500 corners
        described.append(try model.forward(image: image).describe(Array(keypoints)))
    }
    let matches = try Matching.mutualNearestNeighbours(described[0], described[1])
    print("\(model.architecture.rawValue) \(model.precision.rawValue): \(matches.count) matches of \(described[0].count) x \(described[1].count) keypoints")
} catch {
    FileHandle.standardError.write(Data("match-photos: \(error)\n".utf8))
    exit(1)
}
