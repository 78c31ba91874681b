"""The build-folder commands on a shape-profile build's top folder (``profile.json``, one build per bucket):
``tilec inspect`` inspects every bucket; ``tilec tune`` and ``tilec viz``, which work on one build, say so and
name the buckets' folders (they failed with "not a build folder" before)."""
from __future__ import annotations

import json
import shutil

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto as T
from onnx import helper as h

from tilec.cli.main import cli


@pytest.fixture(scope="module")
def profile_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("pb")
    x = h.make_tensor_value_info("x", T.FLOAT, ["batch", 64])
    y = h.make_tensor_value_info("y", T.FLOAT, ["batch", 64])
    g = h.make_graph([h.make_node("Relu", ["x"], ["t"]), h.make_node("Exp", ["t"], ["y"])], "g", [x], [y])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), str(root / "m.onnx"))
    r = CliRunner().invoke(cli, ["compile", str(root / "m.onnx"), "-o", str(root / "b"), "--shape-profile",
                                 "x=1..2x64", "--pipeline", "welder", "-q"])
    assert r.exit_code == 0, r.output
    return str(root / "b")


@pytest.mark.parametrize("args", [["tune"], ["viz", "--schedule"], ["viz", "--graph"]])
def test_one_build_commands_name_the_buckets(profile_build, args):
    r = CliRunner().invoke(cli, [*args, profile_build])
    assert r.exit_code == 1, r.output
    (line,) = r.output.strip().splitlines()
    assert "is a shape-profile build" in line and f"{profile_build}/buckets/1" in line
    assert f"{profile_build}/buckets/2" in line


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc (CUDA toolkit) is not installed")
def test_inspect_inspects_every_bucket(profile_build):
    from tilec.backend import inspect_build
    try:
        inspect_build.find_disassembler()
    except Exception:  # noqa: BLE001 - not installed: skip
        pytest.skip("cuobjdump/nvdisasm wheels not installed")
    r = CliRunner().invoke(cli, ["inspect", profile_build, "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.output)
    assert sorted(data["buckets"]) == ["1", "2"] and all(b["kernels"] for b in data["buckets"].values())
    text = CliRunner().invoke(cli, ["inspect", profile_build]).output
    assert text.startswith("bucket 1: ") and "\n\nbucket 2: " in text
