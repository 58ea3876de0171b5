import AISLFDCore

/// One tensor to store, with its bytes already in their storage form (little-endian fp32 or
/// fp16, or int8 with float32 scales: one per index of axis 0, or with `scaleGroup` > 0 one
/// per block of that many values of each row (version 2); `AISWDequantize`).
public struct AISWTensor: Sendable, Equatable {
    public var key: String
    public var shape: [Int]
    public var storage: AISWStorage
    public var data: [UInt8]
    public var scales: [Float]?
    /// What the tensor is for, e.g. `conv.weight`, `conv.bias`, `linear.weight`, `centroids`.
    public var role: String
    /// int8: values per scale along each row; 0 is one scale per row (version 1's only form).
    public var scaleGroup: Int

    public init(key: String, shape: [Int], storage: AISWStorage, data: [UInt8], scales: [Float]? = nil, role: String, scaleGroup: Int = 0) {
        self.key = key
        self.shape = shape
        self.storage = storage
        self.data = data
        self.scales = scales
        self.role = role
        self.scaleGroup = scaleGroup
    }

    public static func fp32(key: String, shape: [Int], values: [Float], role: String) -> AISWTensor {
        var data = [UInt8](repeating: 0, count: values.count * 4)
        data.withUnsafeMutableBytes { raw in
            for (i, v) in values.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
        }
        return AISWTensor(key: key, shape: shape, storage: .fp32, data: data, role: role)
    }

    /// `bits` are IEEE 754 binary16 bit patterns.
    public static func fp16(key: String, shape: [Int], bits: [UInt16], role: String) -> AISWTensor {
        var data = [UInt8](repeating: 0, count: bits.count * 2)
        data.withUnsafeMutableBytes { raw in
            for (i, b) in bits.enumerated() { raw.storeBytes(of: b.littleEndian, toByteOffset: i * 2, as: UInt16.self) }
        }
        return AISWTensor(key: key, shape: shape, storage: .fp16, data: data, role: role)
    }

    public static func int8(key: String, shape: [Int], values: [Int8], scales: [Float], role: String, scaleGroup: Int = 0) -> AISWTensor {
        AISWTensor(key: key, shape: shape, storage: .int8, data: values.map { UInt8(bitPattern: $0) }, scales: scales, role: role,
                   scaleGroup: scaleGroup)
    }
}

/// Builds `.aisw` files. The same metadata and tensors always give the same bytes.
public struct AISWWriter: Sendable {
    public var metadata: AISWMetadata
    public var tensors: [AISWTensor]

    public init(metadata: AISWMetadata, tensors: [AISWTensor]) {
        self.metadata = metadata
        self.tensors = tensors
    }

    /// Writes the file atomically: OUTPUT ends up complete or untouched, never partial.
    /// With `inputPath`, refuses when OUTPUT is that same file (also through a link).
    public func write(to path: String, refusing inputPath: String? = nil) throws {
        do {
            if let inputPath, let a = FileSystem.identity(of: inputPath), a == FileSystem.identity(of: path) {
                throw AISWError.sameFileAsInput(input: inputPath)
            }
            let bytes = try encode()
            do { try FileSystem.writeAtomically(bytes, to: path) } catch let e as FileSystemError { throw AISWError.file(e) }
        } catch {
            throw FileError(path: path, problem: error)
        }
    }

    /// Where everything goes, computed without encoding the tensors.
    public struct Layout: Sendable {
        public let version: UInt32
        public let metadata: [UInt8]
        public let tableLength: Int
        public let dataOffset: Int
        /// Offsets of each tensor's data and scales (0 without scales), in table order.
        public let places: [(data: Int, scales: Int)]
        public let fileLength: Int
    }

    /// The file's length in bytes, as `encode()` would make it (every check included).
    public func encodedLength() throws -> Int { try layout().fileLength }

