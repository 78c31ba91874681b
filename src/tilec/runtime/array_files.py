"""Arrays in and out of files for ``tilec run`` and the runtime: ``.npz`` (one array per name) and ``.npy``
(one array, for a single-input model), read and written so that a user's mistake is one clean error.

- Reading never unpickles (``allow_pickle=False``) and checks the declared shapes against tilec's size limits
  before numpy allocates (``ir/limits.check_npz``); a file that is not an archive, a truncated one or a
  corrupt member is a :class:`CompileError` naming the file, never a numpy/zipfile exception.
- :func:`conform_inputs` holds the inputs to what the model declares: every input present, no unknown name,
  the declared dtype (a different dtype is an error unless ``cast``: silently converting f64 to f32, or
  int64 ids to f32, hides a caller's bug), the declared shape.
- Writing is atomic (``ir/weights.atomic_write_bytes``): an unwritable path is an error and nothing is left.
"""
from __future__ import annotations

import io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..ir.diagnostics import CompileError

NPY_MAGIC = b"\x93NUMPY"


def load_arrays(path: str, single_input: str | None = None) -> dict:
    """The arrays in ``path`` by name. An ``.npy`` file (by its magic bytes) holds one array: it is the
    input ``single_input`` (the model's only input), or an error when the model has several."""
    p = Path(path)
    if not p.exists():
        raise CompileError(f"no such file '{path}'")
    if p.is_dir():
        raise CompileError(f"cannot read inputs '{path}': it is a folder (give an .npz or .npy file)")
    try:
        with open(p, "rb") as f:
            magic = f.read(len(NPY_MAGIC))
    except OSError as e:
        raise CompileError(f"cannot read inputs '{path}': {e.strerror or e}") from None
    if magic == NPY_MAGIC:
        if single_input is None:
            raise CompileError(f"'{path}' is an .npy file (one array), but the model takes several inputs: "
                               "give an .npz with one array per input name")
        return {single_input: _load_npy(path)}
    from ..ir.limits import check_npz
    check_npz(path)  # numpy allocates a whole array before reading it: check the declared shapes first
    try:
        # Our own handle: np.load leaks the one it opens when the archive is damaged.
        with open(path, "rb") as fh, np.load(fh, allow_pickle=False) as data:
            if not isinstance(data, np.lib.npyio.NpzFile):
                raise ValueError("not an .npz archive")
            return {k: data[k] for k in data.files}
    # zipfile raises NotImplementedError for a damaged member's flags (compression method, encryption) and
    # zlib.error for a damaged deflate stream: all are a bad file, none a tilec bug.
    except (OSError, ValueError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile, zlib.error) as e:
        raise CompileError(f"cannot read inputs '{path}': not a valid .npz file ({_reason(e)})") from None


def _load_npy(path: str) -> np.ndarray:
    from ..ir.limits import npy_header_problem
    try:
        with open(path, "rb") as f:
            why = npy_header_problem(f)   # before numpy allocates the array
            if why:
                raise CompileError(f"the array in '{path}' {why}")
            f.seek(0)
            return np.load(f, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise CompileError(f"cannot read inputs '{path}': not a valid .npy file ({_reason(e)})") from None


def _reason(e: Exception) -> str:
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if "pickled" in text:  # numpy's word for "this is not an array file" when it finds no known magic
        return "unknown file format"
    return text[:200]


def save_arrays(path: str, arrays: dict) -> None:
    """Write ``arrays`` to the ``.npz`` at ``path`` atomically; an unwritable path is a CompileError."""
    from ..ir.weights import atomic_write_bytes
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    target = Path(path)
    if target.is_dir():
        raise CompileError(f"cannot write outputs '{path}': it is a folder")
    try:
        atomic_write_bytes(target, buf.getvalue())
    except OSError as e:
        raise CompileError(f"cannot write outputs '{path}': {e.strerror or e}") from None


def check_names(inputs: dict, names: list) -> None:
    """An error for an input of ``names`` (the model's, in order) missing from ``inputs``, or a name too many."""
    missing = [n for n in names if n not in inputs]
    if missing:
        raise CompileError(f"missing input(s): {', '.join(missing)} (the model takes {', '.join(names)})")
    unknown = sorted(set(inputs) - set(names))
    if unknown:
        raise CompileError(f"unknown input(s): {', '.join(unknown)} (the model takes {', '.join(names)})")


def conform_inputs(inputs: dict, declared: list, cast: bool = False) -> dict:
    """``inputs`` checked against ``declared`` (``(name, dtype, shape)`` per model input, in order): an
    error for a missing or unknown name, a wrong shape, or a dtype other than the declared one (converted
    instead when ``cast``). ``.npz`` keeps bfloat16 as raw 2-byte records: those are taken as declared."""
    from ..ir.types import np_dtype
    from .device_arrays import is_device_array
    check_names(inputs, [n for n, _, _ in declared])
    out = {}
    for name, dtype, shape in declared:
        # a GPU array keeps its place (CuPy has numpy's dtype, shape and astype): only its metadata is checked
        arr = inputs[name] if is_device_array(inputs[name]) else np.asarray(inputs[name])
        want = np_dtype(dtype)
        if arr.dtype.kind == "V" and arr.dtype.itemsize == want.itemsize:
            arr = arr.view(want)
        if arr.dtype != want:
            if arr.dtype.kind == "c" and want.kind != "c":
                raise CompileError(f"input '{name}' is complex ({arr.dtype}); the model expects {want} ({dtype}), "
                                   "and a cast would drop the imaginary part")
            if not cast:
                raise CompileError(f"input '{name}' has dtype {arr.dtype}, the model expects {want} ({dtype}); "
                                   "convert it, or pass --cast to convert it here")
            arr = arr.astype(want)
        if shape is not None and tuple(arr.shape) != tuple(shape):
            raise CompileError(f"input '{name}' has shape {list(arr.shape)}, expected {list(shape)}")
        out[name] = arr
    return out
