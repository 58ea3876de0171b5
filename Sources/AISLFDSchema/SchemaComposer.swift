import AISLFDCore

public enum SchemaError: Error, CustomStringConvertible, Sendable {
    case notJSON(file: String, JSONParseError)
    case violatesSchema(file: String, [JSONSchemaViolation])
    case inconsistent(file: String, String)
    case missingBlock(file: String, block: String)
    case unknownArchitecture(String, known: [String])
    /// No architecture's names match the file's; the text is the detection summary.
    case undetected(String)

    public var description: String {
        switch self {
        case .notJSON(let file, let error): return "\(file): not JSON: \(error)"
        case .violatesSchema(let file, let violations):
            return "\(file): does not obey schema.schema.json: " + violations.map(\.description).joined(separator: "; ")
        case .inconsistent(let file, let message): return "\(file): \(message)"
        case .missingBlock(let file, let block): return "\(file): block \"\(block)\" not found (expected blocks/\(block).json)"
        case .unknownArchitecture(let id, let known):
            return "unknown architecture \"\(id)\"; known: \(known.joined(separator: ", "))"
        case .undetected(let summary): return summary
        }
    }
}

/// Builds an `ArchitectureSchema` from an architecture file and the block
/// files it names. Every file is first checked against schema.schema.json;
/// then the composition checks what JSON Schema cannot: names resolve, keys
/// are unique, and each layer's tensors have exactly the roles and shapes
/// its op and channel counts imply.
public final class SchemaComposer {
    public let metaSchema: JSONSchema
    /// Block file text by block id.
    public let blockText: (String) -> String?
    /// Blocks already parsed and checked: architectures share them.
    private var blocks: [String: JSONValue] = [:]

    public init(metaSchema: JSONSchema, blockText: @escaping (String) -> String?) {
        self.metaSchema = metaSchema
        self.blockText = blockText
    }

    public func compose(architectureText: String, file: String) throws -> ArchitectureSchema {
        let arch = try load(architectureText, file: file, kind: "architecture")
        let id = arch["id"]?.string ?? ""
        let variants = arch["variants"]?.array?.compactMap(\.string) ?? []
        if Set(variants).count != variants.count { throw SchemaError.inconsistent(file: file, "variants repeat") }

        var parts: [PartSpec] = []
        var layers: [LayerSpec] = []
        var tensors: [TensorSpec] = []
        for partJSON in arch["parts"]?.array ?? [] {
            let part = try composePart(partJSON, variants: variants, earlier: parts, file: file)
            parts.append(part.spec)
            layers += part.layers
            tensors += part.tensors
        }

        var seenLayers = Set<String>(), seenKeys = Set<String>()
        for layer in layers where !seenLayers.insert(layer.name).inserted {
            throw SchemaError.inconsistent(file: file, "layer \(layer.name) appears twice")
        }
        for tensor in tensors where !seenKeys.insert(tensor.key).inserted {
            throw SchemaError.inconsistent(file: file, "tensor \(tensor.key) appears twice")
        }
        for layer in layers {
            for input in layer.inputs {
                if let from = input.layer, !seenLayers.contains(from) {
                    throw SchemaError.inconsistent(file: file, "layer \(layer.name) reads \(from), which does not exist")
                }
            }
        }

        let tensorsByKey = Dictionary(uniqueKeysWithValues: tensors.map { ($0.key, $0) })
        let canonical = JSONValue.object([
            "id": .string(id),
            "version": .int(arch["version"]?.int ?? 0),
            "variants": .array(variants.map { .string($0) }),
            "parts": .array(parts.map(SchemaComposer.canonical)),
            "layers": .array(layers.map { SchemaComposer.canonical($0, tensorsByKey: tensorsByKey) }),
        ])
        return ArchitectureSchema(id: id, version: arch["version"]?.int ?? 0, description: arch["description"]?.string ?? "",
                                  variants: variants, parts: parts, layers: layers, tensors: tensors,
                                  canonicalText: canonical.canonicalText)
    }

