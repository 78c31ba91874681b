"""torch.compile(backend="tilec") (src/tilec/torch_backend.py) on CPU: an MLP and a transformer block match
eager on the numpy and emu backends, weights stay live inputs unless frozen, and what tilec cannot take runs
eagerly with one warning naming the reason. torch is an optional extra (`pip install -e ".[torch]"`); these
tests run where it is installed: `make test-torch` (TORCH_PYTHON=a Python that has torch, or it installs it)."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from tilec.torch_backend import TilecFallbackWarning  # noqa: E402


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = torch.nn.Linear(16, 32), torch.nn.Linear(32, 8)

    def forward(self, x):
        return self.b(torch.nn.functional.gelu(self.a(x)))


class Block(torch.nn.Module):
    """A pre-norm transformer encoder block: attention with 4 heads, then a GELU MLP."""

    def __init__(self, d=32, heads=4):
        super().__init__()
        self.heads = heads
        self.ln1, self.ln2 = torch.nn.LayerNorm(d), torch.nn.LayerNorm(d)
        self.qkv, self.proj = torch.nn.Linear(d, 3 * d), torch.nn.Linear(d, d)
        self.fc1, self.fc2 = torch.nn.Linear(d, 4 * d), torch.nn.Linear(4 * d, d)

    def forward(self, x):
        b, s, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).reshape(b, s, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        att = torch.softmax(q @ k.transpose(-1, -2) / (d // self.heads) ** 0.5, dim=-1)
        x = x + self.proj((att @ v).transpose(1, 2).reshape(b, s, d))
        return x + self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))


def _compiled(module, **options):
    torch._dynamo.reset()
    return torch.compile(module, backend="tilec", dynamic=False, options=options)


@pytest.mark.parametrize("backend", ["numpy", "emu"])
def test_mlp_matches_eager(backend):
    torch.manual_seed(0)
    m, x = MLP().eval(), torch.randn(4, 16)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TilecFallbackWarning)   # a fallback would make this test vacuous
        got, want = _compiled(m, backend=backend)(x), m(x)
    assert isinstance(got, torch.Tensor) and got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["numpy", "emu"])
def test_transformer_block_matches_eager(backend):
    torch.manual_seed(0)
    m, x = Block().eval(), torch.randn(2, 16, 32)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", TilecFallbackWarning)
        got, want = _compiled(m, backend=backend)(x), m(x)
    np.testing.assert_allclose(got.numpy(), want.numpy(), rtol=1e-4, atol=1e-4)


def test_weights_are_live_inputs_unless_frozen():
    torch.manual_seed(0)
    m, x = MLP().eval(), torch.randn(4, 16)
    live, frozen = _compiled(m, backend="numpy"), _compiled(MLP().eval(), backend="numpy", freeze=True)
    with torch.no_grad():
        before = live(x)
        m.b.bias += 1.0                                   # an in-place update after compiling
        np.testing.assert_allclose(live(x).numpy(), (before + 1.0).numpy(), rtol=1e-5, atol=1e-5)
        f = frozen._orig_mod
        want = f(x)
        np.testing.assert_allclose(frozen(x).numpy(), want.numpy(), rtol=1e-4, atol=1e-5)


def test_unsupported_op_falls_back_with_one_warning():
    class Noisy(torch.nn.Module):
        def forward(self, x):
            return x + torch.rand_like(x)   # exports to RandomUniformLike: random ops are outside tilec's scope

    x = torch.randn(4, 8)
    torch.manual_seed(1)
    with torch.no_grad(), pytest.warns(TilecFallbackWarning,
                                       match=r"running this graph eagerly: .*RandomUniformLike") as rec:
        got = _compiled(Noisy(), backend="numpy")(x)
    assert len([w for w in rec if issubclass(w.category, TilecFallbackWarning)]) == 1
    torch.manual_seed(1)
    np.testing.assert_allclose(got.numpy(), (x + torch.rand_like(x)).numpy(), rtol=1e-6)   # eager: same draws


def test_graphs_that_need_gradients_run_eagerly():
    m, x = MLP(), torch.randn(4, 16)
    with pytest.warns(TilecFallbackWarning, match="gradients"):
        y = _compiled(m, backend="numpy")(x)
    y.sum().backward()                                    # eager: training still works
    assert m.a.weight.grad is not None


def test_unknown_option_is_the_users_error():
    from tilec.torch_backend import tilec_backend
    with pytest.raises(ValueError, match="unknown tilec option.*pipline"):
        tilec_backend(None, [], options={"pipline": "welder"})


def test_tilec_compile_takes_a_module_with_example_inputs():
    import tilec
    torch.manual_seed(0)
    m, x = MLP().eval(), torch.randn(4, 16)
    model = tilec.compile(m, example_inputs=(x,), backend="numpy")
    assert model.input_names == ["x"]                      # forward's parameter name
    (got,) = model.run(None, {"x": x})
    assert isinstance(got, torch.Tensor)
    with torch.no_grad():
        np.testing.assert_allclose(got.numpy(), m(x).numpy(), rtol=1e-4, atol=1e-5)
    with pytest.raises(tilec.CompileError, match="needs example_inputs"):
        tilec.compile(m, backend="numpy")
