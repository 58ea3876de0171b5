"""Checks tools/aisw.py against the fixtures the Swift writer made (Tests/Fixtures/aisw/).

The expected values are the formulas of Tests/AISLFDFormatTests/AISWTestSupport.swift, written
again here in NumPy. CI has no Python; run by hand from the repository root:
    .venv/bin/python tools/test_aisw_py.py
"""
import os
import struct
import sys
import zlib

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import aisw  # noqa: E402

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "Tests", "Fixtures", "aisw")


def values(shape):
    i = np.arange(int(np.prod(shape)), dtype=np.int64)
    return (((i * 37) % 101 - 50) / 64).astype(np.float32).reshape(shape)


def quantized(n):
    return ((np.arange(n) * 53) % 255 - 127).astype(np.int8)


def scales(c):
    return ((np.arange(c) + 1) / 128).astype(np.float32)


def fixture(name):
    with open(os.path.join(FIXTURES, name), "rb") as f:
        return bytearray(f.read())


def raises(buf, words, tmp):
    with open(tmp, "wb") as f:
        f.write(buf)
    try:
        aisw.load(tmp)
    except ValueError as e:
        for w in words:
            assert w in str(e), f"expected {w!r} in: {e}"
        return str(e)
    raise AssertionError(f"no error, expected {words}")


def entries(buf):
    """Entry offsets, walking the table as the spec describes."""
    meta_len, table_len, count = struct.unpack_from("<III", buf, 24)
    o, out = 64 + (meta_len + 7) // 8 * 8, []
    for _ in range(count):
        out.append(o)
        key_len, role_len, _, rank = struct.unpack_from("<HHBB", buf, o)
        o += (48 + key_len + role_len + 7) // 8 * 8 + 8 * rank
    return out


def fix_crc(buf):
    meta_len, table_len = struct.unpack_from("<II", buf, 24)
    data_off = (64 + (meta_len + 7) // 8 * 8 + table_len + 63) // 64 * 64
    struct.pack_into("<I", buf, 60, zlib.crc32(bytes(buf[64:data_off]), zlib.crc32(bytes(buf[:60]))))
    return buf


def main():
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "aisw-py-test.aisw")

    t, meta = aisw.load(os.path.join(FIXTURES, "fp32.aisw"))
    assert list(t) == ["msfe.stem.conv.weight", "msfe.stem.conv.bias", "scalar", "empty"]
    assert np.array_equal(t["msfe.stem.conv.weight"], values((4, 3, 3, 3)))
    assert np.array_equal(t["msfe.stem.conv.bias"], values((4,)))
    assert t["scalar"].shape == () and t["scalar"] == np.float32(((7 * 37) % 101 - 50) / 64)
    assert t["empty"].shape == (0, 5)
    assert all(v.dtype == np.float32 for v in t.values())
    assert meta["architecture"] == "aislfd-c" and meta["options"]["precision"] == "fp32"
    assert meta["architecture_config"]["eps"] == 1e-5

    t, meta = aisw.load(os.path.join(FIXTURES, "fp16.aisw"))
    assert np.array_equal(t["head.conv1.weight"], values((8, 4, 3, 3)))
    assert np.array_equal(t["head.conv2.bias"], values((5,)))

    t, meta = aisw.load(os.path.join(FIXTURES, "int8.aisw"))
    expected = quantized(108).reshape(6, 2, 3, 3).astype(np.float32) * scales(6)[:, None, None, None]
    assert np.array_equal(t["layer.conv.weight"], expected)
    assert np.array_equal(t["psa.query.weight"], quantized(15).reshape(3, 5).astype(np.float32) * scales(3)[:, None])
    assert np.array_equal(t["layer.conv.bias"], values((6,)))
    assert meta["tensor_history"] == {"layer.conv.weight": ["int8 per channel"]}

    raises(fixture("corrupt-data.aisw"), ["tensor layer.conv.weight", "data checksum mismatch"], tmp)
    raises(fixture("truncated.aisw"), ["truncated"], tmp)

    good = fixture("int8.aisw")
    e = entries(good)
    for o in (36, 60, 100, e[1] + 50):
        b = bytearray(good)
        b[o] ^= 1
        raises(b, ["header checksum mismatch"], tmp)
    b = bytearray(good)
    scale_off = struct.unpack_from("<Q", good, e[0] + 24)[0]
    b[scale_off] ^= 1
    raises(b, ["tensor layer.conv.weight", "scales checksum mismatch"], tmp)
    for cut in (0, 5, 40, 64, 300, len(good) - 1):
        raises(good[:cut], ["truncated"], tmp)
    raises(good + b"\0", ["trailing bytes"], tmp)
    raises(b"PK\3\4" + bytes(100), ["bad magic"], tmp)

    def patched(fmt, offset, value):
        b = bytearray(good)
        struct.pack_into(fmt, b, offset, value)
        return fix_crc(b)

    data_off = struct.unpack_from("<Q", good, e[1] + 8)[0]
    raises(patched("<I", 8, 3), ["unsupported .aisw version 3"], tmp)
    raises(patched("<Q", e[1] + 8, len(good) // 64 * 64 + 64), ["tensor layer.conv.bias", "outside"], tmp)
    raises(patched("<Q", e[1] + 16, 2**64 - 8), ["tensor layer.conv.bias", "outside"], tmp)
    raises(patched("<Q", e[1] + 8, data_off + 4), ["tensor layer.conv.bias", "not a multiple of 64"], tmp)
    raises(patched("<Q", e[1] + 8, struct.unpack_from("<Q", good, e[0] + 8)[0]), ["tensor layer.conv.bias", "before the end"], tmp)
    raises(patched("<B", e[0] + 5, 9), ["rank of tensor layer.conv.weight", "exceeds"], tmp)
    raises(patched("<H", e[0], 513), ["key length 513"], tmp)
    raises(patched("<I", 32, 2**32 - 1), ["tensor count 4294967295 exceeds"], tmp)
    raises(patched("<I", 32, 60000), ["cannot hold 60000 entries"], tmp)
    raises(patched("<B", e[0] + 4, 7), ["unknown storage code 7"], tmp)
    raises(patched("<I", scale_off + 4, struct.unpack("<I", struct.pack("<f", -1.0))[0]), ["scales"], tmp)

    def metadata_patched(old, new):
        assert len(old) == len(new)
        b = bytearray(good)
        k = good.index(old)
        b[k:k + len(old)] = new
        return fix_crc(b)

    raises(metadata_patched(b'"descriptor_dim":128,"eps":1e-05', b'"eps":12345678901234,"eps":1e-05'),
           ["invalid metadata", "duplicate key 'eps'"], tmp)
    raises(metadata_patched(b'"eps":1e-05', b'"eps":NaN  '), ["invalid metadata", "NaN is not JSON"], tmp)
    raises(metadata_patched(b'"architecture":"aislfd-c"', b'"architecturX":"aislfd-c"'), ["missing architecture"], tmp)
    raises(metadata_patched(b'"layer.conv.weight":["int8', b'"layer.conv.weighX":["int8'), ["tensor_history names"], tmp)

    print("tools/aisw.py: all checks passed")


if __name__ == "__main__":
    main()
