"""``tilec viz --graph BUILD_OR_TIR``: the fused tile-graph as Graphviz DOT, or SVG (through ``dot`` where
Graphviz is installed, else laid out by tilec itself: ``viz_svg.py``)."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click

from ..ir.diagnostics import CompileError


def graph_module(src: str):
    """The IR to draw: a build folder's ``reference.tir`` (the IR with welder's kernels, before lowering)
    or ``model.tir``, else ``src`` itself as a .tir file."""
    from ..ir.io import read_ir
    path = Path(src)
    if path.is_dir():
        for name in ("reference.tir", "model.tir"):
            if (path / name).is_file():
                return read_ir(str(path / name))
        raise CompileError(f"'{src}' is not a build folder (no reference.tir or model.tir in it)")
    return read_ir(src)


def write_graph(src: str, output: str) -> None:
    from ..analysis.welder.dot import module_dot
    from ..ir.weights import atomic_write_bytes
    module = graph_module(src)
    text = module_dot(module)
    if output == "-":
        click.echo(text, nl=False)
        return
    if output.endswith(".svg"):
        dot = shutil.which("dot")
        if dot is None:   # no Graphviz: tilec's own layout (cli/viz_svg.py)
            from ..analysis.welder.dot import tile_graph
            from .viz_svg import graph_svg
            text = graph_svg(tile_graph(module))
        else:
            proc = subprocess.run([dot, "-Tsvg", "-o", output], input=text, text=True, capture_output=True)
            if proc.returncode:
                raise CompileError(f"dot failed: {proc.stderr.strip()[:500]}")
            return
    try:
        atomic_write_bytes(Path(output), text.encode("utf-8"))
    except OSError as e:
        raise CompileError(f"cannot write '{output}': {e.strerror}") from None
