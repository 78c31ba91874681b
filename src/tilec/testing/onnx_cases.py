"""Hostile ONNX inputs: hand-made cases (each names the defence it checks) and seeded mutations of valid
models. Every one must import cleanly or fail with a :class:`CompileError` (CLI: exit 0 or 1).

``hostile_cases(folder)`` writes the hand-made models into ``folder`` (external-data cases need files
beside the model, and a secret outside it) and returns ``[(name, path, expect)]`` where ``expect`` is
``"diagnostic"`` (must be rejected) or ``"any"`` (ok or rejected, never a crash).
"""
from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

HOSTILE_NAMES = ['a"b', "x*/y", "/*", "line\nbreak", "tab\there", "nul\x00byte", "ü∑ñ", "\u202egnp.exe",
                 "#define int float", "int", "while", "__global__", "%0", "@main", "$", "a" * 5000, " ", "\\",
                 "}) : () -> ()", "loc(\"x\":1:1)", "..", "../../etc/passwd", "😀", "x#1"]


def small_model(opset: int = 17, names=("x", "h", "y"), node_names=("relu", "add")) -> onnx.ModelProto:
    """Relu then Add with a weight: valid, and small enough to mutate quickly."""
    x, hid, y = names
    w = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "w")
    nodes = [h.make_node("Relu", [x], [hid], name=node_names[0]),
             h.make_node("Add", [hid, "w"], [y], name=node_names[1])]
    g = h.make_graph(nodes, "g", [h.make_tensor_value_info(x, T.FLOAT, [2, 3])],
                     [h.make_tensor_value_info(y, T.FLOAT, [2, 3])], [w])
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _graph_model(nodes, inputs=None, outputs=None, inits=(), opset=17) -> onnx.ModelProto:
    inputs = inputs if inputs is not None else [h.make_tensor_value_info("x", T.FLOAT, [2, 3])]
    outputs = outputs if outputs is not None else [h.make_tensor_value_info("y", T.FLOAT, None)]
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _external(name, dims, location, offset=None, length=None, dtype=T.FLOAT) -> onnx.TensorProto:
    t = onnx.TensorProto(name=name, data_type=dtype, dims=dims)
    t.data_location = T.EXTERNAL
    for k, v in (("location", location), ("offset", offset), ("length", length)):
        if v is not None:
            e = t.external_data.add()
            e.key, e.value = k, str(v)
    return t


def _uses_weight(init: onnx.TensorProto) -> onnx.ModelProto:
    return _graph_model([h.make_node("Add", ["x", init.name], ["y"])], inits=[init])


def _attr(name, value, kind) -> onnx.AttributeProto:
    a = onnx.AttributeProto()
    a.name, a.type = name, kind
    if kind == onnx.AttributeProto.STRING:
        a.s = value
    elif kind == onnx.AttributeProto.FLOAT:
        a.f = value
    elif kind == onnx.AttributeProto.INTS:
        a.ints.extend(value)
    elif kind == onnx.AttributeProto.INT:
        a.i = value
    elif kind == onnx.AttributeProto.GRAPH:
        a.g.CopyFrom(value)
    return a


def _node_with(op, inputs, outputs, *attrs, **kw) -> onnx.NodeProto:
    n = h.make_node(op, inputs, outputs, **kw)
    n.attribute.extend(attrs)
    return n


