import AISLFDCore

public enum PickleError: Error, Equatable, CustomStringConvertible, Sendable {
    case truncated(offset: Int)
    case unsupportedOpcode(UInt8, offset: Int)
    case unsupportedProtocol(Int)
    /// A global outside what `torch.load(weights_only=True)` allows, such as `posix.system`.
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
            return "refused to load global '\(echoed(name))' at byte \(o): not among the globals torch.load(weights_only=True) allows (the file may try to run code)"
        case .malformed(let why, let o): return "malformed pickle at byte \(o): \(why)"
        case .limitExceeded(let what, let o): return "pickle exceeds a safety limit at byte \(o): \(what)"
        }
    }
}

/// The globals a checkpoint pickle may name: those `torch.load(weights_only=True)` allows by
/// default (torch/_weights_only_unpickler.py, `_get_allowed_globals`). None is ever called:
/// each stands for the plain data it would build. Anything else is refused.
enum PickleGlobal: Equatable, Hashable {
    // Containers and builtins.
    case orderedDict, counter, set, bytearray, codecsEncode, complex
    // torch value types.
    case size, device, layout, parameter
    /// `torch.float16` and the other dtypes (the name after `torch.`): a tensor's dtype in
    /// `_rebuild_tensor_v3`, or a plain value elsewhere.
    case dtype(String)
    /// Quantization schemes and tensor classes (`torch.FloatTensor`, `torch.Tensor`, ...):
    /// values only, such as the type argument of `_rebuild_from_type_v2`.
    case value(String)
    case rebuildTensorV2, rebuildTensor, rebuildTensorV3, rebuildParameter, rebuildParameterWithState,
         rebuildFromTypeV2, rebuildDeviceTensorFromCPUTensor
    /// Rebuild functions of tensors this reader does not materialise (quantized, sparse, meta,
    /// wrapper subclasses, numpy-backed): the name of the kind.
    case unsupportedTensor(String)
    /// `torch.FloatStorage`, `torch.cuda.HalfStorage`, `torch.storage.UntypedStorage` (bytes):
    /// the element type, or nil with its name for complex and quantized storages.
    case storageType(DType?, name: String)

    static func lookup(module rawModule: String, name: String) -> PickleGlobal? {
        // Protocol 2 names Python 3's builtins by their Python 2 module, as torch's unpickler maps them.
        let module = rawModule == "__builtin__" ? "builtins" : rawModule
        switch (module, name) {
        case ("collections", "OrderedDict"): return .orderedDict
        case ("collections", "Counter"): return .counter
        case ("builtins", "set"): return .set
        case ("builtins", "bytearray"): return .bytearray
        case ("builtins", "complex"): return .complex
        case ("_codecs", "encode"): return .codecsEncode
        case ("torch", "Size"): return .size
        case ("torch", "device"): return .device
        case ("torch.serialization", "_get_layout"): return .layout
        case ("torch.nn.parameter", "Parameter"): return .parameter
        case ("torch._utils", "_rebuild_tensor_v2"): return .rebuildTensorV2
        case ("torch._utils", "_rebuild_tensor"): return .rebuildTensor
        case ("torch._utils", "_rebuild_tensor_v3"): return .rebuildTensorV3
        case ("torch._utils", "_rebuild_parameter"): return .rebuildParameter
        case ("torch._utils", "_rebuild_parameter_with_state"): return .rebuildParameterWithState
        case ("torch._tensor", "_rebuild_from_type_v2"): return .rebuildFromTypeV2
        case ("torch._utils", "_rebuild_device_tensor_from_cpu_tensor"): return .rebuildDeviceTensorFromCPUTensor
        case ("torch._utils", "_rebuild_qtensor"): return .unsupportedTensor("a quantized tensor")
        case ("torch._utils", "_rebuild_sparse_tensor"): return .unsupportedTensor("a sparse tensor")
        case ("torch._utils", "_rebuild_meta_tensor_no_storage"): return .unsupportedTensor("a meta tensor (no data)")
        case ("torch._utils", "_rebuild_wrapper_subclass"): return .unsupportedTensor("a tensor subclass without data")
        case ("torch._utils", "_rebuild_device_tensor_from_numpy"): return .unsupportedTensor("a numpy-backed tensor")
        case ("torch.storage", "UntypedStorage"): return .storageType(.uint8, name: "UntypedStorage")
        case ("torch.storage", "TypedStorage"): return .storageType(nil, name: "TypedStorage")
        case ("torch", _) where name.hasSuffix("Storage"), ("torch.cuda", _) where name.hasSuffix("Storage"):
            guard let dtype = storageDTypes[String(name.dropLast("Storage".count))] else {
                return knownStorages.contains(name) ? .storageType(nil, name: name) : nil
            }
            return .storageType(dtype, name: name)
        case ("torch", _) where dtypeNames.contains(name): return .dtype(name)
        case ("torch", _) where qschemes.contains(name) || tensorClasses.contains(name): return .value("torch." + name)
        case ("torch.cuda", _) where tensorClasses.contains(name): return .value("torch.cuda." + name)
        case ("torch.sparse", _) where tensorClasses.contains(name), ("torch.cuda.sparse", _) where tensorClasses.contains(name):
            return .value(module + "." + name)
        default: return nil
        }
    }

