"""Hand-made lowered modules for the build-folder and runtime tests: ``kernel.func`` ops carrying a CUDA
``source`` (vector add, scale) and ``kernel.launch`` ops in ``@main``, so the tests need no lowering."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tilec.ir import TensorType, new_module, verify
from tilec.ir.attributes import SymbolRef
from tilec.ir.builder import Builder, add_weight
from tilec.ir.core import Block, Operation, Region
from tilec.ir.types import FunctionType

VADD = """int i = blockIdx.x * blockDim.x + threadIdx.x;
if (i < {n}) TL_ST(c, i, TL_LD(a, i) + TL_LD(b, i));"""

SCALE = """int i = blockIdx.x * blockDim.x + threadIdx.x;
if (i < {n}) TL_ST(c, i, {factor}f * TL_LD(a, i));"""


def kernel_func(name: str, body: str, n: int, ins: list, outs: list, block: int = 64) -> Operation:
    """A ``kernel.func`` over 1-D f32 buffers of ``n`` elements, with a hand-written body."""
    params = [{"name": p, "dtype": "f32", "role": "in", "shape": [n]} for p in ins]
    params += [{"name": p, "dtype": "f32", "role": "out", "shape": [n]} for p in outs]
    attrs = {"sym_name": SymbolRef(name), "grid": [(n + block - 1) // block, 1, 1], "block": [block, 1, 1],
             "smem": 0, "params": params, "kind": "elementwise", "origin": "test", "flops": n,
             "bytes_modelled": 4 * n * len(params), "source": body}
    return Operation("kernel.func", attributes=attrs, regions=[Region([Block()])])


def launch(b: Builder, kernel: str, operands: list, n: int, results: int = 1):
    op = b.create("kernel.launch", operands, [TensorType((n,), "f32")] * results, {"kernel": SymbolRef(kernel)})
    return op.results


def _main_func(m: Operation, t: TensorType):
    """``@main(x: t) -> t`` appended to ``m``, a builder into its body, and the weight ``w`` read as a value."""
    fn = Operation("func.func", attributes={"sym_name": SymbolRef("main"), "function_type": FunctionType((t,), (t,)),
                                            "arg_names": ["x"], "result_names": ["y"]},
                   regions=[Region([Block([t], ["x"])])])
    m.body.append(fn)
    b = Builder(m, fn.body)
    return fn, b, b.create("tile.const", [], [t], {"value": SymbolRef("w")}).result


def append_scale_chain(m: Operation, count: int, n: int) -> None:
    """Make ``@main`` of a ``vadd_module`` return its result scaled ``count`` more times (a chain of
    ``k1_scale`` launches: each intermediate dies as the next is made)."""
    from tilec.ir.core import lookup_symbol
    fn = lookup_symbol(m, "main")
    ret = fn.body.ops[-1]
    b = Builder(m, fn.body, before=ret)
    v = ret.operands[0]
    for _ in range(count):
        (v,) = launch(b, "k1_scale", [v], n)
    ret.set_operands([v])


def vadd_module(n: int = 1000, host_op: bool = False, seed: int = 0) -> Operation:
    """``y = 2 * (x + w)`` (two kernels, ``w`` a weight), and with ``host_op`` a ``graph.relu`` run on the
    host between them. Returns a verified module with @main(x) -> y."""
    m = new_module("m")
    w = np.random.default_rng(seed).standard_normal(n).astype(np.float32)
    add_weight(m, "w", w)
    m.body.append(kernel_func("k0_vadd", VADD.format(n=n), n, ["a", "b"], ["c"]))
    m.body.append(kernel_func("k1_scale", SCALE.format(n=n, factor=2.0), n, ["a"], ["c"]))
    t = TensorType((n,), "f32")
    fn, b, wv = _main_func(m, t)
    (s,) = launch(b, "k0_vadd", [fn.body.args[0], wv], n)
    if host_op:
        s = b.create("graph.relu", [s], [t]).result
    (y,) = launch(b, "k1_scale", [s], n)
    b.create("func.return", [y], [])
    verify(m)
    return m


def reference_module(n: int = 1000, host_op: bool = False, weights=None) -> Operation:
    """The graph-level module ``vadd_module`` was lowered from (what reference.tir holds)."""
    m = new_module("m")
    w = weights if weights is not None else np.random.default_rng(0).standard_normal(n).astype(np.float32)
    add_weight(m, "w", w)
    t = TensorType((n,), "f32")
    fn, b, wv = _main_func(m, t)
    s = b.create("graph.add", [fn.body.args[0], wv], [t]).result
    if host_op:
        s = b.create("graph.relu", [s], [t]).result
    two = b.constant(np.array([2.0], np.float32))
    y = b.create("graph.mul", [s, two], [t]).result
    b.create("func.return", [y], [])
    verify(m)
    return m


def expected(module: Operation, x: np.ndarray, host_op: bool = False) -> np.ndarray:
    from tilec.ir.weights import module_weights
    s = x + module_weights(module)["w"]
    return 2.0 * (np.maximum(s, 0) if host_op else s)


def write_module_build(module: Operation, build: Path, check_ptx: bool = False,
                       reference: Operation | None = None) -> dict:
    """What ``tilec compile`` does after the passes: the build folder, atomically (``reference``: the
    module before lowering, written as reference.tir)."""
    import time

    from tilec.backend.build import write_build
    from tilec.backend.build import atomic_build_dir
    out = {}

    def fill(tmp):
        from tilec.backend.build import module_text
        out["report"] = write_build(module, tmp, model="hand.onnx", pipeline="hand", stages=[],
                                    start=time.perf_counter(), check_ptx=check_ptx,
                                    reference=module_text(reference) if reference is not None else None)
    atomic_build_dir(Path(build), fill)
    return out["report"]


def require_emu():
    """Skip (visibly) when the CUDA emulator is not importable."""
    return pytest.importorskip("tilec.backend.emu", reason="the CUDA emulator (tilec.backend.emu) is missing")
