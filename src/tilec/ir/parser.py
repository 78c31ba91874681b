"""Parser for the textual IR: Lark LALR over ``ir_specs/tile_ir.lark``, then a scoped walk that builds ops.

Errors carry the file, line and column of the offending token. SSA names are resolved in nested scopes:
a region sees the values of the regions around it, and a value must be defined before it is used.
"""
from __future__ import annotations

import functools
import math
import sys
import threading
from pathlib import Path

import lark
import numpy as np

from .attributes import DenseAttr, SymbolRef, unquote_string
from .core import Block, Location, Operation, Region
from .diagnostics import CompileError
from .types import FunctionType, TensorType, np_dtype

SPECS_DIR = Path(__file__).resolve().parents[1] / "specs"


def specs_dir() -> Path:
    """``ir_specs/``: shipped inside the package (``tilec/specs``) or beside ``src/`` in a checkout."""
    if SPECS_DIR.is_dir():
        return SPECS_DIR
    return Path(__file__).resolve().parents[3] / "ir_specs"


class _TooDeep(Exception):
    def __init__(self, token, chain: int = 0):
        self.token, self.chain = token, chain


class _Nesting(threading.local):
    """Brackets open at the token the lexer is at, for the parse in progress on this thread.

    The builder takes at least one Python frame per bracket level (region, attribute dict or list, dense
    list, function type), so text nested deeper than the recursion limit can never be built: it would end in
    RecursionError ('input nests too deeply') after a parse of the whole text, seconds for a megabyte of
    fuzzed nesting. The lexer runs on demand, token by token behind the LALR parser, so counting here stops
    at the first bracket past the limit, after every syntax error before it has been reported as before.

    An unbracketed chain ``() -> () -> ...`` nests too without holding a bracket open: each ``->`` after a
    group ``(...)`` that itself follows a ``->`` at the same depth is one more function type inside the last
    one's result (a frame each to build, a bracket each when printed). Its links count as levels: per open
    level, ``[after_arrow, chain, pending]``: whether that group opened right after an ``->``, the links of
    the chain at this level so far, whether the last token here was an ``->``. The tokens the stream is known
    by are enough: an ``->`` is followed by ``(`` or a tensor type, and follows a group's ``)``."""
    depth = 0
    limit = 0
    levels: list = []

    def reset(self, limit: int) -> None:
        self.depth, self.limit, self.levels = 0, limit, [[False, 0, False]]

    def open(self, tok):
        top = self.levels[-1]
        after_arrow, top[2] = top[2] and tok.type == "LPAR", False
        self.levels.append([after_arrow, 0, False])
        self.depth += 1
        if self.depth > self.limit:
            raise _TooDeep(tok)
        return tok

    def close(self, tok):
        inner = self.levels.pop() if len(self.levels) > 1 else [False, 0, False]
        self.depth -= 1
        top = self.levels[-1]
        top[1] = top[1] if tok.type == "RPAR" and inner[0] else 0   # a group after `->`: the chain goes on
        return tok

    def arrow(self, tok):
        top = self.levels[-1]
        top[1], top[2] = top[1] + 1, True
        if self.depth + top[1] > self.limit:
            raise _TooDeep(tok, top[1])
        return tok

    def operand(self, tok):
        """A tensor type: after an ``->`` it is the last result, so a group after it follows no ``->``."""
        self.levels[-1][2] = False
        return tok


_NESTING = _Nesting()


@functools.lru_cache(maxsize=None)
def _lark() -> lark.Lark:
    grammar = (specs_dir() / "tile_ir.lark").read_text()
    callbacks = {"LPAR": _NESTING.open, "LBRACE": _NESTING.open, "LSQB": _NESTING.open,
                 "RPAR": _NESTING.close, "RBRACE": _NESTING.close, "RSQB": _NESTING.close,
                 "_ARROW": _NESTING.arrow, "TENSOR_TYPE": _NESTING.operand}
    return lark.Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True,
                     lexer_callbacks=callbacks)


def parse_module(text: str, filename: str = "-") -> Operation:
    """Parse IR text into a ``builtin.module`` (a bare list of ops is wrapped in an anonymous module)."""
    _NESTING.reset(sys.getrecursionlimit())
    try:
        tree = _lark().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise CompileError(_syntax_message(e), filename, e.line, e.column, text) from None
    except _TooDeep as e:
        what = (f"{_NESTING.limit} levels: {_NESTING.depth} open, and {e.chain} function types chained "
                "by '->' without brackets" if e.chain else f"{_NESTING.limit} brackets open")
        raise CompileError(f"input nests too deeply (more than {what})", filename, e.token.line, e.token.column,
                           text) from None
    try:
        return _Builder(text, filename).build(tree)
    except RecursionError:   # nesting under the limit that still takes more frames than are left
        raise CompileError("input nests too deeply", filename) from None


