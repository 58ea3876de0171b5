import AISLFDCore

public enum PickleError: Error, Equatable, CustomStringConvertible, Sendable {
    case truncated(offset: Int)
    case unsupportedOpcode(UInt8, offset: Int)
    case unsupportedProtocol(Int)
    /// A global outside the state_dict allowlist, such as `posix.system`.
    case forbiddenGlobal(String, offset: Int)
    case malformed(String, offset: Int)
    case limitExceeded(String, offset: Int)

    public var description: String {
        switch self {
        case .truncated(let o): return "pickle ends early at byte \(o)"
        case .unsupportedOpcode(let op, let o):
            let printable = op >= 0x20 && op < 0x7F ? " '\(Character(UnicodeScalar(op)))'" : ""
            return "unsupported pickle opcode 0x\(String(op, radix: 16))\(printable) at byte \(o) (not used by state_dicts)"
        case .unsupportedProtocol(let p): return "unsupported pickle protocol \(p)"
        case .forbiddenGlobal(let name, let o):
            return "refused to load global '\(name)' at byte \(o): only collections.OrderedDict, torch._utils._rebuild_* and torch.*Storage are allowed (the file may try to run code)"
        case .malformed(let why, let o): return "malformed pickle at byte \(o): \(why)"
        case .limitExceeded(let what, let o): return "pickle exceeds a safety limit at byte \(o): \(what)"
        }
    }
}

/// The few callables a state_dict pickle names; anything else is refused.
enum PickleGlobal: Equatable {
    case orderedDict
    case rebuildTensorV2, rebuildTensor, rebuildParameter, rebuildParameterWithState
    case storageType(DType)

    static func lookup(module: String, name: String) -> PickleGlobal? {
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch", "FloatStorage"): return .storageType(.float32)
        case ("torch", "HalfStorage"): return .storageType(.float16)
        case ("torch", "DoubleStorage"): return .storageType(.float64)
        case ("torch", "BFloat16Storage"): return .storageType(.bfloat16)
        case ("torch", "LongStorage"): return .storageType(.int64)
        case ("torch", "IntStorage"): return .storageType(.int32)
        case ("torch", "ShortStorage"): return .storageType(.int16)
        case ("torch", "CharStorage"): return .storageType(.int8)
        case ("torch", "ByteStorage"): return .storageType(.uint8)
        case ("torch", "BoolStorage"): return .storageType(.bool)
        default: return nil
        }
    }
}

/// A value on the unpickler's stack. Containers are indices into arenas owned
/// by the unpickler, so shared and even cyclic references cost nothing and
/// nothing is freed recursively.
enum PickleValue: Equatable {
    case none
    case bool(Bool)
    case int(Int)
    case float(Double)
    case string(String)
    /// Byte strings are never needed, only skipped: their length is kept.
    case bytes(Int)
    case tuple(Int)
    case list(Int)
    case dict(Int)
    case global(PickleGlobal)
    case storage(Int)
    case tensor(Int)
}

/// `('storage', torch.FloatStorage, '0', 'cpu', 12)`: a storage saved as `data/<key>`
/// (the device string does not matter: the bytes are the same).
struct PickledStorage: Equatable {
    var key: String
    var dtype: DType
    var elementCount: Int
}

/// The arguments of `_rebuild_tensor_v2`: a view of a storage, checked when materialised.
struct PickledTensor: Equatable {
    var storage: Int
    var offset: Int
    var shape: [Int]
    var strides: [Int]
}

/// An insertion-ordered dict (Python dicts and OrderedDicts both keep order).
struct PickledDict {
    var keys: [PickleValue] = []
    var values: [PickleValue] = []
    var index: [Key: Int] = [:]

    enum Key: Hashable {
        case none, bool(Bool), int(Int), float(UInt64), string(String), other(String, Int)
    }

