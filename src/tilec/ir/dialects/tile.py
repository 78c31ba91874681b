"""``tile`` dialect hooks: weights, constants and tensor-expression compute ops."""
from ..attributes import DenseAttr, SymbolRef
from ..core import lookup_symbol
from ..diagnostics import CompileError
from ..types import TensorType
from ..verifier import verify_hook
from ..weights import module_weights


@verify_hook("tile.weight")
def _verify_weight(op, module):
    ty = op.attributes["type"]
    if not isinstance(ty, TensorType):
        raise CompileError.at("'tile.weight' type must be a tensor type", op.loc)
    data = module_weights(module).get(op.sym_name)
    if data is not None and TensorType.of(data) != ty:
        raise CompileError.at(f"weight @{op.sym_name} is declared {ty} but its data is {TensorType.of(data)}",
                              op.loc)


@verify_hook("tile.const")
def _verify_const(op, module):
    value = op.attributes["value"]
    ty = op.result.type
    if isinstance(value, SymbolRef):
        decl = lookup_symbol(module, value.name)
        if decl is None or decl.name != "tile.weight":
            raise CompileError.at(f"'tile.const' refers to unknown weight @{value.name}", op.loc)
        if decl.attributes["type"] != ty:
            raise CompileError.at(f"'tile.const' has type {ty} but weight @{value.name} is "
                                  f"{decl.attributes['type']}", op.loc)
    elif isinstance(value, DenseAttr) and value.type != ty:
        raise CompileError.at(f"'tile.const' has type {ty} but its value is {value.type}", op.loc)


@verify_hook("tile.compute")
def _verify_compute(op, module):
    from ..texpr import TexprError, parse_texpr
    text = op.attributes["expr"]
    try:
        expr = parse_texpr(text)
    except TexprError as e:
        raise _expr_error(op, f"bad tensor expression: {e.message}", e.column) from None
    if len(expr.inputs) != len(op.operands):
        raise _expr_error(op, f"expression reads {len(expr.inputs)} inputs but the op has "
                          f"{len(op.operands)} operands", 0)
    shapes = [v.type.shape for v in op.operands]
    out = op.result.type
    for acc in expr.accesses:
        rank = len(shapes[expr.inputs.index(acc.tensor)])
        if len(acc.indices) != rank:
            raise _expr_error(op, f"'{acc.tensor}' is indexed with {len(acc.indices)} indices but has rank {rank}", 0)
    if len(expr.out_axes) != out.rank:
        raise _expr_error(op, f"output has {len(expr.out_axes)} axes but the result has rank {out.rank}", 0)
    try:
        extents = expr.axis_extents(shapes, out.shape, op.attributes.get("axes"))
        dtype = expr.result_dtype([v.type.dtype for v in op.operands])
    except TexprError as e:
        raise _expr_error(op, e.message, e.column) from None
    for ax, dim in zip(expr.out_axes, out.shape):
        if extents[ax] != dim:
            raise _expr_error(op, f"axis '{ax}' has extent {extents[ax]} but the result dim is {dim}", 0)
    if dtype != out.dtype:
        raise _expr_error(op, f"expression computes {dtype} but the result is {out.dtype}", 0)


def _expr_error(op, message: str, column: int) -> CompileError:
    pos = getattr(op, "expr_pos", None)
    loc = op.loc
    if pos is not None and loc is not None and loc.name is None:
        return CompileError(f"'tile.compute' {message}", loc.file, pos[0], pos[1] + column)
    return CompileError.at(f"'tile.compute' {message}", loc)
