/// Text read from a file (a tensor key, a zip entry name, a pickle global, a record) as it
/// may appear inside a one-line error message: control characters written as escapes (`\n`,
/// `\r`, `\t`, `\x07`, `\u{2028}`), backslashes doubled so an escape cannot be forged, and at
/// most `limit` characters, cut with "…". Every reader's messages echo input through this,
/// so no file can make a message span two lines or swallow a screen.
public func echoed(_ text: String, limit: Int = 120) -> String {
    var out = ""
    var count = 0
    for scalar in text.unicodeScalars {
        let piece: String
        switch scalar {
        case "\n": piece = "\\n"
        case "\r": piece = "\\r"
        case "\t": piece = "\\t"
        case "\\": piece = "\\\\"
        default:
            // C0 and C1 controls, DEL, and the separators some terminals break lines at.
            if scalar.value < 0x20 || (0x7F...0x9F).contains(scalar.value) {
                piece = "\\x" + (scalar.value < 0x10 ? "0" : "") + String(scalar.value, radix: 16)
            } else if scalar.properties.generalCategory == .lineSeparator || scalar.properties.generalCategory == .paragraphSeparator
                        || scalar.properties.generalCategory == .format {
                piece = "\\u{" + String(scalar.value, radix: 16) + "}"
            } else {
                piece = String(scalar)
            }
        }
        if count >= limit {
            out += "…"
            return out
        }
        out += piece
        count += 1
    }
    return out
}

/// Raw bytes from a file as text for a message: decoded as UTF-8 (invalid sequences become
/// U+FFFD), then `echoed`.
public func echoed<Bytes: Sequence>(bytes: Bytes, limit: Int = 120) -> String where Bytes.Element == UInt8 {
    // Decode no more than a bounded prefix: the message shows `limit` characters at most.
    let bound = limit * 4 + 4
    let prefix = Array(bytes.prefix(bound + 1))
    let text = echoed(String(decoding: prefix.prefix(bound), as: UTF8.self), limit: limit)
    return prefix.count > bound && !text.hasSuffix("…") ? text + "…" : text
}
