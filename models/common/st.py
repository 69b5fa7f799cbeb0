"""Tiny pure-python safetensors reader/writer (no `safetensors` package needed).

File layout (https://github.com/huggingface/safetensors):
  * 8 bytes: little-endian u64 N, the size of the JSON header;
  * N bytes: JSON object {name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
    plus an optional "__metadata__" entry (a str -> str dict);
  * the raw little-endian tensor data; offsets are relative to the start of this section.

The writer sorts tensors by name, packs them contiguously and pads the header with spaces to
a multiple of 8 bytes, which is what the reference fixtures in tests/fixtures/diffusers use.

Tensors are returned as torch tensors (torch is imported lazily, so `read_header` works
without it); `save` accepts torch tensors or numpy arrays.
"""

import json
import struct

import numpy as np

# safetensors dtype name -> numpy dtype (little endian).  BF16 has no numpy type: it is
# moved around as raw uint16 bits and converted with torch.
_NP_DTYPES = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
}


def read_header(path):
    """Returns (header dict without __metadata__, metadata dict, data section offset)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n).decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    return header, meta, 8 + n


def load(path, as_numpy=False):
    """Reads a .safetensors file.

    Returns (tensors, metadata): tensors maps name -> torch.Tensor (or numpy array when
    as_numpy=True; BF16 then comes back as float32), metadata is the __metadata__ dict.
    """
    header, meta, base = read_header(path)
    with open(path, "rb") as f:
        f.seek(base)
        data = f.read()
    out = {}
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _NP_DTYPES:
            raise ValueError(f"{path}: {name}: unsupported dtype {dt}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        arr = np.frombuffer(data, dtype=_NP_DTYPES[dt], count=(end - begin) // _NP_DTYPES[dt].itemsize,
                            offset=begin)
        if arr.size != int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"{path}: {name}: {arr.size} elements for shape {shape}")
        arr = arr.reshape(shape).copy()  # copy: own, writable memory
        if dt == "BF16":
            # bfloat16 = the upper 16 bits of a float32
            f32 = (arr.astype(np.uint32) << 16).view(np.float32)
            if as_numpy:
                out[name] = f32
            else:
                import torch
                out[name] = torch.from_numpy(f32).to(torch.bfloat16)
            continue
        if as_numpy:
            out[name] = arr
        else:
            import torch
            out[name] = torch.from_numpy(arr)
    return out, meta


def _c_order(arr):
    """C-contiguous copy when needed; unlike np.ascontiguousarray it keeps 0-d arrays 0-d."""
    return arr if arr.flags["C_CONTIGUOUS"] else arr.copy(order="C")


def _to_numpy(t):
    """(safetensors dtype name, contiguous little-endian numpy array) for a tensor/array."""
    if isinstance(t, np.ndarray):
        arr = t
        for name, dt in _NP_DTYPES.items():
            if name != "BF16" and arr.dtype.newbyteorder("<") == dt:
                return name, _c_order(arr.astype(dt, copy=False))
        raise ValueError(f"unsupported numpy dtype {arr.dtype}")
    import torch
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        return "BF16", t.view(torch.int16).numpy().view(np.uint16).astype("<u2")
    names = {torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.int64: "I64",
             torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8",
             torch.bool: "BOOL"}
    if t.dtype not in names:
        raise ValueError(f"unsupported torch dtype {t.dtype}")
    name = names[t.dtype]
    return name, _c_order(t.numpy().astype(_NP_DTYPES[name], copy=False))


def save(path, tensors, metadata=None):
    """Writes {name: tensor} (torch or numpy) to a .safetensors file.

    metadata: optional str -> str dict stored as "__metadata__" (e.g. {"format": "pt"}).
    """
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        dt, arr = _to_numpy(tensors[name])
        raw = arr.tobytes()
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise ValueError("__metadata__ must map str to str")
        header["__metadata__"] = dict(metadata)  # last, as in the reference fixtures
    hjson = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hjson += b" " * (-len(hjson) % 8)  # pad to a multiple of 8 with spaces
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for raw in blobs:
            f.write(raw)
