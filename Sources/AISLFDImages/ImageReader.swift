import AISLFDCore
import CImageShims
import Foundation

/// Reads PNG, JPEG and binary PPM images (recognised by content; PPM in PPMDecoder.swift) into the network's input:
/// RGB float32 [3, H, W] with values byte / 255, exactly as the PyTorch side's
/// `np.asarray(Image.open(path).convert('RGB')) / 255.0` cast to float32 (which
/// equals torchvision's float32 `div(255)` for every byte value).
///
/// PNG follows PIL's `convert('RGB')`: alpha and tRNS are dropped, not composited;
/// palettes expanded; gray replicated; 16-bit colour samples cut to their high byte;
/// gAMA and other colour chunks ignored. 16-bit grayscale PNGs are refused: PIL
/// clips them at 255. A PNG must be complete up to IEND (PIL tolerates a missing IEND).
/// JPEG uses libjpeg's defaults, as PIL does; CMYK and YCCK JPEGs are refused.
public enum ImageReader {
    public static let maxSide = 16384
    /// 64 megapixels: 768 MB of float32 output.
    public static let maxPixels = 1 << 26
    public static let maxFileBytes = 1 << 30
    /// Deflate expands at most about 1032 to 1, so a PNG cannot hold more pixel bytes than this multiple of its size.
    static let maxPNGExpansion = 1100

    /// The image as float32 [3, H, W] in [0, 1].
    public static func read(path: String) throws -> (chw: [Float], height: Int, width: Int) {
        let image = try readRGB(path: path)
        return (planarFloats(image.rgb, height: image.height, width: image.width), image.height, image.width)
    }

    /// The image as 8-bit RGB, row-major, [H, W, 3] (PIL's `np.asarray(img.convert('RGB'))`).
    public static func readRGB(path: String) throws -> (rgb: [UInt8], height: Int, width: Int) {
        do {
            let bytes = try fileBytes(path)
            if bytes.starts(with: pngSignature) { return try decodePNG(bytes) }
            if bytes.starts(with: [0xFF, 0xD8, 0xFF]) { return try decodeJPEG(bytes) }
            if isPPM(bytes) { return try decodePPM(bytes) }
            throw ImageError.unknownFormat(signature: bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " "))
        } catch let error as ImageError {
            throw FileError(path: path, problem: error)
        }
    }

    static let pngSignature: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A]

    private static let byteToUnit: [Float] = (0..<256).map { Float($0) / 255 }

    private static func planarFloats(_ rgb: [UInt8], height: Int, width: Int) -> [Float] {
        let plane = height * width
        var chw = [Float](repeating: 0, count: 3 * plane)
        chw.withUnsafeMutableBufferPointer { out in
            rgb.withUnsafeBufferPointer { pixels in
                for i in 0..<plane {
                    out[i] = byteToUnit[Int(pixels[3 * i])]
                    out[plane + i] = byteToUnit[Int(pixels[3 * i + 1])]
                    out[2 * plane + i] = byteToUnit[Int(pixels[3 * i + 2])]
                }
            }
        }
        return chw
    }

    private static func fileBytes(_ path: String) throws -> [UInt8] {
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try FileManager.default.attributesOfItem(atPath: path)
        } catch {
            throw ImageError.cannotRead(reason: "no such file or not accessible")
        }
        guard attributes[.type] as? FileAttributeType == .typeRegular, let size = attributes[.size] as? Int else {
            throw ImageError.cannotRead(reason: "not a regular file")
        }
        guard size <= maxFileBytes else { throw ImageError.cannotRead(reason: "file of \(size) bytes is larger than \(maxFileBytes)") }
        do {
            return [UInt8](try Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ImageError.cannotRead(reason: "\(error.localizedDescription)")
        }
    }

    static func checkSize(_ width: Int, _ height: Int) throws {
        guard width > 0, height > 0 else { throw ImageError.tooLarge(width: width, height: height, reason: "no pixels") }
        guard width <= maxSide, height <= maxSide else {
            throw ImageError.tooLarge(width: width, height: height, reason: "more than \(maxSide) pixels per side")
        }
        guard width * height <= maxPixels else {
            throw ImageError.tooLarge(width: width, height: height, reason: "more than \(maxPixels) pixels")
        }
    }

    private static func message(_ info: aislfd_image_info) -> String {
        withUnsafeBytes(of: info.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    private static func decodePNG(_ bytes: [UInt8]) throws -> (rgb: [UInt8], height: Int, width: Int) {
        var info = aislfd_image_info()
        guard bytes.withUnsafeBufferPointer({ aislfd_png_info($0.baseAddress, $0.count, &info) }) == 0 else {
            throw ImageError.corrupt(format: "PNG", reason: message(info))
        }
        let width = Int(info.width), height = Int(info.height)
        try checkSize(width, height)
        if info.bit_depth == 16 && info.channels == 1 {
            throw ImageError.unsupported(format: "PNG", reason: "16-bit grayscale (PIL's convert('RGB') clips it at 255); convert it to 8-bit")
        }
        // Filtered rows: one filter byte plus the packed samples.
        let rowBytes = (width * Int(info.channels) * Int(info.bit_depth) + 7) / 8 + 1
        guard rowBytes * height <= maxPNGExpansion * bytes.count else {
            throw ImageError.tooLarge(width: width, height: height,
                                      reason: "\(rowBytes * height) bytes of pixel data cannot come from a file of \(bytes.count) bytes")
        }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        let status = bytes.withUnsafeBufferPointer { data in
            rgb.withUnsafeMutableBufferPointer { aislfd_png_decode_rgb(data.baseAddress, data.count, $0.baseAddress, $0.count, &info) }
        }
        guard status == 0 else { throw ImageError.corrupt(format: "PNG", reason: message(info)) }
        return (rgb, height, width)
    }

    private static func decodeJPEG(_ bytes: [UInt8]) throws -> (rgb: [UInt8], height: Int, width: Int) {
        var info = aislfd_image_info()
        guard bytes.withUnsafeBufferPointer({ aislfd_jpeg_info($0.baseAddress, $0.count, &info) }) == 0 else {
            throw ImageError.corrupt(format: "JPEG", reason: message(info))
        }
        let width = Int(info.width), height = Int(info.height)
        try checkSize(width, height)
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        let status = bytes.withUnsafeBufferPointer { data in
            rgb.withUnsafeMutableBufferPointer { aislfd_jpeg_decode_rgb(data.baseAddress, data.count, $0.baseAddress, $0.count, &info) }
        }
        switch status {
        case 0: return (rgb, height, width)
        case 2: throw ImageError.unsupported(format: "JPEG", reason: message(info))
        default: throw ImageError.corrupt(format: "JPEG", reason: message(info))
        }
    }
}
