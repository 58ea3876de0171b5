import AISLFDCore
import Foundation

extension VerificationReport {
    /// One line per output (and per layer with --per-layer), then a verdict.
    public var humanReadable: String {
        var lines = ["model: \(model) (\(architecture), \(precision)\(folded ? ", folded" : ""))", "reference: \(reference)"]
        lines.append(Self.header)
        lines += outputs.map(Self.row)
        for name in missing { lines.append("\(name): in the reference, not produced by the model  FAIL") }
        if let layers {
            lines.append("per layer:")
            lines += layers.map(Self.row)
            if let skipped = layersNotComputed, !skipped.isEmpty {
                lines.append("not computed by this model (folded away): " + skipped.joined(separator: ", "))
            }
            lines.append(firstLayerOutOfTolerance.map { "first layer out of tolerance: \($0)" } ?? "every layer within tolerance")
        }
        let failed = outputs.filter { !$0.pass }.map(\.name) + missing
        lines.append(pass ? "PASS: \(outputs.count) outputs within \(precision) tolerance"
                          : "FAIL: \(failed.count) of \(outputs.count + missing.count) outputs out of \(precision) tolerance: \(failed.joined(separator: ", "))")
        return lines.joined(separator: "\n")
    }

    static let nameWidth = 36

    static var header: String {
        pad("output", nameWidth) + pad("max abs err", 13) + pad("mean abs err", 13) + pad("rel max err", 13)
            + pad("cosine", 12) + pad("min cosine", 12) + pad("NN agree", 10) + "result"
    }

    static func row(_ c: ArrayComparison) -> String {
        let verdict = c.criterion == nil ? "reported" : (c.pass ? "ok" : "FAIL")
        return pad(c.name, nameWidth) + pad(sci(c.maxAbsError), 13) + pad(sci(c.meanAbsError), 13) + pad(sci(c.relativeMaxError), 13)
            + pad(fixed(c.cosine), 12) + pad(fixed(c.minCosine), 12) + pad(c.nearestNeighbourAgreement.map { String(format: "%.4f", $0) } ?? "-", 10)
            + verdict + (c.criterion.map { " (\($0))" } ?? "")
    }

    /// A cell of `n` columns that always keeps one space before the next.
    static func pad(_ s: String, _ n: Int) -> String { leftAligned(s, n - 1) + " " }
    static func sci(_ x: Double) -> String { x.isFinite ? String(format: "%.3e", x) : "\(x)" }
    static func fixed(_ x: Double) -> String { String(format: "%.7f", x) }
}