    static func key(_ v: PickleValue) -> Key {
        switch v {
        case .none: return .none
        case .bool(let b): return .bool(b)
        case .int(let i): return .int(i)
        case .float(let d): return .float(d.bitPattern)
        case .string(let s): return .string(s)
        case .bytes(let n): return .other("bytes", n)
        case .tuple(let i): return .other("tuple", i)
        case .list(let i): return .other("list", i)
        case .dict(let i): return .other("dict", i)
        case .global(let g): return .other("global \(g)", 0)
        case .storage(let i): return .other("storage", i)
        case .tensor(let i): return .other("tensor", i)
        }
    }

    mutating func set(_ k: PickleValue, _ v: PickleValue) {
        let h = Self.key(k)
        if let i = index[h] { values[i] = v; return }
        index[h] = keys.count
        keys.append(k)
        values.append(v)
    }

    func value(forString s: String) -> PickleValue? {
        index[.string(s)].map { values[$0] }
    }
}

/// Reads the pickle `torch.save` writes (protocol 2 by default; 3-5 when asked)
/// without executing anything: only the opcodes a checkpoint uses, only the
/// allowlisted globals, and caps on every size.
struct StateDictUnpickler {
    /// A state_dict pickle takes ~100 bytes per tensor.
    static let maxPickleBytes = 16 << 20
    static let maxStack = 100_000
    static let maxMarks = 256
    static let maxNesting = 256
    static let maxMemoIndex = 1 << 22
    static let maxStringBytes = 1 << 20
    static let maxRank = 64
    /// Objects (containers, storages, tensors) and items stored in containers:
    /// a checkpoint needs about ten objects per tensor (model and optimizer),
    /// so these allow some 50k tensors and keep a hostile pickle's arenas small.
    static let maxObjects = 1 << 19
    static let maxItems = 1 << 20

    private let bytes: [UInt8]
    private var p = 0
    private var opStart = 0
    private var stack: [PickleValue] = []
    private var marks: [Int] = []
    private var memo: [Int: PickleValue] = [:]

    private(set) var tuples: [[PickleValue]] = []
    private(set) var lists: [[PickleValue]] = []
    private(set) var dicts: [PickledDict] = []
    private(set) var storages: [PickledStorage] = []
    private(set) var tensors: [PickledTensor] = []
    /// Nesting depth of each container, for the nesting cap.
    private var tupleDepth: [Int] = []
    private var listDepth: [Int] = []
    private var dictDepth: [Int] = []
    private var objectCount = 0
    private var itemCount = 0

    init(bytes: [UInt8]) { self.bytes = bytes }

