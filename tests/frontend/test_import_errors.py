"""The importer's diagnostics: every bad model gives a CompileError that names the problem."""
from __future__ import annotations

import os

import numpy as np
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper

from tilec.frontend.importer import import_onnx
from tilec.ir import CompileError, print_module, verify


def _model(nodes, inputs=None, outputs=None, inits=(), opset=17):
    inputs = inputs or [h.make_tensor_value_info("x", T.FLOAT, [2, 3])]
    outputs = outputs or [h.make_tensor_value_info("y", T.FLOAT, None)]
    g = h.make_graph(nodes, "g", inputs, outputs, list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def _error(model, **kw) -> str:
    with pytest.raises(CompileError) as e:
        import_onnx(model, **kw)
    return str(e.value)


def test_ok_model_imports_and_verifies():
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "layer/0.w")
    m = _model([h.make_node("Add", ["x", "layer/0.w"], ["y"], name="/add::0")], inits=[w])
    mod = import_onnx(m, filename="m.onnx")
    verify(mod)
    text = print_module(mod)
    assert 'loc("m.onnx":"/add::0")' in text
    assert "arg_names = [\"x\"]" in text and "result_names = [\"y\"]" in text


def test_unsupported_op():
    m = _model([h.make_node("FooBar", ["x"], ["y"], name="bar")])
    err = _error(m)
    assert "error: 1 unsupported ONNX op type (1 node): FooBar" in err and "note: 'FooBar': 1 node, first 'bar'" in err


def test_every_unsupported_op_in_one_diagnostic():
    # A real export often lacks several ops: one error lists them all, with a count and the first node each.
    m = _model([h.make_node("FooBar", ["x"], ["t"], name="a"), h.make_node("Relu", ["t"], ["u"], name="r"),
                h.make_node("FooBar", ["u"], ["v"], name="b"), h.make_node("Baz", ["v"], ["y"])])
    err = _error(m)
    assert "2 unsupported ONNX op types (3 nodes): FooBar, Baz" in err
    assert "'FooBar': 2 nodes, first 'a'" in err and "'Baz': 1 node, first 'Baz_3'" in err


def test_loop_with_malformed_body():
    body = h.make_graph([], "body", [], [])
    m = _model([h.make_node("Loop", ["", ""], ["y"], name="loop0", body=body)])
    assert "Loop body takes 0 inputs and gives 0 outputs" in _error(m) and "(node 'loop0')" in _error(m)


def test_custom_domain():
    m = _model([h.make_node("Gelu", ["x"], ["y"], name="g0", domain="com.microsoft")])
    assert "domain 'com.microsoft'" in _error(m)


def test_dynamic_dim_needs_input_shape():
    m = _model([h.make_node("Relu", ["x"], ["y"])], inputs=[h.make_tensor_value_info("x", T.FLOAT, ["batch", 128])])
    msg = _error(m)
    assert "1 input with dynamic dimensions (dynamic dims: batch): give it a shape: --input-shape x=<batch>x128" in msg
    mod = import_onnx(m, input_shapes={"x": (4, 128)})
    assert mod.body.ops[-1].body.args[0].type.shape == (4, 128)


def test_every_dynamic_input_in_one_message():
    # A text model: batch and sequence dynamic on every input. One message names them all, by dim_param,
    # and suggests no sizes (only the user knows the sequence length they will run).
    ins = [h.make_tensor_value_info(n, T.FLOAT, ["batch", "sequence"]) for n in ("ids", "mask")]
    ins.append(h.make_tensor_value_info("z", T.FLOAT, [None, 8]))
    m = _model([h.make_node("Add", ["ids", "mask"], ["t"]), h.make_node("Relu", ["t"], ["y"])], inputs=ins)
    msg = _error(m)
    assert ("3 inputs with dynamic dimensions (dynamic dims: batch, sequence): give each a shape: "
            "--input-shape ids=<batch>x<sequence> --input-shape mask=<batch>x<sequence> "
            "--input-shape z=<?>x8") in msg
    assert "misspelt" in _error(m, input_shapes={"misspelt": (1, 2)}) and "(inputs: ids, mask, z)" in _error(
        m, input_shapes={"misspelt": (1, 2)})


def test_input_shape_must_match_model():
    m = _model([h.make_node("Relu", ["x"], ["y"])])
    assert "fixes it to 3" in _error(m, input_shapes={"x": (2, 4)})
    assert "unknown input" in _error(m, input_shapes={"z": (2, 3)})


@pytest.mark.parametrize("listed_as_input", [False, True])  # an initializer listed as an input: IR < 4 style
def test_input_shape_on_an_initializer_is_an_unknown_input(listed_as_input):
    w = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    inputs = [h.make_tensor_value_info("x", T.FLOAT, [2, 3])]
    if listed_as_input:
        inputs.append(h.make_tensor_value_info("w", T.FLOAT, [2, 3]))
    m = _model([h.make_node("Add", ["x", "w"], ["y"])], inputs=inputs, inits=[w])
    msg = _error(m, input_shapes={"w": (2, 3)})
    assert "--input-shape names unknown input(s): w (inputs: x)" in msg
    assert "--input-shape names unknown input(s): w (inputs: x)" in _error(m, input_shapes={"x": (2, 3), "w": (2, 3)})
    verify(import_onnx(m, input_shapes={"x": (2, 3)}))   # the real input's shape is fine


def test_input_shape_on_a_frozen_input_is_accepted():
    # a caller freezing an input it imported with --input-shape keeps that shape (node_harness retries so)
    m = _model([h.make_node("Add", ["x", "b"], ["y"])],
               inputs=[h.make_tensor_value_info("x", T.FLOAT, [2, 3]), h.make_tensor_value_info("b", T.FLOAT, [3])])
    verify(import_onnx(m, input_shapes={"x": (2, 3), "b": (3,)}, frozen_inputs={"b": np.ones(3, np.float32)}))


