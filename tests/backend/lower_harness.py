"""Test helpers for lower-cuda: build one-op tile.compute modules, lower them, run the kernels under the
CUDA emulator (or compile them with nvcc), and compare with the numpy interpreter."""
from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from tilec.ir import TensorType, new_module, verify
from tilec.ir.attributes import SymbolRef
from tilec.ir.builder import Builder
from tilec.ir.core import Block, Operation, Region, lookup_symbol
from tilec.ir.types import FunctionType, np_dtype
from tilec.passes import get_pass


def function_module(in_types, out_type, build) -> Operation:
    """A module whose @main returns ``build(builder, args)``."""
    m = new_module("m")
    fty = FunctionType(tuple(in_types), (out_type,))
    fn = Operation("func.func", attributes={"sym_name": SymbolRef("main"), "function_type": fty},
                   regions=[Region([Block(in_types, [f"x{i}" for i in range(len(in_types))])])])
    m.body.append(fn)
    b = Builder(m, fn.body)
    b.create("func.return", [build(b, list(fn.body.args))], [])
    verify(m)
    return m


def compute_module(expr: str, in_types, out_type, **attrs) -> Operation:
    """A module whose @main runs one ``tile.compute``."""
    return function_module(in_types, out_type, lambda b, args: b.compute(expr, args, out_type, **attrs))


def random_inputs(module: Operation, seed: int = 0) -> list:
    rng = np.random.default_rng(seed)
    fn = lookup_symbol(module, "main")
    out = []
    for a in fn.body.args:
        t = a.type
        if t.dtype in ("i32", "i64", "i8", "u8"):
            out.append(rng.integers(0, 5, size=t.shape).astype(np_dtype(t.dtype)))
        elif t.dtype == "bool":
            out.append(rng.random(t.shape) > 0.5)
        else:
            out.append(rng.standard_normal(t.shape).astype(np_dtype(t.dtype)))
    return out


def lower(module: Operation, **options) -> Operation:
    get_pass("lower-cuda", **options).apply(module)
    verify(module)
    return module


def kernels(module: Operation) -> list:
    return [op for op in module.body.ops if op.name == "kernel.func"]


def run_lowered(module: Operation, inputs: list, order: str = "normal") -> tuple:
    """Run @main of a lowered module: kernel.launch ops under the emulator, the rest by the interpreter.
    Returns (outputs, {kernel name: LaunchStats})."""
    emu = pytest.importorskip("tilec.backend.emu")
    from tilec.backend.emit import emit_kernel
    from tilec.runtime.interpreter import run_op
    from tilec.runtime.tensor_map import from_attr
    fn = lookup_symbol(module, "main")
    values = {a: np.asarray(v) for a, v in zip(fn.body.args, inputs)}
    stats = {}
    for op in fn.body.ops:
        if op.name == "func.return":
            return [values[v] for v in op.operands], stats
        ins = [values[v] for v in op.operands]
        if op.name == "kernel.launch":
            k = lookup_symbol(module, op.attributes["kernel"].name)
            outs = [np.zeros(r.type.shape, np_dtype(r.type.dtype)) for r in op.results]
            mod = emu.EmuModule(emit_kernel(k))
            a = k.attributes
            args = [np.ascontiguousarray(x) for x in ins] + outs
            args += [from_attr(t, args[t["arg"]].ctypes.data).emu_bytes() for t in a.get("tensor_maps", ())]
            stats[k.sym_name] = mod.launch(k.sym_name, tuple(a["grid"]), tuple(a["block"]), args,
                                           smem_bytes=a.get("smem", 0), smem_optin=a.get("smem", 0), order=order)
        else:
            outs = run_op(module, op, ins, values)
        for r, v in zip(op.results, outs):
            values[r] = np.asarray(v).astype(np_dtype(r.type.dtype), copy=False).reshape(r.type.shape)
    raise AssertionError("no return")


def reference(module: Operation, inputs: list) -> list:
    from tilec.runtime.interpreter import run_module
    return list(run_module(module, inputs).values())


def check_compute(expr: str, in_types, out_type, *, orders=("normal", "reverse"), rtol=1e-4, atol=1e-4,
                  bytes_tol=None, kind=None, **attrs):
    """Lower one compute op, run it in each thread order and compare with the interpreter; when
    ``bytes_tol`` is given, check measured global bytes against ``bytes_modelled``. Returns the kernel op."""
    ref_module = compute_module(expr, in_types, out_type, **attrs)
    inputs = random_inputs(ref_module)
    want = reference(ref_module, inputs)
    module = lower(compute_module(expr, in_types, out_type, **attrs), **({"kind": kind} if kind else {}))
    (k,) = kernels(module)
    for order in orders:
        got, stats = run_lowered(module, inputs, order)
        for g, w in zip(got, want):
            np.testing.assert_allclose(g.astype(np.float64), w.astype(np.float64), rtol=rtol, atol=atol,
                                       err_msg=f"{expr} ({order})")
        if bytes_tol is not None:
            st = stats[k.sym_name]
            measured = st.global_load_bytes + st.global_store_bytes
            modelled = k.attributes["bytes_modelled"]
            assert abs(measured - modelled) <= bytes_tol * measured, (expr, measured, modelled)
    return k


def nvcc_compile(source: str, tmp_path) -> str:
    """Compile with ``nvcc -arch=sm_90 -cubin -Xptxas -v`` (sm_90a for a wgmma kernel: ``arch_features``);
    returns ptxas' report (skips without nvcc)."""
    from tilec.backend.arch_features import kernel_arch
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    cu = tmp_path / "k.cu"
    cu.write_text(source)
    arch = kernel_arch("sm_90", source)
    r = subprocess.run([nvcc, f"-arch={arch}", "-cubin", "-Xptxas", "-v", "-o", str(tmp_path / "k.cubin"), str(cu)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stderr


def disassembler_found() -> bool:
    """Whether ``tilec inspect`` finds a SASS disassembler (cuobjdump/nvdisasm) here."""
    from tilec.backend.inspect_build import find_disassembler
    from tilec.ir import CompileError
    try:
        find_disassembler()
        return True
    except CompileError:
        return False
