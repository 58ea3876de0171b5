/// A convolution's output already quantized for the int8 convolution that reads it next
/// (`quantization` is that layer's input quantization), channel after channel as in
/// FeatureMap: a quarter of the fp32 map's bytes to write and to read back, and no
/// quantizing when the next layer fills its windows. The bytes are the ones that layer would
/// make of the fp32 map (`ckernels_quantize_u8`), so the network computes the same values.
struct ByteMap {
    let channels: Int
    let height: Int
    let width: Int
    var bytes: [UInt8]
    let quantization: ActivationQuantization

    var planeSize: Int { height * width }
}
