// The pickle interpreter and what TorchReader does with its result (flattening dicts,
// views of storages): the input is data.pkl of a torch.save archive built around it, with
// ten small storages the pickle may name ('0' ... '9', float32, 64 elements each).
import AISLFDCore
import AISLFDReaders

private let storages: [(String, [UInt8])] = (0..<10).map { ("archive/data/\($0)", [UInt8](repeating: UInt8($0), count: 256)) }

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzPickle(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let pickle = Fuzz.bytes(data, size)
    let archive = StoredZip.make([("archive/data.pkl", pickle), ("archive/byteorder", Array("little".utf8))] + storages)
    Fuzz.expectCleanOutcome {
        let contents = try TorchReader.read(archive: try ZipArchive(bytes: archive))
        for t in contents.tensors { _ = t.floats() }
    }
    return 0
}

/// A zip of stored entries, as torch.save writes them.
enum StoredZip {
    static func make(_ entries: [(String, [UInt8])]) -> [UInt8] {
        var out: [UInt8] = [], central: [UInt8] = []
        for (name, data) in entries {
            let crc = data.withUnsafeBytes { crc32($0) }
            let n = Array(name.utf8)
            let common = le16(20) + le16(0) + le16(0) + le16(0) + le16(0x21) + le32(crc) + le32(UInt32(data.count)) + le32(UInt32(data.count)) + le16(n.count)
            central += le32(0x0201_4b50) + le16(20) + common + le16(0) + le16(0) + le16(0) + le16(0) + le32(0) + le32(UInt32(out.count)) + n
            out += le32(0x0403_4b50) + common + le16(0) + n + data
        }
        let offset = out.count
        return out + central + le32(0x0605_4b50) + le16(0) + le16(0) + le16(entries.count) + le16(entries.count)
            + le32(UInt32(central.count)) + le32(UInt32(offset)) + le16(0)
    }

    private static func le16(_ v: Int) -> [UInt8] { [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    private static func le32(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(v >> (8 * $0) & 0xFF) } }
}
