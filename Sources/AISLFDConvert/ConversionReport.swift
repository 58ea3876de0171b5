import Foundation
import AISLFDCore
import AISLFDFormat

/// A signal-to-noise ratio in dB; infinity means exact. JSON: a number, or "inf".
public struct Decibels: Codable, Equatable, Sendable, CustomStringConvertible {
    public var value: Double

    public init(_ value: Double) { self.value = value }
    public init(signal: Double, noise: Double) { self.value = decibels(signal: signal, noise: noise) }

    public var isExact: Bool { value == .infinity }
    public var description: String { formatDecibels(value) }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if let text = try? c.decode(String.self) {
            switch text {
            case "inf": value = .infinity
            case "-inf": value = -.infinity
            default: throw DecodingError.dataCorruptedError(in: c, debugDescription: "\"\(text)\" is not a number of dB")
            }
        } else {
            value = try c.decode(Double.self)
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        if value.isFinite { try c.encode(value) } else { try c.encode(value > 0 ? "inf" : "-inf") }
    }
}

/// What a conversion did and cost: per stored tensor its storage, bytes and error against
/// its fp32 value after folding, and totals against the source.
public struct ConversionReport: Codable, Equatable, Sendable {
    public struct Tensor: Codable, Equatable, Sendable {
        public var key: String
        public var role: String
        public var shape: [Int]
        /// fp32, fp16 or int8.
        public var storage: String
        /// Data bytes plus, for int8, the scales.
        public var bytes: Int
        /// Against the fp32 value after folding; "inf" when stored exactly.
        public var sqnr: Decibels
        public var maxAbsError: Double
        /// fp16: values whose rounding overflowed and were clamped to +-65504.
        public var fp16Overflow: Int
        /// fp16: nonzero values that became zero.
        public var fp16FlushedToZero: Int
        /// The keep pattern that held the tensor at fp32.
        public var keptBy: String?
        /// int8: "gptq" or "nearest".
        public var rounding: String?
        /// Mean output error (1 - cos over the output maps' positions) on the calibration
        /// images with this tensor alone at the asked precision; nil when not measured.
        public var sensitivity: Double?
        /// Why it is stored wider than the asked precision, when MixedPrecision promoted it.
        public var promotion: String?
    }

    /// One layer ChooseInt8Compute tried: its weights, whether it computes in int8, its share
    /// of the network's multiply-adds (the deterministic stand-in for its share of run time),
    /// its own output SQNR in int8 arithmetic, and the producer that equalized its input.
    public struct Int8Layer: Codable, Equatable, Sendable {
        public var weights: [String]
        /// "int8" or "fp32".
        public var compute: String
        public var shareOfMultiplyAdds: Double
        public var outputSQNR: Decibels?
        public var inputEqualizedBy: String?
    }

    public struct Totals: Codable, Equatable, Sendable {
        public var sourceTensors: Int
        public var sourceValues: Int
        /// Every source value as fp32 (4 bytes each), the spec's "fp32 payload".
        public var sourcePayloadBytes: Int
        public var storedTensors: Int
        public var storedValues: Int
        /// Tensor data and scales in the output.
        public var storedPayloadBytes: Int
        /// The whole .aisw file: header, metadata, table, padding and data.
        public var outputBytes: Int
        /// outputBytes / sourcePayloadBytes.
        public var ratio: Double
        /// Over every stored value.
        public var sqnr: Decibels
        /// Over the quantized tensors only ("inf" when there are none).
        public var quantizedSQNR: Decibels
        public var lowestSQNR: Decibels
        public var lowestSQNRTensor: String?
        /// Stored tensors per storage.
        public var tensorsByStorage: [String: Int]
        public var fp16Overflow: Int
        public var fp16FlushedToZero: Int
        /// The size budget in force (fraction of the source fp32 payload), when promotions ran.
        public var sizeBudget: Double?
    }

    public var architecture: String
    public var precision: String
    public var fold: Bool
    public var clamp: Bool
    public var keep: [String]
    /// Pass names in the order they ran.
    public var passes: [String]
    public var folds: [AISWMetadata.Fold]
    public var tensors: [Tensor]
    public var totals: Totals
    /// int8 with calibration: the layers ChooseInt8Compute tried, largest first; nil otherwise.
    public var int8Layers: [Int8Layer]?
    public var notes: [String]

    /// The `--json` document: pretty-printed, keys sorted.
    public func jsonText() throws -> String { try prettyJSON(self) }

