"""Mutated run inputs for ``tilec run`` (issue #20): the files a user hands a build -- ``.npz`` archives and
``.npy`` arrays with missing, extra and misspelt names, other dtypes, other shapes, corrupt or truncated
bytes, headers that declare huge arrays, folders and missing paths -- each run through
``driver.run_target`` as ``tilec run`` does. The only acceptable outcomes are a run that succeeds (the input
was valid, or ``cast`` made it valid) and a clean diagnostic (exit 1) that left no outputs file; anything
else -- a crash, a hang, a huge allocation, an outputs file written next to an error -- is a finding.
"""
from __future__ import annotations

import io
import random
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .campaign import Tally
from .guard import CRASH, DIAGNOSTIC, Outcome, run_guarded

DTYPES = (np.float64, np.float16, np.int32, np.int64, np.int8, np.uint8, np.bool_, np.complex64)


def _two_input_model(path: Path) -> None:
    """y = gather(table + a, ids): an f32 and an int64 input, one f32 output."""
    import onnx
    from onnx import TensorProto as T
    from onnx import helper as h
    from onnx import numpy_helper
    table = numpy_helper.from_array(np.arange(12, dtype=np.float32).reshape(4, 3), "table")
    g = h.make_graph([h.make_node("Add", ["a", "table"], ["t"]), h.make_node("Gather", ["t", "ids"], ["y"])], "g",
                     [h.make_tensor_value_info("a", T.FLOAT, [4, 3]), h.make_tensor_value_info("ids", T.INT64, [2])],
                     [h.make_tensor_value_info("y", T.FLOAT, [2, 3])], [table])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(path))


def _valid(declared: list, rng: np.random.Generator) -> dict:
    out = {}
    for name, dtype, shape in declared:
        if np.issubdtype(dtype, np.integer):
            out[name] = rng.integers(0, 2, shape).astype(dtype)
        else:
            out[name] = rng.standard_normal(shape).astype(dtype)
    return out


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def mutations(declared: list, rng: np.random.Generator, pyrng: random.Random):
    """Yield ``(name, kind, payload)``: ``kind`` is "npz" / "npy" / "raw" bytes to write, "dir" or "missing"."""
    valid = _valid(declared, rng)
    names = [n for n, _, _ in declared]
    yield "valid", "npz", _npz_bytes(valid)
    choice = pyrng.randrange(14)
    victim = pyrng.choice(names)
    if choice == 0:
        yield "missing name", "npz", _npz_bytes({k: v for k, v in valid.items() if k != victim})
    elif choice == 1:
        yield "extra name", "npz", _npz_bytes({**valid, "zz_extra": np.zeros(3, np.float32)})
    elif choice == 2:
        yield "misspelt name", "npz", _npz_bytes({(k + "_" if k == victim else k): v for k, v in valid.items()})
    elif choice == 3:
        dt = pyrng.choice(DTYPES)
        yield f"dtype {np.dtype(dt).name}", "npz", _npz_bytes({**valid, victim: valid[victim].astype(dt)})
    elif choice == 4:
        shape = list(valid[victim].shape) or [1]
        shape[pyrng.randrange(len(shape))] += pyrng.choice((-1, 1, 7))
        shape = [max(0, d) for d in shape]
        yield "shape", "npz", _npz_bytes({**valid, victim: np.zeros(shape, valid[victim].dtype)})
    elif choice == 5:
        yield "rank", "npz", _npz_bytes({**valid, victim: valid[victim].reshape(-1)[:1].reshape(())})
    elif choice == 6:
        data = _npz_bytes(valid)
        yield "truncated npz", "raw", data[:pyrng.randrange(1, len(data))]
    elif choice == 7:
        data = bytearray(_npz_bytes(valid))
        for _ in range(pyrng.randrange(1, 16)):
            data[pyrng.randrange(len(data))] = pyrng.randrange(256)
        yield "bit flips", "raw", bytes(data)
    elif choice == 8:
        yield "npy", "npy", valid[victim]
    elif choice == 9:
        buf = io.BytesIO()
        np.save(buf, valid[victim])
        data = buf.getvalue()
        yield "truncated npy", "raw", data[:pyrng.randrange(1, len(data))]
    elif choice == 10:
        yield "huge header", "raw", _huge_npz(victim)
    elif choice == 11:
        yield "random bytes", "raw", bytes(pyrng.randrange(256) for _ in range(pyrng.randrange(0, 64)))
    elif choice == 12:
        yield "object array", "npz", _npz_pickled(victim)
    else:
        yield pyrng.choice(("folder", "missing path")), pyrng.choice(("dir", "missing")), b""


