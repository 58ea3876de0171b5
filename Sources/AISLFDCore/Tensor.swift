/// One named tensor as read from a file. `data` is always little-endian and
/// C-contiguous (readers convert byte order and Fortran layout), so two
/// readers of the same state_dict give bit-identical tensors.
public struct NamedTensor: Sendable, Equatable {
    public var key: String
    public var dtype: DType
    public var shape: [Int]
    public var data: [UInt8]

    /// `data.count` must equal the shape's byte count; readers check this
    /// before constructing.
    public init(key: String, dtype: DType, shape: [Int], data: [UInt8]) {
        precondition(data.count == (try? Checked.byteCount(shape, dtype)), "tensor \(key): data size does not match shape")
        self.key = key
        self.dtype = dtype
        self.shape = shape
        self.data = data
    }

    public init(key: String, shape: [Int], floats: [Float]) {
        var bytes = [UInt8](repeating: 0, count: floats.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, f) in floats.enumerated() { raw.storeBytes(of: f.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        self.init(key: key, dtype: .float32, shape: shape, data: bytes)
    }

    public var elementCount: Int { data.count / dtype.byteSize }
    public var byteCount: Int { data.count }

    /// The values as float32, converted the way PyTorch's `.float()` does
    /// (round to nearest for float64 and wide integers).
    public func floats() -> [Float] {
        let n = elementCount
        return data.withUnsafeBytes { raw -> [Float] in
            func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
            switch dtype {
            case .float32: return (0..<n).map { Float(bitPattern: load(UInt32.self, $0)) }
            case .float64: return (0..<n).map { Float(Double(bitPattern: load(UInt64.self, $0))) }
            case .float16: return (0..<n).map { Float(Float16(bitPattern: load(UInt16.self, $0))) }
            case .bfloat16: return (0..<n).map { Float(bitPattern: UInt32(load(UInt16.self, $0)) << 16) }
            case .int8: return (0..<n).map { Float(Int8(bitPattern: raw[$0])) }
            case .uint8: return (0..<n).map { Float(raw[$0]) }
            case .bool: return (0..<n).map { raw[$0] != 0 ? 1 : 0 }
            case .int16: return (0..<n).map { Float(load(Int16.self, $0)) }
            case .uint16: return (0..<n).map { Float(load(UInt16.self, $0)) }
            case .int32: return (0..<n).map { Float(load(Int32.self, $0)) }
            case .uint32: return (0..<n).map { Float(load(UInt32.self, $0)) }
            case .int64: return (0..<n).map { Float(load(Int64.self, $0)) }
            case .uint64: return (0..<n).map { Float(load(UInt64.self, $0)) }
            }
        }
    }

    /// The values of an integer or bool tensor, exactly (uint64 values past Int64.max become
    /// Int64.max); empty for a floating-point one.
    public func integers() -> [Int64] {
        let n = elementCount
        return data.withUnsafeBytes { raw -> [Int64] in
            func load<T: FixedWidthInteger>(_: T.Type, _ i: Int) -> T {
                T(littleEndian: raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self))
            }
            switch dtype {
            case .float16, .bfloat16, .float32, .float64: return []
            case .bool: return (0..<n).map { raw[$0] != 0 ? 1 : 0 }
            case .int8: return (0..<n).map { Int64(Int8(bitPattern: raw[$0])) }
            case .uint8: return (0..<n).map { Int64(raw[$0]) }
            case .int16: return (0..<n).map { Int64(load(Int16.self, $0)) }
            case .uint16: return (0..<n).map { Int64(load(UInt16.self, $0)) }
            case .int32: return (0..<n).map { Int64(load(Int32.self, $0)) }
            case .uint32: return (0..<n).map { Int64(load(UInt32.self, $0)) }
            case .int64: return (0..<n).map { load(Int64.self, $0) }
            case .uint64: return (0..<n).map { Int64(clamping: load(UInt64.self, $0)) }
            }
        }
    }

    /// Counts of NaN and infinite values; zero for integer tensors.
    public func nonFiniteCounts() -> (nan: Int, inf: Int) {
        guard dtype.isFloatingPoint else { return (0, 0) }
        var nan = 0, inf = 0
        if dtype == .float64 {
            data.withUnsafeBytes { raw in
                for i in 0..<elementCount {
                    let v = Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)))
                    if v.isNaN { nan += 1 } else if v.isInfinite { inf += 1 }
                }
            }
            return (nan, inf)
        }
        for v in floats() {
            if v.isNaN { nan += 1 } else if v.isInfinite { inf += 1 }
        }
        return (nan, inf)
    }
}

/// What a reader returns: the tensors in file order plus file-level metadata
/// (HDF5 root attributes, safetensors `__metadata__`, ...) and notes about
/// what the reader did to the names (for example a stripped `module.` prefix).
public struct WeightsContents: Sendable {
    public var format: String
    public var tensors: [NamedTensor]
    public var metadata: [String: String]
    public var notes: [String]
    /// Key prefixes (without their final '.') that are nested dicts or groups in the file, in
    /// file order: `model_state_dict`, `ema`, `state_dict` of a training checkpoint, HDF5
    /// groups. Where a state_dict may sit; empty for flat formats.
    public var containers: [String]

    public init(format: String, tensors: [NamedTensor], metadata: [String: String] = [:], notes: [String] = [],
                containers: [String] = []) {
        self.format = format
        self.tensors = tensors
        self.metadata = metadata
        self.notes = notes
        self.containers = containers
    }

    public subscript(key: String) -> NamedTensor? { tensors.first { $0.key == key } }
}

extension NamedTensor {
    public init(key: String, shape: [Int], int64 values: [Int64]) {
        var bytes = [UInt8](repeating: 0, count: values.count * 8)
        bytes.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.littleEndian, toByteOffset: i * 8, as: Int64.self) }
        }
        self.init(key: key, dtype: .int64, shape: shape, data: bytes)
    }
}
