/// The EXIF orientation of a photo (TIFF tag 0x0112, 1...8): how the stored pixels must be
/// turned to stand upright. OpenCV's `imread`, which LISRD's code reads images with, applies
/// it (JPEG APP1 "Exif" segments and PNG eXIf chunks alike); so does this reader unless told
/// not to (`IMREAD_IGNORE_ORIENTATION`).
public enum EXIFOrientation {
    /// What each value does, for notes.
    public static func describe(_ value: Int) -> String {
        switch value {
        case 2: return "mirrored left-right"
        case 3: return "rotated 180 degrees"
        case 4: return "mirrored top-bottom"
        case 5: return "transposed"
        case 6: return "rotated 90 degrees clockwise"
        case 7: return "transversed"
        case 8: return "rotated 90 degrees counter-clockwise"
        default: return "as stored"
        }
    }

    /// The orientation a JPEG's first Exif segment gives; 1 when there is none or it is unreadable.
    static func ofJPEG(_ bytes: [UInt8]) -> Int {
        var i = 2  // after SOI
        while i + 4 <= bytes.count {
            guard bytes[i] == 0xFF else { return 1 }
            let marker = bytes[i + 1]
            if marker == 0xFF { i += 1; continue }  // fill byte
            if marker == 0x01 || (0xD0...0xD8).contains(marker) { i += 2; continue }  // no length
            if marker == 0xDA || marker == 0xD9 { return 1 }  // the scan starts: no metadata after it
            let length = Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            guard length >= 2, i + 2 + length <= bytes.count else { return 1 }
            let body = bytes[(i + 4)..<(i + 2 + length)]
            if marker == 0xE1, body.starts(with: [0x45, 0x78, 0x69, 0x66, 0, 0]) {  // "Exif\0\0"
                return inTIFF(body.dropFirst(6))
            }
            i += 2 + length
        }
        return 1
    }

    /// The orientation of a PNG's eXIf chunk (before the image data); 1 when there is none.
    static func ofPNG(_ bytes: [UInt8]) -> Int {
        var i = 8  // after the signature
        while i + 12 <= bytes.count {
            let length = Int(bytes[i]) << 24 | Int(bytes[i + 1]) << 16 | Int(bytes[i + 2]) << 8 | Int(bytes[i + 3])
            let kind = bytes[(i + 4)..<(i + 8)]
            guard length <= bytes.count - i - 12 else { return 1 }
            if kind.elementsEqual("IDAT".utf8) || kind.elementsEqual("IEND".utf8) { return 1 }
            if kind.elementsEqual("eXIf".utf8) { return inTIFF(bytes[(i + 8)..<(i + 8 + length)]) }
            i += 12 + length
        }
        return 1
    }

    /// Tag 0x0112 of the first image file directory of TIFF-structured EXIF data.
    static func inTIFF(_ tiff: ArraySlice<UInt8>) -> Int {
        let t = Array(tiff)
        guard t.count >= 8 else { return 1 }
        let little: Bool
        switch (t[0], t[1]) {
        case (0x49, 0x49): little = true   // "II"
        case (0x4D, 0x4D): little = false  // "MM"
        default: return 1
        }
        func u16(_ at: Int) -> Int? {
            guard at >= 0, at + 2 <= t.count else { return nil }
            return little ? Int(t[at]) | Int(t[at + 1]) << 8 : Int(t[at]) << 8 | Int(t[at + 1])
        }
        func u32(_ at: Int) -> Int? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return little ? a | b << 16 : a << 16 | b
        }
        guard u16(2) == 42, let ifd = u32(4), let count = u16(ifd) else { return 1 }
        for n in 0..<count {
            let entry = ifd + 2 + 12 * n
            guard let tag = u16(entry), let type = u16(entry + 2) else { return 1 }
            if tag == 0x0112 {
                guard type == 3, let value = u16(entry + 8), (1...8).contains(value) else { return 1 }
                return value
            }
        }
        return 1
    }

    /// `rgb` ([height, width, 3]) turned upright for `orientation`, with its new height and width.
    static func apply(_ orientation: Int, rgb: [UInt8], height: Int, width: Int) -> (rgb: [UInt8], height: Int, width: Int) {
        guard (2...8).contains(orientation) else { return (rgb, height, width) }
        let swaps = orientation >= 5
        let (outHeight, outWidth) = swaps ? (width, height) : (height, width)
        var out = [UInt8](repeating: 0, count: rgb.count)
        for y in 0..<outHeight {
            for x in 0..<outWidth {
                // The stored pixel that lands at (x, y).
                let (sx, sy): (Int, Int)
                switch orientation {
                case 2: (sx, sy) = (width - 1 - x, y)
                case 3: (sx, sy) = (width - 1 - x, height - 1 - y)
                case 4: (sx, sy) = (x, height - 1 - y)
                case 5: (sx, sy) = (y, x)
                case 6: (sx, sy) = (y, height - 1 - x)
                case 7: (sx, sy) = (width - 1 - y, height - 1 - x)
                default: (sx, sy) = (width - 1 - y, x)
                }
                let from = (sy * width + sx) * 3, to = (y * outWidth + x) * 3
                out[to] = rgb[from]
                out[to + 1] = rgb[from + 1]
                out[to + 2] = rgb[from + 2]
            }
        }
        return (out, outHeight, outWidth)
    }
}