    private func load(_ text: String, file: String, kind: String) throws -> JSONValue {
        let json: JSONValue
        do { json = try JSONValue.parse(text) } catch let e as JSONParseError { throw SchemaError.notJSON(file: file, e) }
        let violations = metaSchema.validate(json)
        if !violations.isEmpty { throw SchemaError.violatesSchema(file: file, violations) }
        if json["kind"]?.string != kind { throw SchemaError.inconsistent(file: file, "a \(kind) file expected") }
        return json
    }

    private func loadBlock(_ id: String, file: String, architectureFile: String) throws -> JSONValue {
        if let block = blocks[id] { return block }
        guard let text = blockText(id) else { throw SchemaError.missingBlock(file: architectureFile, block: id) }
        let block = try load(text, file: file, kind: "block")
        if block["id"]?.string != id { throw SchemaError.inconsistent(file: file, "its id is not \"\(id)\"") }
        blocks[id] = block
        return block
    }

    private struct ComposedPart {
        let spec: PartSpec
        let layers: [LayerSpec]
        let tensors: [TensorSpec]
    }

    private func composePart(_ json: JSONValue, variants: [String], earlier: [PartSpec], file: String) throws -> ComposedPart {
        let name = json["name"]?.string ?? ""
        let blockID = json["block"]?.string ?? ""
        let prefix = json["prefix"]?.string ?? ""
        let perVariant = json["perVariant"]?.bool ?? false
        let inputName = json["input"]?.string ?? "$image"
        let blockFile = "blocks/\(blockID).json"
        let block = try loadBlock(blockID, file: blockFile, architectureFile: file)
        if earlier.contains(where: { $0.name == name }) { throw SchemaError.inconsistent(file: file, "part \(name) appears twice") }

        var feeder: PartSpec?
        if inputName != "$image" {
            guard let p = earlier.first(where: { $0.name == inputName }) else {
                throw SchemaError.inconsistent(file: file, "part \(name) reads part \(inputName), which does not come before it")
            }
            if p.outputs.isEmpty { throw SchemaError.inconsistent(file: file, "part \(name) reads part \(inputName), which has no output") }
            if p.perVariant && !perVariant {
                throw SchemaError.inconsistent(file: file, "shared part \(name) cannot read per-variant part \(inputName)")
            }
            feeder = p
        }

        var layers: [LayerSpec] = []
        var tensors: [TensorSpec] = []
        var outputs: [String: LayerInput] = [:]  // by variant, filled for every variant
        for variant in perVariant ? variants.map(Optional.some) : [nil] {
            let expand = { (template: String) throws -> String in
                try SchemaComposer.expand(template, variant: variant, file: blockFile)
            }
            let localNames = try Set((block["layers"]?.array ?? []).map { try expand($0["name"]?.string ?? "") })
            // "$input" is what the feeding part hands on; other names are this block's layers.
            func resolve(_ json: JSONValue) throws -> LayerInput {
                let from = json["from"]?.string ?? ""
                let between = (json["between"]?.array ?? []).compactMap { $0.string.flatMap(Step.init(rawValue:)) }
                if from == "$input" {
                    guard let feeder else { return LayerInput(layer: nil, between: between) }
                    guard let given = feeder.outputs[variant ?? variants.first ?? ""] else {
                        throw SchemaError.inconsistent(file: file, "part \(inputName) has no output")
                    }
                    return LayerInput(layer: given.layer, between: given.between + between)
                }
                let local = try expand(from)
                guard localNames.contains(local) else {
                    throw SchemaError.inconsistent(file: blockFile, "\"\(from)\" names no layer of this block")
                }
                return LayerInput(layer: prefix + local, between: between)
            }

            for layerJSON in block["layers"]?.array ?? [] {
                let layerName = prefix + (try expand(layerJSON["name"]?.string ?? ""))
                let inputs = try (layerJSON["inputs"]?.array ?? []).map(resolve)
                var layerTensors: [TensorSpec] = []
                for t in layerJSON["tensors"]?.array ?? [] {
                    let tensorName = t["name"]?.string ?? ""
                    layerTensors.append(TensorSpec(
                        key: layerName + "." + tensorName, name: tensorName,
                        shape: t["shape"]?.array?.compactMap(\.int) ?? [],
                        dtypeClass: t["dtype"]?.string.flatMap(DTypeClass.init(rawValue:)) ?? .float,
                        role: t["role"]?.string.flatMap(TensorRole.init(rawValue:)) ?? .convWeight,
                        layer: layerName, optional: t["optional"]?.bool ?? false))
                }
                let layer = try SchemaComposer.layerSpec(layerJSON, name: layerName, part: name, variant: variant,
                                                         inputs: inputs, tensors: layerTensors, file: blockFile)
                layers.append(layer)
                tensors += layerTensors
            }
            if let outputJSON = block["output"] {
                let output = try resolve(outputJSON)
                for v in perVariant ? [variant ?? ""] : variants { outputs[v] = output }
            }
        }
        return ComposedPart(spec: PartSpec(name: name, block: blockID, prefix: prefix, perVariant: perVariant,
                                           input: feeder?.name, outputs: outputs),
                            layers: layers, tensors: tensors)
    }

