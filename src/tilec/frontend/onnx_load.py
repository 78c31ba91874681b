"""Loading ONNX files safely: protobuf parsing, external data and tensor decoding with checked sizes.

``onnx.load`` follows external-data locations wherever they point (CVE-2024-27318/27319), so tilec loads
the protobuf without external data and reads each external tensor itself: the location must be a relative
path that stays inside the model's folder (no ``..``, no absolute path, no symlink out of it), and the
offset/length must lie inside the file. Every size read from the file is checked before anything is
allocated from it.
"""
from __future__ import annotations

import os
import sys
from math import prod
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from ..ir.diagnostics import CompileError
from ..ir.limits import shape_problem

# Larger dims than this are treated as a corrupt or hostile file, not a model (tensor sizes: ir/limits.py).
MAX_DIM = 1 << 31

# ONNX element type -> IR element type (the types tilec carries; see ir.types.DTYPES).
ONNX_TO_IR = {
    TensorProto.FLOAT: "f32", TensorProto.FLOAT16: "f16", TensorProto.BFLOAT16: "bf16",
    TensorProto.DOUBLE: "f64", TensorProto.INT64: "i64", TensorProto.INT32: "i32",
    TensorProto.INT8: "i8", TensorProto.UINT8: "u8", TensorProto.BOOL: "bool",
}
IR_TO_ONNX = {v: k for k, v in ONNX_TO_IR.items()}
# Little-endian raw data of these types decodes as numpy_helper.to_array decodes it (np.frombuffer, reshaped),
# from the one copy of the bytes the length check made: every access to a protobuf's raw_data copies it, and
# to_array made a second one (GPT-2: 500 MB twice). bf16 and the typed-field encodings go through to_array.
RAW_NUMPY = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i64": np.int64, "i32": np.int32,
             "i8": np.int8, "u8": np.uint8, "bool": np.bool_}


def onnx_type_name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type).lower()
    except ValueError:
        return f"type #{elem_type}"


def ir_dtype(elem_type: int, what: str, file: str | None) -> str:
    """The IR dtype of an ONNX element type, or a CompileError naming ``what``."""
    dt = ONNX_TO_IR.get(elem_type)
    if dt is None:
        raise CompileError(f"{what} has element type {onnx_type_name(elem_type)}, which tilec does not "
                           "support (supported: " + ", ".join(sorted(IR_TO_ONNX)) + ")", file)
    return dt


def load_model(source, filename: str | None = None) -> tuple[onnx.ModelProto, Path | None, str]:
    """Parse ``source`` (path, bytes or ModelProto); returns (model, model folder or None, display name)."""
    if isinstance(source, onnx.ModelProto):
        return source, None, filename or "model.onnx"
    if isinstance(source, (bytes, bytearray)):
        return _parse(bytes(source), filename or "model.onnx"), None, filename or "model.onnx"
    path = Path(source)
    display = filename or path.name
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CompileError(f"cannot read model '{path}': {e.strerror or e}", display) from None
    return _parse(data, display), path.resolve().parent, display


def _parse(data: bytes, display: str) -> onnx.ModelProto:
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception:  # protobuf raises DecodeError, or RuntimeWarning-ish errors from the C++ parser
        raise CompileError("not a valid ONNX model (the protobuf cannot be parsed; is the file truncated?)",
                           display) from None
    if not model.HasField("graph") or not data:
        raise CompileError("not a valid ONNX model (it has no graph)", display)
    _check_names(model.graph, display)
    return model


def _check_names(graph, display: str) -> None:
    """Every name is text: protobuf hands a string field holding invalid UTF-8 back as bytes, which would
    crash whatever formats it later."""
    names = [graph.name] + [v.name for v in (*graph.input, *graph.output, *graph.value_info)]
    names += [t.name for t in graph.initializer]
    for node in graph.node:
        names += [node.name, node.op_type, node.domain, *node.input, *node.output]
        for a in node.attribute:
            names.append(a.name)
            for sub in ([a.g] if a.HasField("g") else []) + list(a.graphs):
                _check_names(sub, display)
    bad = next((n for n in names if not isinstance(n, str)), None)
    if bad is not None:
        raise CompileError(f"not a valid ONNX model (the name {bytes(bad)[:40]!r} is not UTF-8 text)", display)


