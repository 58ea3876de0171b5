// PNG and JPEG through the image layer: libpng and libjpeg behind the C shims, the size
// checks before decoding, EXIF orientation.
import AISLFDCore
import AISLFDImages

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzImage(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    Fuzz.write(Fuzz.bytes(data, size))
    // 8-bit RGB only: the float planes would be four times the pixels' memory, nothing more to test.
    Fuzz.expectCleanOutcome { _ = try ImageReader.readRGB(path: Fuzz.path) }
    return 0
}
