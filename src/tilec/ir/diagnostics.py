"""Diagnostics: ``file:line:col: error: message``, then the source line and a caret (MLIR / clang style).

Every user-facing failure in tilec is a :class:`CompileError`; the CLI prints it with :func:`render` and
exits 1. Anything else escaping to the CLI is an internal error (exit 3), :class:`PassVerificationError`
included: a pass that leaves IR its verifier rejects is a tilec bug, whatever the input was.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Diagnostic:
    """One message anchored at a position (line and col are 1-based; 0 means unknown)."""

    message: str
    file: str | None = None
    line: int = 0
    col: int = 0
    severity: str = "error"
    notes: list = field(default_factory=list)

    def render(self, source: str | None = None) -> str:
        where = self.file if self.file is not None else "tilec"
        if self.line:
            where += f":{self.line}:{self.col}"
        text = f"{where}: {self.severity}: {self.message}"
        if source is not None and self.line:
            lines = source.splitlines()
            if 0 < self.line <= len(lines):
                src = lines[self.line - 1]
                # Keep the caret under the column even when the line has tabs.
                pad = "".join("\t" if c == "\t" else " " for c in src[:max(self.col - 1, 0)])
                text += f"\n{src}\n{pad}^"
        for note in self.notes:
            text += "\n" + note.render(source)
        return text


class CompileError(Exception):
    """A user error (bad IR, bad model, bad flag value): printed as a diagnostic, exit code 1."""

    def __init__(self, message: str, file: str | None = None, line: int = 0, col: int = 0, source: str | None = None):
        super().__init__(message)
        self.diagnostic = Diagnostic(message, file, line, col)
        self.source = source

    @classmethod
    def at(cls, message: str, loc, source: str | None = None) -> "CompileError":
        """An error at an op's :class:`~tilec.ir.core.Location` (file positions or model node names)."""
        if loc is None:
            return cls(message)
        if loc.name is not None:
            return cls(f"{message} (node '{loc.name}')", loc.file)
        return cls(message, loc.file, loc.line, loc.col, source)

    def render(self) -> str:
        return self.diagnostic.render(self.source)

    def __str__(self) -> str:
        return self.render()


class SizeLimitError(CompileError):
    """A tensor or module over tilec's size limits (``ir/limits.py``): the input's fault (exit 1) even when
    the verifier finds it after a pass (a folded constant or a decomposition's intermediate)."""


class PassVerificationError(Exception):
    """A pass produced IR its verifier rejects: an internal error (exit 3, "this is a bug in tilec"), not a
    :class:`CompileError`, since the IR was valid when the pass got it. ``cause`` is the verifier's error."""

    def __init__(self, pass_name: str, cause: CompileError):
        d = cause.diagnostic
        where = f" (at {d.file or '-'}:{d.line}:{d.col})" if d.line else ""
        super().__init__(f"IR is invalid after pass '{pass_name}': {d.message}{where}")
        self.pass_name, self.cause = pass_name, cause
