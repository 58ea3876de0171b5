import Foundation

/// The memory a forward pass needs, estimated from the image size and the
/// architecture before anything is allocated, so an image too large for the
/// budget (`RuntimeConfiguration.maximumMemory`) is refused with a clear error
/// instead of exhausting the machine.
///
/// The estimate is an upper bound on what a pass holds at once: every map the
/// pass produces as if none were freed early (the layers also keep their last
/// outputs of up to `ReusableBuffer.largestKept` bytes for the next pass), the
/// float32 image, and each thread's scratch. VGG's first block runs band by
/// band, so its full-resolution 64-channel maps are never whole unless
/// activations are recorded (which also keeps a copy of every map).
public enum MemoryBudget {
    /// The default budget: one eighth of the physical memory. On a 24 GB
    /// machine that is 3 GB: a 2000 x 1500 photo (estimated 1.2 GB for lisrd,
    /// 2.0 GB for aislfd-c at 2 threads) passes, a 4000 x 4000 image (5.9 GB,
    /// 10 GB) is refused.
    public static var defaultMaximum: Int { Int(clamping: ProcessInfo.processInfo.physicalMemory / 8) }

    /// Scratch per worker thread at most: a convolution's window and
    /// transformed tiles, or an attention block's scores and packed keys.
    static let scratchPerThread = 48 << 20

    /// Bytes a pass of `architecture` over a `height x width` image needs at most.
    public static func passBytes(_ architecture: Architecture, height: Int, width: Int, threads: Int,
                                 recordActivations: Bool = false) -> Int {
        // Sides beyond 2^20 need more than any machine has (and would overflow the sums).
        guard height > 0, width > 0 else { return 0 }
        guard height <= 1 << 20, width <= 1 << 20 else { return Int.max }
        let (maps, recorded) = mapFloats(architecture, height: height, width: width)
        let floats = 3 * height * width + maps + (recordActivations ? recorded + maps : 0)
        return 4 * floats + max(1, threads) * scratchPerThread
    }

    /// Floats of every map a pass produces, and of the maps that exist only
    /// when activations are recorded (the full-size maps before fused pooling).
    static func mapFloats(_ architecture: Architecture, height: Int, width: Int) -> (maps: Int, recordedOnly: Int) {
        var maps = 0, recordedOnly = 0
        let featureH: Int, featureW: Int
        switch architecture.backbone {
        case .vgg:
            var h = height, w = width
            for layer in VGGBackbone.layers {
                let full = layer.outChannels * h * w
                if layer.poolAfter {
                    recordedOnly += full
                    h /= 2; w /= 2
                    maps += layer.outChannels * h * w
                } else if layer.name == VGGBackbone.layers[0].name {
                    // Banded with the next layer: only a band of it exists.
                    recordedOnly += full
                } else {
                    maps += full
                }
            }
            (featureH, featureW) = (h, w)
        case .msfe:
            var h = height, w = width
            var sizes: [String: Int] = [:]
            for block in MSFEBackbone.blocks {
                if block.stride == 2 { h = (h + 1) / 2; w = (w + 1) / 2 }
                maps += block.outChannels * h * w
                sizes[block.name] = h * w
            }
            let fused = MSFEBackbone.fusedChannels
            let quarter = sizes["layer2.1"] ?? 0, eighth = sizes["layer3.1"] ?? 0, sixteenth = sizes["layer4.1"] ?? 0
            // Laterals, the two resized ones, the sum and the smoothing block.
            maps += fused * (quarter + eighth + sixteenth) + 2 * fused * eighth + MSFEBackbone.outputChannels * eighth
            (featureH, featureW) = MSFEBackbone.outputSize(height: height, width: width)
        }
        let n = featureH * featureW, variants = Variant.allCases.count
        // The heads' shared hidden map and the four descriptor maps.
        maps += variants * LISRDHeads.hiddenChannels * n + variants * descriptorChannels * n
        switch architecture.meta {
        case .netVLAD:
            // Per variant: the normalised (possibly resized) map and the assignment logits.
            maps += variants * (2 * descriptorChannels + NetVLADMeta.clusters) * n
        case .psa:
            // Per variant: the normalised map, Q K V, the packed keys and values, the output.
            maps += variants * (descriptorChannels * (1 + 3 + 2 + 1)) * n
        }
        return (maps, recordedOnly)
    }

    /// "1.5 GB" style text for messages (binary units).
    public static func text(_ bytes: Int) -> String {
        let units = ["bytes", "KB", "MB", "GB", "TB"]
        var value = Double(bytes), unit = 0
        while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
        return unit == 0 ? "\(bytes) bytes" : String(format: value < 10 ? "%.1f %@" : "%.0f %@", value, units[unit])
    }

    /// Parses a size as `--max-memory` takes it: a number of bytes, or with a
    /// unit K, M, G or T (powers of 1024; "KB", "MiB", ... alike), e.g. `1.5G`.
    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces).uppercased()
        let units: [(String, Double)] = [("T", 0x1p40), ("G", 0x1p30), ("M", 0x1p20), ("K", 0x1p10)]
        var number = trimmed, scale = 1.0
        for suffix in ["IB", "B"] where number.hasSuffix(suffix) && number.count > suffix.count {
            number.removeLast(suffix.count)
            break
        }
        if let (letter, factor) = units.first(where: { number.hasSuffix($0.0) }) {
            number.removeLast(letter.count)
            scale = factor
        }
        guard let value = Double(number), value.isFinite, value > 0 else { return nil }
        let bytes = value * scale
        return bytes < Double(Int.max) ? Int(bytes) : nil
    }
}