def _syntax_message(e: lark.exceptions.UnexpectedInput) -> str:
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        return f"unexpected character '{e.char}'"
    if isinstance(e, lark.exceptions.UnexpectedEOF):
        return "unexpected end of input"
    tok = e.token
    if tok.type == "$END":
        return "unexpected end of input"
    expected = sorted(getattr(e, "expected", set()) or [])
    names = sorted({_token_name(t) for t in expected})[:6]
    hint = f", expected {', '.join(names)}" if names else ""
    return f"unexpected '{tok}'{hint}"


_TOKEN_NAMES = {"VALUE": "SSA value", "SYMBOL": "symbol", "TENSOR_TYPE": "type", "STRING": "string",
                "LPAR": "'('", "RPAR": "')'", "LBRACE": "'{'", "RBRACE": "'}'", "COLON": "':'",
                "COMMA": "','", "EQUAL": "'='", "LSQB": "'['", "RSQB": "']'", "MORETHAN": "'>'",
                "BARE_ID": "identifier", "INT": "integer", "FLOAT": "float"}


@functools.lru_cache(maxsize=None)
def _token_name(terminal: str) -> str:
    """A terminal as a user writes it: ``'func.func'`` for a literal (Lark names those ``__ANON_n`` or
    ``MODULE``), a word for a pattern (``SSA value``, ``integer``)."""
    if terminal in _TOKEN_NAMES:
        return _TOKEN_NAMES[terminal]
    try:
        pattern = _lark().get_terminal(terminal).pattern
    except KeyError:
        return terminal.lower()
    if isinstance(pattern, lark.lexer.PatternStr):
        return f"'{pattern.value}'"
    return terminal.strip("_").lower().replace("_", " ")


