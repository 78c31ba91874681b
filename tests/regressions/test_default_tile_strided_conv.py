"""Regression from ``make bench`` (vit_s32 full, pipeline ``none``): the default tile of a stride-32
patchify conv (no Roller rTile) staged a 225 x 225 input halo per block even with unit reduce steps, 202 KB
of shared memory, and lower-cuda failed ("tile config needs 202564 B"). Fixed in backend/lower/tiled.py:
``default_config`` then halves the block axis that saves the most shared memory until the boxes fit."""
import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.driver import compile_model, make_executor


def test_patchify_conv_default_tile_fits_shared_memory(tmp_path):
    rng = np.random.default_rng(0)
    w = (rng.standard_normal((48, 3, 32, 32)) * 0.05).astype(np.float32)
    g = h.make_graph([h.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[32, 32], strides=[32, 32])], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, [1, 3, 224, 224])],
                     [h.make_tensor_value_info("y", T.FLOAT, [1, 48, 7, 7])], [nh.from_array(w, "w")])
    path = str(tmp_path / "m.onnx")
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 17)]), path)
    compile_model(path, str(tmp_path / "b"), pipeline="none")
    x = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    want = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    got = make_executor(str(tmp_path / "b"), "emu").run({"x": x})["y"]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-4)
