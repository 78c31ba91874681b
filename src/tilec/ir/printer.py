"""Printer for the textual IR.

SSA names are assigned per function, in order: block arguments keep their (sanitised, uniquified) name
hints, results are numbered ``%0, %1, ...``. So the same module always prints to the same bytes, and a
printed module parses back to one that prints identically.
"""
from __future__ import annotations

import re

from .attributes import format_attr, format_attr_dict, quote_string
from .core import Operation, Region
from .types import FunctionType

# Ops with a pretty form. Everything else, and everything when generic=True, prints in the generic form.
PRETTY_OPS = ("builtin.module", "func.func", "func.return", "tile.weight", "tile.compute")

_NAME_RE = re.compile(r"[^A-Za-z0-9_$.]")


class _Namer:
    def __init__(self):
        self.names: dict = {}
        self.used: set = set()
        self.counter = 0

    def arg(self, value) -> str:
        hint = _NAME_RE.sub("_", value.name_hint or "arg")
        if not hint or hint[0].isdigit() or hint in self.used:
            # Numeric names are reserved for results; clashes get a suffix.
            base, n = (hint or "arg"), 0
            if base[0].isdigit():
                base = "v" + base
            while f"{base}_{n}" in self.used:
                n += 1
            hint = f"{base}_{n}" if base in self.used or base[0].isdigit() or hint != base else base
            if hint in self.used:
                hint = f"{base}_{n}"
        self.used.add(hint)
        self.names[value] = "%" + hint
        return self.names[value]

    def result(self, value) -> str:
        name = f"%{self.counter}"
        self.counter += 1
        self.used.add(name[1:])
        self.names[value] = name
        return name

    def use(self, value) -> str:
        if value not in self.names:
            return "%<<UNKNOWN>>"
        return self.names[value]


class Printer:
    """Prints a module (or any op) to text; ``generic=True`` forces the generic form everywhere."""

    def __init__(self, generic: bool = False, print_locs: bool = True, indent: str = "  "):
        self.generic = generic
        self.print_locs = print_locs
        self.indent_unit = indent
        self.lines: list[str] = []
        self.namer = _Namer()

    def print(self, op: Operation) -> str:
        self.lines = []
        self.namer = _Namer()
        self.op(op, 0)
        return "\n".join(self.lines) + "\n"

    # --- ops -------------------------------------------------------------------------------------------
    def op(self, op: Operation, depth: int) -> None:
        pad = self.indent_unit * depth
        if op.name == "func.func":
            saved, self.namer = self.namer, _Namer()  # functions are isolated: numbering restarts
            try:
                self.emit_op(op, depth, pad)
            finally:
                self.namer = saved
        else:
            self.emit_op(op, depth, pad)

    def emit_op(self, op: Operation, depth: int, pad: str) -> None:
        if not self.generic and op.name in PRETTY_OPS:
            head, regions = getattr(self, "pretty_" + op.name.replace(".", "_"))(op)
        else:
            head, regions = self.generic_form(op)
        if regions:
            self.lines.append(pad + head + "{")
            for i, (region, arg_types_in_sig) in enumerate(regions):
                self.region_body(region, depth + 1, show_args=not arg_types_in_sig)
                if i + 1 < len(regions):
                    self.lines.append(pad + "}, {")
            tail = self.generic_tail(op) if (self.generic or op.name not in PRETTY_OPS) else ""
            self.lines.append(pad + "}" + tail + self.loc_suffix(op))
        else:
            self.lines.append(pad + head + self.loc_suffix(op))

    def region_body(self, region: Region, depth: int, show_args: bool) -> None:
        block = region.block
        if show_args and block.args:
            args = ", ".join(f"{self.namer.arg(a)}: {a.type}" for a in block.args)
            self.lines.append(self.indent_unit * (depth - 1) + f"^bb0({args}):")
        for inner in block.ops:
            self.op(inner, depth)

    def results_prefix(self, op: Operation) -> str:
        if not op.results:
            return ""
        return ", ".join(self.namer.result(r) for r in op.results) + " = "

    def operand_list(self, op: Operation) -> str:
        return ", ".join(self.namer.use(v) for v in op.operands)

    def generic_form(self, op: Operation):
        head = self.results_prefix(op) + f"{quote_string(op.name)}({self.operand_list(op)})"
        if op.regions:
            return head + " (", [(r, False) for r in op.regions]
        return head + self.generic_tail(op), []

    def generic_tail(self, op: Operation) -> str:
        attrs = f" {format_attr_dict(op.attributes)}" if op.attributes else ""
        ins = ", ".join(str(v.type) for v in op.operands)
        outs = ", ".join(str(r.type) for r in op.results)
        closing = ")" if op.regions else ""
        return f"{closing}{attrs} : ({ins}) -> ({outs})"

    def loc_suffix(self, op: Operation) -> str:
        if not self.print_locs or op.loc is None or op.loc.name is None:
            return ""  # file positions are not printed: they would change with every re-print
        return " " + str(op.loc)

    # --- pretty forms ----------------------------------------------------------------------------------
    def pretty_builtin_module(self, op: Operation):
        attrs = {k: v for k, v in op.attributes.items() if k != "sym_name"}
        name = op.attributes.get("sym_name")
        head = "module" + (f" {name}" if name is not None else "")
        if attrs:
            head += f" attributes {format_attr_dict(attrs)}"
        return head + " ", [(op.regions[0], True)]

    def pretty_func_func(self, op: Operation):
        fty: FunctionType = op.attributes["function_type"]
        args = ", ".join(f"{self.namer.arg(a)}: {a.type}" for a in op.body.args)
        outs = ", ".join(map(str, fty.results))
        attrs = {k: v for k, v in op.attributes.items() if k not in ("sym_name", "function_type")}
        head = f"func.func {op.attributes['sym_name']}({args}) -> ({outs})"
        if attrs:
            head += f" attributes {format_attr_dict(attrs)}"
        return head + " ", [(op.regions[0], True)]

    def pretty_func_return(self, op: Operation):
        if not op.operands:
            return "return", []
        types = ", ".join(str(v.type) for v in op.operands)
        return f"return {self.operand_list(op)} : {types}", []

    def pretty_tile_weight(self, op: Operation):
        attrs = {k: v for k, v in op.attributes.items() if k not in ("sym_name", "type")}
        tail = f" {format_attr_dict(attrs)}" if attrs else ""
        return f"tile.weight {op.attributes['sym_name']} : {op.attributes['type']}{tail}", []

    def pretty_tile_compute(self, op: Operation):
        attrs = {k: v for k, v in op.attributes.items() if k != "expr"}
        tail = f" {format_attr_dict(attrs)}" if attrs else ""
        ins = ", ".join(str(v.type) for v in op.operands)
        outs = ", ".join(str(r.type) for r in op.results)
        outs = outs if len(op.results) == 1 else f"({outs})"
        return (self.results_prefix(op) + f"tile.compute {quote_string(op.attributes['expr'])} "
                f"({self.operand_list(op)}){tail} : ({ins}) -> {outs}"), []


def print_module(op: Operation, generic: bool = False, print_locs: bool = True) -> str:
    """The text of ``op`` (usually a module)."""
    return Printer(generic=generic, print_locs=print_locs).print(op)


__all__ = ["Printer", "print_module", "format_attr"]