class _Builder:
    """Turns the Lark tree into Operations, resolving SSA names scope by scope."""

    def __init__(self, source: str, filename: str):
        self.source = source
        self.filename = filename
        self.scopes: list[dict] = [{}]

    # --- helpers ---------------------------------------------------------------------------------------
    def error(self, message: str, node) -> CompileError:
        meta = getattr(node, "meta", None)
        line = getattr(node, "line", None) or (getattr(meta, "line", 0) if meta and not meta.empty else 0)
        col = getattr(node, "column", None) or (getattr(meta, "column", 0) if meta and not meta.empty else 0)
        return CompileError(message, self.filename, line or 0, col or 0, self.source)

    def loc_of(self, node) -> Location:
        return Location(self.filename, node.meta.line, node.meta.column)

    def define(self, token, value) -> None:
        name = str(token)
        if "#" in name:
            raise self.error(f"cannot define '{name}': '#' selects a result and is only valid in a use", token)
        if name in self.scopes[-1]:
            raise self.error(f"redefinition of SSA value '{name}'", token)
        value.name_hint = name[1:]
        self.scopes[-1][name] = value

    def lookup(self, token):
        name = str(token)
        base, _, idx = name.partition("#")
        for scope in reversed(self.scopes):
            if base in scope:
                v = scope[base]
                if idx:
                    if isinstance(v, list) and int(idx) < len(v):
                        return v[int(idx)]
                    raise self.error(f"'{base}' has no result #{idx}", token)
                if isinstance(v, list):
                    raise self.error(f"'{base}' names {len(v)} results; use '{base}#N'", token)
                return v
        raise self.error(f"use of undefined value '{name}'", token)

    # --- structure -------------------------------------------------------------------------------------
    def build(self, tree) -> Operation:
        ops = [self.operation(child) for child in tree.children]
        if len(ops) == 1 and ops[0].name == "builtin.module":
            return ops[0]
        from .core import new_module
        module = new_module(None)
        for op in ops:
            module.body.append(op)
        return module

    def operation(self, node) -> Operation:
        results, body, loc = node.children
        op = getattr(self, body.data)(body)
        if loc is not None:
            op.loc = self.location(loc)
        elif op.loc is None:
            op.loc = self.loc_of(node)
        names = results.children if results is not None else []
        if len(names) == 1 and len(op.results) > 1:
            # `%x = "op"(...)` with several results: `%x#i` selects one.
            self.define(names[0], op.results[0])
            self.scopes[-1][str(names[0])] = list(op.results)
        elif len(names) != len(op.results):
            raise self.error(f"'{op.name}' has {len(op.results)} results but {len(names)} names", node)
        else:
            for tok, v in zip(names, op.results):
                self.define(tok, v)
        return op

    def region(self, node, arg_types=None, arg_tokens=None) -> Region:
        header, *ops = node.children
        block = Block()
        self.scopes.append({})
        try:
            if header is not None:
                _label, *args = header.children
                if arg_types is not None and args and args != [None]:
                    raise self.error("this region's arguments come from the op's signature", header)
                for arg in args:
                    if arg is None:
                        continue
                    tok, ty = arg.children
                    self.define(tok, block.add_arg(self.type(ty)))
            for tok, ty in zip(arg_tokens or [], arg_types or []):
                self.define(tok, block.add_arg(ty))
            for child in ops:
                block.append(self.operation(child))
        finally:
            self.scopes.pop()
        return Region([block])

    # --- op forms --------------------------------------------------------------------------------------
    def generic_op(self, node) -> Operation:
        name_tok, operands, regions, attrs, ftype = node.children
        name = unquote_string(str(name_tok))
        if "." not in name:
            raise self.error(f"op name '{name}' must be 'dialect.op'", name_tok)
        fty = self.type(ftype)
        values = self.values(operands)
        if len(values) != len(fty.inputs):
            raise self.error(f"'{name}' has {len(values)} operands but its type lists {len(fty.inputs)}", ftype)
        for v, t in zip(values, fty.inputs):
            if v.type != t:
                raise self.error(f"operand type mismatch: value has type {v.type}, signature says {t}", ftype)
        regs = [self.region(r) for r in regions.children] if regions is not None else []
        return Operation(name, values, fty.results, self.attr_dict(attrs), regs)

    def module_op(self, node) -> Operation:
        sym, attrs, region = node.children
        from .core import new_module
        module = new_module(self.symbol(sym).name if sym is not None else None)
        module.attributes.update(self.attr_dict(attrs))
        module.regions = []
        module.add_region(self.region(region))
        return module

    def func_op(self, node) -> Operation:
        sym, *rest = node.children
        *args, results, attrs, region = rest
        arg_tokens, arg_types = [], []
        for a in args:
            if a is None:
                continue
            tok, ty = a.children
            arg_tokens.append(tok)
            arg_types.append(self.type(ty))
        result_types = tuple(self.type(t) for t in results.children) if results is not None else ()
        fattrs = {"sym_name": self.symbol(sym), "function_type": FunctionType(tuple(arg_types), result_types)}
        fattrs.update(self.attr_dict(attrs))
        reg = self.region(region, arg_types, arg_tokens)
        return Operation("func.func", attributes=fattrs, regions=[reg])

    def weight_op(self, node) -> Operation:
        sym, ty, attrs = node.children
        wattrs = {"sym_name": self.symbol(sym), "type": self.type(ty)}
        wattrs.update(self.attr_dict(attrs))
        return Operation("tile.weight", attributes=wattrs)

    def compute_op(self, node) -> Operation:
        expr, operands, attrs, ftype = node.children
        fty = self.type(ftype)
        values = self.values(operands)
        if len(values) != len(fty.inputs):
            raise self.error(f"'tile.compute' has {len(values)} operands but its type lists {len(fty.inputs)}", ftype)
        for v, t in zip(values, fty.inputs):
            if v.type != t:
                raise self.error(f"operand type mismatch: value has type {v.type}, signature says {t}", ftype)
        cattrs = {"expr": unquote_string(str(expr))}
        cattrs.update(self.attr_dict(attrs))
        op = Operation("tile.compute", values, fty.results, cattrs)
        # Remember where the expression string starts, so expression errors point inside it.
        op.expr_pos = (expr.line, expr.column + 1)
        return op

    def return_op(self, node) -> Operation:
        operands, types = node.children
        values = self.values(operands)
        tys = [self.type(t) for t in types.children] if types is not None else []
        if len(tys) != len(values):
            raise self.error("return lists a different number of values and types", node)
        for v, t in zip(values, tys):
            if v.type != t:
                raise self.error(f"return type mismatch: value has type {v.type}, listed {t}", node)
        return Operation("func.return", values)

    # --- leaves ----------------------------------------------------------------------------------------
    def values(self, node) -> list:
        return [self.lookup(t) for t in node.children] if node is not None else []

    def location(self, node) -> Location:
        file_tok, *rest = node.children
        file = unquote_string(str(file_tok))
        if len(rest) == 1 or rest[1] is None:
            return Location(file, name=unquote_string(str(rest[0])))
        return Location(file, int(rest[0]), int(rest[1]))

    def symbol(self, tok) -> SymbolRef:
        text = str(tok)[1:]
        return SymbolRef(unquote_string(text) if text.startswith('"') else text)

    def type(self, node):
        if isinstance(node, lark.Token):
            return self.tensor_type(node)
        if node.data == "tensor_type":
            return self.tensor_type(node.children[0])
        if node.data == "function_type":
            ins, *outs = node.children
            inputs = tuple(self.type(t) for t in ins.children) if ins is not None else ()
            if len(outs) == 1 and outs[0] is not None and getattr(outs[0], "data", None) != "type_list":
                results = (self.type(outs[0]),)
            else:
                results = tuple(self.type(t) for t in outs[0].children) if outs and outs[0] is not None else ()
            return FunctionType(inputs, results)
        raise self.error(f"expected a type, got '{node.data}'", node)

    def tensor_type(self, tok) -> TensorType:
        body = str(tok)[len("tensor<"):-1]
        *dims, dtype = body.split("x")
        # 'bf16' and friends contain no 'x'; but a dtype like 'f32' after dims is the last piece.
        shape = tuple(None if d == "?" else int(d) for d in dims)
        return TensorType(shape, dtype)

    def attr_dict(self, node) -> dict:
        if node is None:
            return {}
        out = {}
        for entry in node.children:
            if entry is None:
                continue
            key_tok, value = entry.children
            key = unquote_string(str(key_tok)) if key_tok.type == "STRING" else str(key_tok)
            if key in out:
                raise self.error(f"duplicate attribute '{key}'", key_tok)
            out[key] = self.attr_value(value)
        return out

    def attr_value(self, node):
        kind = node.data
        if kind == "attr_dict":
            return self.attr_dict(node)
        if kind == "list_attr":
            return [self.attr_value(c) for c in node.children if c is not None]
        if kind == "true_attr":
            return True
        if kind == "false_attr":
            return False
        if kind == "unit_attr":
            return None
        tok = node.children[0] if node.children else None
        if kind == "int_attr":
            return int(tok)
        if kind == "float_attr":   # an f64: 1e400 would be inf
            why = _misfit(float(tok), str(tok), "f64")
            if why:
                raise self.error(f"float {tok} {why}", tok)
            return float(tok)
        if kind == "string_attr":
            return unquote_string(str(tok))
        if kind == "symbol_attr":
            return self.symbol(tok)
        if kind == "type_attr":
            return self.tensor_type(tok)
        if kind == "function_type":
            return self.type(node)
        if kind == "dense_attr":
            return self.dense(node)
        raise self.error(f"unsupported attribute '{kind}'", node)

    def dense(self, node) -> DenseAttr:
        value, ty_tok = node.children
        ty = self.tensor_type(ty_tok)

        def rec(n):
            if n.data == "dense_list":
                return [rec(c) for c in n.children if c is not None]
            if n.data in ("dense_true", "dense_false"):
                return n.data == "dense_true"
            tok = n.children[0]
            v = float(tok) if n.data == "dense_float" else int(tok)
            why = _misfit(v, str(tok), ty.dtype)
            if why:   # at the literal, not at 'dense': a list may hold many
                raise self.error(f"dense value {tok} {why}", tok)
            return v
        raw = rec(value)
        try:
            arr = np.array(raw, dtype=np.float64 if ty.dtype in ("bf16", "f16") else np_dtype(ty.dtype))
            arr = arr.astype(np_dtype(ty.dtype))
        except (ValueError, OverflowError) as e:
            raise self.error(f"dense value does not fit {ty}: {e}", node) from None
        if tuple(arr.shape) != ty.shape:
            raise self.error(f"dense value has shape {list(arr.shape)} but type is {ty}", node)
        return DenseAttr(arr)


