"""The package layers (docs/architecture.md, "Layers"): analysis/ imports only ir, backend/ only analysis and
ir, runtime/ only backend, analysis and ir, so no import cycle joins analysis/, backend/, runtime/ and
driver.py. Function-level imports count too: a lazy import is still a dependency."""
from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "tilec"
ALLOWED = {"analysis": {"ir"}, "backend": {"analysis", "ir"}, "runtime": {"backend", "analysis", "ir"}}


def _imports(path: Path) -> list:
    """``(line, imported tilec module)`` for every import in ``path``, relative ones resolved."""
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    package = parts if parts[-1] == "__init__" else parts[:-1]
    package = package[:-1] if package and package[-1] == "__init__" else package
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            out.append((node.lineno, target))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
    return [(line, t) for line, t in out if t == "tilec" or t.startswith("tilec.")]


def test_layers_import_only_downwards():
    bad = []
    for layer, allowed in ALLOWED.items():
        for path in sorted((SRC / layer).rglob("*.py")):
            for line, target in _imports(path):
                top = target.split(".")[1] if "." in target else ""
                if top != layer and top not in allowed:
                    bad.append(f"{path.relative_to(SRC)}:{line}: imports {target}")
    assert not bad, "\n".join(bad)


def test_the_check_sees_lazy_relative_imports(tmp_path):
    # The resolver must map a function-level relative import to its absolute module, or the test above
    # would pass vacuously.
    f = SRC / "analysis" / "roller.py"
    targets = {t for _, t in _imports(f)}
    assert "tilec.analysis.mma_tile" in targets and "tilec.analysis.hardware" in targets
