"""Shrinking a failing graph to a small reproducer, and saving it as a regression test.

``shrink_generated`` first regenerates the graph from its seed with fewer nodes and smaller dims; then
``shrink_model`` keeps one failing output's cone and cuts nodes off the front (their outputs become graph
inputs), as long as ``still_fails(model, inputs)`` holds. ``write_regression`` writes the result under
``tests/regressions/`` as a self-contained pytest file.
"""
from __future__ import annotations

import base64
import copy
import hashlib
import io
from pathlib import Path

import numpy as np
import onnx
from onnx import helper as h

from .graphgen import generate


def _shapes(model) -> dict:
    inferred = onnx.shape_inference.infer_shapes(model)
    out = {}
    for vi in list(inferred.graph.value_info) + list(inferred.graph.input) + list(inferred.graph.output):
        tt = vi.type.tensor_type
        if tt.HasField("shape") and all(d.HasField("dim_value") for d in tt.shape.dim):
            out[vi.name] = (tt.elem_type, [d.dim_value for d in tt.shape.dim])
    return out


def _prune(model, outputs: list, shapes: dict):
    """Keep only the nodes ``outputs`` depend on, and the inputs and initializers they read."""
    g = model.graph
    need, keep = set(outputs), []
    for n in reversed(g.node):
        if need & set(n.output):
            keep.append(n)
            need |= {i for i in n.input if i}
    keep.reverse()
    m = copy.deepcopy(model)
    del m.graph.node[:]
    m.graph.node.extend(keep)
    inits = [t for t in g.initializer if t.name in need]
    del m.graph.initializer[:]
    m.graph.initializer.extend(inits)
    ins = [i for i in g.input if i.name in need]
    del m.graph.input[:]
    m.graph.input.extend(ins)
    del m.graph.output[:]
    m.graph.output.extend(h.make_tensor_value_info(o, *shapes[o]) for o in outputs)
    return m


def _input_data(name: str, shape) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "little")
    return np.random.default_rng(seed).uniform(-2, 2, size=shape).astype(np.float32)


def shrink_model(model, inputs: dict, still_fails, max_steps: int = 200):
    """The smallest (model, inputs) found that still fails; ``model`` itself must fail."""
    shapes = _shapes(model)
    outs = [o.name for o in model.graph.output if o.name in shapes]
    for o in outs:  # one output is enough
        cand = _prune(model, [o], shapes)
        if still_fails(cand, {k: v for k, v in inputs.items() if k in {i.name for i in cand.graph.input}}):
            model, outs = cand, [o]
            break
    inputs = {i.name: inputs.get(i.name, _input_data(i.name, shapes[i.name][1])) for i in model.graph.input}
    changed, steps = True, 0
    while changed and steps < max_steps:
        changed = False
        for n in list(model.graph.node):
            steps += 1
            # Cut node n: its outputs become graph inputs fed with seeded data.
            if any(o not in shapes for o in n.output) or set(n.output) & set(outs):
                continue
            cand = copy.deepcopy(model)
            idx = [k for k, m in enumerate(cand.graph.node) if list(m.output) == list(n.output)][0]
            del cand.graph.node[idx]
            cand.graph.input.extend(h.make_tensor_value_info(o, *shapes[o]) for o in n.output if o)
            cand = _prune(cand, outs, shapes)
            cin = {i.name: inputs.get(i.name, _input_data(i.name, shapes[i.name][1])) for i in cand.graph.input}
            if len(cand.graph.node) < len(model.graph.node) and still_fails(cand, cin):
                model, inputs, changed = cand, cin, True
                break
    return model, inputs


def shrink_generated(seed: int, n_nodes: int, max_dim: int, still_fails):
    """Regenerate ``seed`` smaller while it still fails, then shrink the model itself."""
    best = generate(seed, n_nodes, max_dim)
    for dim in (1, 2, 3, 5):
        if dim >= max_dim:
            break
        g = generate(seed, n_nodes, dim)
        if still_fails(g.model, g.inputs):
            best, max_dim = g, dim
            break
    for n in range(1, n_nodes):
        g = generate(seed, n, max_dim)
        if still_fails(g.model, g.inputs):
            best = g
            break
    return shrink_model(best.model, best.inputs, still_fails)


_TEMPLATE = '''"""Regression found by scripts/fuzz.py ({stage}): {reason}

A shrunk random graph ({n} nodes: {ops}). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "{model}"
INPUTS = "{inputs}"


@pytest.mark.xfail(strict=True, reason={reason!r})
def test_{name}():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {{k: f[k] for k in f.files}}
    outcomes = check_graph(model, inputs, stages=({stage!r},))
    assert not failing(outcomes), outcomes
'''


def write_regression(model, inputs: dict, stage: str, reason: str, folder) -> Path:
    """Write a pytest file reproducing the failure; the name is a hash of the model, so reruns dedupe."""
    data = model.SerializeToString()
    name = "graph_" + hashlib.sha256(data).hexdigest()[:12]
    buf = io.BytesIO()
    np.savez(buf, **inputs)
    text = _TEMPLATE.format(stage=stage, reason=reason.replace('"', "'")[:200], n=len(model.graph.node),
                            ops=", ".join(n.op_type for n in model.graph.node)[:200], name=name,
                            model=base64.b64encode(data).decode(), inputs=base64.b64encode(buf.getvalue()).decode())
    path = Path(folder) / f"test_{name}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path
