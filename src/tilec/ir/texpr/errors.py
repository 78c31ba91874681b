"""The one exception of the tensor-expression language."""
from __future__ import annotations

from ..diagnostics import CompileError


class TexprError(CompileError):
    """A bad tensor expression (syntax, semantics, shapes or types).

    ``message`` is the plain text; ``column`` is the 0-based offset in the expression text it points at
    (0 where no better position is known). It is a :class:`CompileError`, so a CLI run reports it as a
    user error; ``tile.compute``'s verifier re-anchors it at the op's location.
    """

    def __init__(self, message: str, column: int | None = 0):
        self.message = message
        self.column = int(column or 0)
        super().__init__(f"tensor expression: {message} (at column {self.column})")
