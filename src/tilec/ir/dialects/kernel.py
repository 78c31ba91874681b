"""``kernel`` dialect hooks: kernel.func signatures and launch shapes, kernel.launch against its kernel, and
statement ops that only make sense inside a kernel body."""
from ..attributes import SymbolRef
from ..core import lookup_symbol
from ..diagnostics import CompileError
from ..identifiers import sanitize_identifier
from ..types import DTYPES, TensorType
from ..verifier import verify_hook

_STATEMENTS = ("kernel.shared", "kernel.local", "kernel.let", "kernel.assign", "kernel.for", "kernel.if",
               "kernel.barrier", "kernel.load", "kernel.store", "kernel.warp_reduce")


def _is_ident(name) -> bool:
    return isinstance(name, str) and sanitize_identifier(name) == name


@verify_hook("kernel.func")
def _verify_func(op, module):
    a = op.attributes
    if not _is_ident(op.sym_name):
        raise CompileError.at(f"'kernel.func' name @{op.sym_name} is not a sanitised C identifier", op.loc)
    for key, limit in (("grid", 2 ** 31 - 1), ("block", 1024)):
        dims = a[key]
        if len(dims) != 3 or any(d < 1 or d > limit for d in dims):
            raise CompileError.at(f"'kernel.func' {key} must be 3 positive ints (each <= {limit})", op.loc)
    if a["block"][0] * a["block"][1] * a["block"][2] > 1024:
        raise CompileError.at("'kernel.func' block has more than 1024 threads", op.loc)
    seen = set()
    for p in a["params"]:
        if not isinstance(p, dict) or set(p) != {"name", "dtype", "role", "shape"}:
            raise CompileError.at("'kernel.func' params are dicts {name, dtype, role, shape}", op.loc)
        if not _is_ident(p["name"]) or p["name"] in seen:
            raise CompileError.at(f"'kernel.func' param name '{p['name']}' is not a unique C identifier", op.loc)
        seen.add(p["name"])
        if p["dtype"] not in DTYPES or p["role"] not in ("in", "out"):
            raise CompileError.at(f"'kernel.func' param '{p['name']}' has a bad dtype or role", op.loc)
    cluster = a.get("cluster", 1)
    if not isinstance(cluster, int) or not 1 <= cluster <= 8 or a["grid"][0] % cluster:
        raise CompileError.at(f"'kernel.func' cluster must be 1..8 blocks and divide grid[0] {a['grid'][0]}",
                              op.loc)
    if "source" not in a and not op.body.ops:
        raise CompileError.at("'kernel.func' has neither a body nor a source", op.loc)


@verify_hook("kernel.launch")
def _verify_launch(op, module):
    ref = op.attributes["kernel"]
    kernel = lookup_symbol(module, ref.name) if isinstance(ref, SymbolRef) else None
    if kernel is None or kernel.name != "kernel.func":
        raise CompileError.at(f"'kernel.launch' refers to unknown kernel {ref}", op.loc)
    params = kernel.attributes["params"]
    for role, values, what in (("in", op.operands, "operands"), ("out", op.results, "results")):
        want = [TensorType(tuple(p["shape"]), p["dtype"]) for p in params if p["role"] == role]
        got = [v.type for v in values]
        if want != got:
            raise CompileError.at(f"'kernel.launch' {what} ({', '.join(map(str, got))}) do not match the "
                                  f"'{role}' params of {ref} ({', '.join(map(str, want))})", op.loc)


def _inside_kernel(op, module):
    parent = op.parent_op
    while parent is not None and parent.name != "kernel.func":
        parent = parent.parent_op
    if parent is None:
        raise CompileError.at(f"'{op.name}' is only valid inside a kernel.func", op.loc)


for _name in _STATEMENTS:
    verify_hook(_name)(_inside_kernel)


@verify_hook("kernel.barrier")
def _verify_barrier(op, module):
    _inside_kernel(op, module)
    scope = op.attributes.get("scope", "block")
    if scope not in ("block", "cluster"):
        raise CompileError.at(f"'kernel.barrier' scope must be block or cluster, got '{scope}'", op.loc)
    if scope == "cluster":
        parent = op.parent_op
        while parent.name != "kernel.func":
            parent = parent.parent_op
        if parent.attributes.get("cluster", 1) < 2:
            raise CompileError.at("'kernel.barrier' of scope cluster in a kernel without a cluster", op.loc)
