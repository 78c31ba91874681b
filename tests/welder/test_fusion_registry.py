"""The fusion-pattern registry (``tilec.fusion``): every sub-package registers its pattern, the search asks
the patterns in the order their data says, plans are typed and frozen, a ``tile.kernel`` of an unknown
kind is a diagnostic, and the layering (``fusion`` above ``analysis`` and ``backend``) holds."""
from __future__ import annotations

import ast
import dataclasses
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import tilec.fusion
from tilec.analysis.hardware import get_arch
from tilec.analysis.welder import TileGraph
from tilec.analysis.welder.search import Group, classify_group
from tilec.cli.main import cli
from tilec.frontend.importer import import_onnx
from tilec.fusion import FusionPattern, fusion_pattern, pattern, patterns, search_groups
from tilec.ir.core import functions
from tilec.passes.pipeline import PassManager, parse_pipeline

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "tilec"
FRONT = "canonicalize,infer-shapes,fold-constants,decompose,cse,dce,roller"


def test_every_folder_registers_the_pattern_named_after_it():
    folders = sorted(i.name for i in pkgutil.iter_modules(tilec.fusion.__path__) if i.ispkg)
    assert folders == ["attention", "conv_chain", "conv_pool", "epilogue", "mlp", "row"]
    assert sorted(p.name for p in patterns()) == folders
    for name in folders:
        assert type(pattern(name)).__module__ == f"tilec.fusion.{name}"
    assert pattern("nonesuch") is None


def test_discovery_finds_every_pattern_after_one_was_imported_on_its_own():
    # mlp's matcher imports the epilogue and row packages: discovery must still load the other three.
    code = "import tilec.fusion.mlp.match; from tilec.fusion import patterns; print(sorted(p.name for p in patterns()))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(["attention", "conv_chain", "conv_pool", "epilogue", "mlp", "row"])


def test_order_and_levels_are_data_on_the_patterns():
    order = [p.name for p in patterns() if p.stage == "grow"]
    assert order == ["epilogue", "row", "conv_chain", "mlp"]   # priority 0 (by name), then 1, then 2
    assert {p.name for p in patterns() if p.allowed("shared")} == {"row", "conv_chain"}
    assert not any(p.allowed("global") for p in patterns())
    assert [p.name for p in patterns() if p.retile] == ["epilogue"]
    assert pattern("epilogue").level == "register" and pattern("mlp").level == "shared"


def test_a_second_registration_of_a_name_is_refused():
    with pytest.raises(ValueError, match="registered twice"):
        fusion_pattern("row", level="shared", enabled_at="shared")(type("Again", (FusionPattern,), {}))
    with pytest.raises(ValueError, match="bad level"):
        fusion_pattern("x", level="l2", enabled_at="shared")


class _Fixed(FusionPattern):
    """A stand-in pattern that matches every member list with a fixed traffic."""

    def __init__(self, name, priority, traffic):
        self.name, self.priority, self.traffic = name, priority, traffic

    def match(self, graph, members, spec):
        return None if self.traffic is None else Group(list(members), self.name, self.traffic)


@pytest.fixture(scope="module")
def layer_graph():
    module = import_onnx(str(ROOT / "samples" / "transformer_layer.onnx"), {})
    PassManager(parse_pipeline(FRONT)).run(module)
    return TileGraph(functions(module)[0].body)


def test_classify_asks_a_higher_priority_only_when_no_lower_one_matched(layer_graph):
    spec = get_arch("h200")
    pair = [0, layer_graph.nodes[0].consumers[0]]
    # Equal priorities compete by score; a lower priority wins even with a worse score.
    got = classify_group(layer_graph, pair, spec, [_Fixed("a", 0, 900), _Fixed("b", 0, 100), _Fixed("c", 1, 1)])
    assert got.kind == "b"
    got = classify_group(layer_graph, pair, spec, [_Fixed("a", 0, None), _Fixed("c", 1, 5), _Fixed("d", 2, 1)])
    assert got.kind == "c"
    assert classify_group(layer_graph, pair, spec, [_Fixed("a", 0, None)]) is None
    assert classify_group(layer_graph, [0], spec, []).kind == "single"


def test_groups_carry_frozen_typed_plans(layer_graph):
    spec = get_arch("h200")
    groups = [g for level in ("register", "shared") for g in search_groups(layer_graph, spec, level)
              if g.kind != "single"]
    assert {g.kind for g in groups} == {"attention", "epilogue", "mlp", "row"}
    for g in groups:
        assert dataclasses.is_dataclass(g.plan) and g.plan.__dataclass_params__.frozen, g.kind
        with pytest.raises(dataclasses.FrozenInstanceError):
            g.plan.anything = 1


def test_a_kernel_of_an_unknown_kind_is_a_diagnostic(tmp_path):
    dumps = tmp_path / "dumps"
    r = CliRunner().invoke(cli, ["compile", str(ROOT / "samples" / "mlp.onnx"), "-o", str(tmp_path / "b"),
                                 "--pipeline", "welder", "--dump-dir", str(dumps)])
    assert r.exit_code == 0, r.output
    [welder] = dumps.glob("*_welder.tir")
    text = welder.read_text()
    assert 'kind = "epilogue"' in text
    bad = dumps / "bad.tir"
    bad.write_text(text.replace('kind = "epilogue"', 'kind = "nonesuch"'))
    r = CliRunner().invoke(cli, ["opt", "-p", "lower-cuda", str(bad)])
    assert r.exit_code == 1, r.output
    assert "unknown fusion kind 'nonesuch'" in r.output and "Traceback" not in r.output


def _imports(path: Path) -> list:
    """``(module the import names, at module level)`` of every import in ``path``, relative ones resolved."""
    package = ".".join(path.relative_to(SRC.parent).parent.parts)   # the package the module is in
    tree = ast.parse(path.read_text())
    top = {id(n) for n in tree.body}
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            out += [(f"{base}.{a.name}" if not node.module else base, id(node) in top) for a in node.names]
        elif isinstance(node, ast.Import):
            out += [(a.name, id(node) in top) for a in node.names]
    return out


def test_layering_analysis_and_backend_never_import_fusion():
    for folder in ("analysis", "backend"):
        for path in (SRC / folder).rglob("*.py"):
            bad = [m for m, _ in _imports(path) if m == "tilec.fusion" or m.startswith("tilec.fusion.")]
            assert not bad, (path, bad)


def test_fusion_imports_are_at_module_level_and_public():
    for path in (SRC / "fusion").rglob("*.py"):
        for name, top in _imports(path):
            assert top, (path, name)
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                assert not any(a.name.startswith("_") for a in node.names), (path, ast.dump(node))
