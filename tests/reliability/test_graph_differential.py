"""Random valid graphs (tilec.testing.graphgen) agree with onnxruntime after import, after decompose and,
once the backend has a lowering pipeline, under the emulator; and the shrinker reduces a failure."""
import numpy as np
import onnx
import pytest

from tilec.testing.differential import STAGES, check_graph, failing, stage_available
from tilec.testing.graphgen import BUILDERS, generate
from tilec.testing.shrink import shrink_generated, write_regression

CI_GRAPHS = {"import": 60, "decompose": 60, "emu": 4}  # emu builds each graph with g++ (about 1 s)
# Known open bugs, (stage, seed) -> what goes wrong; each has a shrunk reproducer in tests/regressions/.
# A listed case that starts passing fails this test too: remove it from the list.
KNOWN: dict = {}
ALL_OPS = set(BUILDERS) | {"Greater", "Abs", "Add", "Relu", "Tanh"}


def test_generator_is_deterministic():
    a, b = generate(7, 6), generate(7, 6)
    assert a.model.SerializeToString() == b.model.SerializeToString()
    assert all(np.array_equal(a.inputs[k], b.inputs[k]) for k in a.inputs)


@pytest.mark.parametrize("supported", [None, ALL_OPS], ids=["tilec-ops", "all-builders"])
def test_generated_graphs_are_valid_onnx(supported):
    # 'all-builders' also checks the builders (Conv, MatMul, pools, ...) still waiting for converters.
    for seed in range(40):
        g = generate(seed, 8, supported=supported)
        onnx.checker.check_model(g.model, full_check=True)
        onnx.shape_inference.infer_shapes(g.model, strict_mode=True)


@pytest.mark.parametrize("stage", STAGES)
def test_random_graphs_match_onnxruntime(stage):
    why = stage_available(stage)
    if why:
        pytest.skip(why)
    bad = []
    for seed in range(CI_GRAPHS[stage]):
        g = generate(seed, 6)
        outcomes = check_graph(g.model, g.inputs, (stage,))
        failed = bool(failing(outcomes)) or outcomes[stage].kind != "ok"
        if failed != ((stage, seed) in KNOWN):
            bad.append((seed, g.ops, outcomes[stage], KNOWN.get((stage, seed), "")))
    assert not bad, bad


def test_shrinker_finds_a_small_reproducer(tmp_path):
    # A synthetic bug: "any graph with a ReduceL2 fails".
    def still_fails(model, inputs):
        return any(n.op_type == "ReduceL2" for n in model.graph.node)
    seed = next(s for s in range(100) if "ReduceL2" in generate(s, 10).ops)
    model, inputs = shrink_generated(seed, 10, 7, still_fails)
    assert [n.op_type for n in model.graph.node] == ["ReduceL2"]
    path = write_regression(model, inputs, "import", "synthetic", tmp_path)
    text = path.read_text()
    assert "xfail(strict=True" in text and "def test_graph_" in text
    compile(text, str(path), "exec")


@pytest.mark.slow
def test_make_fuzz_sized_sweep():
    from tilec.testing.campaign import graph_campaign
    tallies = graph_campaign(2000, seed=10_000)
    assert not any(t.findings for t in tallies.values()), {k: t.findings for k, t in tallies.items()}
