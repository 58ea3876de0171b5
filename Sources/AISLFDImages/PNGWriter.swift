import AISLFDCore
import CPNG
import Foundation

/// Writes 8-bit RGB PNGs (the match drawings) with libpng's simplified API, which
/// reports errors by status instead of longjmp. The file appears whole or not at
/// all: it is written to a temporary file in the same folder, flushed, then renamed.
public enum PNGWriter {
    /// `rgb` is row-major [height, width, 3].
    public static func write(rgb: [UInt8], height: Int, width: Int, to path: String) throws {
        do {
            try writeFile(rgb: rgb, height: height, width: width, path: path)
        } catch let error as ImageError {
            throw FileError(path: path, problem: error)
        }
    }

    /// The PNG file's bytes, for a command that writes several files all or none.
    public static func encode(rgb: [UInt8], height: Int, width: Int) throws -> [UInt8] {
        guard width > 0, height > 0, width <= ImageReader.maxSide, height <= ImageReader.maxSide,
              rgb.count == width * height * 3 else {
            throw ImageError.badPixelBuffer(count: rgb.count, height: height, width: width)
        }
        func describe(_ image: png_image) -> String {
            withUnsafeBytes(of: image.message) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        }
        var image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_RGB)
        var size = 0
        // First call: the encoded size only.
        guard rgb.withUnsafeBytes({ png_image_write_to_memory(&image, nil, &size, 0, $0.baseAddress, 0, nil) }) != 0 else {
            throw ImageError.cannotWrite(reason: "libpng: \(describe(image))")
        }
        var encoded = [UInt8](repeating: 0, count: size)
        image = png_image()
        image.version = UInt32(PNG_IMAGE_VERSION)
        image.width = UInt32(width)
        image.height = UInt32(height)
        image.format = UInt32(PNG_FORMAT_RGB)
        let ok = encoded.withUnsafeMutableBytes { out in
            rgb.withUnsafeBytes { png_image_write_to_memory(&image, out.baseAddress, &size, 0, $0.baseAddress, 0, nil) }
        }
        guard ok != 0, size <= encoded.count else { throw ImageError.cannotWrite(reason: "libpng: \(describe(image))") }
        return Array(encoded.prefix(size))
    }

    private static func writeFile(rgb: [UInt8], height: Int, width: Int, path: String) throws {
        let encoded = try encode(rgb: rgb, height: height, width: width)
        do { try FileSystem.writeAtomically(encoded, to: path) } catch let e as FileSystemError {
            throw ImageError.cannotWrite(reason: e.description)
        }
    }
}