    /// The storages whose elements this reader reads, by the name before `Storage`.
    static let storageDTypes: [String: DType] = [
        "Float": .float32, "Half": .float16, "Double": .float64, "BFloat16": .bfloat16, "Long": .int64, "Int": .int32,
        "Short": .int16, "Char": .int8, "Byte": .uint8, "Bool": .bool,
    ]
    /// Storages torch allows whose elements this reader does not read.
    static let knownStorages: Set<String> = [
        "ComplexFloatStorage", "ComplexDoubleStorage", "QInt8Storage", "QUInt8Storage", "QInt32Storage", "QUInt4x2Storage", "QUInt2x4Storage",
    ]
    /// torch's dtypes (`str(dtype)` without `torch.`), as weights_only allows them.
    static let dtypeNames: Set<String> = [
        "float16", "float32", "float64", "bfloat16", "complex32", "complex64", "complex128", "bcomplex32", "bool",
        "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
        "int1", "int2", "int3", "int4", "int5", "int6", "int7", "uint1", "uint2", "uint3", "uint4", "uint5", "uint6", "uint7",
        "qint8", "quint8", "qint32", "quint4x2", "quint2x4", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2",
        "float8_e4m3fn", "float8_e4m3fnuz", "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu", "float4_e2m1fn_x2",
    ]
    /// The dtypes a tensor of `_rebuild_tensor_v3` may have here.
    static let readableDTypes: [String: DType] = [
        "float16": .float16, "float32": .float32, "float64": .float64, "bfloat16": .bfloat16, "bool": .bool,
        "int8": .int8, "int16": .int16, "int32": .int32, "int64": .int64,
        "uint8": .uint8, "uint16": .uint16, "uint32": .uint32, "uint64": .uint64,
    ]
    static let qschemes: Set<String> = [
        "per_tensor_affine", "per_tensor_symmetric", "per_channel_affine", "per_channel_symmetric", "per_channel_affine_float_qparams",
    ]
    static let tensorClasses: Set<String> = [
        "Tensor", "FloatTensor", "DoubleTensor", "HalfTensor", "BFloat16Tensor", "ByteTensor", "CharTensor", "ShortTensor",
        "IntTensor", "LongTensor", "BoolTensor",
    ]
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
    /// A set or frozenset: its items live in the list arena.
    case set(Int)
    case dict(Int)
    case global(PickleGlobal)
    case storage(Int)
    case tensor(Int)
    /// A tensor of a kind this reader does not materialise (quantized, sparse, complex, ...): what it is.
    case unsupportedTensor(String)
    /// Plain data this reader has no use for (a device, a complex, a large integer, ...): what it is.
    case opaque(String)
}

/// `('storage', torch.FloatStorage, '0', 'cpu', 12)`: a storage saved as `data/<key>`
/// (the device string does not matter: the bytes are the same).
struct PickledStorage: Equatable {
    var key: String
    /// nil for storages whose elements are not read (complex, quantized): `typeName` says which.
    var dtype: DType?
    var typeName: String
    var elementCount: Int
}

