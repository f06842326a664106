"""File writers for the reference models: safetensors (F32, F16, BF16) and
GGUF v3 (F32, F16, BF16 tensors; u32/f32/bool/string metadata).  Plain
numpy, no `safetensors` / `gguf` packages."""
import json
import struct

import numpy as np


# ------------------------------------------------------------------ numbers
def to_bf16_bits(a):
    """float32 array -> uint16 bfloat16 bits, rounded to nearest even."""
    u = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype(np.uint16)


def from_bf16_bits(b):
    return (b.astype(np.uint32) << 16).view(np.float32)


def round_weights(a):
    """Rounds to values every storage type holds exactly: bf16 (8 significant
    bits) and no magnitude below fp16's smallest normal 2^-14 (such values
    become 0).  Then one set of reference logits serves the F32, F16 and
    BF16 copies of a model."""
    r = from_bf16_bits(to_bf16_bits(a))
    r = np.where(np.abs(r) < 2.0 ** -14, np.float32(0), r).astype(np.float32)
    assert np.array_equal(r.astype(np.float16).astype(np.float32), r)
    return r


def encode(a, dtype):
    """float32 array (already round_weights'd) -> bytes of `dtype`."""
    a = np.ascontiguousarray(a, dtype=np.float32)
    if dtype == "F32":
        return a.tobytes()
    if dtype == "F16":
        return a.astype("<f2").tobytes()
    if dtype == "BF16":
        return to_bf16_bits(a).astype("<u2").tobytes()
    raise ValueError(dtype)


# -------------------------------------------------------------- safetensors
def write_safetensors(path, tensors, dtype):
    """tensors: list of (name, float32 array), all written as `dtype`."""
    header, blobs, off = {}, [], 0
    for name, a in tensors:
        b = encode(a, dtype)
        header[name] = {"dtype": dtype, "shape": list(a.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    header["__metadata__"] = {"format": "pt", "producer": "tools/refmodels/make_refmodels.py"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


# --------------------------------------------------------------------- GGUF
GGUF_U32, GGUF_F32, GGUF_BOOL, GGUF_STRING = 4, 6, 7, 8
GGML_TYPE = {"F32": 0, "F16": 1, "BF16": 30}
ALIGN = 32  # GGUF's default alignment (no general.alignment key needed)


def _str(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def _value(v):
    if isinstance(v, bool):
        return struct.pack("<IB", GGUF_BOOL, int(v))
    if isinstance(v, int):
        return struct.pack("<II", GGUF_U32, v)
    if isinstance(v, float):
        return struct.pack("<If", GGUF_F32, v)
    if isinstance(v, str):
        return struct.pack("<I", GGUF_STRING) + _str(v)
    raise TypeError(type(v))


def write_gguf(path, metadata, tensors):
    """metadata: list of (key, bool | int (u32) | float (f32) | str);
    tensors: list of (name, float32 array, "F32" | "F16" | "BF16").  GGUF
    dims are ggml order (ne[0] innermost): the numpy shape reversed."""
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(metadata))
    for k, v in metadata:
        out += _str(k) + _value(v)
    datas, off = [], 0
    for name, a, dtype in tensors:
        b = encode(a, dtype)
        out += _str(name) + struct.pack("<I", a.ndim)
        for d in reversed(a.shape):
            out += struct.pack("<Q", d)
        out += struct.pack("<IQ", GGML_TYPE[dtype], off)
        datas.append(b)
        off += (len(b) + ALIGN - 1) // ALIGN * ALIGN
    out += b"\0" * ((ALIGN - len(out) % ALIGN) % ALIGN)
    for b in datas:
        out += b + b"\0" * ((ALIGN - len(b) % ALIGN) % ALIGN)
    with open(path, "wb") as f:
        f.write(out)
