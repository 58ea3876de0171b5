import AISLFDCore

/// Copies a strided view of a buffer into C-contiguous order: PyTorch views
/// (offset, strides over a shared storage) and Fortran-ordered npy arrays.
enum StridedCopy {
    enum Failure: Error, Equatable {
        case negativeStride
        case negativeDimension
        case rankMismatch
        /// The view reaches element `needed` of a buffer holding `available`.
        case outOfBounds(needed: Int, available: Int)
        case size(SizeError)
    }

    /// Strides and offset count elements of `itemSize` bytes. Every reachable
    /// element is checked to lie inside `source` before anything is copied.
    static func gather(_ source: UnsafeRawBufferPointer, itemSize: Int, shape: [Int], strides: [Int], offset: Int) throws -> [UInt8] {
        guard shape.count == strides.count else { throw Failure.rankMismatch }
        guard offset >= 0 else { throw Failure.outOfBounds(needed: offset, available: source.count / itemSize) }
        let count: Int
        do { count = try Checked.elementCount(shape) } catch let e as SizeError {
            throw e == .overflow ? Failure.size(e) : Failure.negativeDimension
        }
        let available = source.count / itemSize
        if count == 0 { return [] }

        var last = offset
        do {
            for (n, s) in zip(shape, strides) {
                guard s >= 0 else { throw Failure.negativeStride }
                last = try Checked.add(last, Checked.mul(n - 1, s))
            }
        } catch let e as SizeError { throw Failure.size(e) }
        guard last < available else { throw Failure.outOfBounds(needed: last + 1, available: available) }

        var out = [UInt8](repeating: 0, count: count * itemSize)
        out.withUnsafeMutableBytes { dst in
            guard let dstBase = dst.baseAddress, let srcBase = source.baseAddress else { return }
            if isContiguous(shape: shape, strides: strides) {
                (dstBase).copyMemory(from: srcBase + offset * itemSize, byteCount: count * itemSize)
                return
            }
            // Walk the C-order index like an odometer, carrying the source offset along.
            // Wrapping arithmetic: a step past the end of an axis of a huge stride may
            // overflow before it is undone; the element offsets used are all checked above.
            let rank = shape.count
            var index = [Int](repeating: 0, count: rank)
            var src = offset
            let innerCount = shape[rank - 1], innerStride = strides[rank - 1]
            var d = 0
            while d < count * itemSize {
                var s = src
                for _ in 0..<innerCount {
                    (dstBase + d).copyMemory(from: srcBase + s * itemSize, byteCount: itemSize)
                    d += itemSize
                    s &+= innerStride
                }
                var axis = rank - 2
                while axis >= 0 {
                    index[axis] += 1
                    src &+= strides[axis]
                    if index[axis] < shape[axis] { break }
                    src &-= strides[axis] &* shape[axis]
                    index[axis] = 0
                    axis -= 1
                }
            }
        }
        return out
    }

    /// Strides of a Fortran-ordered (column-major) array of this shape. They
    /// only wrap when a dimension is 0, and then `gather` copies nothing.
    static func fortranStrides(_ shape: [Int]) -> [Int] {
        var strides: [Int] = []
        var s = 1
        for n in shape {
            strides.append(s)
            s = s &* max(n, 1)
        }
        return strides
    }

    /// Reverses the byte order of every `itemSize`-byte element in place.
    static func swapByteOrder(_ data: inout [UInt8], itemSize: Int) {
        guard itemSize > 1 else { return }
        data.withUnsafeMutableBytes { raw in
            var p = 0
            while p + itemSize <= raw.count {
                var i = p, j = p + itemSize - 1
                while i < j { raw.swapAt(i, j); i += 1; j -= 1 }
                p += itemSize
            }
        }
    }

    private static func isContiguous(shape: [Int], strides: [Int]) -> Bool {
        var expected = 1
        for axis in stride(from: shape.count - 1, through: 0, by: -1) where shape[axis] != 1 {
            if strides[axis] != expected { return false }
            expected *= shape[axis]
        }
        return true
    }
}
