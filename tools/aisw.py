"""Reader for .aisw weight files (docs/aisw-format.md), NumPy only.

    import aisw
    tensors, metadata = aisw.load("model.aisw")   # {key: float32 ndarray}, dict

Checks everything the format lets a reader check (magic, version, limits, bounds,
alignment, order, header and per-tensor CRC-32, zero padding) and raises ValueError
with a message naming the file, the tensor and the problem.
"""
import json
import struct
import zlib

import numpy as np

MAGIC = b"\x89AISW\r\n\x1a"
VERSIONS = (1, 2)  # 2: int8 scales per block of a row, int8_compute
HEADER, ALIGN = 64, 64
MAX_METADATA, MAX_TENSORS, MAX_TABLE = 16 << 20, 65536, 64 << 20
MAX_RANK, MAX_KEY, MAX_ROLE, MAX_DIM = 8, 512, 128, 2**31 - 1
ENTRY_FIXED, MIN_ENTRY = 48, 56
STORAGE = {1: ("fp32", "<f4"), 2: ("fp16", "<f2"), 3: ("int8", "i1")}
METADATA_FIELDS = ("architecture", "architecture_config", "schema", "source", "converter",
                   "options", "passes", "folds", "tensor_history", "extra")


def _align(n, a):
    return (n + a - 1) // a * a


def _no_duplicates(pairs):
    out = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {k!r}")
        out[k] = v
    return out


def _refuse_constant(name):
    raise ValueError(f"{name} is not JSON")


def _depth(v):
    if isinstance(v, dict):
        v = list(v.values())
    return 1 + max(map(_depth, v), default=0) if isinstance(v, list) else 0