    /// Fills {variant}, {rot} and {illum}; a placeholder left over (or used in a
    /// shared part) is a mistake in the block.
    static func expand(_ template: String, variant: String?, file: String) throws -> String {
        var s = template
        if let variant {
            let fields = variant.split(separator: "_").map(String.init)  // rot, A, illum, B
            guard fields.count == 4, fields[0] == "rot", fields[2] == "illum" else {
                throw SchemaError.inconsistent(file: file, "variant \(variant) is not rot_<A>_illum_<B>")
            }
            s = s.replacing("{variant}", with: variant).replacing("{rot}", with: fields[1]).replacing("{illum}", with: fields[3])
        }
        if s.contains("{") || s.contains("}") {
            throw SchemaError.inconsistent(file: file, "\"\(template)\" has a placeholder that a shared part cannot fill")
        }
        return s
    }

    private static func layerSpec(_ json: JSONValue, name: String, part: String, variant: String?,
                                  inputs: [LayerInput], tensors: [TensorSpec], file: String) throws -> LayerSpec {
        func int(_ key: String) -> Int { json[key]?.int ?? 0 }
        func fail(_ message: String) -> SchemaError { .inconsistent(file: file, "layer \(name): \(message)") }
        let op = json["op"]?.string.flatMap(LayerOp.init(rawValue:)) ?? .conv2d
        let bias = json["bias"]?.bool ?? false

        let spec: LayerSpec
        var expected: [(TensorRole, [Int])]
        switch op {
        case .conv2d:
            let (i, o, k) = (int("inChannels"), int("outChannels"), int("kernel"))
            spec = LayerSpec(name: name, op: op, part: part, variant: variant, inChannels: i, outChannels: o,
                             kernel: k, stride: int("stride"), padding: int("padding"), bias: bias, eps: nil, grid: nil,
                             inputs: inputs, tensorKeys: tensors.map(\.key))
            expected = [(.convWeight, [o, i, k, k])] + (bias ? [(.convBias, [o])] : [])
            if inputs.isEmpty { throw fail("no input") }
        case .batchnorm2d:
            let c = int("channels")
            spec = LayerSpec(name: name, op: op, part: part, variant: variant, inChannels: c, outChannels: c,
                             kernel: nil, stride: nil, padding: nil, bias: true, eps: json["eps"]?.double, grid: nil,
                             inputs: inputs, tensorKeys: tensors.map(\.key))
            expected = [(.bnWeight, [c]), (.bnBias, [c]), (.bnRunningMean, [c]), (.bnRunningVar, [c]), (.bnNumBatchesTracked, [])]
            if inputs.count != 1 { throw fail("a batchnorm2d takes exactly one input") }
        case .linear:
            let (i, o) = (int("inFeatures"), int("outFeatures"))
            spec = LayerSpec(name: name, op: op, part: part, variant: variant, inChannels: i, outChannels: o,
                             kernel: nil, stride: nil, padding: nil, bias: bias, eps: nil, grid: nil,
                             inputs: inputs, tensorKeys: tensors.map(\.key))
            expected = [(.linearWeight, [o, i])] + (bias ? [(.linearBias, [o])] : [])
            if inputs.count != 1 { throw fail("a linear layer takes exactly one input") }
        case .netvlad:
            let (d, k) = (int("dim"), int("clusters"))
            spec = LayerSpec(name: name, op: op, part: part, variant: variant, inChannels: d, outChannels: k,
                             kernel: nil, stride: nil, padding: nil, bias: false, eps: nil, grid: int("grid"),
                             inputs: inputs, tensorKeys: tensors.map(\.key))
            expected = [(.vladCentroids, [k, d])]
            if inputs.count != 2 { throw fail("a netvlad layer takes the features and the soft-assignment logits") }
        }

        for tensor in tensors {
            guard let at = expected.firstIndex(where: { $0.0 == tensor.role }) else {
                throw fail("tensor \(tensor.name): role \(tensor.role.rawValue) does not belong to this \(op.rawValue) layer, or repeats")
            }
            if expected[at].1 != tensor.shape {
                throw fail("tensor \(tensor.name) has shape \(tensor.shape), \(expected[at].1) follows from the layer's sizes")
            }
            if (tensor.dtypeClass == .integer) != (tensor.role == .bnNumBatchesTracked) {
                throw fail("tensor \(tensor.name): dtype \(tensor.dtypeClass.rawValue) does not fit role \(tensor.role.rawValue)")
            }
            if tensor.optional && tensor.role.isNeededForInference {
                throw fail("tensor \(tensor.name) is needed for inference and cannot be optional")
            }
            if (try? Checked.elementCount(tensor.shape)) == nil { throw fail("tensor \(tensor.name) has an impossible shape") }
            expected.remove(at: at)
        }
        if let (role, _) = expected.first {
            throw fail("no tensor with role \(role.rawValue)")
        }
        return spec
    }

