"""``tilec opt``: parse, run a pass pipeline, print; with MLIR's --split-input-file and --verify-diagnostics."""
from __future__ import annotations

import re
import sys

import click

from ..ir.diagnostics import CompileError
from ..ir.io import read_ir, write_ir
from ..passes.pipeline import PassManager, parse_pipeline

_SPLIT = re.compile(r"^// -----\s*$", re.M)
_EXPECT = re.compile(r"//\s*expected-(error|warning|note)\s*(@([+-]?\d+))?\s*\{\{(.*?)\}\}")


def _read_source(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except FileNotFoundError:
        raise CompileError(f"no such file '{path}'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise CompileError(f"cannot read '{path}': {e}") from None


def _chunks(text: str, split: bool) -> list:
    """(first line number, chunk text); chunks are padded so line numbers stay those of the whole file."""
    if not split:
        return [text]
    out, line = [], 0
    for part in _SPLIT.split(text):
        out.append("\n" * line + part)
        line += part.count("\n")
    return out


def run_opt(path, spec, output, print_after_all, verify_each, verify_diagnostics, split, generic,
            arch: str | None = None) -> int:
    """``tilec opt``; ``arch`` sets each module's target (``tilec.target``) before the passes run."""
    text = _read_source(path)
    passes = parse_pipeline(spec) if spec else []
    if arch is not None:
        from ..analysis.hardware import get_arch
        get_arch(arch)   # an unknown arch fails before parsing
    results, status = [], 0
    for chunk in _chunks(text, split):
        try:
            module = read_ir(path, chunk)
            if arch is not None:
                from ..analysis.hardware import set_target
                set_target(module, arch)
            pm = PassManager(passes=[type(p)(**p.__dict__) for p in passes], verify_each=verify_each)
            if print_after_all:
                pm.print_after_all = lambda header, ir: click.echo(f"{header}\n{ir}", err=True)
            pm.run(module)
            error = None
        except CompileError as e:
            error = e
            if not verify_diagnostics:
                raise
        if verify_diagnostics:
            status |= _check_expectations(path, chunk, error)
            continue
        results.append(write_ir(module, None, generic=generic))
    if verify_diagnostics:
        return status
    out_text = "// -----\n".join(results)
    if output == "-":
        click.echo(out_text, nl=False)
    else:
        from pathlib import Path

        from ..ir.weights import atomic_write_bytes
        try:
            atomic_write_bytes(Path(output), out_text.encode("utf-8"))
        except OSError as e:
            raise CompileError(f"cannot write '{output}': {e.strerror or e}") from None
    return 0


def _check_expectations(path: str, chunk: str, error: CompileError | None) -> int:
    """MLIR's --verify-diagnostics: every expected error must be produced at its line, and nothing else."""
    expected = []
    for lineno, line in enumerate(chunk.splitlines(), 1):
        for m in _EXPECT.finditer(line):
            offset = int(m.group(3)) if m.group(3) else 0
            expected.append((lineno + offset, m.group(4)))
    if error is None:
        for line, msg in expected:
            click.echo(f"{path}:{line}: error: expected error \"{msg}\" was not produced", err=True)
        return 1 if expected else 0
    d = error.diagnostic
    for line, msg in expected:
        if (d.line == line or not d.line) and msg in d.message:
            return 0 if len(expected) == 1 else _unmet(path, [e for e in expected if e != (line, msg)])
    click.echo(f"{path}:{d.line}:{d.col}: error: unexpected error: {d.message}", err=True)
    return 1


def _unmet(path: str, expected) -> int:
    for line, msg in expected:
        click.echo(f"{path}:{line}: error: expected error \"{msg}\" was not produced", err=True)
    return 1