def load(path):
    """Returns (tensors, metadata): state_dict key -> float32 array (int8 dequantized), and a dict."""
    with open(path, "rb") as f:
        buf = f.read()

    def fail(problem):
        raise ValueError(f"{path}: {problem}")

    size = len(buf)
    if buf[:8] != MAGIC[:min(size, 8)]:
        fail("not an .aisw file (bad magic bytes)")
    if size < HEADER:
        fail(f"truncated: needs {HEADER} bytes, file has {size}")
    version, header_len, file_len, meta_len, table_len, count = struct.unpack_from("<IIQIII", buf, 8)
    if version not in VERSIONS:
        fail(f"unsupported .aisw version {version}")
    if header_len != HEADER:
        fail(f"invalid header: header length {header_len}, must be 64")
    if size < file_len:
        fail(f"truncated: needs {file_len} bytes, file has {size}")
    if size > file_len:
        fail(f"file has {size} bytes, the header says {file_len}: trailing bytes")
    for what, value, limit in (("metadata length", meta_len, MAX_METADATA),
                               ("table length", table_len, MAX_TABLE), ("tensor count", count, MAX_TENSORS)):
        if value > limit:
            fail(f"{what} {value} exceeds the limit {limit}")
    table_off = HEADER + _align(meta_len, 8)
    data_off = _align(table_off + table_len, ALIGN)
    if data_off > file_len:
        fail(f"truncated: needs {data_off} bytes, file has {file_len}")
    stored = struct.unpack_from("<I", buf, 60)[0]
    computed = zlib.crc32(buf[HEADER:data_off], zlib.crc32(buf[:60]))
    if stored != computed:
        fail(f"header checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")
    if any(buf[36:60]):
        fail("invalid header: reserved bytes are not zero")

    try:
        metadata = json.loads(buf[HEADER:HEADER + meta_len].decode("utf-8"), object_pairs_hook=_no_duplicates,
                              parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        fail(f"invalid metadata: {e}")
    if not isinstance(metadata, dict):
        fail("invalid metadata: not a JSON object")
    if _depth(metadata) > 64:
        fail("invalid metadata: nested deeper than 64")
    missing = [k for k in METADATA_FIELDS if k not in metadata]
    if missing:
        fail(f"invalid metadata: missing {', '.join(missing)}")

    if count > table_len // MIN_ENTRY:
        fail(f"invalid tensor table: {table_len} bytes cannot hold {count} entries")
    table_end, cursor, previous_end = table_off + table_len, table_off, data_off
    tensors = {}

    def region(key, name, offset, length):
        nonlocal previous_end
        if offset % ALIGN:
            fail(f"tensor {key}: {name} offset {offset} is not a multiple of {ALIGN}")
        if offset < data_off or offset + length > file_len:
            fail(f"tensor {key}: {name} at offset {offset} with length {length} lies outside the data section")
        if offset < previous_end:
            fail(f"tensor {key}: {name} at offset {offset} starts before the end of the previous region")
        gap = buf[previous_end:offset]
        if any(gap):
            fail(f"padding before offset {offset} is not zero")
        previous_end = offset + length
        return buf[offset:offset + length]

    def check_crc(key, name, data, stored):
        computed = zlib.crc32(data)
        if computed != stored:
            fail(f"tensor {key}: {name} checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")

    int8_per_channel = set()
    for i in range(count):
        if cursor + ENTRY_FIXED > table_end:
            fail(f"invalid tensor table: entry {i} runs past the end of the table")
        (key_len, role_len, code, rank, scale_group, data_offset, data_len,
         scales_offset, scales_len, data_crc, scales_crc) = struct.unpack_from("<HHBBHQQQQII", buf, cursor)
        if key_len < 1:
            fail(f"tensor table entry {i}: empty key")
        if key_len > MAX_KEY or role_len > MAX_ROLE:
            fail(f"tensor table entry {i}: key length {key_len} or role length {role_len} exceeds the limit")
        strings = cursor + ENTRY_FIXED
        if strings + key_len + role_len > table_end:
            fail(f"invalid tensor table: entry {i} runs past the end of the table")
        try:
            key = buf[strings:strings + key_len].decode("utf-8")
            buf[strings + key_len:strings + key_len + role_len].decode("utf-8")
        except UnicodeDecodeError:
            fail(f"tensor table entry {i}: key or role is not valid UTF-8")
        if code not in STORAGE:
            fail(f"tensor {key}: unknown storage code {code}")
        if rank > MAX_RANK:
            fail(f"rank of tensor {key} {rank} exceeds the limit {MAX_RANK}")
        dims_off = _align(strings + key_len + role_len, 8)
        entry_end = dims_off + 8 * rank
        if entry_end > table_end:
            fail(f"invalid tensor table: entry of {key} runs past the end of the table")
        if any(buf[strings + key_len + role_len:dims_off]):
            fail(f"tensor {key}: table padding is not zero")
        if scale_group and (version < 2 or STORAGE[code][0] != "int8"):
            fail(f"tensor {key}: reserved table field is not zero" if version < 2 else f"tensor {key}: scale group set for non-int8 storage")
        shape = struct.unpack_from(f"<{rank}Q", buf, dims_off)
        if any(d > MAX_DIM for d in shape):
            fail(f"dimension of tensor {key} exceeds the limit {MAX_DIM}")
        if key in tensors:
            fail(f"tensor {key}: key appears more than once")
        name, dtype = STORAGE[code]
        expected = int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize
        data = region(key, "data", data_offset, data_len)
        if data_len != expected:
            fail(f"tensor {key}: {data_len} data bytes, shape {list(shape)} of {name} needs {expected}")
        check_crc(key, "data", data, data_crc)
        values = np.frombuffer(data, dtype=dtype).reshape(shape).astype(np.float32)
        if name == "int8":
            row = int(np.prod(shape[1:], dtype=object)) if rank >= 1 else 0
            per_row = 1 if scale_group == 0 else -(-row // scale_group)
            if rank < 1 or scales_len != 4 * shape[0] * per_row:
                fail(f"tensor {key}: int8 storage needs rank >= 1 and {per_row} float32 scale(s) per channel")
            scales_bytes = region(key, "scales", scales_offset, scales_len)
            check_crc(key, "scales", scales_bytes, scales_crc)
            scales = np.frombuffer(scales_bytes, dtype="<f4").astype(np.float32)
            if not (np.all(np.isfinite(scales)) and np.all(scales >= 0)):
                fail(f"tensor {key}: scales must be finite and >= 0")
            # value = float32(q) * the scale of its row (scale_group 0) or of its block of the row.
            rows = values.reshape(shape[0], row)
            block = np.arange(row) // scale_group if scale_group else np.zeros(row, dtype=np.int64)
            values = (rows * scales.reshape(shape[0], per_row)[:, block]).reshape(shape)
        elif scales_offset or scales_len or scales_crc:
            fail(f"tensor {key}: scale fields set for {name} storage")
        if name == "int8" and scale_group == 0:
            int8_per_channel.add(key)
        tensors[key] = values
        cursor = entry_end
    if cursor != table_end:
        fail(f"invalid tensor table: {table_end - cursor} bytes left after the last entry")
    if any(buf[previous_end:file_len]):
        fail(f"padding after offset {previous_end} is not zero")
    unknown = [k for k in metadata["tensor_history"] if k not in tensors]
    if unknown:
        fail(f"invalid metadata: tensor_history names {unknown[0]}, which is not in the table")
    compute = metadata.get("int8_compute")
    if compute is not None:
        if version < 2:
            fail("invalid metadata: int8_compute needs version 2, the file is version 1")
        for key, c in sorted(compute.items()):
            if key not in int8_per_channel:
                fail(f"invalid metadata: int8_compute names {key}, which is not an int8 tensor with one scale per output channel")
            scale, zero = c.get("input_scale"), c.get("input_zero_point")
            if not (isinstance(scale, (int, float)) and np.isfinite(scale) and scale > 0 and isinstance(zero, int) and 0 <= zero <= 255):
                fail(f"invalid metadata: int8_compute of {key}: input scale must be finite and > 0, zero point 0 ... 255")
    return tensors, metadata