def test_truncated_file(tmp_path):
    m = _model([h.make_node("Relu", ["x"], ["y"])], inits=[numpy_helper.from_array(np.ones(100, np.float32), "w")])
    data = m.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    assert "not a valid ONNX model" in _error(str(path))
    path.write_bytes(b"")
    assert "not a valid ONNX model" in _error(str(path))


def _external(tmp_path, location, length=12, offset=0):
    t = numpy_helper.from_array(np.ones(3, np.float32), "w")
    t.ClearField("raw_data")
    t.data_location = T.EXTERNAL
    for k, v in (("location", location), ("offset", str(offset)), ("length", str(length))):
        e = t.external_data.add()
        e.key, e.value = k, v
    m = _model([h.make_node("Add", ["x", "w"], ["y"])], inputs=[h.make_tensor_value_info("x", T.FLOAT, [3])],
               inits=[t])
    folder = tmp_path / "model"
    folder.mkdir(exist_ok=True)
    path = folder / "m.onnx"
    path.write_bytes(m.SerializeToString())
    return path


def test_external_data_loads(tmp_path):
    path = _external(tmp_path, "m.data")
    (path.parent / "m.data").write_bytes(np.full(3, 2.0, np.float32).tobytes())
    from tilec.runtime.interpreter import run_module
    out = run_module(import_onnx(str(path)), {"x": np.zeros(3, np.float32)})
    np.testing.assert_array_equal(out["y"], [2.0, 2.0, 2.0])


@pytest.mark.parametrize("location", ["../secret.bin", "/etc/passwd", "sub/../../secret.bin"])
def test_external_data_escaping_the_folder(tmp_path, location):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 12)
    path = _external(tmp_path, location)
    assert "outside the model's folder" in _error(str(path))


def test_external_data_symlink_escape(tmp_path):
    (tmp_path / "secret.bin").write_bytes(b"\0" * 12)
    path = _external(tmp_path, "link.bin")
    os.symlink(tmp_path / "secret.bin", path.parent / "link.bin")
    assert "outside the model's folder" in _error(str(path))


def test_external_data_out_of_range(tmp_path):
    path = _external(tmp_path, "m.data", offset=8)
    (path.parent / "m.data").write_bytes(b"\0" * 12)
    assert "lie outside" in _error(str(path))


def test_cycle():
    m = _model([h.make_node("Relu", ["b"], ["a"], name="r1"), h.make_node("Relu", ["a"], ["b"], name="r2"),
                h.make_node("Add", ["x", "a"], ["y"])])
    assert "cycle" in _error(m)


def test_undefined_input():
    m = _model([h.make_node("Add", ["x", "nowhere"], ["y"], name="add0")])
    assert "node 'add0' reads tensor 'nowhere', which nothing defines" in _error(m)


def test_duplicate_output():
    m = _model([h.make_node("Relu", ["x"], ["y"]), h.make_node("Relu", ["x"], ["y"])])
    assert "produced twice" in _error(m)


def test_huge_and_negative_dims():
    m = _model([h.make_node("Relu", ["x"], ["y"])], inputs=[h.make_tensor_value_info("x", T.FLOAT, [1 << 40])])
    assert "invalid dimension" in _error(m)
    t = T()
    t.name, t.data_type = "w", T.FLOAT
    t.dims.extend([-5])
    m = _model([h.make_node("Add", ["x", "w"], ["y"])], inits=[t])
    assert "invalid dimension -5" in _error(m)
    t2 = T()
    t2.name, t2.data_type = "w", T.FLOAT
    t2.dims.extend([1 << 20, 1 << 20])
    t2.raw_data = b"\0" * 16
    m = _model([h.make_node("Add", ["x", "w"], ["y"])], inits=[t2])
    assert "more than tilec accepts" in _error(m)


def test_unsupported_input_dtype():
    m = _model([h.make_node("Relu", ["x"], ["y"])], inputs=[h.make_tensor_value_info("x", T.UINT16, [3])])
    assert "element type uint16" in _error(m)


def test_non_constant_reduce_axes_names_the_node():
    m = _model([h.make_node("ReduceSum", ["x", "axes"], ["y"], name="rs")],
               inputs=[h.make_tensor_value_info("x", T.FLOAT, [2, 3]), h.make_tensor_value_info("axes", T.INT64, [1])])
    assert "must be a constant at import time (node 'rs')" in _error(m)


def test_weight_names_are_sanitised_and_unique():
    inits = [numpy_helper.from_array(np.full((100,), i, np.float32), n) for i, n in enumerate(["a.b", "a/b", "a:b"])]
    m = _model([h.make_node("Add", ["x", "a.b"], ["s1"]), h.make_node("Add", ["s1", "a/b"], ["s2"]),
                h.make_node("Add", ["s2", "a:b"], ["y"])],
               inputs=[h.make_tensor_value_info("x", T.FLOAT, [100])], inits=inits)
    mod = import_onnx(m)
    decls = {op.sym_name: op.attributes.get("source_name") for op in mod.body.ops if op.name == "tile.weight"}
    assert decls == {"a_b": "a.b", "a_b_1": "a/b", "a_b_2": "a:b"}


def test_shape_chain_folds():
    nodes = [h.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.array([2.0], np.float32))),
             h.make_node("Mul", ["c", "c"], ["cc"]), h.make_node("Mul", ["x", "cc"], ["y"])]
    mod = import_onnx(_model(nodes))
    names = [op.name for op in mod.body.ops[-1].body.ops]
    assert names == ["tile.const", "graph.mul", "func.return"]
