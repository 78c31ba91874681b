"""Regression from the ONNX node-test sweep under emu (``test_resize_downsample_scales_linear_align_corners``,
``test_resize_downsample_*_linear_antialias``). The hand-written Resize kernel mapped align_corners (and
pytorch_half_pixel) coordinates with the rounded output length, where ONNX uses the un-rounded
``scale * input length`` (4 -> 2 at scale 0.6: output 1 reads input 3 / 1.4, not 3); and it ignored
``antialias``, interpolating 2 taps where the filter is wider. Fixed in backend/opaque/resize.py: the
un-rounded length, and antialias resizes stay on the host (numpy reference) until they have a kernel."""
import numpy as np
import onnx
import pytest
from onnx import TensorProto as T
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.driver import compile_model, make_executor

X = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)


def _run(tmp_path, scales, **attrs):
    out = [int(np.floor(d * s)) for d, s in zip(X.shape, scales)]
    g = h.make_graph([h.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear", **attrs)], "g",
                     [h.make_tensor_value_info("x", T.FLOAT, list(X.shape))],
                     [h.make_tensor_value_info("y", T.FLOAT, out)],
                     [nh.from_array(np.array(scales, np.float32), "scales")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 18)]), tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="roller")
    return make_executor(str(tmp_path / "b"), "emu").run({"x": X})["y"]


def test_align_corners_uses_the_unrounded_output_length(tmp_path):
    y = _run(tmp_path, [1, 1, 0.6, 0.6], coordinate_transformation_mode="align_corners")
    # per axis: output 1 -> source 1 * 3 / (0.6 * 4 - 1) = 2.142857 (between inputs 2 and 3)
    src = 3 / 1.4
    row = np.array([1.0, 1 + src])                       # values of X[0, 0, 0, :] at sources 0 and src
    want = (row[None, :] + 4 * np.array([0.0, src])[:, None]).reshape(1, 1, 2, 2)
    np.testing.assert_allclose(y, want, rtol=1e-5)


def test_antialias_downsample_matches_the_reference(tmp_path):
    from tilec.runtime.reference.nn_ops import resize
    y = _run(tmp_path, [1, 1, 0.6, 0.6], antialias=1)
    want = resize([X], {"sizes": [1, 1, 2, 2], "scales": [1.0, 1.0, 0.6, 0.6], "mode": "linear",
                        "antialias": 1})[0]
    np.testing.assert_allclose(y, want, rtol=1e-5)
    # the 2-tap interpolation the kernel used to do gives something else: the test can tell them apart
    plain = tmp_path / "plain"
    plain.mkdir()
    assert not np.allclose(y, _run(plain, [1, 1, 0.6, 0.6]))