    private static func canonical(_ input: LayerInput) -> JSONValue {
        .object(["from": .string(input.layer ?? "$image"), "between": .array(input.between.map { .string($0.rawValue) })])
    }

    private static func canonical(_ part: PartSpec) -> JSONValue {
        .object([
            "name": .string(part.name), "block": .string(part.block), "prefix": .string(part.prefix),
            "perVariant": .bool(part.perVariant), "input": .string(part.input ?? "$image"),
            "outputs": .object(JSONObject(part.outputs.mapValues(canonical))),
        ])
    }

    private static func canonical(_ layer: LayerSpec, tensorsByKey: [String: TensorSpec]) -> JSONValue {
        var members: JSONObject = [
            "name": .string(layer.name), "op": .string(layer.op.rawValue), "part": .string(layer.part),
            "variant": layer.variant.map { .string($0) } ?? .null,
            "inChannels": .int(layer.inChannels), "outChannels": .int(layer.outChannels), "bias": .bool(layer.bias),
            "inputs": .array(layer.inputs.map(canonical)),
        ]
        if let k = layer.kernel { members["kernel"] = .int(k) }
        if let s = layer.stride { members["stride"] = .int(s) }
        if let p = layer.padding { members["padding"] = .int(p) }
        if let e = layer.eps { members["eps"] = .double(e) }
        if let g = layer.grid { members["grid"] = .int(g) }
        members["tensors"] = .array(layer.tensorKeys.compactMap { tensorsByKey[$0] }.map { t in
            .object([
                "key": .string(t.key), "shape": .array(t.shape.map { .int($0) }), "dtype": .string(t.dtypeClass.rawValue),
                "role": .string(t.role.rawValue), "optional": .bool(t.optional),
            ])
        })
        return .object(members)
    }
}
