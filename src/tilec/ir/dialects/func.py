"""``func.func`` / ``func.return``: signatures match block arguments and the returned values."""
from ..diagnostics import CompileError
from ..verifier import check_function_signature, verify_hook


@verify_hook("func.func")
def _verify_func(op, module):
    check_function_signature(op)
    term = op.body.terminator
    if term is None or term.name != "func.return":
        raise CompileError.at(f"'func.func' @{op.sym_name} must end with a return", op.loc)
    returned = tuple(v.type for v in term.operands)
    if returned != op.attributes["function_type"].results:
        raise CompileError.at(f"'func.return' types do not match the signature of @{op.sym_name}", term.loc)


@verify_hook("func.return")
def _verify_return(op, module):
    if op.parent is None or op.parent.terminator is not op:
        raise CompileError.at("'func.return' must be the last op of its block", op.loc)