    /// Runs the pickle to its STOP and returns the top-level object.
    mutating func run() throws -> PickleValue {
        while true {
            opStart = p
            let op = try u8()
            switch op {
            case 0x80:  // PROTO
                let version = Int(try u8())
                guard (2...5).contains(version) else { throw PickleError.unsupportedProtocol(version) }
            case 0x95:  // FRAME: a length hint only
                _ = try take(8)
            case 0x2E:  // STOP '.'
                guard let top = top() else { throw malformed("STOP with an empty stack") }
                return top
            case 0x28:  // MARK '('
                guard marks.count < Self.maxMarks else { throw limit("more than \(Self.maxMarks) nested marks") }
                marks.append(stack.count)
            case 0x7D: try push(newDict())  // EMPTY_DICT '}'
            case 0x5D: try push(newList())  // EMPTY_LIST ']'
            case 0x29: try push(newTuple([]))  // EMPTY_TUPLE ')'
            case 0x4E: try push(.none)  // NONE 'N'
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4A:  // BININT 'J'
                try push(.int(Int(Int32(bitPattern: UInt32(littleEndian: try fixed(4))))))
            case 0x4B: try push(.int(Int(try u8())))  // BININT1 'K'
            case 0x4D: try push(.int(Int(try fixed(2))))  // BININT2 'M'
            case 0x8A: try push(.int(try long1()))  // LONG1
            case 0x47:  // BINFLOAT 'G', big-endian
                let raw = try take(8)
                try push(.float(Double(bitPattern: raw.reduce(0) { $0 << 8 | UInt64($1) })))
            case 0x58: try push(.string(try text(length: Int(try fixed(4)))))  // BINUNICODE 'X'
            case 0x8C: try push(.string(try text(length: Int(try u8()))))  // SHORT_BINUNICODE
            case 0x8D: try push(.string(try text(length: try length8())))  // BINUNICODE8
            case 0x43: try push(.bytes(try skipBytes(Int(try u8()))))  // SHORT_BINBYTES 'C'
            case 0x42: try push(.bytes(try skipBytes(Int(try fixed(4)))))  // BINBYTES 'B'
            case 0x8E: try push(.bytes(try skipBytes(try length8())))  // BINBYTES8
            case 0x71: try put(Int(try u8()))  // BINPUT 'q'
            case 0x72: try put(Int(try fixed(4)))  // LONG_BINPUT 'r'
            case 0x94: try put(memo.count)  // MEMOIZE
            case 0x68: try get(Int(try u8()))  // BINGET 'h'
            case 0x6A: try get(Int(try fixed(4)))  // LONG_BINGET 'j'
            case 0x74: try push(newTuple(try popMark()))  // TUPLE 't'
            case 0x85: try push(newTuple([try popOne()]))  // TUPLE1
            case 0x86: try push(newTuple(try pop(2)))  // TUPLE2
            case 0x87: try push(newTuple(try pop(3)))  // TUPLE3
            case 0x61: try append([try popOne()])  // APPEND 'a'
            case 0x65: try append(try popMark())  // APPENDS 'e'
            case 0x73: try setItems(try pop(2))  // SETITEM 's'
            case 0x75: try setItems(try popMark())  // SETITEMS 'u'
            case 0x63:  // GLOBAL 'c'
                let module = try line(), name = try line()
                try push(.global(try global(module, name)))
            case 0x93:  // STACK_GLOBAL
                let pair = try pop(2)
                guard case .string(let module) = pair[0], case .string(let name) = pair[1] else {
                    throw malformed("STACK_GLOBAL needs two strings")
                }
                try push(.global(try global(module, name)))
            case 0x52:  // REDUCE 'R'
                let pair = try pop(2)
                try push(try call(pair[0], arguments: pair[1]))
            case 0x81:  // NEWOBJ
                let pair = try pop(2)
                guard pair[0] == .global(.orderedDict) else { throw malformed("NEWOBJ of something other than OrderedDict") }
                try push(try call(pair[0], arguments: pair[1]))
            case 0x62:  // BUILD 'b': state for an object already built
                _ = try popOne()
                switch top() {
                case .dict?, .tensor?: break  // OrderedDict `_metadata`, tensor attributes: not needed
                default: throw malformed("BUILD on something other than a dict or tensor")
                }
            case 0x51:  // BINPERSID 'Q'
                try push(try persistentStorage(try popOne()))
            default:
                throw PickleError.unsupportedOpcode(op, offset: opStart)
            }
        }
    }

    // MARK: - Objects

    private mutating func tally(objects: Int, items: Int) throws {
        objectCount += objects
        itemCount += items
        guard objectCount <= Self.maxObjects else { throw limit("more than \(Self.maxObjects) objects") }
        guard itemCount <= Self.maxItems else { throw limit("more than \(Self.maxItems) container items") }
    }

    private mutating func newDict() throws -> PickleValue {
        try tally(objects: 1, items: 0)
        dicts.append(PickledDict())
        dictDepth.append(1)
        return .dict(dicts.count - 1)
    }

    private mutating func newList() throws -> PickleValue {
        try tally(objects: 1, items: 0)
        lists.append([])
        listDepth.append(1)
        return .list(lists.count - 1)
    }

    private mutating func newTuple(_ items: [PickleValue]) throws -> PickleValue {
        let d = try nestedDepth(items)
        try tally(objects: 1, items: items.count)
        tuples.append(items)
        tupleDepth.append(d)
        return .tuple(tuples.count - 1)
    }

    /// The depth of a container holding `items`, refused past the nesting cap.
    private func nestedDepth(_ items: [PickleValue]) throws -> Int {
        var d = 0
        for item in items { d = max(d, depth(item)) }
        guard d < Self.maxNesting else { throw limit("objects nested more than \(Self.maxNesting) deep") }
        return d + 1
    }

