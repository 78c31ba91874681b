"""Weights: values live in a sidecar ``<module>.weights.npz`` beside the IR file, never inline in dumps.

The module names its sidecar (attribute ``tilec.weights``, a bare file name). Many dumps of one compile
share one sidecar, so writing merges: names are stable across passes, and weights a pass creates are named
by content hash, so one name never means two different tensors.
"""
from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

from .core import Operation
from .diagnostics import CompileError


def module_weights(module: Operation) -> dict:
    """The module's weight values by symbol name (created empty on first use)."""
    if not hasattr(module, "weights"):
        module.weights = {}
    return module.weights


def content_name(prefix: str, array: np.ndarray) -> str:
    """A deterministic weight name for a tensor a pass creates: ``prefix_<hash of dtype, shape, bytes>``."""
    h = hashlib.sha256()
    h.update(str(array.dtype).encode())
    h.update(str(array.shape).encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return f"{prefix}_{h.hexdigest()[:12]}"


def sidecar_name(module: Operation) -> str:
    from .attributes import format_symbol
    name = module.sym_name or "module"
    safe = "".join(c if c.isalnum() or c in "_-." else "_" for c in format_symbol(name).strip('"'))
    return f"{safe or 'module'}.weights.npz"


def safe_sidecar_path(ir_path: Path, name: str) -> Path:
    """The sidecar path; refuses names that would leave the IR file's folder (no '/', '..', drives)."""
    if not name or name != os.path.basename(name) or name in (".", "..") or "\\" in name or ":" in name:
        raise CompileError(f"weights file '{name}' must be a plain file name beside the IR file", str(ir_path))
    return ir_path.parent / name


def load_weights_file(path: Path) -> dict:
    from .limits import check_npz
    check_npz(path)  # numpy allocates a whole array before reading it: check the declared shapes first
    try:
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    except FileNotFoundError:
        raise CompileError(f"weights file '{path}' not found", str(path)) from None
    except (OSError, ValueError) as e:
        raise CompileError(f"cannot read weights file '{path}': {e}", str(path)) from None


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write via a temp file in the same folder and rename, so readers never see half a file."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path: Path, write) -> None:
    """Call ``write`` on a binary file that becomes ``path`` by a rename only once it is whole (a temp file in
    the same folder, removed on any error), so readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        # mkstemp makes 0600 files; give the file the permissions a plain open() would have.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_weights_file(path: Path, weights: dict) -> None:
    """Write ``weights`` to ``path``, keeping entries already there (shared sidecar of several dumps)."""
    existing = load_weights_file(path) if path.exists() else {}
    if all(k in existing for k in weights) and existing:
        return  # nothing new: names are content-stable, so an existing name already holds these bytes
    existing.update(weights)
    import io
    buf = io.BytesIO()
    np.savez(buf, **{k: existing[k] for k in sorted(existing)})
    atomic_write_bytes(path, buf.getvalue())


def declared_weights(module: Operation) -> list:
    return [op for op in module.body.ops if op.name == "tile.weight"]
