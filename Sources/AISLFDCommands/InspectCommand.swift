import AISLFDCore
import AISLFDFormat
import AISLFDInputs
import AISLFDReaders
import AISLFDSchema
import ArgumentParser

/// `aislfd-inspect FILE`: what a weights, .aisw, NPZ or NPY file holds.
public struct InspectCommand: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "aislfd-inspect",
        abstract: "Show the architecture, metadata and every tensor of a supported file.",
        discussion: """
        FILE is a source weights file (HDF5, NPZ, PyTorch, safetensors), a converted .aisw model, \
        or an .npy array. For .aisw files every checksum is verified; a mismatch exits with status 2. \
        Tensors are listed under their names in the file; the architecture and roles are those of \
        the state_dict the other commands would take (a note says where it is).
        """,
        version: AISLFDVersion.text)

    @Argument(help: ArgumentHelp("The file to inspect.", valueName: "file"))
    var file: String

    @OptionGroup var stateDict: StateDictOptions
    @OptionGroup var format: OutputOptions

    public init() {}

    struct Report: Encodable {
        struct Tensor: Encodable {
            var key: String
            var dtype: String
            var shape: [Int]
            var bytes: Int
            var role: String?
        }
        var file: String
        var kind: String
        var byteCount: Int
        var architecture: String?
        var checksums: String?
        var metadata: [String: String]?
        var aisw: AISWMetadata?
        var notes: [String]
        var tensors: [Tensor]
    }

    public func run() throws {
        let report = try inspect()
        try Console.current.report(human: render(report), document: report)
    }

    func inspect() throws -> Report {
        guard let kind = try FileKind.of(path: file) else { throw FileError(path: file, problem: WeightsReaderError.unrecognised) }
        let byteCount = try FileDigest.sha256(path: file).byteCount
        switch kind {
        case .aisw:
            let model = try AISWFile.open(path: file, verifyData: true)
            let tensors = model.tensors.map {
                Report.Tensor(key: $0.key, dtype: $0.storage.rawValue, shape: $0.shape,
                              bytes: $0.byteCount + $0.scalesByteCount, role: $0.role)
            }
            return Report(file: file, kind: kind.name, byteCount: byteCount, architecture: model.metadata.architecture,
                          checksums: "verified", metadata: nil, aisw: model.metadata, notes: [], tensors: tensors)
        case .source(.npy):
            let t = try NPYReader.read(path: file)
            return Report(file: file, kind: kind.name, byteCount: byteCount, architecture: nil, checksums: nil,
                          metadata: nil, aisw: nil, notes: [],
                          tensors: [Report.Tensor(key: t.key, dtype: t.dtype.rawValue, shape: t.shape, bytes: t.byteCount)])
        case .source(let format):
            let contents = try WeightsReader.read(path: file, format: format, hdf5Isolation: .thisProgram)
            // The roles are those of the state_dict the other commands would take, named in the file as they are.
            let schemas = (try? SchemaLibrary.all) ?? []
            let (found, choice) = try blame(file) { try StateDictSearch.locate(contents, among: schemas, selection: stateDict.selection) }
            let detection = try? ArchitectureDetector.detect(keys: found.tensors.map(\.key))
            let schema = detection?.architecture.flatMap { try? SchemaLibrary.load(id: $0) }
            let entry = choice.entry.isEmpty ? "" : choice.entry + "."
            var roles: [String: String] = [:]
            for t in found.tensors {
                guard let role = schema?.tensor(t.key)?.role.rawValue else { continue }
                roles[entry + choice.stripped.joined() + t.key] = role
            }
            let tensors = contents.tensors.map {
                Report.Tensor(key: $0.key, dtype: $0.dtype.rawValue, shape: $0.shape, bytes: $0.byteCount, role: roles[$0.key])
            }
            var notes = found.notes
            if let detection, detection.architecture == nil || detection.lowOverlap || !detection.tied.isEmpty {
                notes.append("architecture: " + detection.summary)
            }
            return Report(file: file, kind: kind.name, byteCount: byteCount, architecture: detection?.architecture,
                          checksums: nil, metadata: contents.metadata, aisw: nil, notes: notes, tensors: tensors)
        }
    }

    func render(_ r: Report) -> String {
        var lines = ["\(r.file): \(r.kind), \(grouped(r.byteCount)) bytes" + (r.checksums.map { ", checksums \($0)" } ?? "")]
        lines.append("architecture: \(r.architecture ?? "not recognised")")
        if let m = r.aisw {
            lines.append("schema: \(m.schema.id) sha256 \(m.schema.sha256)")
            lines.append("source: \(m.source.fileName) (\(m.source.format), \(grouped(m.source.byteCount)) bytes, sha256 \(m.source.sha256))")
            lines.append("converter: \(m.converter.name) \(m.converter.version); precision \(m.options.precision)"
                         + (m.options.fold ? ", folded" : ", not folded")
                         + (m.options.keep.isEmpty ? "" : "; kept at fp32: " + m.options.keep.joined(separator: " ")))
            lines.append("passes: " + m.passes.map(\.name).joined(separator: ", "))
            for fold in m.folds { lines.append("fold: \(fold.from) -> \(fold.into) (\(fold.kind))") }
        }
        for (key, value) in (r.metadata ?? [:]).sorted(by: { $0.key < $1.key }) {
            lines.append("metadata: \(echoed(key)) = \(echoed(value, limit: 300))")
        }
        lines += r.notes.map { "note: " + $0 }
        let keyWidth = max(3, r.tensors.map(\.key.count).max() ?? 0)
        let shapes = r.tensors.map { shapeText($0.shape) }
        let shapeWidth = max(5, shapes.map(\.count).max() ?? 0)
        let pad = leftAligned, padLeft = rightAligned
        lines.append(pad("key", keyWidth) + "  " + pad(r.kind == "aisw" ? "storage" : "dtype", 8) + "  " + pad("shape", shapeWidth) + padLeft("bytes", 12) + "  role")
        for (t, shape) in zip(r.tensors, shapes) {
            lines.append(pad(echoed(t.key, limit: 200), keyWidth) + "  " + pad(t.dtype, 8) + "  " + pad(shape, shapeWidth) + padLeft(grouped(t.bytes), 12) + "  " + (t.role ?? "-"))
        }
        let total = r.tensors.reduce(0) { $0 + $1.bytes }
        lines.append("\(r.tensors.count) tensors, \(grouped(total)) bytes of tensor data")
        return lines.joined(separator: "\n")
    }
}