    /// Depth of a value; a container's depth only grows as items are added to it.
    private func depth(_ v: PickleValue) -> Int {
        switch v {
        case .tuple(let i): return tupleDepth[i]
        case .list(let i): return listDepth[i]
        case .dict(let i): return dictDepth[i]
        case .storage, .tensor: return 1
        default: return 0
        }
    }

    private mutating func append(_ items: [PickleValue]) throws {
        guard case .list(let i)? = top() else { throw malformed("APPEND to something other than a list") }
        let d = try nestedDepth(items)
        try tally(objects: 0, items: items.count)
        listDepth[i] = max(listDepth[i], d)
        lists[i].append(contentsOf: items)
    }

    private mutating func setItems(_ items: [PickleValue]) throws {
        guard case .dict(let i)? = top() else { throw malformed("SETITEM on something other than a dict") }
        guard items.count % 2 == 0 else { throw malformed("SETITEMS with an odd number of items") }
        let d = try nestedDepth(items)
        try tally(objects: 0, items: items.count)
        dictDepth[i] = max(dictDepth[i], d)
        var k = 0
        while k < items.count {
            dicts[i].set(items[k], items[k + 1])
            k += 2
        }
    }

    private func global(_ module: String, _ name: String) throws -> PickleGlobal {
        guard let g = PickleGlobal.lookup(module: module, name: name) else {
            throw PickleError.forbiddenGlobal("\(module).\(name)", offset: opStart)
        }
        return g
    }

    /// REDUCE: the allowlisted callables, applied without running anything.
    private mutating func call(_ callable: PickleValue, arguments: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = arguments else { throw malformed("call arguments are not a tuple") }
        let args = tuples[t]
        switch callable {
        case .global(.orderedDict):
            guard args.isEmpty else { throw malformed("OrderedDict called with arguments") }
            return try newDict()
        case .global(.rebuildTensorV2), .global(.rebuildTensor):
            let count = args.count
            let valid = callable == .global(.rebuildTensor) ? count == 4 : (count == 6 || count == 7)
            guard valid else { throw malformed("_rebuild_tensor with \(count) arguments") }
            guard case .storage(let storage) = args[0], case .int(let offset) = args[1],
                  let shape = intTuple(args[2]), let strides = intTuple(args[3]) else {
                throw malformed("_rebuild_tensor arguments are not (storage, offset, size, stride, ...)")
            }
            guard shape.count <= Self.maxRank else { throw limit("tensor of rank \(shape.count)") }
            try tally(objects: 1, items: 0)
            tensors.append(PickledTensor(storage: storage, offset: offset, shape: shape, strides: strides))
            return .tensor(tensors.count - 1)
        case .global(.rebuildParameter), .global(.rebuildParameterWithState):
            guard args.count == 3 || args.count == 4, case .tensor = args[0] else {
                throw malformed("_rebuild_parameter arguments are not (tensor, requires_grad, hooks)")
            }
            return args[0]
        case .global(.storageType):
            throw malformed("a storage type cannot be called")
        default:
            throw malformed("call of a value that is not a global")
        }
    }

    private func intTuple(_ v: PickleValue) -> [Int]? {
        guard case .tuple(let i) = v else { return nil }
        var out: [Int] = []
        for item in tuples[i] {
            guard case .int(let n) = item else { return nil }
            out.append(n)
        }
        return out
    }

    private mutating func persistentStorage(_ pid: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = pid, tuples[t].count == 5,
              case .string("storage") = tuples[t][0], case .global(.storageType(let dtype)) = tuples[t][1],
              case .string(let key) = tuples[t][2], case .string = tuples[t][3],
              case .int(let count) = tuples[t][4], count >= 0 else {
            throw malformed("persistent id is not ('storage', type, key, location, size)")
        }
        try tally(objects: 1, items: 0)
        storages.append(PickledStorage(key: key, dtype: dtype, elementCount: count))
        return .storage(storages.count - 1)
    }

    // MARK: - Stack and memo