    /// Checks the tensors and metadata and lays them out.
    public func layout() throws -> Layout {
        let meta = try metadata.canonicalJSON()
        if meta.count > AISWFormat.maxMetadataLength {
            throw AISWError.limitExceeded(what: "metadata length", value: meta.count, limit: AISWFormat.maxMetadataLength)
        }
        if tensors.count > AISWFormat.maxTensorCount {
            throw AISWError.limitExceeded(what: "tensor count", value: tensors.count, limit: AISWFormat.maxTensorCount)
        }
        var seen = Set<String>()
        for t in tensors {
            try check(t)
            guard seen.insert(t.key).inserted else { throw AISWError.duplicateKey(t.key) }
        }
        for key in metadata.tensorHistory.keys where !seen.contains(key) {
            throw AISWError.invalidMetadata("tensor_history names \(key), which is not stored")
        }
        for (key, compute) in metadata.int8Compute ?? [:] {
            guard let t = tensors.first(where: { $0.key == key }), t.storage == .int8, t.scaleGroup == 0 else {
                throw AISWError.invalidMetadata("int8_compute names \(key), which is not an int8 tensor with one scale per output channel")
            }
            guard compute.inputScale.isFinite, compute.inputScale > 0, (0...255).contains(compute.inputZeroPoint) else {
                throw AISWError.invalidMetadata("int8_compute of \(key): input scale must be finite and > 0, zero point 0 ... 255")
            }
        }
        let version: UInt32 = metadata.int8Compute != nil || tensors.contains { $0.scaleGroup != 0 } ? 2 : 1

        // Layout: regions in table order, each on a 64-byte boundary.
        var tableLength = 0
        for t in tensors {
            tableLength += try AISWFormat.entryLength(keyLength: t.key.utf8.count, roleLength: t.role.utf8.count, rank: t.shape.count)
        }
        if tableLength > AISWFormat.maxTableLength {
            throw AISWError.limitExceeded(what: "table length", value: tableLength, limit: AISWFormat.maxTableLength)
        }
        let dataOffset = try AISWFormat.dataOffset(metadataLength: meta.count, tableLength: tableLength)
        var cursor = dataOffset
        var places: [(data: Int, scales: Int)] = []
        for t in tensors {
            let data = try AISWFormat.align(cursor, to: AISWFormat.alignment)
            cursor = try Checked.add(data, t.data.count)
            var scales = 0
            if let s = t.scales {
                scales = try AISWFormat.align(cursor, to: AISWFormat.alignment)
                cursor = try Checked.add(scales, s.count * 4)
            }
            places.append((data, scales))
        }
        return Layout(version: version, metadata: meta, tableLength: tableLength, dataOffset: dataOffset, places: places, fileLength: cursor)
    }

    /// The complete file.
    public func encode() throws -> [UInt8] {
        let layout = try layout()
        let meta = layout.metadata, tableLength = layout.tableLength, dataOffset = layout.dataOffset, fileLength = layout.fileLength
        let tableOffset = try AISWFormat.tableOffset(metadataLength: meta.count)
        var out = [UInt8](repeating: 0, count: fileLength)
        func put<T: FixedWidthInteger>(_ v: T, at offset: Int) {
            withUnsafeBytes(of: v.littleEndian) { src in
                for (i, b) in src.enumerated() { out[offset + i] = b }
            }
        }
        out.replaceSubrange(0..<8, with: AISWFormat.magic)
        put(layout.version, at: AISWFormat.Header.version)
        put(UInt32(AISWFormat.headerLength), at: AISWFormat.Header.headerLength)
        put(UInt64(fileLength), at: AISWFormat.Header.fileLength)
        put(UInt32(meta.count), at: AISWFormat.Header.metadataLength)
        put(UInt32(tableLength), at: AISWFormat.Header.tableLength)
        put(UInt32(tensors.count), at: AISWFormat.Header.tensorCount)
        out.replaceSubrange(AISWFormat.headerLength..<(AISWFormat.headerLength + meta.count), with: meta)

        var entry = tableOffset
        for (t, place) in zip(tensors, layout.places) {
            let key = Array(t.key.utf8), role = Array(t.role.utf8)
            put(UInt16(key.count), at: entry)
            put(UInt16(role.count), at: entry + 2)
            out[entry + 4] = t.storage.code
            out[entry + 5] = UInt8(t.shape.count)
            put(UInt16(t.scaleGroup), at: entry + 6)
            put(UInt64(place.data), at: entry + 8)
            put(UInt64(t.data.count), at: entry + 16)
            out.replaceSubrange(place.data..<(place.data + t.data.count), with: t.data)
            put(crc32(t.data), at: entry + 40)
            if let s = t.scales {
                var bytes = [UInt8](repeating: 0, count: s.count * 4)
                bytes.withUnsafeMutableBytes { raw in
                    for (i, v) in s.enumerated() { raw.storeBytes(of: v.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self) }
                }
                put(UInt64(place.scales), at: entry + 24)
                put(UInt64(bytes.count), at: entry + 32)
                put(crc32(bytes), at: entry + 44)
                out.replaceSubrange(place.scales..<(place.scales + bytes.count), with: bytes)
            }
            let strings = entry + AISWFormat.entryFixedLength
            out.replaceSubrange(strings..<(strings + key.count), with: key)
            out.replaceSubrange((strings + key.count)..<(strings + key.count + role.count), with: role)
            var dims = try AISWFormat.align(strings + key.count + role.count, to: 8)
            for d in t.shape {
                put(UInt64(d), at: dims)
                dims += 8
            }
            entry = dims
        }

        let checksum = out.withUnsafeBytes { raw in
            crc32(UnsafeRawBufferPointer(rebasing: raw[AISWFormat.headerLength..<dataOffset]),
                  seed: crc32(UnsafeRawBufferPointer(rebasing: raw[0..<AISWFormat.Header.checksum])))
        }
        put(checksum, at: AISWFormat.Header.checksum)
        return out
    }

