/// Binary portable pixmaps, as HPatches ships its images: P6 (RGB) and P5 (gray, replicated
/// to RGB as PIL's convert('RGB') does), 8-bit (a maximum value m below 255 is rescaled,
/// v * 255 / m rounded half to even, as PIL does). The header is the
/// magic, width, height and maximum value as ASCII decimals separated by whitespace, with
/// `#` comments up to the end of a line, then exactly one whitespace byte before the pixels.
extension ImageReader {
    static func isPPM(_ bytes: [UInt8]) -> Bool {
        bytes.count >= 2 && bytes[0] == UInt8(ascii: "P") && (bytes[1] == UInt8(ascii: "6") || bytes[1] == UInt8(ascii: "5"))
    }

    static func decodePPM(_ bytes: [UInt8]) throws -> (rgb: [UInt8], height: Int, width: Int) {
        let channels = bytes[1] == UInt8(ascii: "6") ? 3 : 1
        var i = 2
        var fields: [Int] = []
        while fields.count < 3 {
            guard i < bytes.count else { throw ImageError.corrupt(format: "PPM", reason: "the header ends early") }
            let b = bytes[i]
            if b == UInt8(ascii: "#") {
                while i < bytes.count, bytes[i] != 0x0A, bytes[i] != 0x0D { i += 1 }
                continue
            }
            if isWhitespace(b) { i += 1; continue }
            guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b), i > 2, isWhitespace(bytes[i - 1]) else {
                throw ImageError.corrupt(format: "PPM", reason: "the header holds something other than decimal numbers")
            }
            var value = 0
            while i < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[i]) {
                value = value * 10 + Int(bytes[i] - UInt8(ascii: "0"))
                guard value <= 1 << 30 else { throw ImageError.corrupt(format: "PPM", reason: "a header number is too large") }
                i += 1
            }
            fields.append(value)
        }
        guard i < bytes.count, isWhitespace(bytes[i]) else { throw ImageError.corrupt(format: "PPM", reason: "no whitespace after the header") }
        i += 1
        let (width, height, maximum) = (fields[0], fields[1], fields[2])
        try checkSize(width, height)
        guard maximum >= 1, maximum <= 255 else {
            throw ImageError.unsupported(format: "PPM", reason: "maximum value \(maximum); only 8-bit pixmaps (at most 255) are read")
        }
        let count = width * height * channels
        guard bytes.count - i >= count else {
            throw ImageError.corrupt(format: "PPM", reason: "truncated: \((bytes.count - i) / max(1, width * channels)) of \(height) rows")
        }
        var pixels = Array(bytes[i..<(i + count)])
        if maximum < 255 {
            let levels = (0...255).map { v in UInt8(min(255, (Double(v) * 255 / Double(maximum)).rounded(.toNearestOrEven))) }
            for j in pixels.indices { pixels[j] = levels[Int(pixels[j])] }
        }
        if channels == 3 { return (pixels, height, width) }
        var rgb = [UInt8](repeating: 0, count: width * height * 3)
        for (j, v) in pixels.enumerated() { rgb[3 * j] = v; rgb[3 * j + 1] = v; rgb[3 * j + 2] = v }
        return (rgb, height, width)
    }

    private static func isWhitespace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0A || b == 0x0D || b == 0x0B || b == 0x0C }
}
