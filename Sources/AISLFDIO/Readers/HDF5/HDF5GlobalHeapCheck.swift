import Foundation

/// Variable-length strings (h5py's `str` attributes) live in global heap
/// collections. libhdf5 1.10 trusts each heap object's size when it copies the
/// object out, so a corrupt size reads and writes past its buffers. Before the
/// reader lets libhdf5 read such strings, this checks every collection in the
/// file the way libhdf5 would parse it: any "GCOL" signature whose objects do not
/// do not tile it exactly, or an object larger than libhdf5's smallest conversion
/// buffer, makes the reader skip variable-length attributes (with a note) instead.
///
/// Assumes 8-byte lengths (the superblock default; h5py always writes it); with
/// other sizes the collections fail the check and the strings are skipped.
enum HDF5GlobalHeapCheck {
    /// libhdf5 1.10 converts variable-length data through a buffer of at least this many bytes.
    static let maxObjectSize = 4096

    /// Nil when every global heap collection is consistent, otherwise what is wrong.
    static func problem(inFileAt path: String) -> String? {
        guard let file = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            return "cannot map the file"
        }
        return file.withUnsafeBytes { bytes -> String? in
            let signature: [UInt8] = Array("GCOL".utf8)
            var offset = 0
            while offset + 16 <= bytes.count {
                guard bytes[offset] == signature[0], bytes[offset + 1] == signature[1],
                      bytes[offset + 2] == signature[2], bytes[offset + 3] == signature[3] else {
                    offset += 1
                    continue
                }
                if let problem = collectionProblem(bytes, at: offset) { return "global heap at \(offset): \(problem)" }
                offset += 4
            }
            return nil
        }
    }

    private static func collectionProblem(_ bytes: UnsafeRawBufferPointer, at start: Int) -> String? {
        func u64(_ at: Int) -> UInt64 { UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt64.self)) }
        func u16(_ at: Int) -> UInt16 { UInt16(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt16.self)) }
        guard bytes[start + 4] == 1 else { return "unknown version \(bytes[start + 4])" }
        let size = u64(start + 8)
        guard size >= 16, size <= UInt64(bytes.count - start) else { return "collection size \(size) past the end of the file" }
        let end = start + Int(size)
        var object = start + 16
        // Objects follow each other up to the end of the collection, or up to a
        // free-space object (index 0) whose size is exactly the rest of it; a tail
        // shorter than an object header is free space too. Anything else makes
        // libhdf5 1.10 loop or copy out of bounds.
        while object + 16 <= end {
            let index = u16(object)
            let objectSize = u64(object + 8)
            if index == 0 {
                return objectSize == UInt64(end - object) ? nil : "free space of \(objectSize) bytes where \(end - object) remain"
            }
            guard objectSize <= UInt64(maxObjectSize) else { return "object \(index) of \(objectSize) bytes" }
            let padded = (Int(objectSize) + 7) / 8 * 8
            guard object + 16 + padded <= end else { return "object \(index) runs past the collection" }
            object += 16 + padded
        }
        return nil
    }
}