def dynamic_inputs_error(dynamic: list, file: str | None) -> CompileError:
    """One error for every input with a dynamic dim (``(name, dims)``, a dim a ``dim_param`` string or None):
    each as a shape template naming its dims (``input_ids=<batch>x<sequence>``), fixed dims as the model gives
    them. No sizes are suggested: only the user knows the ones they will run (1 for a sequence builds a model
    that rejects real inputs)."""
    names, templates = [], []
    for name, dims in dynamic:
        names += [d for d in dims if isinstance(d, str) and d not in names]
        templates.append(f"--input-shape {name}=" + "x".join(
            str(d) if isinstance(d, int) else f"<{d or '?'}>" for d in dims))
    n = len(dynamic)
    label = f" (dynamic dims: {', '.join(names)})" if names else ""
    return CompileError(f"{n} input{'s' if n != 1 else ''} with dynamic dimensions{label}: give "
                        f"{'each' if n != 1 else 'it'} a shape: {' '.join(templates)}", file)


def check_dims(dims, what: str, file: str | None) -> tuple:
    dims = tuple(int(d) for d in dims)
    for d in dims:
        if d < 0 or d >= MAX_DIM:
            raise CompileError(f"{what} has an invalid dimension {d}", file)
    why = shape_problem(dims)  # elements: the configurable bound of ir/limits.py
    if why:
        raise CompileError(f"{what} {why}", file)
    return dims


def tensor_to_array(t: TensorProto, folder: Path | None, file: str | None, what: str) -> np.ndarray:
    """Decode a TensorProto (loading external data safely); sizes are checked before decoding."""
    name = f"{what} '{t.name}'" if t.name else what
    dims = check_dims(t.dims, name, file)
    dtype = ir_dtype(t.data_type, name, file)
    if t.data_location == TensorProto.EXTERNAL:
        t = _with_external_data(t, folder, file, name)
    raw = t.raw_data if t.HasField("raw_data") else None
    if raw is not None:
        from ..ir.types import itemsize
        want = prod(dims) * itemsize(dtype)
        if len(raw) != want:
            raise CompileError(f"{name} has {len(raw)} bytes of data, expected {want}", file)
    if raw is not None and dtype in RAW_NUMPY and not t.HasField("segment") and sys.byteorder == "little":
        arr = np.frombuffer(raw, dtype=RAW_NUMPY[dtype]).reshape(dims)
    else:
        try:
            arr = numpy_helper.to_array(t)
        except (ValueError, TypeError) as e:
            raise CompileError(f"{name} cannot be decoded: {e}", file) from None
    if tuple(arr.shape) != dims:
        raise CompileError(f"{name} has {arr.size} values for shape {list(dims)}", file)
    return arr


def _with_external_data(t: TensorProto, folder: Path | None, file: str | None, name: str) -> TensorProto:
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if folder is None:
        raise CompileError(f"{name} uses external data, which needs the model to be loaded from a file", file)
    if not location or "\x00" in location or os.path.isabs(location) or location.startswith(("/", "\\")) \
            or ":" in location \
            or ".." in Path(location.replace("\\", "/")).parts:
        raise CompileError(f"{name} has external data location '{location}' outside the model's folder", file)
    target = (folder / location).resolve()
    if folder not in target.parents:
        # A symlink inside the folder that points out of it.
        raise CompileError(f"{name} has external data location '{location}' outside the model's folder", file)
    try:
        offset = int(info.get("offset", "0"))
        length = int(info["length"]) if "length" in info else None
    except ValueError:
        raise CompileError(f"{name} has a malformed external data offset/length", file) from None
    try:
        size = target.stat().st_size
    except OSError:
        raise CompileError(f"{name}: external data file '{location}' not found", file) from None
    if not target.is_file():
        raise CompileError(f"{name}: external data '{location}' is not a regular file", file)
    if length is None:
        length = size - offset
    if offset < 0 or length < 0 or offset + length > size:
        raise CompileError(f"{name}: external data offset {offset} / length {length} lie outside "
                           f"'{location}' ({size} bytes)", file)
    from ..ir.types import itemsize
    want = prod(int(d) for d in t.dims) * itemsize(ONNX_TO_IR[t.data_type])
    if length != want:
        raise CompileError(f"{name}: external data has {length} bytes, expected {want}", file)
    with open(target, "rb") as f:
        f.seek(offset)
        raw = f.read(length)
    out = TensorProto()
    out.CopyFrom(t)
    del out.external_data[:]
    out.data_location = TensorProto.DEFAULT
    out.raw_data = raw
    return out
