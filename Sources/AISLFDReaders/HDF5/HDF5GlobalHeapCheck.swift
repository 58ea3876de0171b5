import Foundation

/// Variable-length strings (h5py's `str` attributes) live in global heap
/// collections, and libhdf5 1.10 reads them without checking what it finds: a
/// corrupt heap address, object index or object size makes it loop, dereference
/// null, or copy past its buffers. So before libhdf5 reads such a string, this
/// finds the attribute's message in the file's bytes, takes the string's heap
/// reference from it, and checks that the reference leads to a well-formed
/// collection holding an object of exactly the string's length. When any step
/// fails the reader skips the attribute (with a note) instead of reading it.
///
/// Assumes 8-byte offsets and lengths (the superblock default, and h5py's).
enum HDF5GlobalHeapCheck {
    /// libhdf5 1.10 converts variable-length data through a buffer of at least this many bytes.
    static let maxObjectSize = 4096

    /// Nil when the scalar variable-length string attribute `name` can be read safely; otherwise why not.
    static func problem(attribute name: String, file: UnsafeRawBufferPointer) -> String? {
        let pattern = Array(name.utf8) + [0]
        var references: [(length: UInt64, address: UInt64, index: UInt64)] = []
        var position = 0
        while let found = find(pattern, in: file, from: position) {
            position = found + 1
            if let reference = stringReference(file, nameAt: found, nameSize: pattern.count) { references.append(reference) }
        }
        guard !references.isEmpty else { return "its attribute message was not found" }
        for reference in references {
            if let problem = objectProblem(file, reference) { return problem }
        }
        return nil
    }

    private static func u16(_ file: UnsafeRawBufferPointer, _ at: Int) -> Int {
        Int(UInt16(littleEndian: file.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
    }

    private static func u32(_ file: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(UInt32(littleEndian: file.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
    }

    private static func u64(_ file: UnsafeRawBufferPointer, _ at: Int) -> UInt64 {
        UInt64(littleEndian: file.loadUnaligned(fromByteOffset: at, as: UInt64.self))
    }

    /// The next occurrence of `pattern` (memchr finds candidates for its first byte quickly).
    private static func find(_ pattern: [UInt8], in file: UnsafeRawBufferPointer, from start: Int) -> Int? {
        guard let base = file.baseAddress, let first = pattern.first else { return nil }
        var i = start
        while i + pattern.count <= file.count {
            guard let hit = memchr(base + i, Int32(first), file.count - i) else { return nil }
            i = base.distance(to: UnsafeRawPointer(hit))
            if i + pattern.count > file.count { return nil }
            if memcmp(base + i, pattern, pattern.count) == 0 { return i }
            i += 1
        }
        return nil
    }

    /// The heap reference in the data of an attribute message whose name starts at
    /// `nameAt`, for the three attribute message versions (1 pads its parts to 8 bytes,
    /// 3 adds a character-set byte before the name).
    private static func stringReference(_ file: UnsafeRawBufferPointer, nameAt: Int, nameSize: Int)
        -> (length: UInt64, address: UInt64, index: UInt64)? {
        func padded(_ n: Int, _ version: Int) -> Int { version == 1 ? (n + 7) / 8 * 8 : n }
        for (version, headerSize) in [(1, 8), (2, 8), (3, 9)] {
            let header = nameAt - headerSize
            guard header >= 0, file[header] == UInt8(version), u16(file, header + 2) == nameSize else { continue }
            if version == 1, file[header + 1] != 0 { continue }
            let datatypeSize = u16(file, header + 4), dataspaceSize = u16(file, header + 6)
            let data = nameAt + padded(nameSize, version) + padded(datatypeSize, version) + padded(dataspaceSize, version)
            guard data + 16 <= file.count else { continue }
            return (u32(file, data), u64(file, data + 4), u32(file, data + 12))
        }
        return nil
    }

    /// Walks the collection the way libhdf5 parses it: objects follow each other up to
    /// its end, or up to a free-space object (index 0) whose size is exactly the rest.
    private static func objectProblem(_ file: UnsafeRawBufferPointer, _ reference: (length: UInt64, address: UInt64, index: UInt64)) -> String? {
        guard reference.length <= UInt64(maxObjectSize) else { return "string of \(reference.length) bytes" }
        guard reference.address <= UInt64(file.count - 16) else { return "heap address \(reference.address) past the end of the file" }
        let start = Int(reference.address)
        guard Array(file[start..<(start + 4)]) == Array("GCOL".utf8), file[start + 4] == 1 else {
            return "no global heap at address \(start)"
        }
        let size = u64(file, start + 8)
        guard size >= 16, size <= UInt64(file.count - start) else { return "global heap size \(size) past the end of the file" }
        let end = start + Int(size)
        var object = start + 16
        var target: UInt64?
        while object + 16 <= end {
            let index = UInt64(u16(file, object))
            let objectSize = u64(file, object + 8)
            if index == 0 {
                guard objectSize == UInt64(end - object) else { return "global heap free space of \(objectSize) bytes where \(end - object) remain" }
                break
            }
            guard objectSize <= UInt64(maxObjectSize) else { return "global heap object of \(objectSize) bytes" }
            let padded = (Int(objectSize) + 7) / 8 * 8
            guard object + 16 + padded <= end else { return "global heap object runs past its collection" }
            if index == reference.index { target = objectSize }
            object += 16 + padded
        }
        guard let target else { return "global heap object \(reference.index) not found" }
        guard target == reference.length else { return "string of \(reference.length) bytes in a heap object of \(target)" }
        return nil
    }
}