def _huge_npz(name: str) -> bytes:
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False,
                                                  "shape": (1 << 20, 1 << 20)})
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr(f"{name}.npy", header.getvalue())
    return buf.getvalue()


def _npz_pickled(name: str) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **{name: np.array([{"a": 1}, None], dtype=object)})
    return buf.getvalue()


def _check(build: str, inputs: str, outputs: str, backend: str, cast: bool) -> None:
    from ..driver import run_target
    run_target(build, inputs, outputs, backend, cast=cast)


def run_input_unit(n: int, seed: int, memory) -> Tally:
    """:func:`run_input_campaign` as one campaign unit (``tilec.testing.campaign``), its worker's address space
    capped by ``memory`` bytes: the mutations share one random stream, so they are not cut up."""
    from .campaign import worker_memory_limit
    worker_memory_limit(memory)
    return run_input_campaign(n, seed)


def run_input_campaign(n: int, seed: int = 0, seconds: float = 60.0, emu_every: int = 10) -> Tally:
    """``n`` mutated run inputs (about half valid) against two builds (a one-input and a two-input model);
    every ``emu_every``-th runs on the emulator, the rest on the numpy backend."""
    from ..driver import compile_model
    tally = Tally("mutated run inputs (tilec run)")
    rng, pyrng = np.random.default_rng(seed), random.Random(seed)
    root = Path(__file__).resolve().parents[3]
    with tempfile.TemporaryDirectory(prefix="tilec-run-fuzz-") as d:
        d = Path(d)
        _two_input_model(d / "two.onnx")
        builds = []
        for src, name in ((root / "samples" / "mlp.onnx", "one"), (d / "two.onnx", "two")):
            compile_model(str(src), str(d / name), pipeline="welder")
            builds.append((str(d / name), _declared(d / name)))
        count = 0
        while count < n:
            build, declared = builds[count % len(builds)]
            for label, kind, payload in mutations(declared, rng, pyrng):
                if count >= n:
                    break
                path = d / f"in{count}.{'npy' if kind == 'npy' else 'npz'}"
                if kind == "npy":
                    np.save(path, payload)
                elif kind == "dir":
                    path.mkdir()
                elif kind != "missing":
                    path.write_bytes(payload)
                out = d / f"out{count}.npz"
                backend = "emu" if count % emu_every == emu_every - 1 else "numpy"
                cast = pyrng.random() < 0.3
                outcome = run_guarded(_check, build, str(path), str(out), backend, cast, seconds=seconds)
                if outcome.kind == DIAGNOSTIC and out.exists():
                    outcome = Outcome(CRASH, f"outputs written although the run failed: {outcome.detail}")
                tally.add(f"{Path(build).name}/{label}/{backend}", outcome)
                count += 1
    return tally


def _declared(build: Path) -> list:
    """``(name, numpy dtype, shape)`` of a build's inputs, from its plan.json."""
    import json

    from ..backend.plan import plan_inputs
    from ..ir.types import np_dtype
    plan = json.loads((build / "plan.json").read_text())
    return [(n, np_dtype(dtype), shape) for n, dtype, shape in plan_inputs(plan)]