def _misfit(value, text: str, dtype: str) -> str | None:
    """Why the literal ``text`` (``value`` as Python parsed it) is no element of type ``dtype``, or None.
    Converting it would change it silently: a finite float that rounds to inf in the type (``1e300`` as
    f32, ``70000.0`` as f16, ``1e400`` even as f64), an integer past the type's range, a fraction, inf or nan
    as an integer, a bool other than 0 or 1. Rounding to the type's precision (and underflow to 0) is how
    a float literal becomes an element, so it is no error."""
    if dtype == "bool":
        return None if value in (0, 1) else "is not a bool (true, false, 0 or 1)"
    npt = np_dtype(dtype)
    if np.issubdtype(npt, np.integer):
        if isinstance(value, float):
            if not math.isfinite(value) or not value.is_integer():
                return f"is not an integer ({dtype})"
            value = int(value)
        info = np.iinfo(npt)
        return None if info.min <= value <= info.max else f"is out of range for {dtype} [{info.min}, {info.max}]"
    try:
        x = float(value)
    except OverflowError:   # an integer literal past f64's range
        x = math.inf
    if math.isnan(x) or (math.isinf(x) and "inf" in text):   # the nan and inf keywords themselves
        return None
    with np.errstate(over="ignore"):
        if math.isinf(x) or not np.isfinite(np.float64(x).astype(npt)):
            import ml_dtypes
            return f"overflows {dtype} (largest finite value {float(ml_dtypes.finfo(npt).max):g})"
    return None
