import AISLFDCore

/// The four architectures of architectures.md, composed from the schema files
/// compiled into the module (see tools/embed_schemas.py).
public enum SchemaLibrary {
    /// In the spec's order.
    public static let ids = ["lisrd", "aislfd-a", "aislfd-b", "aislfd-c"]

    /// Every file under Schemas/, by path relative to it (`lisrd.json`,
    /// `blocks/netvlad.json`, `schema.schema.json`, ...).
    public static var embeddedFiles: [String: String] { EmbeddedSchemas.files }

    /// schema.schema.json, the JSON Schema every architecture and block file obeys.
    public static func metaSchema() throws -> JSONSchema {
        guard let text = EmbeddedSchemas.files["schema.schema.json"] else {
            throw SchemaError.inconsistent(file: "schema.schema.json", "not embedded")
        }
        do { return try JSONSchema(text: text) } catch let e as JSONParseError {
            throw SchemaError.notJSON(file: "schema.schema.json", e)
        } catch {
            throw SchemaError.inconsistent(file: "schema.schema.json", String(describing: error))
        }
    }

    /// A composer reading blocks from the embedded files.
    public static func composer() throws -> SchemaComposer {
        SchemaComposer(metaSchema: try metaSchema(), blockText: { EmbeddedSchemas.files["blocks/\($0).json"] })
    }

    public static func load(id: String) throws -> ArchitectureSchema {
        guard let result = cache[id] else { throw SchemaError.unknownArchitecture(id, known: ids) }
        return try result.get()
    }

    /// All four, in the spec's order.
    public static var all: [ArchitectureSchema] {
        get throws { try ids.map { try load(id: $0) } }
    }

    // Composing parses and checks every file; do it once per process.
    private static let cache: [String: Result<ArchitectureSchema, SchemaError>] = {
        let composer: SchemaComposer
        do { composer = try SchemaLibrary.composer() } catch {
            let failure = error as? SchemaError ?? .inconsistent(file: "schema.schema.json", String(describing: error))
            return Dictionary(uniqueKeysWithValues: ids.map { ($0, .failure(failure)) })
        }
        return Dictionary(uniqueKeysWithValues: ids.map { id in
            let file = "\(id).json"
            guard let text = EmbeddedSchemas.files[file] else {
                return (id, .failure(.inconsistent(file: file, "not embedded")))
            }
            do {
                return (id, .success(try composer.compose(architectureText: text, file: file)))
            } catch {
                return (id, .failure(error as? SchemaError ?? .inconsistent(file: file, String(describing: error))))
            }
        })
    }()
}