def _model_cases() -> list:
    """(name, ModelProto, expect) for the cases that need no files around them."""
    A = onnx.AttributeProto
    vi = h.make_tensor_value_info
    out = []

    def add(name, model, expect="diagnostic"):
        out.append((name, model, expect))
    add("cycle", _graph_model([h.make_node("Relu", ["y2"], ["y1"]), h.make_node("Relu", ["y1"], ["y2"]),
                               h.make_node("Add", ["x", "y1"], ["y"])]))
    add("self_loop", _graph_model([h.make_node("Add", ["x", "y"], ["y"])]))
    add("missing_input", _graph_model([h.make_node("Add", ["x", "nowhere"], ["y"])]))
    add("duplicate_output", _graph_model([h.make_node("Relu", ["x"], ["y"]), h.make_node("Neg", ["x"], ["y"])]))
    add("output_shadows_input", _graph_model([h.make_node("Relu", ["x"], ["x"]), h.make_node("Neg", ["x"], ["y"])]))
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    add("duplicate_initializer", _graph_model([h.make_node("Add", ["x", "w"], ["y"])], inits=[w, w]))
    add("duplicate_graph_input", _graph_model([h.make_node("Relu", ["x"], ["y"])],
                                              inputs=[vi("x", T.FLOAT, [2, 3]), vi("x", T.FLOAT, [2, 3])]))
    add("duplicate_graph_output", _graph_model([h.make_node("Relu", ["x"], ["y"])],
                                               outputs=[vi("y", T.FLOAT, None), vi("y", T.FLOAT, None)]))
    add("output_never_produced", _graph_model([h.make_node("Relu", ["x"], ["z"])]))
    add("no_outputs", _graph_model([h.make_node("Relu", ["x"], ["y"])], outputs=[]), "any")
    add("no_nodes", _graph_model([], outputs=[vi("x", T.FLOAT, [2, 3])]), "any")
    for dt in (T.COMPLEX64, T.STRING, T.UINT64, T.FLOAT8E4M3FN, 0, 999):
        add(f"input_dtype_{dt}", _graph_model([h.make_node("Relu", ["x"], ["y"])], inputs=[vi("x", dt, [2, 3])]))
    s = h.make_tensor("s", T.STRING, [2], [b"a", b"b"])
    add("string_initializer", _uses_weight(s))
    for d in (-1, -(1 << 40), 1 << 31, 1 << 40, (1 << 63) - 1):
        add(f"input_dim_{d}", _graph_model([h.make_node("Relu", ["x"], ["y"])], inputs=[vi("x", T.FLOAT, [2, d])]))
        t = onnx.TensorProto(name="w", data_type=T.FLOAT, dims=[d])
        add(f"initializer_dim_{d}", _uses_weight(t))
    add("initializer_elements_overflow",
        _uses_weight(onnx.TensorProto(name="w", data_type=T.FLOAT, dims=[1 << 30, 1 << 30, 1 << 30])))
    add("constant_huge_no_data", _graph_model([h.make_node("Constant", [], ["c"], value=onnx.TensorProto(
        data_type=T.FLOAT, dims=[1 << 20, 1 << 20])), h.make_node("Add", ["x", "c"], ["y"])]))
    # Huge shapes built from small data: each dim is valid, the product is not (ir/limits.py).
    big = numpy_helper.from_array(np.array([100000, 100000, 100000], np.int64), "s")
    add("constant_of_shape_huge", _graph_model([h.make_node("ConstantOfShape", ["s"], ["y"])], inits=[big]))
    add("expand_huge", _graph_model([h.make_node("Expand", ["x", "s"], ["y"])], inits=[big],
                                    inputs=[vi("x", T.FLOAT, [1])]))
    add("tile_huge", _graph_model([h.make_node("Tile", ["x", "r"], ["y"])], inits=[
        numpy_helper.from_array(np.array([1 << 20, 1 << 20], np.int64), "r")]))
    add("range_huge", _graph_model([h.make_node("Range", ["a", "b", "c"], ["y"])], inits=[
        numpy_helper.from_array(np.array(v, np.float32), n) for n, v in (("a", 0), ("b", 1e13), ("c", 1))]))
    add("input_dims_product_huge", _graph_model([h.make_node("Relu", ["x"], ["y"])],
                                                inputs=[vi("x", T.FLOAT, [65536, 65536, 65536])]))
    bad = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    bad.raw_data = bad.raw_data[:-4]
    add("raw_data_short", _uses_weight(bad))
    bad2 = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    bad2.raw_data = bad2.raw_data * 1000
    add("raw_data_long", _uses_weight(bad2))
    add("float_data_count", _uses_weight(onnx.TensorProto(name="w", data_type=T.FLOAT, dims=[2, 3],
                                                          float_data=[1.0, 2.0])))
    f16 = onnx.TensorProto(name="w", data_type=T.FLOAT16, dims=[3], raw_data=b"\x00\x01\x02")
    add("f16_odd_bytes", _uses_weight(f16))
    add("unknown_rank_input", _graph_model([h.make_node("Relu", ["x"], ["y"])],
                                           inputs=[h.make_tensor_value_info("x", T.FLOAT, None)]))
    add("dynamic_dim_input", _graph_model([h.make_node("Relu", ["x"], ["y"])],
                                          inputs=[vi("x", T.FLOAT, ["batch", 3])]))
    seq = h.make_value_info("x", h.make_sequence_type_proto(h.make_tensor_type_proto(T.FLOAT, [2])))
    add("sequence_input", _graph_model([h.make_node("Relu", ["x"], ["y"])], inputs=[seq]))
    add("required_input_absent", _graph_model([h.make_node("ReduceMax", [""], ["y"])]))
    add("cast_missing_to", _graph_model([h.make_node("Cast", ["x"], ["y"])]))
    add("cast_to_string", _graph_model([h.make_node("Cast", ["x"], ["y"], to=T.STRING)]))
    add("cast_to_999", _graph_model([h.make_node("Cast", ["x"], ["y"], to=999)]))
    add("cast_to_float", _graph_model([_node_with("Cast", ["x"], ["y"], _attr("to", 1.0, A.FLOAT))]))
    add("softmax_axis_string", _graph_model([_node_with("Softmax", ["x"], ["y"], _attr("axis", b"1", A.STRING))]))
    add("softmax_axis_ints", _graph_model([_node_with("Softmax", ["x"], ["y"], _attr("axis", [0, 1], A.INTS))]))
    add("softmax_axis_huge", _graph_model([h.make_node("Softmax", ["x"], ["y"], axis=1 << 40)]))
    add("leaky_alpha_string", _graph_model([_node_with("LeakyRelu", ["x"], ["y"], _attr("alpha", b"x", A.STRING))]))
    add("leaky_alpha_graph", _graph_model([_node_with("LeakyRelu", ["x"], ["y"],
                                                      _attr("alpha", small_model().graph, A.GRAPH))]))
    ref = h.make_node("LeakyRelu", ["x"], ["y"])
    a = ref.attribute.add()
    a.name, a.ref_attr_name, a.type = "alpha", "outer", A.FLOAT
    add("attribute_ref", _graph_model([ref]))
    add("reduce_axes_out_of_range", _graph_model([h.make_node("ReduceSum", ["x"], ["y"], axes=[7])], opset=11))
    add("reduce_axes_duplicate", _graph_model([h.make_node("ReduceSum", ["x"], ["y"], axes=[1, 1, -1])],
                                              opset=11), "any")
    add("reduce_axes_from_input", _graph_model([h.make_node("ReduceSum", ["x", "ax"], ["y"])], opset=18,
                                               inputs=[vi("x", T.FLOAT, [2, 3]), vi("ax", T.INT64, [1])]))
    add("keepdims_string", _graph_model([_node_with("ReduceMax", ["x"], ["y"], _attr("keepdims", b"1", A.STRING))]))
    add("add_three_inputs", _graph_model([h.make_node("Add", ["x", "x", "x"], ["y"])]))
    add("add_no_inputs", _graph_model([h.make_node("Add", [], ["y"])]))
    add("relu_no_outputs", _graph_model([h.make_node("Relu", ["x"], []), h.make_node("Neg", ["x"], ["y"])]), "any")
    add("broadcast_mismatch", _graph_model([h.make_node("Add", ["x", "z"], ["y"])],
                                           inputs=[vi("x", T.FLOAT, [2, 3]), vi("z", T.FLOAT, [4])]))
    add("dtype_mismatch", _graph_model([h.make_node("Add", ["x", "z"], ["y"])],
                                       inputs=[vi("x", T.FLOAT, [2, 3]), vi("z", T.INT64, [2, 3])]))
    add("unknown_op", _graph_model([h.make_node("TotallyNotAnOp", ["x"], ["y"])]))
    add("custom_domain", _graph_model([h.make_node("Relu", ["x"], ["y"], domain="com.evil")]))
    loop_body = small_model().graph
    add("loop_op", _graph_model([h.make_node("If", ["x"], ["y"], then_branch=loop_body, else_branch=loop_body)]))
    m = small_model()
    del m.opset_import[:]
    add("no_opset", m)
    for v in (0, 1, 6, 10_000, -3):
        add(f"opset_{v}", small_model(opset=v) if v > 0 else _with_opset(small_model(), v))
    for i, nm in enumerate(HOSTILE_NAMES):
        # Names are data: they must survive import (quoted in the IR), never break it.
        add(f"hostile_name_{i}", small_model(names=(nm, nm + "_h", nm + "_y"), node_names=(nm, nm + "!")), "any")
    chain = [h.make_node("Relu", ["x"], ["t0"])] + [h.make_node("Neg", [f"t{i}"], [f"t{i + 1}"]) for i in range(3000)]
    chain.append(h.make_node("Relu", ["t3000"], ["y"]))
    add("long_chain_3000", _graph_model(chain), "any")
    wide = [h.make_node("Relu", ["x"], [f"r{i}"]) for i in range(2000)]
    wide.append(h.make_node("Sum", [f"r{i}" for i in range(2000)], ["y"]))
    add("sum_of_2000", _graph_model(wide), "any")
    return out


