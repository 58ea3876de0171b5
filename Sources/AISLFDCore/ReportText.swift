/// 3727596 -> "3,727,596", independent of the locale, so reports print the same everywhere.
public func grouped(_ n: Int) -> String {
    let digits = String(n.magnitude)
    var out = ""
    for (i, c) in digits.enumerated() {
        if i > 0, (digits.count - i) % 3 == 0 { out.append(",") }
        out.append(c)
    }
    return (n < 0 ? "-" : "") + out
}

/// [64, 3, 3, 3] -> "[64, 3, 3, 3]", as reports and error messages print shapes.
public func shapeText(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}

/// `s` followed by spaces up to `width` characters (never cut): a left-aligned table cell.
public func leftAligned(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : s + String(repeating: " ", count: width - s.count)
}

/// Spaces then `s`, `width` characters in all (never cut): a right-aligned table cell.
public func rightAligned(_ s: String, _ width: Int) -> String {
    s.count >= width ? s : String(repeating: " ", count: width - s.count) + s
}
