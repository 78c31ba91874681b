"""The IR data model: values, operations, blocks and regions (MLIR's structure, in plain Python).

Everything is an :class:`Operation`, including the module (``builtin.module``) and functions (``func.func``);
an op owns regions, a region owns blocks, a block owns block arguments and a list of ops. Values are
SSA: each is defined once, by an op result or a block argument.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

from .diagnostics import CompileError
from .types import TensorType


@dataclass(frozen=True)
class Location:
    """Where an op came from: a file position (``loc("f.tir":3:5)``) or a model node (``loc("m.onnx":"Conv_0")``)."""

    file: str
    line: int = 0
    col: int = 0
    name: str | None = None

    def __str__(self) -> str:
        from .attributes import quote_string
        if self.name is not None:
            return f"loc({quote_string(self.file)}:{quote_string(self.name)})"
        return f"loc({quote_string(self.file)}:{self.line}:{self.col})"


UNKNOWN_LOC = Location("-", 0, 0)


class Value:
    """An SSA value. ``owner`` is the defining Operation (results) or Block (block arguments)."""

    __slots__ = ("type", "owner", "index", "name_hint", "uses")

    def __init__(self, type_, owner=None, index: int = 0, name_hint: str | None = None):
        self.type = type_
        self.owner = owner
        self.index = index
        self.name_hint = name_hint
        self.uses: list[tuple[Operation, int]] = []

    @property
    def defining_op(self) -> "Operation | None":
        return self.owner if isinstance(self.owner, Operation) else None

    def replace_all_uses_with(self, other: "Value") -> None:
        for op, i in list(self.uses):
            op.set_operand(i, other)

    def __repr__(self) -> str:
        return f"Value({self.name_hint or '?'}: {self.type})"


class Block:
    """A list of operations with typed arguments."""

    def __init__(self, arg_types=(), arg_names=()):
        self.args: list[Value] = []
        self.ops: list[Operation] = []
        self.parent: Region | None = None
        # Bumped by every insert and remove: ``lookup_symbol``'s table of a module body is valid while it
        # is unchanged (change ``ops`` through these methods, not the list).
        self.version = 0
        self.symbols: tuple | None = None   # (version, {name: first op so named}) for lookup_symbol
        names = list(arg_names) + [None] * (len(arg_types) - len(arg_names))
        for t, n in zip(arg_types, names):
            self.add_arg(t, n)

    def add_arg(self, type_, name: str | None = None) -> Value:
        v = Value(type_, self, len(self.args), name)
        self.args.append(v)
        return v

    def append(self, op: "Operation") -> "Operation":
        op.parent = self
        self.ops.append(op)
        self.version += 1
        return op

    def insert(self, index: int, op: "Operation") -> "Operation":
        op.parent = self
        self.ops.insert(index, op)
        self.version += 1
        return op

    def insert_before(self, anchor: "Operation", op: "Operation") -> "Operation":
        return self.insert(self.ops.index(anchor), op)

    def remove(self, op: "Operation") -> None:
        self.ops.remove(op)
        self.version += 1
        op.parent = None

    @property
    def terminator(self) -> "Operation | None":
        return self.ops[-1] if self.ops else None


class Region:
    """A list of blocks (tilec uses single-block regions) owned by an operation."""

    def __init__(self, blocks=None):
        self.blocks: list[Block] = []
        self.parent: Operation | None = None
        for b in blocks or [Block()]:
            self.add_block(b)

    def add_block(self, block: Block) -> Block:
        block.parent = self
        self.blocks.append(block)
        return block

    @property
    def block(self) -> Block:
        return self.blocks[0]


class Operation:
    """A generic operation: ``%r = "dialect.op"(%a, %b) ({regions}) {attrs} : (types) -> types loc(...)``."""

    def __init__(self, name: str, operands=(), result_types=(), attributes=None, regions=(),
                 loc: Location | None = None, result_names=()):
        self.name = name
        self.operands: list[Value] = []
        self.attributes: dict = dict(attributes or {})
        self.regions: list[Region] = []
        self.loc = loc
        self.parent: Block | None = None
        names = list(result_names) + [None] * (len(result_types) - len(result_names))
        self.results = [Value(t, self, i, n) for i, (t, n) in enumerate(zip(result_types, names))]
        for v in operands:
            self.add_operand(v)
        for r in regions:
            self.add_region(r)

    # --- structure -------------------------------------------------------------------------------------
    @property
    def dialect(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def result(self) -> Value:
        if len(self.results) != 1:
            raise ValueError(f"'{self.name}' has {len(self.results)} results, not one")
        return self.results[0]

    def add_operand(self, v: Value) -> None:
        v.uses.append((self, len(self.operands)))
        self.operands.append(v)

    def set_operand(self, i: int, v: Value) -> None:
        old = self.operands[i]
        old.uses.remove((self, i))
        self.operands[i] = v
        v.uses.append((self, i))

    def set_operands(self, values) -> None:
        self.drop_operands()
        for v in values:
            self.add_operand(v)

    def drop_operands(self) -> None:
        for i, v in enumerate(self.operands):
            v.uses.remove((self, i))
        self.operands = []

    def add_region(self, region: Region) -> Region:
        region.parent = self
        self.regions.append(region)
        return region

    @property
    def body(self) -> Block:
        """The single block of the first region (modules, functions, kernels)."""
        return self.regions[0].block

    @property
    def parent_op(self) -> "Operation | None":
        if self.parent is None or self.parent.parent is None:
            return None
        return self.parent.parent.parent

    def erase(self) -> None:
        """Remove this op from its block; its results must be unused."""
        for r in self.results:
            if r.uses:
                raise ValueError(f"cannot erase '{self.name}': result still used")
        self.drop_operands()
        for region in self.regions:
            for block in region.blocks:
                for op in list(reversed(block.ops)):
                    op.drop_all_references()
        if self.parent is not None:
            self.parent.remove(self)

    def drop_all_references(self) -> None:
        self.drop_operands()
        for region in self.regions:
            for block in region.blocks:
                for op in block.ops:
                    op.drop_all_references()

    def walk(self) -> Iterator["Operation"]:
        """Pre-order walk over this op and every nested op."""
        yield self
        for region in self.regions:
            for block in region.blocks:
                for op in list(block.ops):
                    yield from op.walk()

    def __repr__(self) -> str:
        return f"<Operation {self.name}>"

    # --- convenience for the common ops ---------------------------------------------------------------
    @property
    def sym_name(self) -> str | None:
        v = self.attributes.get("sym_name")
        return v.name if hasattr(v, "name") else v


def new_module(name: str | None, attributes=None) -> Operation:
    """An empty ``builtin.module`` (anonymous when ``name`` is None)."""
    from .attributes import SymbolRef
    attrs = {"sym_name": SymbolRef(name)} if name is not None else {}
    attrs.update(attributes or {})
    return Operation("builtin.module", attributes=attrs, regions=[Region()])


def functions(module: Operation) -> list[Operation]:
    return [op for op in module.body.ops if op.name == "func.func"]


def arg_names(fn: Operation) -> list:
    """The names of a function's arguments: its ``arg_names`` attribute (the model's input names), else the
    SSA name hints, else ``arg<i>``."""
    return fn.attributes.get("arg_names") or [a.name_hint or f"arg{i}" for i, a in enumerate(fn.body.args)]


def main_function(module: Operation) -> Operation:
    """The module's entry: ``@main``, or its only function; a CompileError when there is neither."""
    funcs = functions(module)
    for f in funcs:
        if f.sym_name == "main":
            return f
    if len(funcs) == 1:
        return funcs[0]
    raise CompileError("module has no @main function")


def lookup_symbol(module: Operation, name: str) -> Operation | None:
    """The first op of ``module``'s body named ``name``, or None. A table of the body's names, rebuilt when
    an op was inserted or removed since (``Block.version``), answers instead of a scan of the body (the
    passes, the verifier and the build look up thousands of kernels in modules of thousands of ops); a
    name it does not hold, or an op renamed since, takes the scan. (Renaming an op in place to a name another
    op holds makes two symbols of one name, which the verifier rejects; the table may then give the other.)"""
    body = module.body
    table = body.symbols
    if table is None or table[0] != body.version:
        names: dict = {}
        for op in body.ops:
            names.setdefault(op.sym_name, op)
        table = body.symbols = (body.version, names)
    op = table[1].get(name)
    if op is not None and op.sym_name == name:
        return op
    for op in body.ops:
        if op.sym_name == name:
            return op
    return None


def is_tensor(v: Value) -> bool:
    return isinstance(v.type, TensorType)
