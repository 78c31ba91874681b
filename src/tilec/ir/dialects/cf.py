"""``cf`` dialect hooks: cf.loop / cf.if bodies agree with their operands and results (DESIGN §2).

``loop_types`` / ``if_types`` also recompute region-argument and result types from the operands, which is
what ``infer-shapes`` needs once the function's inputs are fixed.
"""
from ..diagnostics import CompileError
from ..types import TensorType
from ..verifier import verify_hook

I64 = TensorType((), "i64")
BOOL = TensorType((), "bool")


def _yield(op, block):
    term = block.terminator
    if term is None or term.name != "cf.yield":
        raise CompileError.at(f"'{op.name}' body must end with a cf.yield", op.loc)
    return term


def stacked(t: TensorType, trip: int) -> TensorType:
    return TensorType((trip,) + tuple(t.shape), t.dtype)


@verify_hook("cf.loop")
def _verify_loop(op, module):
    body = op.body
    carried = op.operands[2:]
    want = [I64, BOOL] + [v.type for v in carried]
    if [a.type for a in body.args] != want:
        raise CompileError.at("'cf.loop' block arguments must be (tensor<i64>, tensor<bool>, carried types...)",
                              op.loc)
    if op.operands[0].type != I64 or op.operands[1].type != BOOL:
        raise CompileError.at("'cf.loop' max_trip must be tensor<i64> and cond tensor<bool>", op.loc)
    term = _yield(op, body)
    k = op.attributes.get("num_scan", 0)
    n = len(carried)
    if len(term.operands) != 1 + n + k or term.operands[0].type != BOOL:
        raise CompileError.at(f"'cf.loop' body must yield (cond, {n} carried, {k} scan) values", op.loc)
    if [v.type for v in term.operands[1:1 + n]] != want[2:]:
        raise CompileError.at("'cf.loop' body yields carried values of other types than it receives", op.loc)
    if k and "trip" not in op.attributes:
        raise CompileError.at("'cf.loop' scan outputs need a static 'trip' count", op.loc)
    res = want[2:] + [stacked(v.type, op.attributes["trip"]) for v in term.operands[1 + n:]]
    if [r.type for r in op.results] != res:
        raise CompileError.at("'cf.loop' result types do not match (carried..., stacked scan...)", op.loc)


@verify_hook("cf.if")
def _verify_if(op, module):
    if op.operands[0].type.numel != 1 or op.operands[0].type.dtype != "bool":
        raise CompileError.at("'cf.if' condition must be a single bool", op.loc)
    want = [r.type for r in op.results]
    for name, region in zip(("then", "else"), op.regions):
        got = [v.type for v in _yield(op, region.block).operands]
        if got != want:
            raise CompileError.at(f"'cf.if' {name} branch yields ({', '.join(map(str, got))}) but the op "
                                  f"returns ({', '.join(map(str, want))})", op.loc)


@verify_hook("cf.yield")
def _verify_yield(op, module):
    parent = op.parent_op
    if parent is None or parent.name not in ("cf.loop", "cf.if") or op.parent.terminator is not op:
        raise CompileError.at("'cf.yield' must end a cf.loop or cf.if body", op.loc)


def refine_types(op, visit_block) -> None:
    """Re-derive a cf op's block-argument and result types from its operands, visiting bodies in between
    with ``visit_block`` (infer-shapes)."""
    if op.name == "cf.loop":
        body = op.body
        for a, v in zip(body.args[2:], op.operands[2:]):
            a.type = v.type
        visit_block(body)
        ys = body.terminator.operands
        n = len(op.operands) - 2
        types = [v.type for v in ys[1:1 + n]]
        types += [stacked(v.type, op.attributes["trip"]) for v in ys[1 + n:]]
    else:
        for region in op.regions:
            visit_block(region.block)
        types = [v.type for v in op.regions[0].block.terminator.operands]
    for r, t in zip(op.results, types):
        r.type = t
