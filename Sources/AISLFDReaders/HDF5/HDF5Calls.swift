import CHDF5

// Every call into libhdf5 lives in this file. Each wrapper turns a negative
// status into `HDF5CallFailure` carrying libhdf5's own innermost message, so the
// reader can name the dataset and the problem. Callers close every handle they
// get from here with `defer { HDF5Calls.close...(id) }`.
//
// Written against the libhdf5 1.10 API (Debian bookworm's libhdf5-dev): in 1.12
// and later `H5Lget_info_by_idx` and `H5Oget_info2` are versioned macros that
// Swift cannot see, so a newer library needs the `...2`/`...3` spellings here.

/// A libhdf5 call that failed, with the library's description of why.
struct HDF5CallFailure: Error {
    let call: String
    let detail: String

    var description: String { detail.isEmpty ? "\(call) failed" : "\(call) failed: \(detail)" }
}

/// An open libhdf5 handle (file, group, dataset, datatype, dataspace, attribute, property list).
typealias HDF5ID = hid_t

enum HDF5Calls {
    // Values of macros that Swift does not import (casts or H5OPEN in their definitions).
    static let defaultList: hid_t = 0  // H5P_DEFAULT
    static let allSelection: hid_t = 0  // H5S_ALL
    static let defaultErrorStack: hid_t = 0  // H5E_DEFAULT
    static let readOnly: UInt32 = 0  // H5F_ACC_RDONLY
    static let variableSize = -1  // H5T_VARIABLE: (size_t)-1, and Swift sees size_t as Int
    static let creationOrderIndexed: UInt32 = 0x0002  // H5P_CRT_ORDER_INDEXED

    /// Initialises the library and silences its automatic error printing. In a
    /// thread-safe build the error-printing switch is per thread, so this runs
    /// at the start of every read on the reading thread.
    static func prepareThread() throws {
        guard H5open() >= 0 else { throw HDF5CallFailure(call: "H5open", detail: "") }
        _ = H5Eset_auto2(defaultErrorStack, nil, nil)
        _ = H5Eclear2(defaultErrorStack)
    }

    /// The innermost message on libhdf5's error stack (the most specific one), then clears it.
    private static func takeErrorDetail() -> String {
        var detail = ""
        _ = withUnsafeMutablePointer(to: &detail) { context in
            H5Ewalk2(defaultErrorStack, H5E_WALK_UPWARD, { n, entry, context in
                guard n == 0, let entry, let text = entry.pointee.desc, let context else { return 0 }
                context.assumingMemoryBound(to: String.self).pointee = String(cString: text)
                return 0
            }, context)
        }
        _ = H5Eclear2(defaultErrorStack)
        return detail
    }

    private static func failure(_ call: String) -> HDF5CallFailure {
        HDF5CallFailure(call: call, detail: takeErrorDetail())
    }

    private static func check(_ status: herr_t, _ call: String) throws {
        if status < 0 { throw failure(call) }
    }

    private static func checkID(_ id: hid_t, _ call: String) throws -> hid_t {
        if id < 0 { throw failure(call) }
        return id
    }

    private static func checkTri(_ value: htri_t, _ call: String) throws -> Bool {
        if value < 0 { throw failure(call) }
        return value > 0
    }

    // MARK: Files, groups, objects

    /// Opens a file read-only without file locking: the reader never writes, and
    /// locking fails on file systems that do not support it.
    static func openFile(_ path: String) throws -> hid_t {
        let access = try checkID(H5Pcreate(H5P_CLS_FILE_ACCESS_ID_g), "H5Pcreate")
        defer { closeList(access) }
        try check(H5Pset_file_locking(access, false, true), "H5Pset_file_locking")
        return try checkID(H5Fopen(path, readOnly, access), "H5Fopen")
    }

    static func closeFile(_ id: hid_t) { _ = H5Fclose(id) }

    static func openRootGroup(_ file: hid_t) throws -> hid_t {
        try checkID(H5Gopen2(file, "/", defaultList), "H5Gopen2")
    }

    static func closeGroup(_ id: hid_t) { _ = H5Gclose(id) }

    static func linkCount(_ group: hid_t) throws -> UInt64 {
        var info = H5G_info_t()
        try check(H5Gget_info(group, &info), "H5Gget_info")
        return info.nlinks
    }

