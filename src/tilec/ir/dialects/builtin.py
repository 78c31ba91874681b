"""``builtin.module``: symbols in a module are unique."""
from ..diagnostics import CompileError
from ..verifier import verify_hook


@verify_hook("builtin.module")
def _unique_symbols(op, module):
    seen = set()
    for inner in op.body.ops:
        name = inner.sym_name
        if name is None:
            continue
        if name in seen:
            raise CompileError.at(f"redefinition of symbol '@{name}'", inner.loc)
        seen.add(name)
