"""Reading and writing IR files (text plus weights sidecar)."""
from __future__ import annotations

from pathlib import Path

from .core import Operation
from .diagnostics import CompileError
from .parser import parse_module
from .printer import print_module
from .types import np_dtype
from .verifier import verify
from .weights import (atomic_write_bytes, declared_weights, load_weights_file, module_weights,
                      safe_sidecar_path, save_weights_file, sidecar_name)


def read_ir(path: str, text: str | None = None, verify_ir: bool = True) -> Operation:
    """Parse an IR file (``-`` is stdin when ``text`` is given), load its weights, and verify it."""
    if text is None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CompileError(f"no such file '{path}'") from None
        except (OSError, UnicodeDecodeError) as e:
            raise CompileError(f"cannot read '{path}': {e}") from None
    module = parse_module(text, path)
    name = module.attributes.get("tilec.weights")
    if isinstance(name, str) and declared_weights(module):
        base = Path(path) if path != "-" else Path.cwd() / "stdin.tir"
        sidecar = safe_sidecar_path(base, name)
        if sidecar.exists():
            data = load_weights_file(sidecar)
            for op in declared_weights(module):
                arr = data.get(op.sym_name)
                want = np_dtype(op.attributes["type"].dtype)
                if arr is not None and arr.dtype.kind == "V" and arr.dtype.itemsize == want.itemsize:
                    data[op.sym_name] = arr.view(want)  # .npz keeps bfloat16 as raw 2-byte records
            module_weights(module).update(data)
    if verify_ir:
        verify(module, text)
    return module


def write_ir(module: Operation, path: str | None, generic: bool = False) -> str:
    """Print ``module``; write it (atomically) to ``path`` with its sidecar when ``path`` is given."""
    weights = module_weights(module)
    needed = {op.sym_name: weights[op.sym_name] for op in declared_weights(module) if op.sym_name in weights}
    if needed:
        module.attributes["tilec.weights"] = sidecar_name(module)
    text = print_module(module, generic=generic)
    if path is not None and path != "-":
        out = Path(path)
        if needed:
            save_weights_file(safe_sidecar_path(out, module.attributes["tilec.weights"]), needed)
        atomic_write_bytes(out, text.encode("utf-8"))
    return text
