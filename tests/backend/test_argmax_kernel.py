"""ArgMax / ArgMin kernels (``backend/lower/argreduce.py``): lower-cuda turns ``graph.arg_max`` /
``graph.arg_min`` into kernels (one thread per row for short rows, one warp per row for long ones) that match
the numpy reference under the emulator in every thread order: axes, keepdims, select_last_index, ties across
warp lanes, NaNs, int and half inputs. All cases are lowered in one module, so one g++ call builds them."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from tilec.ir import TensorType, new_module, verify
from tilec.ir.attributes import SymbolRef
from tilec.ir.builder import Builder
from tilec.ir.core import Block, Operation, Region, lookup_symbol
from tilec.ir.types import FunctionType, np_dtype
from tilec.passes import get_pass
from tilec.runtime.interpreter import run_module

# (op, shape, dtype, axis, keepdims, select_last_index, values: normal | ties | nan)
CASES = [
    ("arg_max", (4, 6), "f32", 1, 0, 0, "normal"),
    ("arg_min", (3, 5, 7), "f32", 1, 1, 0, "normal"),
    ("arg_max", (3, 5, 7), "f32", 0, 1, 1, "ties"),
    ("arg_max", (2, 200), "f32", 1, 1, 0, "normal"),
    ("arg_min", (3, 100, 5), "f32", 1, 0, 1, "ties"),
    ("arg_max", (20, 100), "f32", 1, 0, 0, "ties"),      # more rows than warps in a block
    ("arg_max", (9, 37), "i32", 0, 1, 1, "ties"),
    ("arg_min", (5, 300), "i32", 1, 0, 0, "ties"),       # equal minima in several lanes: the first wins
    ("arg_min", (5, 300), "i32", 1, 0, 1, "ties"),       # ... or the last
    ("arg_max", (6, 10), "f32", 1, 1, 0, "nan"),
    ("arg_min", (4, 90), "f32", 1, 1, 1, "nan"),
    ("arg_max", (4, 33), "f16", 1, 0, 0, "ties"),
    ("arg_min", (7,), "f32", 0, 0, 0, "normal"),         # rank 1, keepdims=0: a scalar result
]


def _out_shape(shape, axis, keepdims):
    axis %= len(shape)
    return tuple(1 if i == axis else d for i, d in enumerate(shape)) if keepdims else \
        tuple(d for i, d in enumerate(shape) if i != axis)


def _module():
    ins = [TensorType(shape, dt) for _, shape, dt, *_ in CASES]
    outs = [TensorType(_out_shape(shape, ax, kd), "i64") for _, shape, _, ax, kd, _, _ in CASES]
    m = new_module("m")
    fn = Operation("func.func", attributes={"sym_name": SymbolRef("main"),
                                            "function_type": FunctionType(tuple(ins), tuple(outs))},
                   regions=[Region([Block(ins, [f"x{i}" for i in range(len(ins))])])])
    m.body.append(fn)
    b = Builder(m, fn.body)
    results = [b.create(f"graph.{op}", [arg], [out], {"axis": ax, "keepdims": kd, "select_last_index": last}).result
               for (op, _, _, ax, kd, last, _), arg, out in zip(CASES, fn.body.args, outs)]
    b.create("func.return", results, [])
    verify(m)
    return m


def _inputs(seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _, shape, dt, *_, values in CASES:
        if values == "ties":
            x = rng.integers(0, 3, shape)  # few distinct values: every row has ties
        else:
            x = rng.standard_normal(shape)
        x = x.astype(np_dtype(dt))
        if values == "nan":
            flat = x.reshape(-1)
            flat[rng.choice(flat.size, flat.size // 6, replace=False)] = np.nan
        out.append(x)
    return out


@pytest.fixture(scope="module")
def lowered():
    m = _module()
    get_pass("lower-cuda").apply(m)
    verify(m)
    return m


def test_every_arg_op_becomes_a_kernel(lowered):
    fn = lookup_symbol(lowered, "main")
    assert not [op for op in fn.body.ops if op.name.startswith("graph.arg_")]
    kinds = []
    for op in fn.body.ops[:-1]:
        k = lookup_symbol(lowered, op.attributes["kernel"].name)
        assert k.attributes["params"][-1]["dtype"] == "i64"
        kinds.append(k.attributes["source"].split(":")[0])
    # short rows walk serially, long rows take a warp each
    assert "// arg_serial" in kinds and "// arg_warp" in kinds


@pytest.mark.parametrize("order", ["normal", "reverse", "shuffle"])
def test_kernels_match_numpy(lowered, order):
    from tilec.backend import emu
    from tilec.backend.emit import emit_kernel
    inputs = _inputs()
    want = list(run_module(_module(), inputs).values())
    fn = lookup_symbol(lowered, "main")
    batch = emu.Batch()
    launches = [(lookup_symbol(lowered, op.attributes["kernel"].name), op) for op in fn.body.ops[:-1]]
    mods = [batch.add(emit_kernel(k), f"{k.sym_name}.cu") for k, _ in launches]
    for i, ((k, op), mod) in enumerate(zip(launches, mods)):
        (arg,) = op.operands
        x = inputs[list(fn.body.args).index(arg)]
        y = np.full(op.results[0].type.shape, -7, np.int64)  # any index the kernel does not write shows
        a = k.attributes
        mod.launch(k.sym_name, tuple(a["grid"]), tuple(a["block"]), [np.ascontiguousarray(x), y], order=order)
        np.testing.assert_array_equal(y, want[i], err_msg=f"{CASES[i]} ({order})")


def test_numpy_reference_agrees_with_onnxruntime():
    """The reference these kernels are held to is ONNX's (ties and select_last_index), checked on the
    cases without NaN (ONNX leaves NaN unspecified)."""
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper
    inputs = _inputs()
    want = list(run_module(_module(), inputs).values())
    for (op, shape, dt, ax, kd, last, values), x, w in zip(CASES, inputs, want):
        if values == "nan" or dt == "f16":
            continue
        elem = TensorProto.FLOAT if dt == "f32" else TensorProto.INT32
        node = helper.make_node("ArgMax" if op == "arg_max" else "ArgMin", ["x"], ["y"], axis=ax, keepdims=kd,
                                select_last_index=last)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", elem, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.INT64, None)])
        model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        got = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
        np.testing.assert_array_equal(got, w, err_msg=str((op, shape, ax, kd, last)))


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")
def test_kernels_pass_ptxas(lowered):
    from tilec.backend.emit import emit_kernel
    from tilec.backend.ptxas import check_kernels
    sources = {k.sym_name: emit_kernel(k) for k in lowered.body.ops if k.name == "kernel.func"}
    for name, info in check_kernels(sources).items():
        assert info.spill_stores == 0 and info.registers > 0, name
