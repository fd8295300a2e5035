#!/usr/bin/python3
"""Exports a PyTorch state_dict to safetensors, the format tg::load reads; also reads one back.

    /usr/bin/python3 tools/export_safetensors.py model.pt model.safetensors
    /usr/bin/python3 tools/export_safetensors.py --check model.safetensors [model.pt]

model.pt is what torch.save(model.state_dict(), "model.pt") wrote (a whole pickled module is
accepted too: its state_dict() is taken; a .pt file is a pickle, so export only files you
trust). Every entry is exported under its state_dict name, buffers included (BatchNorm's
running_mean, running_var and num_batches_tracked, int64 -> I64), so the file loads into the
same architecture built from tg::nn modules. float32, float64 and int64 tensors are written as
they are; other dtypes are refused (cast them first).

--check validates a safetensors file with numpy alone (the same checks as tg::load_tensors),
prints every tensor, and with a .pt file also compares each value with PyTorch's.

The writer and reader use only json and numpy (torch only to read the .pt file), so
save_file()/load_file() can be imported by other scripts.
"""
import json
import os
import sys

import numpy as np

MAX_HEADER = 100_000_000
# safetensors dtype <-> little-endian numpy dtype, for the dtypes tapegrad holds.
DTYPES = {"F32": np.dtype("<f4"), "F64": np.dtype("<f8"), "I64": np.dtype("<i8")}
# The reference writer's order: descending alignment, then name (every tensor stays aligned).
RANK = {"I64": 0, "F64": 1, "F32": 2}


def code_of(array):
    for code, dt in DTYPES.items():
        if array.dtype.kind == dt.kind and array.dtype.itemsize == dt.itemsize:
            return code
    raise ValueError(f"dtype {array.dtype} is not float32, float64 or int64; cast it before exporting")


def serialize(tensors, metadata=None):
    """Bytes of a safetensors file holding tensors (name -> numpy array), as the reference writes it."""
    items = []  # (rank, name, code, C-ordered little-endian array; astype keeps 0-d shapes)
    for name, value in tensors.items():
        if name == "__metadata__":
            raise ValueError('"__metadata__" is reserved, not a tensor name')
        array = np.asarray(value)
        try:
            code = code_of(array)
        except ValueError as e:
            raise ValueError(f"tensor {name!r}: {e}") from None
        items.append((RANK[code], name, code, array.astype(DTYPES[code], order="C", copy=False)))
    items.sort(key=lambda it: (it[0], it[1].encode("utf-8")))
    header = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in sorted(metadata.items())}
    offset = 0
    for _, name, code, array in items:
        header[name] = {"dtype": code, "shape": list(array.shape), "data_offsets": [offset, offset + array.nbytes]}
        offset += array.nbytes
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    return b"".join([len(text).to_bytes(8, "little"), text] + [a.tobytes() for _, _, _, a in items])


