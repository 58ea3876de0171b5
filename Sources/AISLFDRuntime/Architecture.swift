/// The four invariance variants, in the order every output uses.
public enum Variant: String, CaseIterable, Sendable {
    case rotVarIllumVar = "rot_var_illum_var"
    case rotInvarIllumVar = "rot_invar_illum_var"
    case rotVarIllumInvar = "rot_var_illum_invar"
    case rotInvarIllumInvar = "rot_invar_illum_invar"

    /// "var" or "invar": LISRD's layer names spell illumination first.
    var rotation: String { self == .rotVarIllumVar || self == .rotVarIllumInvar ? "var" : "invar" }
    var illumination: String { self == .rotVarIllumVar || self == .rotInvarIllumVar ? "var" : "invar" }

    public var index: Int {
        switch self {
        case .rotVarIllumVar: return 0
        case .rotInvarIllumVar: return 1
        case .rotVarIllumInvar: return 2
        case .rotInvarIllumInvar: return 3
        }
    }
}

public enum Architecture: String, CaseIterable, Sendable {
    case lisrd = "lisrd"
    case aislfdA = "aislfd-a"
    case aislfdB = "aislfd-b"
    case aislfdC = "aislfd-c"

    public enum Backbone: Sendable { case vgg, msfe }
    public enum Meta: Sendable { case netVLAD, psa }

    public var backbone: Backbone { self == .lisrd || self == .aislfdA ? .vgg : .msfe }
    public var meta: Meta { self == .lisrd || self == .aislfdB ? .netVLAD : .psa }

    /// Channels of a meta descriptor.
    public var metaDimension: Int { meta == .netVLAD ? NetVLADMeta.clusters * descriptorChannels : descriptorChannels }
}

/// Channels of every raw local-descriptor map.
public let descriptorChannels = 128

/// One value per variant, in `Variant.allCases` order; indexable by variant.
public struct PerVariant<Element>: RandomAccessCollection {
    public private(set) var elements: [Element]

    init(_ elements: [Element]) {
        precondition(elements.count == Variant.allCases.count)
        self.elements = elements
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { elements.count }
    public subscript(position: Int) -> Element { elements[position] }
    public subscript(variant: Variant) -> Element { elements[variant.index] }
}

extension PerVariant: Sendable where Element: Sendable {}