/// The arguments of `_rebuild_tensor_v2`: a view of a storage, checked when materialised.
struct PickledTensor: Equatable {
    var storage: Int
    var offset: Int
    var shape: [Int]
    var strides: [Int]
    /// `_rebuild_tensor_v3`: the dtype the bytes of an untyped storage are read as (its name
    /// when this reader does not read it); nil: the storage's own.
    var dtype: DType? = nil
    var dtypeName: String? = nil
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
        case .set(let i): return .other("set", i)
        case .dict(let i): return .other("dict", i)
        case .global(let g): return .other("global \(g)", 0)
        case .storage(let i): return .other("storage", i)
        case .tensor(let i): return .other("tensor", i)
        case .unsupportedTensor(let what), .opaque(let what): return .other(what, 0)
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
            case 0x8F: try push(newList(set: true))  // EMPTY_SET
            case 0x90: try addItems(try popMark())  // ADDITEMS
            case 0x91: try push(newList(set: true, items: try popMark()))  // FROZENSET
            case 0x4E: try push(.none)  // NONE 'N'
            case 0x88: try push(.bool(true))  // NEWTRUE
            case 0x89: try push(.bool(false))  // NEWFALSE
            case 0x4A:  // BININT 'J'
                try push(.int(Int(Int32(bitPattern: UInt32(littleEndian: try fixed(4))))))
            case 0x4B: try push(.int(Int(try u8())))  // BININT1 'K'
            case 0x4D: try push(.int(Int(try fixed(2))))  // BININT2 'M'
            case 0x8A: try push(try long1())  // LONG1
            case 0x47:  // BINFLOAT 'G', big-endian
                let raw = try take(8)
                try push(.float(Double(bitPattern: raw.reduce(0) { $0 << 8 | UInt64($1) })))
            case 0x58: try push(.string(try text(length: Int(try fixed(4)))))  // BINUNICODE 'X'
            case 0x8C: try push(.string(try text(length: Int(try u8()))))  // SHORT_BINUNICODE
            case 0x8D: try push(.string(try text(length: try length8())))  // BINUNICODE8
            case 0x43: try push(.bytes(try skipBytes(Int(try u8()))))  // SHORT_BINBYTES 'C'
            case 0x55: try push(.bytes(try skipBytes(Int(try u8()))))  // SHORT_BINSTRING 'U' (Python 2 str)
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
            case 0x81:  // NEWOBJ: cls.__new__(cls, *args), which for containers ignores args
                let pair = try pop(2)
                try push(try construct(pair[0], arguments: pair[1]))
            case 0x62:  // BUILD 'b': state for an object already built
                _ = try popOne()
                switch top() {
                // OrderedDict `_metadata`, tensor and Parameter attributes, other plain data's state: not needed.
                case .dict?, .tensor?, .unsupportedTensor?, .opaque?, .set?: break
                default: throw malformed("BUILD on something other than a dict, tensor or allowed object")
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

    /// A list, or with `set` a set or frozenset (items in the same arena).
    private mutating func newList(set: Bool = false, items: [PickleValue] = []) throws -> PickleValue {
        let d = try nestedDepth(items)
        try tally(objects: 1, items: items.count)
        lists.append(items)
        listDepth.append(d)
        return set ? .set(lists.count - 1) : .list(lists.count - 1)
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
        case .list(let i), .set(let i): return listDepth[i]
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

    private mutating func addItems(_ items: [PickleValue]) throws {
        guard case .set(let i)? = top() else { throw malformed("ADDITEMS to something other than a set") }
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

    /// REDUCE: what an allowed callable would return, built as data; nothing runs.
    private mutating func call(_ callable: PickleValue, arguments: PickleValue) throws -> PickleValue {
        guard case .tuple(let t) = arguments else { throw malformed("call arguments are not a tuple") }
        let args = tuples[t]
        guard case .global(let g) = callable else { throw malformed("call of a value that is not a global") }
        switch g {
        case .orderedDict, .counter:
            // OrderedDict() then SETITEMS; Counter({...}); either may be given a dict or pairs.
            let d = try newDict()
            guard case .dict(let target) = d else { return d }
            if let first = args.first {
                switch first {
                case .dict(let source):
                    // A copy: counted again, so repeated copies of a large dict hit the item cap.
                    try tally(objects: 0, items: dicts[source].keys.count * 2)
                    dicts[target] = dicts[source]
                    dictDepth[target] = dictDepth[source]
                case .list(let l):
                    try tally(objects: 0, items: lists[l].count * 2)
                    for pair in lists[l] {
                        guard case .tuple(let p) = pair, tuples[p].count == 2 else { throw malformed("\(g) called with a list that is not of pairs") }
                        dicts[target].set(tuples[p][0], tuples[p][1])
                    }
                    dictDepth[target] = max(dictDepth[target], listDepth[l])
                default: throw malformed("\(g) called with something other than a dict or a list of pairs")
                }
            }
            return d
        case .set:
            guard let first = args.first else { return try newList(set: true) }
            guard case .list(let l) = first else { throw malformed("set called with something other than a list") }
            return try newList(set: true, items: lists[l])
        case .codecsEncode, .bytearray:
            // _codecs.encode(text, 'latin1') is how protocol 2 writes bytes; bytearray(bytes).
            switch args.first {
            case .string(let text)?: return .bytes(text.unicodeScalars.count)
            case .bytes(let n)?: return .bytes(n)
            case nil: return .bytes(0)
            default: throw malformed("\(g) called with something other than text or bytes")
            }
        case .complex: return .opaque("a complex number")
        case .device: return .opaque("a torch.device")
        case .layout: return .opaque("a torch layout")
        case .size:
            // torch.Size((2, 3)) is a tuple.
            guard args.count == 1, case .tuple = args[0] else { throw malformed("torch.Size called with something other than a tuple") }
            return args[0]
        case .parameter, .rebuildParameter, .rebuildParameterWithState, .rebuildDeviceTensorFromCPUTensor:
            // Parameter(data, requires_grad), _rebuild_parameter(data, requires_grad, hooks[, state]),
            // _rebuild_device_tensor_from_cpu_tensor(data, dtype, device, requires_grad): the data.
            switch args.first {
            case .tensor?, .unsupportedTensor?: return args[0]
            default: throw malformed("\(g) of something other than a tensor")
            }
        case .rebuildFromTypeV2:
            // (func, new_type, args, state): a tensor with Python attributes or of a subclass; the
            // type and attributes do not change its values.
            guard args.count == 4, case .global(let inner) = args[0], inner != .rebuildFromTypeV2, case .tuple = args[2] else {
                throw malformed("_rebuild_from_type_v2 arguments are not (func, type, args, state)")
            }
            return try call(args[0], arguments: args[2])
        case .rebuildTensorV2, .rebuildTensor, .rebuildTensorV3:
            let count = args.count
            let valid: Bool
            switch g {
            case .rebuildTensor: valid = count == 4
            case .rebuildTensorV2: valid = count == 6 || count == 7
            default: valid = count == 7 || count == 8
            }
            guard valid else { throw malformed("\(g) with \(count) arguments") }
            guard case .storage(let storage) = args[0], case .int(let offset) = args[1],
                  let shape = intTuple(args[2]), let strides = intTuple(args[3]) else {
                throw malformed("_rebuild_tensor arguments are not (storage, offset, size, stride, ...)")
            }
            guard shape.count <= Self.maxRank else { throw limit("tensor of rank \(shape.count)") }
            var tensor = PickledTensor(storage: storage, offset: offset, shape: shape, strides: strides)
            if g == .rebuildTensorV3 {
                guard case .global(.dtype(let name)) = args[6] else { throw malformed("_rebuild_tensor_v3 without a dtype") }
                tensor.dtype = PickleGlobal.readableDTypes[name]
                tensor.dtypeName = name
            }
            try tally(objects: 1, items: 0)
            tensors.append(tensor)
            return .tensor(tensors.count - 1)
        case .unsupportedTensor(let what):
            return .unsupportedTensor(what)
        case .value(let name):
            // Calling a tensor class builds a tensor from Python data (legacy); nothing a state_dict holds.
            return .opaque("a \(name) built from Python data")
        case .dtype, .storageType:
            throw malformed("\(g) cannot be called")
        }
    }

    /// NEWOBJ: `cls.__new__(cls, *args)`. Containers come out empty (their items follow);
    /// Parameter and torch.Size take their arguments.
    private mutating func construct(_ cls: PickleValue, arguments: PickleValue) throws -> PickleValue {
        switch cls {
        case .global(.orderedDict), .global(.counter): return try newDict()
        case .global(.set): return try newList(set: true)
        case .global(.parameter), .global(.size), .global(.complex), .global(.device), .global(.bytearray):
            return try call(cls, arguments: arguments)
        default: throw malformed("NEWOBJ of something other than an allowed class")
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
              case .string("storage") = tuples[t][0], case .global(.storageType(let dtype, let typeName)) = tuples[t][1],
              case .string(let key) = tuples[t][2], case .string = tuples[t][3],
              case .int(let count) = tuples[t][4], count >= 0 else {
            throw malformed("persistent id is not ('storage', type, key, location, size)")
        }
        try tally(objects: 1, items: 0)
        storages.append(PickledStorage(key: key, dtype: dtype, typeName: typeName, elementCount: count))
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

    /// LONG1: a little-endian two's-complement integer; one wider than 8 bytes is kept as opaque data.
    private mutating func long1() throws -> PickleValue {
        let n = Int(try u8())
        let raw = try take(n)
        guard n <= 8 else { return .opaque("an integer of \(n) bytes") }
        guard n > 0 else { return .int(0) }
        var v: UInt64 = 0
        for (i, b) in raw.enumerated() { v |= UInt64(b) << (8 * UInt64(i)) }
        if n < 8, let last = raw.last, last & 0x80 != 0 { v |= ~0 << (8 * UInt64(n)) }  // sign-extend
        return .int(Int(Int64(bitPattern: v)))
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
