/// Element types a weights file may hold. Raw values are the names used in
/// reports, schemas and the .aisw format.
public enum DType: String, CaseIterable, Codable, Sendable {
    case float16, bfloat16, float32, float64
    case int8, int16, int32, int64
    case uint8, uint16, uint32, uint64
    case bool

    public var byteSize: Int {
        switch self {
        case .bool, .int8, .uint8: return 1
        case .float16, .bfloat16, .int16, .uint16: return 2
        case .float32, .int32, .uint32: return 4
        case .float64, .int64, .uint64: return 8
        }
    }

    public var isFloatingPoint: Bool {
        switch self {
        case .float16, .bfloat16, .float32, .float64: return true
        default: return false
        }
    }

    public var isInteger: Bool { !isFloatingPoint && self != .bool }
}
