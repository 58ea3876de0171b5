/// Sizes read from files are untrusted: every product and sum goes through
/// these so a hostile header cannot wrap around into a small allocation.
public enum SizeError: Error, CustomStringConvertible, Equatable, Sendable {
    case overflow
    case negative(Int)
    case exceedsLimit(Int, limit: Int)

    public var description: String {
        switch self {
        case .overflow: return "size overflows 64-bit arithmetic"
        case .negative(let n): return "negative size \(n)"
        case .exceedsLimit(let n, let limit): return "size \(n) exceeds the limit \(limit)"
        }
    }
}

public enum Checked {
    public static func add(_ a: Int, _ b: Int) throws -> Int {
        let (r, o) = a.addingReportingOverflow(b)
        if o { throw SizeError.overflow }
        return r
    }

    public static func mul(_ a: Int, _ b: Int) throws -> Int {
        let (r, o) = a.multipliedReportingOverflow(by: b)
        if o { throw SizeError.overflow }
        return r
    }

    /// Number of elements of a shape; every dimension must be >= 0.
    public static func elementCount(_ shape: [Int]) throws -> Int {
        var n = 1
        for d in shape {
            if d < 0 { throw SizeError.negative(d) }
            n = try mul(n, d)
        }
        return n
    }

    public static func byteCount(_ shape: [Int], _ dtype: DType) throws -> Int {
        try mul(elementCount(shape), dtype.byteSize)
    }

    /// Converts an unsigned size from a file to Int, refusing values above `limit`.
    public static func int<T: BinaryInteger>(_ value: T, limit: Int = Int.max) throws -> Int {
        guard let v = Int(exactly: value) else { throw SizeError.overflow }
        if v < 0 { throw SizeError.negative(v) }
        if v > limit { throw SizeError.exceedsLimit(v, limit: limit) }
        return v
    }
}
