"""Pipelines: parse ``a,b{opt=1 x=2}`` / ``builtin.module(a,b)`` and run passes with verify-each and dumps."""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..ir.core import Operation
from ..ir.diagnostics import CompileError, PassVerificationError, SizeLimitError
from ..ir.io import write_ir
from ..ir.printer import print_module
from ..ir.verifier import verify
from . import get_pass_class

_ITEM = re.compile(r"\s*([A-Za-z][A-Za-z0-9_-]*)\s*(\{([^{}]*)\})?\s*(,|$)")


def parse_pipeline(text: str) -> list:
    """Pass instances for ``text``; accepts MLIR's ``builtin.module(...)`` wrapper."""
    text = text.strip()
    m = re.fullmatch(r"builtin\.module\((.*)\)", text, re.S)
    if m:
        text = m.group(1).strip()
    passes, pos = [], 0
    while pos < len(text):
        m = _ITEM.match(text, pos)
        if not m or m.end() == pos:
            raise CompileError(f"bad pass pipeline at '{text[pos:]}' (expected name or name{{opt=value}})")
        name, opts = m.group(1), m.group(3)
        options = {}
        for tok in (opts or "").split():
            if "=" not in tok:
                raise CompileError(f"pass option '{tok}' of '{name}' must be key=value")
            k, v = tok.split("=", 1)
            options[k] = v
        passes.append(get_pass_class(name).from_options(options))
        pos = m.end()
    return passes


@dataclass
class PassRecord:
    name: str
    seconds: float


@dataclass
class PassManager:
    """Runs passes in order; verifies after each (``verify_each``) and dumps IR after each (``dump_dir``)."""

    passes: list
    verify_each: bool = True
    dump_dir: str | None = None
    print_after_all: object = None  # a callable taking (header, text)
    first_index: int = 1
    records: list = field(default_factory=list)
    before_pass: object = None  # a callable taking (pass index counted from first_index, pass name)

    def run(self, module: Operation) -> Operation:
        for i, p in enumerate(self.passes):
            if self.before_pass is not None:
                self.before_pass(self.first_index + i, p.name)
            start = time.perf_counter()
            p.apply(module)
            self.records.append(PassRecord(p.name, time.perf_counter() - start))
            if self.verify_each:
                try:
                    verify(module)
                except SizeLimitError:
                    raise   # the input is too big for tilec: still the input's fault
                except CompileError as e:
                    # The module verified before this pass ran: the pass broke it, a tilec bug (exit 3).
                    raise PassVerificationError(p.name, e) from e
            module.attributes["tilec.stage"] = p.name
            if self.dump_dir is not None:
                dump(module, self.dump_dir, self.first_index + i, p.name)
            if self.print_after_all is not None:
                self.print_after_all(dump_header(p.name), print_module(module))
        return module


def dump_header(pass_name: str) -> str:
    """MLIR's dump header; a comment, so the dump still parses."""
    return f"// -----// IR Dump After {pass_name} //----- //"


def dump(module: Operation, dump_dir: str, index: int, stage: str) -> Path:
    """Write ``DIR/NN_<stage>.tir`` (and the shared weights sidecar)."""
    path = Path(dump_dir) / f"{index:02d}_{stage.replace('-', '_')}.tir"
    write_ir(module, str(path))
    return path