    private mutating func push(_ v: PickleValue) throws {
        guard stack.count < Self.maxStack else { throw limit("more than \(Self.maxStack) stack items") }
        stack.append(v)
    }

    /// The top item, if there is one above the innermost MARK.
    private func top() -> PickleValue? {
        stack.count > (marks.last ?? 0) ? stack.last : nil
    }

    private mutating func popOne() throws -> PickleValue {
        guard stack.count > (marks.last ?? 0), let v = stack.popLast() else { throw malformed("stack underflow") }
        return v
    }

    private mutating func pop(_ n: Int) throws -> [PickleValue] {
        let floor = marks.last ?? 0
        guard stack.count - floor >= n else { throw malformed("stack underflow") }
        let items = Array(stack[(stack.count - n)...])
        stack.removeLast(n)
        return items
    }

    private mutating func popMark() throws -> [PickleValue] {
        guard let m = marks.popLast() else { throw malformed("no MARK to pop to") }
        let items = Array(stack[m...])
        stack.removeSubrange(m...)
        return items
    }

    private mutating func put(_ index: Int) throws {
        guard index <= Self.maxMemoIndex else { throw limit("memo index \(index) above \(Self.maxMemoIndex)") }
        guard let top = top() else { throw malformed("memo store with an empty stack") }
        memo[index] = top
    }

    private mutating func get(_ index: Int) throws {
        guard let v = memo[index] else { throw malformed("memo index \(index) was never stored") }
        try push(v)
    }

    // MARK: - Bytes

    private mutating func u8() throws -> UInt8 {
        guard p < bytes.count else { throw PickleError.truncated(offset: p) }
        defer { p += 1 }
        return bytes[p]
    }

    private mutating func take(_ n: Int) throws -> ArraySlice<UInt8> {
        guard n >= 0, n <= bytes.count - p else { throw PickleError.truncated(offset: bytes.count) }
        defer { p += n }
        return bytes[p..<(p + n)]
    }

    /// A little-endian unsigned field of `n` <= 4 bytes.
    private mutating func fixed(_ n: Int) throws -> UInt32 {
        var v: UInt32 = 0
        for (i, b) in try take(n).enumerated() { v |= UInt32(b) << (8 * UInt32(i)) }
        return v
    }

    private mutating func length8() throws -> Int {
        var v: UInt64 = 0
        for (i, b) in try take(8).enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        guard v <= UInt64(Self.maxStringBytes) else { throw limit("string of \(v) bytes") }
        return Int(v)
    }

    /// LONG1: a little-endian two's-complement integer of up to 8 bytes here.
    private mutating func long1() throws -> Int {
        let n = Int(try u8())
        guard n <= 8 else { throw limit("integer of \(n) bytes") }
        let raw = try take(n)
        guard n > 0 else { return 0 }
        var v: UInt64 = 0
        for (i, b) in raw.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        if n < 8, let last = raw.last, last & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }  // sign-extend
        return Int(Int64(bitPattern: v))
    }

    private mutating func text(length: Int) throws -> String {
        guard length <= Self.maxStringBytes else { throw limit("string of \(length) bytes") }
        return String(decoding: try take(length), as: UTF8.self)
    }

    private mutating func skipBytes(_ n: Int) throws -> Int {
        guard n <= Self.maxStringBytes else { throw limit("byte string of \(n) bytes") }
        _ = try take(n)
        return n
    }

    /// A GLOBAL argument: one short ASCII line.
    private mutating func line() throws -> String {
        let start = p
        while p < bytes.count, bytes[p] != 0x0A {
            guard p - start < 256 else { throw limit("GLOBAL name longer than 256 bytes") }
            p += 1
        }
        guard p < bytes.count else { throw PickleError.truncated(offset: p) }
        defer { p += 1 }
        return String(decoding: bytes[start..<p], as: UTF8.self)
    }

    private func malformed(_ why: String) -> PickleError { .malformed(why, offset: opStart) }
    private func limit(_ what: String) -> PickleError { .limitExceeded(what, offset: opStart) }
}
