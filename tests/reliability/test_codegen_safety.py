"""Names from a model never reach generated CUDA raw: a model whose node and tensor names hold ``*/``,
``"``, newlines, ``#define``, unicode and C keywords compiles to kernels that contain none of them, and
every ``.cu`` compiles with ``nvcc -arch=sm_90 -cubin`` (when nvcc is installed)."""
import re
import shutil
import subprocess

import onnx
import pytest
from hypothesis import given, settings, strategies as st
from onnx import TensorProto as T
from onnx import helper as h

from tilec.backend.cstyle import RESERVED, safe_comment, sanitize_identifier

EVIL = ['x */ int evil; /*', 'q"uote', 'new\nline', '#define float double', 'ü∑名', 'int', 'while', 'threadIdx',
        '__global__', 'a\\', '??/', 'k_0', 'main']
FORBIDDEN = ["*/ int evil", '"uote', "#define float", "\nline", "ü", "∑", "名", "??/", "evil;"]


def _evil_model(path):
    x, names = EVIL[0], EVIL[1:]
    nodes, prev = [], x
    ops = ["Relu", "Sigmoid", "Neg", "Abs", "Tanh", "Exp", "Relu", "Neg", "Abs", "Relu", "Sigmoid", "Neg"]
    for i, (name, op) in enumerate(zip(names, ops)):
        nodes.append(h.make_node(op, [prev], [name], name=EVIL[(i + 3) % len(EVIL)] + f" {i}"))
        prev = name
    nodes.append(h.make_node("ReduceSum", [prev], ["out */"], name="#pragma once\n", keepdims=1))
    g = h.make_graph(nodes, 'graph "*/', [h.make_tensor_value_info(x, T.FLOAT, [4, 33])],
                     [h.make_tensor_value_info("out */", T.FLOAT, None)])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    from tilec.driver import PIPELINES, compile_model
    if not any("lower-cuda" in spec for spec in PIPELINES.values()):
        pytest.skip("no driver pipeline runs lower-cuda yet: the backend does not write kernels")
    d = tmp_path_factory.mktemp("evil")
    _evil_model(d / "evil.onnx")
    compile_model(str(d / "evil.onnx"), str(d / "build"))
    kernels = sorted((d / "build" / "kernels").glob("*.cu"))
    if not kernels:
        pytest.skip("tilec compile wrote no kernels for this model")
    return kernels


def _prelude_lines() -> set:
    from pathlib import Path
    import tilec.backend as backend
    return set(Path(backend.__file__).with_name("cuda_prelude.h").read_text().splitlines())


def test_no_model_string_reaches_the_source(build):
    prelude = _prelude_lines()
    for cu in build:
        text = cu.read_text(encoding="utf-8")
        # The prelude is pasted verbatim from cuda_prelude.h (its comments may cite DESIGN §6); everything
        # else is the emitter's and must be plain ASCII, whatever the model's names hold.
        assert all(line.isascii() for line in text.splitlines() if line not in prelude), cu
        for s in FORBIDDEN:
            assert s not in text, (cu.name, s)
        for line in text.splitlines():
            # Preprocessor lines are the emitter's own (includes/guards), never from the model.
            if line.lstrip().startswith("#") and line not in prelude:
                assert re.match(r"\s*#\s*(include|pragma|if|ifdef|ifndef|endif|else|define TL_|undef TL_)", line), line


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed")
def test_every_kernel_compiles_with_nvcc(build, tmp_path):
    from tilec.backend.ptxas import check_kernels  # noqa: F401 - the prelude lives beside it
    from pathlib import Path
    import tilec.backend as backend
    include = Path(backend.__file__).parent
    for cu in build[:3]:  # nvcc takes seconds per file; the names are the same in every kernel
        r = subprocess.run(["nvcc", "-arch=sm_90", "-cubin", "-I", str(include), "-o", str(tmp_path / "k.cubin"),
                            str(cu)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, (cu.name, r.stderr[-3000:])


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_sanitize_identifier_gives_a_c_identifier(name):
    ident = sanitize_identifier(name)
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", ident), ident
    assert ident not in RESERVED


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_safe_comment_cannot_end_a_line_comment(text):
    c = safe_comment(text)
    assert "\n" not in c and "\r" not in c and "\\" not in c and "??" not in c and c.isascii()