def _with_opset(m, v):
    m.opset_import[0].version = v
    return m


def hostile_cases(folder: Path) -> list:
    """Write every hand-made hostile model into ``folder``; returns ``[(name, path, expect)]``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []

    def write(name, data: bytes, expect="diagnostic", sub=None):
        d = folder / (sub or name)
        d.mkdir(exist_ok=True)
        p = d / "model.onnx"
        p.write_bytes(data)
        out.append((name, p, expect))
        return d

    valid = small_model().SerializeToString()
    write("empty_file", b"")
    write("text_file", b"hello, I am not a model\n")
    for k in range(3):
        write(f"random_bytes_{k}", random.Random(k).randbytes(64 << k))
    for cut in (1, 7, len(valid) // 3, len(valid) // 2, len(valid) - 1):
        write(f"truncated_{cut}", valid[:cut], "any")
    write("valid", valid, "any")
    # A name that is not UTF-8 (protobuf returns it as bytes): same length, so the framing stays valid.
    named = _graph_model([h.make_node("Relu", ["x"], ["y"], name="RELU\x01")]).SerializeToString()
    write("name_not_utf8", named.replace(b"RELU\x01", b"RELU\xbb"))
    for name, model, expect in _model_cases():
        write(name, model.SerializeToString(), expect)
    # External data: the secret lies outside every model folder; no case may read it.
    secret = folder / "secret.bin"
    secret.write_bytes(np.full(6, 42, np.float32).tobytes())
    ext = {
        "ext_parent": "../secret.bin", "ext_parent_nested": "sub/../../secret.bin",
        "ext_absolute": str(secret), "ext_etc_passwd": "/etc/passwd", "ext_windows": "C:\\secret.bin",
        "ext_backslash_parent": "..\\secret.bin", "ext_empty": "", "ext_missing": "nothing.bin",
        "ext_dir": ".", "ext_nul": "data\x00.bin", "ext_dev": "/dev/zero", "ext_proc": "/proc/self/environ",
    }
    for name, loc in ext.items():
        write(name, _uses_weight(_external("w", [2, 3], loc)).SerializeToString())
    d = write("ext_symlink_out", _uses_weight(_external("w", [2, 3], "link.bin")).SerializeToString())
    os.symlink(secret, d / "link.bin")
    d = write("ext_symlink_dir_out", _uses_weight(_external("w", [2, 3], "up/secret.bin")).SerializeToString())
    os.symlink(folder, d / "up")
    data = np.arange(6, dtype=np.float32).tobytes()
    for name, (off, length, expect) in {
        "ext_ok": (0, 24, "any"), "ext_offset_past_end": (100, 24, "diagnostic"),
        "ext_length_past_end": (0, 1 << 40, "diagnostic"), "ext_negative_offset": (-8, 24, "diagnostic"),
        "ext_negative_length": (0, -24, "diagnostic"), "ext_offset_not_int": ("1e3", 24, "diagnostic"),
        "ext_wrong_length": (0, 20, "diagnostic"), "ext_huge_offset": (1 << 62, 24, "diagnostic"),
    }.items():
        d = write(name, _uses_weight(_external("w", [2, 3], "w.bin", off, length)).SerializeToString(), expect)
        (d / "w.bin").write_bytes(data)
    d = write("ext_huge_dims", _uses_weight(_external("w", [1 << 20, 1 << 20], "w.bin")).SerializeToString())
    (d / "w.bin").write_bytes(data)
    return out


# --- seeded mutation of valid models -------------------------------------------------------------------
def _all_names(g: onnx.GraphProto) -> list:
    names = [v.name for v in list(g.input) + list(g.output)] + [t.name for t in g.initializer]
    for n in g.node:
        names += list(n.input) + list(n.output)
    return [n for n in names if n] or ["x"]


def _rand_value(rng: random.Random):
    return rng.choice([-1, 0, 1, 2, 3, -(1 << 40), 1 << 31, (1 << 63) - 1, 7, 1000])


def _mutate_structure(g: onnx.GraphProto, rng: random.Random, m: onnx.ModelProto) -> None:
    names = _all_names(g)
    nodes = list(g.node)
    choice = rng.randrange(16)
    if choice == 0 and nodes:  # rewire an input (maybe to a later node's output: a cycle, or a missing name)
        n = rng.choice(nodes)
        if n.input:
            n.input[rng.randrange(len(n.input))] = rng.choice(names + ["missing", ""])
    elif choice == 1 and nodes:  # rename an output (duplicates, dangling readers)
        n = rng.choice(nodes)
        if n.output:
            n.output[rng.randrange(len(n.output))] = rng.choice(names + rng.sample(HOSTILE_NAMES, 1))
    elif choice == 2 and nodes:
        del g.node[rng.randrange(len(nodes))]
    elif choice == 3 and nodes:
        g.node.append(rng.choice(nodes))
    elif choice == 4 and nodes:  # an op type swap (same arity or not)
        from ..frontend.registry import supported_ops
        rng.choice(nodes).op_type = rng.choice(supported_ops() + ["Conv", "Loop", "Bogus", ""])
    elif choice == 5 and nodes:  # attributes: drop, retype, absurd value
        n = rng.choice(nodes)
        if n.attribute and rng.random() < 0.5:
            a = n.attribute[rng.randrange(len(n.attribute))]
            if rng.random() < 0.3:
                n.attribute.remove(a)
            else:
                a.type = rng.randrange(0, 15)
                a.i, a.f = _rand_value(rng), rng.choice([float("nan"), float("inf"), -1e30, 0.5])
                a.ints.extend([_rand_value(rng)])
        else:
            n.attribute.append(h.make_attribute(rng.choice(["axis", "axes", "keepdims", "alpha", "to", "epsilon",
                                                            "approximate", "perm", "junk"]),
                                                rng.choice([_rand_value(rng), 0.5, "none", [_rand_value(rng)]])))
    elif choice == 6:  # element types
        vis = list(g.input) + list(g.output) + list(g.value_info)
        if vis:
            rng.choice(vis).type.tensor_type.elem_type = rng.randrange(0, 26)
    elif choice == 7:  # dims of an input
        if g.input and g.input[0].type.tensor_type.shape.dim:
            dims = g.input[rng.randrange(len(g.input))].type.tensor_type.shape.dim
            if dims:
                d = dims[rng.randrange(len(dims))]
                if rng.random() < 0.2:
                    d.dim_param = rng.choice(["N", "", "a b"])
                else:
                    d.dim_value = _rand_value(rng)
    elif choice == 8 and g.initializer:  # initializer data and dims
        t = g.initializer[rng.randrange(len(g.initializer))]
        k = rng.randrange(5)
        if k == 0 and t.raw_data:
            t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
        elif k == 1:
            t.dims.append(_rand_value(rng))
        elif k == 2:
            t.data_type = rng.randrange(0, 26)
        elif k == 3:
            del t.dims[:]
        else:
            t.data_location = T.EXTERNAL
            e = t.external_data.add()
            e.key, e.value = rng.choice(["location", "offset", "length", "checksum"]), rng.choice(
                ["../x.bin", "/etc/hostname", "w.bin", "-1", "99999999999", "", "\x00"])
    elif choice == 9:  # names
        target = rng.choice([g, *nodes, *g.input, *g.output, *g.initializer])
        target.name = rng.choice(HOSTILE_NAMES)
    elif choice == 10:
        m.opset_import[0].version = rng.choice([1, 6, 7, 13, 18, 21, 28, 29, 1 << 40, -1]) if m.opset_import else 0
    elif choice == 11 and g.input:  # drop a graph input (its readers dangle)
        del g.input[rng.randrange(len(g.input))]
    elif choice == 12 and g.output:
        g.output[rng.randrange(len(g.output))].name = rng.choice(names + ["missing"])
    elif choice == 13 and nodes:  # reverse node order: the importer must toposort, not trust the file
        n = list(g.node)
        del g.node[:]
        g.node.extend(reversed(n))
    elif choice == 14 and nodes:
        rng.choice(nodes).domain = rng.choice(["", "ai.onnx", "com.microsoft", "ai.onnx.ml"])
    elif g.initializer:  # an initializer shadows a graph input or a node output
        g.initializer[rng.randrange(len(g.initializer))].name = rng.choice(names)


def mutate_model(data: bytes, rng: random.Random) -> bytes:
    """A seeded mutation of a serialized model: mostly structural, sometimes raw bytes."""
    if rng.random() < 0.15:
        b = bytearray(data)
        for _ in range(rng.randint(1, 8)):
            if not b:
                break
            i = rng.randrange(len(b))
            if rng.random() < 0.7:
                b[i] = rng.randrange(256)
            else:
                del b[i:i + rng.randint(1, 16)]
        return bytes(b)
    m = onnx.ModelProto()
    m.ParseFromString(data)
    for _ in range(rng.choice([1, 1, 2, 3])):
        _mutate_structure(m.graph, rng, m)
    return m.SerializeToString()


def mutated_models(bases: dict, n: int, seed: int = 0):
    """``n`` (name, bytes) mutants of ``bases`` ({name: serialized model}), deterministic in ``seed``."""
    rng = random.Random(seed)
    names = sorted(bases)
    for k in range(n):
        name = names[k % len(names)]
        yield f"{name}#{k}", mutate_model(bases[name], rng)


def check_model_file(path: str, run_passes: bool = False) -> None:
    """The contract under test: import (which verifies) returns or raises CompileError; with
    ``run_passes`` an imported module also goes through the front pipeline."""
    from ..frontend.importer import import_onnx
    module = import_onnx(str(path))
    if run_passes:
        from ..driver import FRONT_PASSES
        from ..passes.pipeline import PassManager, parse_pipeline
        PassManager(passes=parse_pipeline(FRONT_PASSES)).run(module)