    private func check(_ t: AISWTensor) throws {
        func bad(_ problem: String) -> AISWError { .invalidTensor(key: t.key, problem: problem) }
        if t.key.isEmpty { throw AISWError.invalidTable("a tensor has an empty key") }
        if t.key.utf8.count > AISWFormat.maxKeyLength {
            throw AISWError.limitExceeded(what: "key length of tensor \(t.key)", value: t.key.utf8.count, limit: AISWFormat.maxKeyLength)
        }
        if t.role.utf8.count > AISWFormat.maxRoleLength {
            throw AISWError.limitExceeded(what: "role length of tensor \(t.key)", value: t.role.utf8.count, limit: AISWFormat.maxRoleLength)
        }
        if t.shape.count > AISWFormat.maxRank {
            throw AISWError.limitExceeded(what: "rank of tensor \(t.key)", value: t.shape.count, limit: AISWFormat.maxRank)
        }
        for d in t.shape where d < 0 || d > AISWFormat.maxDimension {
            throw AISWError.limitExceeded(what: "dimension of tensor \(t.key)", value: d, limit: AISWFormat.maxDimension)
        }
        let expected = try Checked.mul(Checked.elementCount(t.shape), t.storage.byteSize)
        if t.data.count != expected { throw bad("\(t.data.count) data bytes, shape \(t.shape) needs \(expected)") }
        if t.storage == .int8 {
            guard let s = t.scales, let channels = t.shape.first else { throw bad("int8 storage needs rank >= 1 and one scale per index of axis 0") }
            guard (0...Int(UInt16.max)).contains(t.scaleGroup) else { throw bad("scale group \(t.scaleGroup) is not 0 ... 65535") }
            let perRow = AISWDequantize.scalesPerRow(rowLength: channels == 0 ? 0 : t.data.count / channels, group: t.scaleGroup)
            if s.count != channels * perRow {
                throw bad("\(s.count) scales for \(channels) channels" + (t.scaleGroup == 0 ? "" : " of \(perRow) blocks of \(t.scaleGroup)"))
            }
            for (c, v) in s.enumerated() where !(v.isFinite && v >= 0) {
                throw AISWError.invalidScale(key: t.key, channel: c, value: v)
            }
            // Symmetric quantization never produces -128; seeing it means the quantizer is wrong.
            if t.data.contains(0x80) { throw bad("int8 value -128 (symmetric quantization stores -127 ... 127)") }
        } else if t.scales != nil || t.scaleGroup != 0 {
            throw bad("scales given for \(t.storage.rawValue) storage")
        }
    }
}