    /// A table of the stored tensors, then the totals (`--verbose`).
    public var humanReadable: String {
        var lines = headerLines
        let keyWidth = max(3, tensors.map(\.key.count).max() ?? 0)
        let pad = leftAligned, padLeft = rightAligned
        lines.append(pad("key", keyWidth) + "  storage  " + pad("shape", 16) + padLeft("bytes", 11) + padLeft("SQNR dB", 10) + padLeft("max abs err", 13)
                     + padLeft("rounding", 10) + padLeft("sensitivity", 13))
        for t in tensors {
            var line = pad(t.key, keyWidth) + "  " + pad(t.storage, 7) + "  " + pad(shapeText(t.shape), 16)
                + padLeft(grouped(t.bytes), 11) + padLeft(t.sqnr.description, 10) + padLeft(formatError(t.maxAbsError), 13)
                + padLeft(t.rounding ?? "-", 10) + padLeft(t.sensitivity.map(formatError) ?? "-", 13)
            if let p = t.promotion { line += "  " + p }
            if t.fp16Overflow > 0 { line += "  \(t.fp16Overflow) clamped" }
            if t.fp16FlushedToZero > 0 { line += "  \(t.fp16FlushedToZero) flushed to zero" }
            if let p = t.keptBy { line += "  kept by \"\(p)\"" }
            lines.append(line)
        }
        if let layers = int8Layers, !layers.isEmpty {
            lines.append("arithmetic   share of MACs  output SQNR dB  layer (input equalized by)")
            for l in layers {
                lines.append(pad(l.compute, 13) + padLeft(String(format: "%.1f%%", l.shareOfMultiplyAdds * 100), 13)
                             + padLeft(l.outputSQNR?.description ?? "-", 16) + "  " + l.weights.joined(separator: ", ")
                             + (l.inputEqualizedBy.map { " (\($0))" } ?? ""))
            }
        }
        return (lines + totalLines).joined(separator: "\n")
    }

    /// What was made, its size and what rounding cost, in a few lines (the default report).
    public var summary: String {
        var lines = headerLines + totalLines
        let rounded = Dictionary(grouping: tensors.compactMap(\.rounding), by: { $0 }).map { "\($0.value.count) \($0.key)" }.sorted()
        if !rounded.isEmpty { lines.insert("int8 rounding: " + rounded.joined(separator: ", "), at: headerLines.count) }
        let promoted = tensors.filter { $0.promotion != nil }.count
        if promoted > 0 { lines.insert("promoted to a wider storage: \(promoted) tensors", at: headerLines.count) }
        if let line = int8ArithmeticLine { lines.insert(line, at: headerLines.count) }
        return lines.joined(separator: "\n")
    }

    /// How much computes in int8, in one line (nil unless ChooseInt8Compute ran).
    private var int8ArithmeticLine: String? {
        guard let layers = int8Layers else { return nil }
        let int8 = layers.filter { $0.compute == "int8" }
        let share = int8.reduce(0) { $0 + $1.shareOfMultiplyAdds }
        let equalized = int8.filter { $0.inputEqualizedBy != nil }.count
        return "int8 arithmetic: \(int8.count) of \(layers.count) layers tried, " + String(format: "%.1f%%", share * 100)
            + " of the multiply-adds (\(equalized) with their input equalized; --verbose lists them)"
    }

    private var headerLines: [String] {
        var lines: [String] = []
        lines.append("\(architecture) -> \(precision)\(fold ? ", BatchNorms folded" : ", not folded")"
                     + "\(clamp ? ", fp16 clamping on" : "")\(keep.isEmpty ? "" : ", kept at fp32: " + keep.joined(separator: " "))")
        lines.append("passes: " + passes.joined(separator: ", "))
        if !folds.isEmpty {
            let kinds = Dictionary(grouping: folds, by: \.kind).map { "\($0.value.count) \($0.key)" }.sorted()
            lines.append("folds: " + kinds.joined(separator: ", "))
        }
        return lines
    }

    private var totalLines: [String] {
        var lines: [String] = []
        let s = totals
        let storages = s.tensorsByStorage.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        lines.append("tensors: \(s.sourceTensors) in the source, \(s.storedTensors) stored (\(storages))")
        lines.append("size: source fp32 payload \(grouped(s.sourcePayloadBytes)) bytes, output \(grouped(s.outputBytes)) bytes"
                     + " (" + String(format: "%.1f", s.ratio * 100) + "%)"
                     + (s.sizeBudget.map { ", budget " + String(format: "%.1f", $0 * 100) + "%" } ?? ""))
        if s.tensorsByStorage.keys.allSatisfy({ $0 == "fp32" }) && s.sqnr.isExact {
            lines.append("values: every stored value is exact (fp32)")
        } else {
            var quality = "SQNR: all stored values \(s.sqnr) dB, quantized weights \(s.quantizedSQNR) dB"
            if let k = s.lowestSQNRTensor { quality += ", lowest \(s.lowestSQNR) dB (\(k))" }
            lines.append(quality)
        }
        if s.fp16Overflow > 0 { lines.append("fp16: \(s.fp16Overflow) values clamped to +-65504") }
        if s.fp16FlushedToZero > 0 { lines.append("fp16: \(s.fp16FlushedToZero) nonzero values flushed to zero") }
        lines += notes.map { "note: " + $0 }
        return lines
    }
}

/// "inf" or one decimal.
func formatDecibels(_ db: Double) -> String {
    db.isFinite ? String(format: "%.1f", db) : (db > 0 ? "inf" : "-inf")
}

func formatError(_ e: Double) -> String { e == 0 ? "0" : String(format: "%.2e", e) }