    /// True when the group keeps an index of its links' creation order (h5py's `track_order=True`).
    static func tracksCreationOrder(_ group: hid_t) throws -> Bool {
        let plist = try checkID(H5Gget_create_plist(group), "H5Gget_create_plist")
        defer { closeList(plist) }
        var flags: UInt32 = 0
        try check(H5Pget_link_creation_order(plist, &flags), "H5Pget_link_creation_order")
        return flags & creationOrderIndexed != 0
    }

    private static func linkIndex(_ creationOrder: Bool) -> H5_index_t {
        creationOrder ? H5_INDEX_CRT_ORDER : H5_INDEX_NAME
    }

    static func linkName(_ group: hid_t, creationOrder: Bool, position: UInt64, maxLength: Int) throws -> String {
        let length = H5Lget_name_by_idx(group, ".", linkIndex(creationOrder), H5_ITER_INC, position, nil, 0, defaultList)
        if length < 0 { throw failure("H5Lget_name_by_idx") }
        guard length <= maxLength else {
            throw HDF5CallFailure(call: "H5Lget_name_by_idx", detail: "link name of \(length) bytes is longer than \(maxLength)")
        }
        var buffer = [CChar](repeating: 0, count: length + 1)
        if H5Lget_name_by_idx(group, ".", linkIndex(creationOrder), H5_ITER_INC, position, &buffer, buffer.count, defaultList) < 0 {
            throw failure("H5Lget_name_by_idx")
        }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    enum LinkTarget {
        case hard(address: UInt64)
        case soft
        case external
        case other
    }

    static func linkTarget(_ group: hid_t, creationOrder: Bool, position: UInt64) throws -> LinkTarget {
        var info = H5L_info_t()
        try check(H5Lget_info_by_idx(group, ".", linkIndex(creationOrder), H5_ITER_INC, position, &info, defaultList), "H5Lget_info_by_idx")
        switch info.type {
        case H5L_TYPE_HARD: return .hard(address: UInt64(info.u.address))
        case H5L_TYPE_SOFT: return .soft
        case H5L_TYPE_EXTERNAL: return .external
        default: return .other
        }
    }

    /// Opens the object a link points to by its position, so no name is resolved.
    static func openObject(_ group: hid_t, creationOrder: Bool, position: UInt64) throws -> hid_t {
        try checkID(H5Oopen_by_idx(group, ".", linkIndex(creationOrder), H5_ITER_INC, position, defaultList), "H5Oopen_by_idx")
    }

    /// The object's header address: two links with the same address lead to the same object.
    static func objectAddress(_ object: hid_t) throws -> UInt64 {
        var info = H5O_info_t()
        try check(H5Oget_info2(object, &info, UInt32(H5O_INFO_BASIC)), "H5Oget_info2")
        return UInt64(info.addr)
    }

    static func closeObject(_ id: hid_t) { _ = H5Oclose(id) }

    enum ObjectKind { case group, dataset, namedDatatype, other }

    static func kind(_ object: hid_t) -> ObjectKind {
        switch H5Iget_type(object) {
        case H5I_GROUP: return .group
        case H5I_DATASET: return .dataset
        case H5I_DATATYPE: return .namedDatatype
        default: return .other
        }
    }

    // MARK: Datasets

    static func datasetType(_ dataset: hid_t) throws -> hid_t { try checkID(H5Dget_type(dataset), "H5Dget_type") }
    static func datasetSpace(_ dataset: hid_t) throws -> hid_t { try checkID(H5Dget_space(dataset), "H5Dget_space") }
    static func datasetCreationList(_ dataset: hid_t) throws -> hid_t {
        try checkID(H5Dget_create_plist(dataset), "H5Dget_create_plist")
    }

    enum Layout { case compact, contiguous, chunked, virtual, other }

    static func layout(_ creationList: hid_t) throws -> Layout {
        switch H5Pget_layout(creationList) {
        case H5D_COMPACT: return .compact
        case H5D_CONTIGUOUS: return .contiguous
        case H5D_CHUNKED: return .chunked
        case H5D_VIRTUAL: return .virtual
        case H5D_LAYOUT_ERROR: throw failure("H5Pget_layout")
        default: return .other
        }
    }

    static func externalFileCount(_ creationList: hid_t) throws -> Int {
        let n = H5Pget_external_count(creationList)
        if n < 0 { throw failure("H5Pget_external_count") }
        return Int(n)
    }

    /// Bytes the dataset occupies in the file (0 when never written).
    static func storageSize(_ dataset: hid_t) -> UInt64 {
        UInt64(H5Dget_storage_size(dataset))
    }

    static func chunkShape(_ creationList: hid_t) throws -> [UInt64] {
        var dims = [hsize_t](repeating: 0, count: 32)
        let rank = H5Pget_chunk(creationList, Int32(dims.count), &dims)
        if rank < 0 { throw failure("H5Pget_chunk") }
        return Array(dims.prefix(Int(min(rank, 32))))
    }

    /// The filters of a chunked dataset's pipeline that this libhdf5 cannot run: each filter's
    /// id and the name the file gives it.
    static func unavailableFilters(_ creationList: hid_t) throws -> [(id: Int32, name: String)] {
        let count = H5Pget_nfilters(creationList)
        if count < 0 { throw failure("H5Pget_nfilters") }
        var missing: [(id: Int32, name: String)] = []
        for index in 0..<UInt32(count) {
            var flags: UInt32 = 0
            var valueCount = 0
            var name = [CChar](repeating: 0, count: 64)
            var config: UInt32 = 0
            let id = H5Pget_filter2(creationList, index, &flags, &valueCount, nil, name.count, &name, &config)
            if id < 0 { throw failure("H5Pget_filter2") }
            let available = H5Zfilter_avail(id)
            if available < 0 { throw failure("H5Zfilter_avail") }
            if available == 0 {
                let text = String(decoding: name.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
                missing.append((id, text))
            }
        }
        return missing
    }

    /// Reads the whole dataset in its stored type (no conversion by libhdf5), so
    /// the bytes are exactly the file's; byte order is fixed by the caller.
    static func readRaw(_ dataset: hid_t, type: hid_t, into buffer: UnsafeMutableRawBufferPointer) throws {
        try check(H5Dread(dataset, type, allSelection, allSelection, defaultList, buffer.baseAddress), "H5Dread")
    }


    // MARK: Dataspaces

    enum SpaceKind { case scalar, simple, null }

    static func spaceKind(_ space: hid_t) throws -> SpaceKind {
        switch H5Sget_simple_extent_type(space) {
        case H5S_SCALAR: return .scalar
        case H5S_SIMPLE: return .simple
        case H5S_NULL: return .null
        default: throw failure("H5Sget_simple_extent_type")
        }
    }

    static func dimensions(_ space: hid_t) throws -> [UInt64] {
        let rank = H5Sget_simple_extent_ndims(space)
        if rank < 0 { throw failure("H5Sget_simple_extent_ndims") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        if rank > 0, H5Sget_simple_extent_dims(space, &dims, nil) < 0 { throw failure("H5Sget_simple_extent_dims") }
        return dims
    }

    /// The largest extent of each dimension; `UInt64.max` (H5S_UNLIMITED) for an unlimited one.
    static func maxDimensions(_ space: hid_t) throws -> [UInt64] {
        let rank = H5Sget_simple_extent_ndims(space)
        if rank < 0 { throw failure("H5Sget_simple_extent_ndims") }
        var dims = [hsize_t](repeating: 0, count: Int(rank))
        if rank > 0, H5Sget_simple_extent_dims(space, nil, &dims) < 0 { throw failure("H5Sget_simple_extent_dims") }
        return dims
    }

    static func closeSpace(_ id: hid_t) { _ = H5Sclose(id) }

    // MARK: Datatypes

    enum TypeClass { case integer, float, string, compound, enumeration, variableLength, array, opaque, bitfield, reference, time, other }

    static func typeClass(_ type: hid_t) throws -> TypeClass {
        switch H5Tget_class(type) {
        case H5T_INTEGER: return .integer
        case H5T_FLOAT: return .float
        case H5T_STRING: return .string
        case H5T_COMPOUND: return .compound
        case H5T_ENUM: return .enumeration
        case H5T_VLEN: return .variableLength
        case H5T_ARRAY: return .array
        case H5T_OPAQUE: return .opaque
        case H5T_BITFIELD: return .bitfield
        case H5T_REFERENCE: return .reference
        case H5T_TIME: return .time
        case H5T_NO_CLASS: throw failure("H5Tget_class")
        default: return .other
        }
    }

    static func size(_ type: hid_t) throws -> Int {
        let n = H5Tget_size(type)
        if n == 0 { throw failure("H5Tget_size") }
        return n
    }

    enum ByteOrder { case little, big, none, other }

    static func byteOrder(_ type: hid_t) throws -> ByteOrder {
        switch H5Tget_order(type) {
        case H5T_ORDER_LE: return .little
        case H5T_ORDER_BE: return .big
        case H5T_ORDER_NONE: return .none
        case H5T_ORDER_ERROR: throw failure("H5Tget_order")
        default: return .other
        }
    }

    static func isSigned(_ type: hid_t) throws -> Bool {
        switch H5Tget_sign(type) {
        case H5T_SGN_2: return true
        case H5T_SGN_NONE: return false
        default: throw failure("H5Tget_sign")
        }
    }

    /// Significant bits and their offset: both tell whether a type has padding bits.
    static func precisionAndOffset(_ type: hid_t) throws -> (precision: Int, offset: Int) {
        let precision = H5Tget_precision(type)
        if precision == 0 { throw failure("H5Tget_precision") }
        let offset = H5Tget_offset(type)
        if offset < 0 { throw failure("H5Tget_offset") }
        return (precision, Int(offset))
    }

    /// A floating-point type's bit layout, to tell IEEE binary16/32/64 and bfloat16 from other formats.
    struct FloatLayout: Equatable {
        var signBit: Int, exponentBit: Int, exponentBits: Int, mantissaBit: Int, mantissaBits: Int, exponentBias: Int
        var normalisation: Bool  // true when the leading mantissa bit is implied (IEEE)
    }

    static func floatLayout(_ type: hid_t) throws -> FloatLayout {
        var spos = 0, epos = 0, esize = 0, mpos = 0, msize = 0
        try check(H5Tget_fields(type, &spos, &epos, &esize, &mpos, &msize), "H5Tget_fields")
        let bias = H5Tget_ebias(type)
        if bias == 0 { throw failure("H5Tget_ebias") }
        let norm = H5Tget_norm(type)
        if norm == H5T_NORM_ERROR { throw failure("H5Tget_norm") }
        return FloatLayout(signBit: spos, exponentBit: epos, exponentBits: esize, mantissaBit: mpos,
                           mantissaBits: msize, exponentBias: bias, normalisation: norm == H5T_NORM_IMPLIED)
    }

    static func baseType(_ type: hid_t) throws -> hid_t { try checkID(H5Tget_super(type), "H5Tget_super") }

    static func memberCount(_ type: hid_t) throws -> Int {
        let n = H5Tget_nmembers(type)
        if n < 0 { throw failure("H5Tget_nmembers") }
        return Int(n)
    }

    static func enumMemberName(_ type: hid_t, _ index: Int) throws -> String {
        guard let name = H5Tget_member_name(type, UInt32(index)) else { throw failure("H5Tget_member_name") }
        defer { _ = H5free_memory(name) }
        return String(cString: name)
    }

    /// The value of an enum member whose base type is one byte wide.
    static func enumMemberByte(_ type: hid_t, _ index: Int) throws -> Int8 {
        var value: Int8 = 0
        try check(H5Tget_member_value(type, UInt32(index), &value), "H5Tget_member_value")
        return value
    }

    static func isVariableString(_ type: hid_t) throws -> Bool {
        try checkTri(H5Tis_variable_str(type), "H5Tis_variable_str")
    }

    static func isVariableString(attribute: hid_t) throws -> Bool {
        let type = try attributeType(attribute)
        defer { closeType(type) }
        return try typeClass(type) == .string && isVariableString(type)
    }

    static func closeType(_ id: hid_t) { _ = H5Tclose(id) }

    // MARK: Attributes

    static func attributeCount(_ object: hid_t) throws -> UInt64 {
        var info = H5O_info_t()
        try check(H5Oget_info2(object, &info, UInt32(H5O_INFO_NUM_ATTRS)), "H5Oget_info2")
        return info.num_attrs
    }

    /// Decodes every attribute message of the object once, one at a time, by
    /// looking for a name no attribute has. libhdf5 1.10's by-index attribute
    /// access builds a table of all attributes and crashes when it releases a
    /// partly built one (a message that fails to decode); this walk fails cleanly instead.
    static func checkAttributesDecode(_ object: hid_t) throws {
        if H5Aexists_by_name(object, ".", "\u{1}aislfd-no-such-attribute", defaultList) < 0 { throw failure("H5Aexists_by_name") }
    }

    static func openAttribute(_ object: hid_t, position: UInt64) throws -> hid_t {
        try checkID(H5Aopen_by_idx(object, ".", H5_INDEX_NAME, H5_ITER_INC, position, defaultList, defaultList), "H5Aopen_by_idx")
    }

    static func attributeName(_ attribute: hid_t, maxLength: Int) throws -> String {
        let length = H5Aget_name(attribute, 0, nil)
        if length < 0 { throw failure("H5Aget_name") }
        guard length <= maxLength else {
            throw HDF5CallFailure(call: "H5Aget_name", detail: "attribute name of \(length) bytes is longer than \(maxLength)")
        }
        var buffer = [CChar](repeating: 0, count: length + 1)
        if H5Aget_name(attribute, buffer.count, &buffer) < 0 { throw failure("H5Aget_name") }
        return String(decoding: buffer.prefix(length).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func attributeType(_ attribute: hid_t) throws -> hid_t { try checkID(H5Aget_type(attribute), "H5Aget_type") }
    static func attributeSpace(_ attribute: hid_t) throws -> hid_t { try checkID(H5Aget_space(attribute), "H5Aget_space") }

    static func elementCount(_ space: hid_t) throws -> Int {
        let n = H5Sget_simple_extent_npoints(space)
        if n < 0 { throw failure("H5Sget_simple_extent_npoints") }
        return Int(n)
    }

    /// Reads `count` numbers converted by libhdf5 to Int64, UInt64, Float or Double.
    static func readAttribute<T>(_ attribute: hid_t, count: Int, as: T.Type) throws -> [T] where T: Numeric {
        let memoryType: hid_t
        switch T.self {
        case is Int64.Type: memoryType = H5T_NATIVE_LLONG_g
        case is UInt64.Type: memoryType = H5T_NATIVE_ULLONG_g
        case is Float.Type: memoryType = H5T_NATIVE_FLOAT_g
        default: memoryType = H5T_NATIVE_DOUBLE_g
        }
        var values = [T](repeating: 0, count: count)
        try values.withUnsafeMutableBytes { raw in
            try check(H5Aread(attribute, memoryType, raw.baseAddress), "H5Aread")
        }
        return values
    }

    /// Reads an attribute's bytes in its stored type (fixed-length strings, one-byte enums).
    static func readAttributeRaw(_ attribute: hid_t, type: hid_t, byteCount: Int) throws -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: byteCount)
        try bytes.withUnsafeMutableBytes { raw in
            try check(H5Aread(attribute, type, raw.baseAddress), "H5Aread")
        }
        return bytes
    }

    /// Reads a scalar variable-length string attribute (h5py's `str` attributes).
    static func readVariableString(_ attribute: hid_t, fileType: hid_t) throws -> String {
        let memoryType = try checkID(H5Tcopy(H5T_C_S1_g), "H5Tcopy")
        defer { closeType(memoryType) }
        try check(H5Tset_size(memoryType, variableSize), "H5Tset_size")
        try check(H5Tset_cset(memoryType, H5Tget_cset(fileType)), "H5Tset_cset")
        var pointer: UnsafeMutablePointer<CChar>? = nil
        try check(H5Aread(attribute, memoryType, &pointer), "H5Aread")
        guard let pointer else { return "" }
        defer { _ = H5free_memory(pointer) }
        return String(cString: pointer)
    }

    static func closeAttribute(_ id: hid_t) { _ = H5Aclose(id) }

    static func closeList(_ id: hid_t) { _ = H5Pclose(id) }
}
