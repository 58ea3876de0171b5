import AISLFDCore
import AISLFDImages
import Foundation

/// A dataset that cannot be evaluated; one problem, naming its file.
public enum DatasetProblem: Error, CustomStringConvertible, Equatable, Sendable {
    case notAFolder
    case noScenes(layout: String)
    case missing(String)
    case notANumber(String)
    case wrongShape(rows: Int, columns: [Int])
    case nonFinite
    case singular(determinant: Double)
    case badTimestamp(line: Int)
    case noTimestamp(image: String)

    public var description: String {
        switch self {
        case .notAFolder: return "not a folder"
        case .noScenes(let layout): return layout == "rdnim" ? "no images/<seq>/*.jpg (RDNIM layout)" : "no i_* or v_* scene folder (HPatches layout)"
        case .missing(let what): return "\(what) missing"
        case .notANumber(let token): return "homography entry '\(token)' is not a number"
        case .wrongShape(let rows, let columns):
            return "homography must be 3x3, got \(rows)x\(columns.first ?? 0)" + (Set(columns).count > 1 ? " (rows of unequal length)" : "")
        case .nonFinite: return "homography has a non-finite entry"
        case .singular(let d): return "homography is singular (det of H / max|H| = \(String(format: "%.3g", d)))"
        case .badTimestamp(let line): return "line \(line) is not \"<name> <date> <hour> <minute>\""
        case .noTimestamp(let image): return "no time stamp for \(image)"
        }
    }
}

/// The two dataset layouts of docs/evaluation.md, section 1.
public enum DatasetLayout: String, CaseIterable, Sendable {
    case hpatches, rdnim
}

/// One evaluated pair: image 0, image 1 and the ground truth mapping image 0's pixels to image 1's.
public struct EvalPair: Sendable {
    public var name: String
    public var scene: String
    public var image: String
    /// "illumination" or "viewpoint" (HPatches), nil for RDNIM.
    public var subset: String?
    public var path0: String
    public var path1: String
    public var homography: Homography
}

public enum EvalDataset {
    /// `|det(H / max|H_ij|)|` below this is a singular homography.
    public static let singularLimit = 1e-10

    /// The layout: RDNIM when the folder has `references/`, else HPatches.
    public static func detectLayout(_ root: String) -> DatasetLayout {
        isFolder(root + "/references") ? .rdnim : .hpatches
    }

    /// Every pair, each homography read and checked, and every image checked to decode
    /// (before any network runs); the first problem in pair order is thrown, naming its file.
    public static func read(_ root: String, layout: DatasetLayout? = nil, reference: String = "day") throws -> (DatasetLayout, [EvalPair]) {
        guard isFolder(root) else { throw FileError(path: root, problem: DatasetProblem.notAFolder) }
        let layout = layout ?? detectLayout(root)
        let pairs = layout == .hpatches ? try readHPatches(root) : try readRDNIM(root, reference: reference)
        for path in Set(pairs.flatMap { [$0.path0, $0.path1] }).sorted() {
            guard FileManager.default.fileExists(atPath: path) else { throw FileError(path: path, problem: DatasetProblem.missing("image")) }
            _ = try ImageReader.readRGB(path: path)
        }
        return (layout, pairs)
    }

    static func readHPatches(_ root: String) throws -> [EvalPair] {
        let scenes = try entries(root).filter { ($0.hasPrefix("i_") || $0.hasPrefix("v_")) && isFolder(root + "/" + $0) }
        guard !scenes.isEmpty else { throw FileError(path: root, problem: DatasetProblem.noScenes(layout: "hpatches")) }
        return try scenes.flatMap { scene in
            let folder = root + "/" + scene
            return try (2...6).map { i in
                EvalPair(name: "\(scene)-\(i)", scene: scene, image: "\(i)", subset: scene.hasPrefix("i_") ? "illumination" : "viewpoint",
                         path0: folder + "/1.ppm", path1: folder + "/\(i).ppm", homography: try readHomography(folder + "/H_1_\(i)"))
            }
        }
    }

    static func readRDNIM(_ root: String, reference: String) throws -> [EvalPair] {
        for sub in ["references", "images", "time_stamps"] where !isFolder(root + "/" + sub) {
            throw FileError(path: root, problem: DatasetProblem.missing("\(sub)/ folder (RDNIM layout)"))
        }
        var pairs: [EvalPair] = []
        for seq in try entries(root + "/images") where isFolder(root + "/images/" + seq) {
            let folder = root + "/images/" + seq
            let ref = root + "/references/\(seq)/\(reference).jpg"
            guard FileManager.default.fileExists(atPath: ref) else { throw FileError(path: ref, problem: DatasetProblem.missing("reference image")) }
            let stampFile = root + "/time_stamps/\(seq).txt"
            guard FileManager.default.fileExists(atPath: stampFile) else { throw FileError(path: stampFile, problem: DatasetProblem.missing("time stamps")) }
            let stamps = try readTimestamps(stampFile)
            for image in try entries(folder) where image.hasSuffix(".jpg") {
                guard stamps.contains(image) else { throw FileError(path: stampFile, problem: DatasetProblem.noTimestamp(image: image)) }
                let stem = String(image.dropLast(4))
                pairs.append(EvalPair(name: "\(seq)-\(stem)", scene: seq, image: stem, subset: nil, path0: ref, path1: folder + "/" + image,
                                      homography: try readHomography(folder + "/\(stem).txt")))
            }
        }
        guard !pairs.isEmpty else { throw FileError(path: root, problem: DatasetProblem.noScenes(layout: "rdnim")) }
        return pairs
    }

