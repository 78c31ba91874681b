"""The ONNX importer: an ONNX model becomes a ``builtin.module`` with one ``@main`` of graph-dialect ops.

Converters (``frontend/onnx_ops/``) turn one node each into graph ops through :class:`ImportContext`.
Constants are tracked by value while importing: a node whose inputs are all constants is evaluated with
the numpy reference instead of emitted (so Shape→Gather→Concat→Reshape chains fold away), and a constant
becomes a ``tile.const`` op only where an emitted op reads it.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path

import numpy as np
import onnx

from ..ir.attributes import DenseAttr
from ..ir.builder import Builder, add_weight
from ..ir.core import Block, Location, Operation, Region, Value, new_module
from ..ir.diagnostics import CompileError, Diagnostic
from ..ir.limits import shape_problem
from ..ir.opspec import get_rule, get_spec, with_defaults
from ..ir.types import FunctionType, TensorType, itemsize, np_dtype
from ..ir.weights import module_weights
from .const_insert import ConstEnd
from .coverage import DEFAULT_DOMAINS, node_label, unsupported_ops
from .graph_checks import MIN_OPSET, check_opset, check_schema, toposort
from .onnx_load import MAX_DIM, check_dims, dynamic_inputs_error, ir_dtype, load_model, tensor_to_array
from .registry import get_converter
from .row_counts import add_row_counts, refuse_padded_body_outputs, refuse_padded_inputs

# Folding a node whose result is bigger than this would put a large tensor into the module; emit the op.
MAX_FOLD_ELEMENTS = 1 << 22


class ConstValue:
    """A tensor known at import time; it has a ``type`` like a :class:`Value` and becomes a ``tile.const``
    only when an emitted op reads it."""

    __slots__ = ("array", "type", "name", "source_name", "value")

    def __init__(self, array: np.ndarray, name: str | None = None, source_name: str | None = None):
        self.value: Value | None = None  # its tile.const, once an op reads it
        self.array = np.asarray(array)
        self.type = TensorType.of(self.array)
        self.name = name
        self.source_name = source_name

    def __repr__(self) -> str:
        return f"ConstValue({self.type})"


def import_onnx(model_path_or_proto, input_shapes: dict | None = None, filename: str | None = None,
                frozen_inputs: dict | None = None) -> Operation:
    """Import an ONNX model (path, bytes or ModelProto) into graph-level IR.

    ``input_shapes`` fixes dynamic input dimensions (``{"x": (1, 128)}``); ``filename`` overrides the name
    used in locations and for the module. ``frozen_inputs`` binds graph inputs to constant values (they
    stop being arguments), for inputs tilec needs at compile time such as a Reduce's ``axes`` fed as a
    graph input. Raises :class:`CompileError` for anything tilec cannot import.
    """
    model, folder, display = load_model(model_path_or_proto, filename)
    ctx = ImportContext(model, folder, display, input_shapes or {}, frozen_inputs or {})
    return ctx.run()


def sanitize(name: str) -> str:
    """A weight/symbol-friendly spelling of a model name (identifier characters only)."""
    s = re.sub(r"[^A-Za-z0-9_]", "_", name).strip("_")
    s = re.sub(r"_+", "_", s)
    if not s or not (s[0].isalpha() or s[0] == "_"):
        s = "w_" + s
    return s


class ImportContext:
    """Import state and the API converters use: inputs, constants, attributes, emitting ops, errors."""

    def __init__(self, model: onnx.ModelProto, folder: Path | None, file: str, input_shapes: dict,
                 frozen_inputs: dict | None = None):
        self.model = model
        self.graph = model.graph
        self.folder = folder
        self.file = file
        self.input_shapes = dict(input_shapes)
        self.dynamic_inputs: list = []   # (name, dims) of inputs with a dynamic dim, reported together
        self.frozen_inputs = dict(frozen_inputs or {})
        self.opset = self._default_opset()
        self.module = new_module(Path(file).stem or "model")
        self.values: dict = {}          # ONNX tensor name -> Value | ConstValue
        self.const_of: dict = {}        # Value -> np.ndarray, for tile.consts we created
        self.weight_names: dict = {}    # source tensor name -> weight symbol
        self.used_symbols: set = set()
        self.row_counts: dict = {}      # Value -> its valid-row count Value (ir/row_counts.py)
        self.node: onnx.NodeProto | None = None
        self.node_label = ""
        self.builder: Builder | None = None

    # --- setup ---------------------------------------------------------------------------------------
    def _default_opset(self) -> int:
        versions = [o.version for o in self.model.opset_import if o.domain in DEFAULT_DOMAINS]
        if not versions:
            # IR v3 models before opset_import existed are opset 1; tilec does not go that far back.
            raise CompileError("the model does not import the default ONNX opset", self.file)
        v = int(versions[0])
        newest = onnx.defs.onnx_opset_version()
        if v < 1 or v > newest:
            raise CompileError(f"ONNX opset {v} is not supported (tilec accepts {MIN_OPSET} to {newest})",
                               self.file)
        return v

    def run(self) -> Operation:
        g = self.graph
        self._check_coverage()
        initializers = {}
        for t in g.initializer:
            if t.name in initializers:
                raise CompileError(f"initializer '{t.name}' is defined twice", self.file)
            initializers[t.name] = t
        self._name_weights([t.name for t in g.initializer])
        for t in g.initializer:
            self.values[t.name] = ConstValue(tensor_to_array(t, self.folder, self.file, "initializer"),
                                             self.weight_names[t.name], t.name)
        args, arg_names = [], []
        seen_inputs, frozen = set(), set()
        for vi in g.input:
            if vi.name in seen_inputs:
                raise CompileError(f"graph input '{vi.name}' is listed twice", self.file)
            seen_inputs.add(vi.name)
            if vi.name in initializers:
                continue  # an initializer listed as input (IR < 4 style): a weight, not an argument
            if vi.name in self.frozen_inputs:
                dtype = ir_dtype(vi.type.tensor_type.elem_type, f"input '{vi.name}'", self.file)
                arr = np.asarray(self.frozen_inputs.pop(vi.name)).astype(np_dtype(dtype), copy=False)
                check_dims(arr.shape, f"input '{vi.name}'", self.file)
                self.values[vi.name] = ConstValue(arr, source_name=vi.name)
                frozen.add(vi.name)
                continue
            args.append(self._input_type(vi))
            arg_names.append(vi.name)
        # A frozen input may keep its --input-shape (the shapes a caller retries with); an initializer (a
        # weight, even one listed among the graph inputs) has no shape to give, like a misspelt name.
        unknown = sorted((set(self.input_shapes) - set(arg_names) - frozen) | set(self.frozen_inputs))
        if unknown:
            raise CompileError(f"--input-shape names unknown input(s): {', '.join(unknown)} "
                               f"(inputs: {', '.join(arg_names) or 'none'})", self.file)
        if self.dynamic_inputs:
            raise dynamic_inputs_error(self.dynamic_inputs, self.file)
        block = Block(args, [sanitize(n) for n in arg_names])
        for name, v in zip(arg_names, block.args):
            self.values[name] = v
        func = Operation("func.func", attributes={}, regions=[Region([block])],
                         loc=Location(self.file, name=g.name or "main"))
        self.module.body.append(func)
        self.builder = Builder(self.module, block)
        self.entry_block = block
        self._const_end = ConstEnd()
        for index, node in toposort(g, self.values, self.file):
            self._convert(index, node)
        results = []
        self.node, self.node_label = None, "outputs"
        self.builder.loc = Location(self.file, name="outputs")
        seen = set()
        for out in g.output:
            if out.name in seen:
                raise CompileError(f"graph output '{out.name}' is listed twice", self.file)
            seen.add(out.name)
            if out.name not in self.values:
                raise CompileError(f"graph output '{out.name}' is not produced by any node", self.file)
            results.append(self.value(self.values[out.name]))
        names = [o.name for o in g.output]
        rows = add_row_counts(self, names, results)   # a data-dependent row count's hidden result
        self.builder.create("func.return", results, [])
        from ..ir.attributes import SymbolRef
        func.attributes = {
            "sym_name": SymbolRef("main"),
            "function_type": FunctionType(tuple(args), tuple(v.type for v in results)),
            "arg_names": arg_names,
            "result_names": names,
            **rows,
        }
        self._drop_dead_constants(block)
        from ..ir.verifier import verify
        verify(self.module)
        return self.module

    def _check_coverage(self) -> None:
        """Every op type tilec cannot convert, named in one error (one note per type), before any work."""
        missing = unsupported_ops(self.graph)
        if not missing:
            return
        nodes = sum(m.count for m in missing)
        kinds = f"{len(missing)} unsupported ONNX op type{'s' if len(missing) != 1 else ''}"
        err = CompileError(f"{kinds} ({nodes} node{'s' if nodes != 1 else ''}): "
                           + ", ".join(m.op_type for m in missing), self.file)
        err.diagnostic.notes = [Diagnostic(m.describe(), self.file, severity="note") for m in missing]
        err.unsupported = missing  # for callers that tabulate coverage
        raise err

    def _name_weights(self, names) -> None:
        """The initializers' weight symbols, in file order (the first of a clash keeps the plain name)."""
        self.used_symbols = set()
        for n in names:
            self.weight_names[n] = self._fresh_symbol(n)

    def _fresh_symbol(self, hint: str) -> str:
        """A symbol not used yet: ``hint`` sanitized, with ``_1``, ``_2``... where that is taken."""
        base = sanitize(hint)
        sym, k = base, 1
        while sym in self.used_symbols:
            sym, k = f"{base}_{k}", k + 1
        self.used_symbols.add(sym)
        return sym

    def _input_type(self, vi: onnx.ValueInfoProto) -> TensorType:
        what = f"input '{vi.name}'"
        if not vi.type.HasField("tensor_type"):
            raise CompileError(f"{what} is not a tensor (sequences, maps and optionals are not supported)",
                               self.file)
        tt = vi.type.tensor_type
        dtype = ir_dtype(tt.elem_type, what, self.file)
        given = self.input_shapes.get(vi.name)
        if not tt.HasField("shape"):
            if given is None:
                raise CompileError(f"{what} has an unknown rank; pass --input-shape {vi.name}=...", self.file)
            return TensorType(check_dims(given, what, self.file), dtype)
        dims = []
        for i, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                if d.dim_value < 0 or d.dim_value >= MAX_DIM:
                    raise CompileError(f"{what} has an invalid dimension {i} ({d.dim_value})", self.file)
                dims.append(int(d.dim_value))
            else:
                dims.append(None if not d.dim_param else d.dim_param)
        if given is not None:
            given = check_dims(given, what, self.file)
            if len(given) != len(dims):
                raise CompileError(f"--input-shape gives {what} rank {len(given)}, but the model says rank "
                                   f"{len(dims)}", self.file)
            for i, (m, s) in enumerate(zip(dims, given)):
                if isinstance(m, int) and m != s:
                    raise CompileError(f"--input-shape gives {what} dimension {i} = {s}, but the model fixes "
                                       f"it to {m}", self.file)
            return TensorType(given, dtype)
        why = shape_problem(dims, itemsize(dtype))
        if why:
            raise CompileError(f"{what} {why}", self.file)
        if not all(isinstance(d, int) for d in dims):
            self.dynamic_inputs.append((vi.name, dims))
            dims = [d if isinstance(d, int) else 1 for d in dims]  # a placeholder: run() reports them all
        return TensorType(tuple(dims), dtype)

    def _convert(self, index: int, node: onnx.NodeProto) -> None:
        self.node = node
        self.node_label = node_label(index, node)
        self.builder.loc = Location(self.file, name=self.node_label)
        if node.domain not in DEFAULT_DOMAINS:
            raise self.error(node, f"unsupported ONNX op '{node.op_type}' from domain '{node.domain}' "
                                   "(only the default ONNX domain is supported)")
        conv = get_converter(node.op_type)
        if conv is None:
            raise self.error(node, f"unsupported ONNX op '{node.op_type}'")
        fn, since = conv
        refuse_padded_inputs(self, node)
        check_opset(self, node, since)
        check_schema(self, node)
        try:
            outs = fn(self, node)
        except CompileError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError, OverflowError) as e:
            # A converter tripping over a malformed node is a bad model, not a tilec crash.
            raise self.error(node, f"cannot convert '{node.op_type}': {e}") from None
        if not isinstance(outs, (list, tuple)):
            outs = [outs]
        if len(outs) < len([o for o in node.output if o]):
            raise self.error(node, f"converter for '{node.op_type}' gave {len(outs)} values for "
                                   f"{len(node.output)} outputs")
        for name, v in zip(node.output, outs):
            if not name:
                continue
            if isinstance(v, np.ndarray) or np.isscalar(v):
                v = ConstValue(np.asarray(v))
            self.values[name] = v

    # --- the converter API ---------------------------------------------------------------------------
    def error(self, node: onnx.NodeProto | None, message: str) -> CompileError:
        """A CompileError naming the node (converters ``raise ctx.error(node, "...")``)."""
        label = self.node_label if node is None or node is self.node else (node.name or node.op_type)
        return CompileError(f"{message} (node '{label}')", self.file)

    def attr(self, node: onnx.NodeProto, name: str, default=None):
        """The decoded attribute ``name``: int, float, str, list, np.ndarray (tensors), or ``default``."""
        for a in node.attribute:
            if a.name != name:
                continue
            if a.ref_attr_name:
                raise self.error(node, f"attribute '{name}' refers to a function attribute")
            T = onnx.AttributeProto
            if a.type == T.INT:
                return int(a.i)
            if a.type == T.FLOAT:
                return float(a.f)
            if a.type == T.STRING:
                return a.s.decode("utf-8", "replace")
            if a.type == T.INTS:
                return [int(x) for x in a.ints]
            if a.type == T.FLOATS:
                return [float(x) for x in a.floats]
            if a.type == T.STRINGS:
                return [s.decode("utf-8", "replace") for s in a.strings]
            if a.type == T.TENSOR:
                return tensor_to_array(a.t, self.folder, self.file, f"attribute '{name}'")
            if a.type in (T.GRAPH, T.GRAPHS):
                return a.g if a.type == T.GRAPH else list(a.graphs)
            raise self.error(node, f"attribute '{name}' has a type tilec does not support")
        return default

    def has_input(self, node: onnx.NodeProto, i: int) -> bool:
        return i < len(node.input) and bool(node.input[i])

    def _raw(self, node: onnx.NodeProto, i: int):
        if not self.has_input(node, i):
            return None
        return self.values[node.input[i]]

    def is_const(self, node: onnx.NodeProto, i: int) -> bool:
        """Whether input ``i`` is known at import time (initializer, Constant, or folded)."""
        return self._const_array(self._raw(node, i)) is not None

    def const_input(self, node: onnx.NodeProto, i: int, what: str) -> np.ndarray:
        """Input ``i`` as a numpy array; a CompileError naming the node if it is not a constant."""
        arr = self._const_array(self._raw(node, i))
        if arr is None:
            if not self.has_input(node, i):
                raise self.error(node, f"{node.op_type} needs its {what} input")
            err = self.error(node, f"{node.op_type} {what} (input '{node.input[i]}') must be a constant at "
                                   "import time")
            err.needs_constant = node.input[i]  # lets a caller freeze that graph input and retry
            raise err
        return arr

    def input(self, node: onnx.NodeProto, i: int):
        """Input ``i`` as a Value (constants become ``tile.const`` here), or None when absent."""
        v = self._raw(node, i)
        return None if v is None else self.value(v)

    def input_type(self, node: onnx.NodeProto, i: int) -> TensorType | None:
        v = self._raw(node, i)
        return None if v is None else v.type

    def check_size(self, node, shape, dtype) -> None:
        """Reject a shape over the limits of ``ir/limits.py`` before a converter allocates it."""
        why = shape_problem(shape, np.dtype(dtype).itemsize)
        if why:
            raise self.error(node, f"'{node.op_type}' would produce shape {list(shape)}, which {why}")

    def constant(self, array) -> ConstValue:
        """A constant a converter computed (e.g. a shape); returned as a node output it folds downstream."""
        return ConstValue(np.asarray(array))

    def value(self, v) -> Value:
        """``v`` as an SSA Value, materialising a constant as a ``tile.const`` on first use."""
        if isinstance(v, Value):
            return v
        if isinstance(v, np.ndarray) or np.isscalar(v):
            v = ConstValue(np.asarray(v))
        if not isinstance(v, ConstValue):
            raise TypeError(f"not a value: {v!r}")
        if v.value is not None:
            return v.value
        arr = v.array
        if arr.size <= DenseAttr.MAX_INLINE_ELEMENTS:
            attr = DenseAttr(arr)
        else:
            sym = v.name or self._fresh_symbol(self._const_hint())
            v.name = sym
            attr = add_weight(self.module, sym, arr, v.source_name)
        # Constants go at the top of the function, so a constant reused by later nodes (or by a Loop/If body
        # and its enclosing graph alike) dominates every use.
        op = Operation("tile.const", [], [v.type], {"value": attr}, loc=self.builder.loc)
        block = self.entry_block
        block.insert(self._const_end.next(block), op)
        v.value = op.result
        self.const_of[op.result] = arr
        return op.result

    def _const_hint(self) -> str:
        return f"cst_{self.node_label}" if self.node is not None else "cst"

    def _const_array(self, v):
        if v is None:
            return None
        if isinstance(v, ConstValue):
            return v.array
        if isinstance(v, Value):
            return self.const_of.get(v)
        return np.asarray(v)

    def emit(self, op_name: str, inputs, attrs: dict | None = None, n_results: int = 1) -> list:
        """Emit graph op ``op_name``; result types come from its result-type rule.

        When every present input is a constant, the op is evaluated with its numpy reference instead and
        the results are :class:`ConstValue`s (constant folding at import).
        """
        spec = get_spec(op_name)
        if spec is None:
            raise self.error(self.node, f"internal: no op spec for '{op_name}'")
        full = with_defaults(spec, dict(attrs or {}))
        stored = {k: v for k, v in full.items() if v is not None}
        types = [None if x is None else x.type for x in inputs]
        # Optional inputs are trailing in specs; an absent middle one cannot be expressed.
        while types and types[-1] is None:
            types.pop()
            inputs = list(inputs)[:-1]
        if any(t is None for t in types):
            raise self.error(self.node, f"'{op_name}' got an absent input before a present one")
        result_types = self._result_types(spec, op_name, types, full, n_results)
        arrays = [self._const_array(x) for x in inputs]
        if all(a is not None for a in arrays) and all(t.numel <= MAX_FOLD_ELEMENTS for t in result_types):
            from ..runtime.reference import get_reference
            ref = get_reference(op_name)
            if ref is not None:
                try:
                    outs = ref(arrays, full)
                except CompileError:
                    raise
                except (ValueError, IndexError, TypeError, ZeroDivisionError, OverflowError) as e:
                    raise self.error(self.node, f"cannot evaluate '{op_name}' on constants: {e}") from None
                return [ConstValue(np.asarray(o).astype(np_dtype(t.dtype), copy=False).reshape(t.shape))
                        for o, t in zip(outs, result_types)]
        operands = [self.value(x) for x in inputs]
        op = self.builder.create(op_name, operands, result_types, stored)
        return list(op.results)

    def _result_types(self, spec, op_name, types, attrs, n_results) -> list:
        if spec.result_type is None:
            raise self.error(self.node, f"internal: '{op_name}' has no result-type rule")
        rule = get_rule(spec.result_type)
        if rule is None:
            raise self.error(self.node, f"internal: unknown result-type rule '{spec.result_type}'")
        try:
            out = list(rule(types, attrs))
        except CompileError as e:
            raise self.error(self.node, e.diagnostic.message) from None
        except (ValueError, IndexError, KeyError, TypeError, ZeroDivisionError) as e:
            raise self.error(self.node, f"invalid '{op_name}': {e}") from None
        for t in out:
            if any(d is None or d < 0 or d >= MAX_DIM for d in t.shape):
                raise self.error(self.node, f"'{op_name}' would produce an invalid shape {list(t.shape)}")
            why = shape_problem(t.shape, itemsize(t.dtype))  # before any constant folding allocates it
            if why:
                raise self.error(self.node, f"'{op_name}' would produce {t}, which {why}")
        return out

    # --- subgraphs (Loop / If / Scan bodies) ----------------------------------------------------------
    @contextlib.contextmanager
    def in_block(self, block: Block):
        """Emit into ``block`` (a control-flow body): it sees every name of the enclosing scope, and the
        names it defines do not leak out."""
        saved = (self.builder, self.values, self.node, self.node_label)
        self.builder = Builder(self.module, block, loc=self.builder.loc)
        self.values = dict(self.values)
        try:
            yield
        finally:
            self.builder, self.values, self.node, self.node_label = saved

    def import_body(self, graph: onnx.GraphProto, prefix: str) -> list:
        """Convert ``graph``'s nodes into the current block (see :meth:`in_block`); its inputs must already
        be bound in ``self.values``. Returns its outputs as Values or ConstValues."""
        for t in graph.initializer:
            self.values[t.name] = ConstValue(tensor_to_array(t, self.folder, self.file, "initializer"),
                                             source_name=t.name)
        for index, node in toposort(graph, self.values, self.file):
            self._convert(index, node)
        missing = [o.name for o in graph.output if o.name not in self.values]
        if missing:
            raise CompileError(f"body output '{missing[0]}' is not produced by any node ({prefix})", self.file)
        refuse_padded_body_outputs(self, graph, prefix)
        return [self.values[o.name] for o in graph.output]

    # --- cleanup -------------------------------------------------------------------------------------
    def _drop_dead_constants(self, block: Block) -> None:
        """Constants read only by ops that were folded away leave no trace (and no weights)."""
        for op in list(block.ops):
            if op.name == "tile.const" and not op.result.uses:
                op.erase()
        live = {op.attributes["value"].name for op in block.ops
                if op.name == "tile.const" and not isinstance(op.attributes["value"], DenseAttr)}
        weights = module_weights(self.module)
        for op in list(self.module.body.ops):
            if op.name == "tile.weight" and op.sym_name not in live:
                op.erase()
                weights.pop(op.sym_name, None)
