"""Size limits: the largest tensor, and the most tensor bytes one module may declare.

A shape like ``tensor<100000000000x100000000xf32>`` is a corrupt or hostile input, not a model. Without a
bound, the first pass, interpreter or npz loader that touches it tries to allocate exabytes: a MemoryError
at best, paging the machine to death at worst. So every entry point checks sizes *before* anything is
allocated, and reports a clean diagnostic:

- the verifier (after parsing and after every pass): every SSA tensor value and every ``tile.weight``;
- the ONNX importer: graph inputs (with ``--input-shape``), initializers and each op's inferred result;
- the CLI's ``--input-shape`` parser, and the runtime's ``.npz`` loaders (array headers are read first).

The limits are policy, not hardware, and may be raised for a real giant model:

==========================  ======================  ============================================
environment variable        default                 what
==========================  ======================  ============================================
``TILEC_MAX_ELEMENTS``      2^32 (4,294,967,296)    elements in one tensor
``TILEC_MAX_BYTES``         2^38 (256 GiB)          bytes of all distinct tensor values and
                                                    weights of one module, counted statically
==========================  ======================  ============================================

The byte total is what the numpy interpreter could need in the worst case (it keeps every value), so it
bounds host memory; it is far above any one GPU's memory, so no real model trips it.
"""
from __future__ import annotations

import os
from math import prod

DEFAULT_MAX_ELEMENTS = 1 << 32
DEFAULT_MAX_BYTES = 1 << 38


def _env_int(name: str, default: int) -> int:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text, 0)
    except ValueError:
        value = -1
    if value <= 0:
        from .diagnostics import CompileError
        raise CompileError(f"${name} must be a positive integer, got '{text}'")
    return value


def max_elements() -> int:
    """Elements allowed in one tensor (``$TILEC_MAX_ELEMENTS``)."""
    return _env_int("TILEC_MAX_ELEMENTS", DEFAULT_MAX_ELEMENTS)


def max_bytes() -> int:
    """Bytes allowed over a module's tensors (``$TILEC_MAX_BYTES``)."""
    return _env_int("TILEC_MAX_BYTES", DEFAULT_MAX_BYTES)


def shape_problem(shape, itemsize: int = 1) -> str | None:
    """Why ``shape`` is over the limits, or None. Dynamic dims (None / names) count as 1; negative dims
    are the caller's to reject."""
    dims = [d for d in shape if isinstance(d, int) and d > 0]
    n = prod(dims)
    if n > max_elements():
        return f"has {n:,} elements, more than tilec accepts (limit {max_elements():,}; TILEC_MAX_ELEMENTS)"
    if n * itemsize > max_bytes():
        return f"has {n * itemsize:,} bytes, more than tilec accepts (limit {max_bytes():,}; TILEC_MAX_BYTES)"
    return None


def npy_header_problem(f) -> str | None:
    """Why the ``.npy`` header at ``f``'s position declares an array over the limits (None when it does
    not), read without the data. A malformed header raises (ValueError, EOFError): the caller decides."""
    import numpy as np
    fmt = np.lib.format
    read = fmt.read_array_header_1_0 if fmt.read_magic(f) == (1, 0) else fmt.read_array_header_2_0
    shape, _, dtype = read(f)
    return shape_problem(shape, dtype.itemsize)


def check_npz(path) -> None:
    """Raise CompileError if an array in the ``.npz`` at ``path`` declares a shape over the limits; only
    the headers are read (numpy allocates the whole array before reading a compressed member)."""
    import zipfile

    from .diagnostics import CompileError
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError):
        return  # not a zip: np.load reports it
    with archive:
        for info in archive.infolist():
            if not info.filename.endswith(".npy"):
                continue
            try:
                with archive.open(info) as f:
                    why = npy_header_problem(f)
            except Exception:  # noqa: BLE001 - a broken header: np.load reports it
                continue
            if why:
                raise CompileError(f"array '{info.filename[:-4]}' in '{path}' {why}")