def save_file(tensors, path, metadata=None):
    """Writes atomically: a temporary beside path, then a rename over it."""
    data = serialize(tensors, metadata)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_file(path, with_metadata=False):
    """name -> numpy array, validated as tg::load_tensors validates; ValueError on a bad file."""
    with open(path, "rb") as f:
        blob = f.read()

    def bad(what):
        return ValueError(f"{path}: {what}")

    if len(blob) < 8:
        raise bad(f"file is {len(blob)} bytes, too short for the 8-byte header length")
    n = int.from_bytes(blob[:8], "little")
    if n > MAX_HEADER:
        raise bad(f"header length {n} exceeds the {MAX_HEADER}-byte limit")
    if 8 + n > len(blob):
        raise bad(f"header length {n} runs past the end of the {len(blob)}-byte file")

    def no_duplicates(pairs):
        d = {}
        for k, v in pairs:
            if k in d:
                raise bad(f"duplicate key {k!r} in the header")
            d[k] = v
        return d

    try:
        header = json.loads(blob[8 : 8 + n].decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise bad(f"malformed header: {e}") from None
    if not isinstance(header, dict):
        raise bad("the header is not a JSON object")
    metadata = header.pop("__metadata__", {})
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise bad("__metadata__ must be an object of strings")
    data = blob[8 + n :]
    spans, out = [], {}
    for name, info in header.items():
        if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
            raise bad(f"tensor {name!r}: expected exactly dtype, shape and data_offsets, got {info!r}")
        code, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if code not in DTYPES:
            raise bad(f"tensor {name!r}: dtype {code!r} is not one of F32, F64, I64")
        ints = shape + offs if isinstance(shape, list) and isinstance(offs, list) else None
        if ints is None or len(offs) != 2 or not all(type(v) is int and v >= 0 for v in ints):
            raise bad(f"tensor {name!r}: shape and data_offsets must be lists of non-negative integers")
        begin, end = offs
        nbytes = int(np.prod(shape, dtype=object)) * DTYPES[code].itemsize
        if not begin <= end <= len(data) or end - begin != nbytes:
            raise bad(f"tensor {name!r}: data_offsets {offs} do not fit {code} {shape} in {len(data)} data bytes")
        spans.append((begin, end, name))
        out[name] = np.frombuffer(data, dtype=DTYPES[code], count=nbytes // DTYPES[code].itemsize,
                                  offset=begin).reshape(shape)
    expected = 0
    for begin, end, name in sorted(spans):
        if begin != expected:
            raise bad(f"tensor {name!r}: data_offsets [{begin}, {end}] overlap or leave a gap (expected {expected})")
        expected = end
    if expected != len(data):
        raise bad(f"{len(data) - expected} bytes of trailing data after the last tensor")
    return (out, metadata) if with_metadata else out


def state_dict_of(pt_path):
    import torch  # only here: the rest of the module needs numpy alone

    obj = torch.load(pt_path, map_location="cpu")
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict):
        raise ValueError(f"{pt_path}: expected a state_dict (a dict of tensors), got {type(obj).__name__}")
    out = {}
    for name, t in obj.items():
        if not isinstance(t, torch.Tensor):
            raise ValueError(f"{pt_path}: entry {name!r} is a {type(t).__name__}, not a tensor")
        out[name] = t.detach().cpu().contiguous().numpy()
    return out


def export(pt_path, out_path, metadata=None):
    tensors = state_dict_of(pt_path)
    save_file(tensors, out_path, metadata)
    return tensors


def check(path, pt_path=None):
    tensors, metadata = load_file(path, with_metadata=True)
    for k, v in sorted(metadata.items()):
        print(f"metadata {k} = {v!r}")
    for name, a in sorted(tensors.items()):
        summary = f"min {a.min():.6g} max {a.max():.6g}" if a.size else "empty"
        print(f"{name:40s} {a.dtype.name:8s} {list(a.shape)!s:20s} {summary}")
    print(f"{len(tensors)} tensors, {sum(a.nbytes for a in tensors.values())} bytes: OK")
    if pt_path:
        ref = state_dict_of(pt_path)
        if set(ref) != set(tensors):
            raise ValueError(f"keys differ: only in .pt {sorted(set(ref) - set(tensors))}, "
                             f"only in safetensors {sorted(set(tensors) - set(ref))}")
        for name, a in ref.items():
            if a.dtype != tensors[name].dtype or not np.array_equal(a, tensors[name]):
                raise ValueError(f"tensor {name!r} differs from {pt_path}")
        print(f"identical to {pt_path}")


def main(argv):
    try:
        if len(argv) in (2, 3) and argv[0] == "--check":
            check(*argv[1:])
        elif len(argv) == 2 and not argv[0].startswith("-"):
            tensors = export(argv[0], argv[1])
            print(f"wrote {len(tensors)} tensors to {argv[1]}")
        else:
            print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
            return 2
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
