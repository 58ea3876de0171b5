import AISLFDCore
import CImageShims
import Foundation

/// Reads PNG, JPEG and binary PPM images (recognised by content; PPM in PPMDecoder.swift) into the network's input:
/// RGB float32 [3, H, W] with values byte / 255, exactly as the PyTorch side's
/// `np.asarray(Image.open(path).convert('RGB')) / 255.0` cast to float32 (which
/// equals torchvision's float32 `div(255)` for every byte value).
///
/// PNG follows PIL's `convert('RGB')`: alpha and tRNS are dropped, not composited;
/// palettes expanded; gray replicated; 16-bit samples (colour and gray, as OpenCV's
/// `imread` reads both; PIL would clip 16-bit gray at 255) cut to their high byte;
/// gAMA and other colour chunks ignored. A PNG must be complete up to IEND (PIL
/// tolerates a missing IEND). JPEG uses libjpeg's defaults, as PIL does; CMYK and
/// YCCK JPEGs are refused. Pixel data that ends early or is garbled is an error
/// ("truncated: N of M rows"), never filled in. The EXIF orientation is applied as
/// OpenCV's `imread` applies it, unless `orientation` is `.ignore`.
public enum ImageReader {
    public static let maxSide = 16384
    /// 64 megapixels: 768 MB of float32 output.
    public static let maxPixels = 1 << 26
    public static let maxFileBytes = 1 << 30
    /// Deflate expands at most about 1032 to 1, so a PNG cannot hold more pixel bytes than this multiple of its size.
    static let maxPNGExpansion = 1100
    /// Huffman coding spends at least one bit on every 8x8 block of a JPEG's first component.
    static let minJPEGBitsPerBlock = 1

    /// Whether the EXIF orientation turns the pixels upright.
    public enum Orientation: Sendable {
        case apply, ignore
    }

    /// The image as float32 [3, H, W] in [0, 1]; `orientation`: the EXIF value found (1 when none).
    public static func read(path: String, orientation handling: Orientation = .apply)
        throws -> (chw: [Float], height: Int, width: Int, orientation: Int) {
        let image = try readRGB(path: path, orientation: handling)
        return (planarFloats(image.rgb, height: image.height, width: image.width), image.height, image.width, image.orientation)
    }

    /// The image as 8-bit RGB, row-major, [H, W, 3] (PIL's `np.asarray(img.convert('RGB'))`).
    public static func readRGB(path: String, orientation handling: Orientation = .apply)
        throws -> (rgb: [UInt8], height: Int, width: Int, orientation: Int) {
        do {
            let bytes = try fileBytes(path)
            let decoded: (rgb: [UInt8], height: Int, width: Int)
            let orientation: Int
            if bytes.starts(with: pngSignature) {
                decoded = try decodePNG(bytes)
                orientation = EXIFOrientation.ofPNG(bytes)
            } else if bytes.starts(with: [0xFF, 0xD8, 0xFF]) {
                decoded = try decodeJPEG(bytes)
                orientation = EXIFOrientation.ofJPEG(bytes)
            } else if isPPM(bytes) {
                decoded = try decodePPM(bytes)
                orientation = 1
            } else {
                throw ImageError.unknownFormat(signature: bytes.prefix(8).map { String($0, radix: 16) }.joined(separator: " "))
            }
            guard handling == .apply, orientation != 1 else { return (decoded.rgb, decoded.height, decoded.width, orientation) }
            let upright = EXIFOrientation.apply(orientation, rgb: decoded.rgb, height: decoded.height, width: decoded.width)
            return (upright.rgb, upright.height, upright.width, orientation)
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
        echoed(bytes: withUnsafeBytes(of: info.message) { Array($0.prefix { $0 != 0 }) }, limit: 250)
    }

    /// A decoding failure: truncated pixel data, or a corrupt file.
    private static func failure(_ format: String, _ info: aislfd_image_info) -> ImageError {
        info.truncated != 0 ? .truncated(format: format, reason: message(info)) : .corrupt(format: format, reason: message(info))
    }

    private static func decodePNG(_ bytes: [UInt8]) throws -> (rgb: [UInt8], height: Int, width: Int) {
        var info = aislfd_image_info()
        guard bytes.withUnsafeBufferPointer({ aislfd_png_info($0.baseAddress, $0.count, &info) }) == 0 else {
            throw ImageError.corrupt(format: "PNG", reason: message(info))
        }
        let width = Int(info.width), height = Int(info.height)
        try checkSize(width, height)
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
        guard status == 0 else { throw failure("PNG", info) }
        return (rgb, height, width)
    }

    private static func decodeJPEG(_ bytes: [UInt8]) throws -> (rgb: [UInt8], height: Int, width: Int) {
        var info = aislfd_image_info()
        guard bytes.withUnsafeBufferPointer({ aislfd_jpeg_info($0.baseAddress, $0.count, &info) }) == 0 else {
            throw ImageError.corrupt(format: "JPEG", reason: message(info))
        }
        let width = Int(info.width), height = Int(info.height)
        try checkSize(width, height)
        // A lying frame header (a few hundred bytes claiming 4000 x 4000) is refused before
        // anything is allocated. Arithmetic coding has no such floor; it is caught while decoding.
        let blocks = ((width + 7) / 8) * ((height + 7) / 8)
        if info.arithmetic == 0, blocks * minJPEGBitsPerBlock > bytes.count * 8 {
            throw ImageError.tooLarge(width: width, height: height,
                                      reason: "its \(grouped(blocks)) blocks of 8x8 pixels cannot come from a file of \(grouped(bytes.count)) bytes (Huffman coding spends a bit on each at least)")
        }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        let status = bytes.withUnsafeBufferPointer { data in
            rgb.withUnsafeMutableBufferPointer { aislfd_jpeg_decode_rgb(data.baseAddress, data.count, $0.baseAddress, $0.count, &info) }
        }
        switch status {
        case 0: return (rgb, height, width)
        case 2: throw ImageError.unsupported(format: "JPEG", reason: message(info))
        default: throw failure("JPEG", info)
        }
    }
}