    /// A 3x3 text matrix: three non-empty lines of three decimal numbers, finite, not singular.
    public static func readHomography(_ path: String) throws -> Homography {
        guard FileManager.default.fileExists(atPath: path) else { throw FileError(path: path, problem: DatasetProblem.missing("homography file")) }
        let text = try blame(path) { String(decoding: try FileSystem.readAll(path: path, limit: 1 << 16), as: UTF8.self) }
        var rows: [[Double]] = []
        for line in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r" }) {
            let tokens = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\u{0B}" || $0 == "\u{0C}" })
            if tokens.isEmpty { continue }
            rows.append(try tokens.map { token in
                guard isDecimal(token), let v = Double(token) else { throw FileError(path: path, problem: DatasetProblem.notANumber(escaped(token))) }
                return v
            })
        }
        guard rows.count == 3, rows.allSatisfy({ $0.count == 3 }) else {
            throw FileError(path: path, problem: DatasetProblem.wrongShape(rows: rows.count, columns: rows.map(\.count)))
        }
        let h = Homography(rows.flatMap { $0 })
        guard h.values.allSatisfy(\.isFinite) else { throw FileError(path: path, problem: DatasetProblem.nonFinite) }
        let scale = h.values.map(abs).max() ?? 0
        let det = scale == 0 ? 0 : Homography(h.values.map { $0 / scale }).determinant
        guard abs(det) >= singularLimit else { throw FileError(path: path, problem: DatasetProblem.singular(determinant: det)) }
        return h
    }

    /// LISRD's `read_timestamps`: "<name>.jpg YYYYMMDD HH MM" per non-empty line; the names.
    static func readTimestamps(_ path: String) throws -> Set<String> {
        let text = try blame(path) { String(decoding: try FileSystem.readAll(path: path, limit: 1 << 24), as: UTF8.self) }
        var names = Set<String>()
        for (n, line) in text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" }).enumerated() {
            let fields = line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" })
            if fields.isEmpty { continue }
            guard fields.count == 4, fields[2].allSatisfy(\.isASCIIDigit), fields[3].allSatisfy(\.isASCIIDigit), !fields[2].isEmpty, !fields[3].isEmpty else {
                throw FileError(path: path, problem: DatasetProblem.badTimestamp(line: n + 1))
            }
            names.insert(String(fields[0]))
        }
        return names
    }

    /// A decimal with optional sign, fraction and exponent (no "nan", "inf", hex or spaces).
    private static func isDecimal(_ s: Substring) -> Bool {
        var chars = Array(s.utf8)[...]
        if chars.first == UInt8(ascii: "+") || chars.first == UInt8(ascii: "-") { chars = chars.dropFirst() }
        var digits = 0, dot = false
        while let c = chars.first, (c >= 48 && c <= 57) || (c == UInt8(ascii: ".") && !dot) {
            if c == UInt8(ascii: ".") { dot = true } else { digits += 1 }
            chars = chars.dropFirst()
        }
        guard digits > 0 else { return false }
        if let e = chars.first, e == UInt8(ascii: "e") || e == UInt8(ascii: "E") {
            chars = chars.dropFirst()
            if chars.first == UInt8(ascii: "+") || chars.first == UInt8(ascii: "-") { chars = chars.dropFirst() }
            guard !chars.isEmpty, chars.allSatisfy({ $0 >= 48 && $0 <= 57 }) else { return false }
            return true
        }
        return chars.isEmpty
    }

    /// Echoed input, one line and bounded.
    private static func escaped(_ s: Substring) -> String {
        let cut = s.prefix(40)
        return cut.unicodeScalars.map { $0.value < 32 || $0.value == 127 ? "\\x" + String($0.value, radix: 16) : String($0) }.joined()
            + (s.count > 40 ? "…" : "")
    }

    private static func isFolder(_ path: String) -> Bool {
        var folder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &folder) && folder.boolValue
    }

    /// Folder entries sorted by their bytes (as Python's sorted() of names).
    private static func entries(_ folder: String) throws -> [String] {
        let names = try blame(folder) { try FileManager.default.contentsOfDirectory(atPath: folder) }
        return names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
    }
}

private extension Character {
    var isASCIIDigit: Bool { isASCII && isNumber }
}
