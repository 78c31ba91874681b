"""Regression from the ONNX node-test sweep under emu (``test_pow_types_int32_int32``,
``test_pow_types_int64_int64``): lower-cuda had no C spelling for ``pow`` on integer compute types, so
Pow on int32/int64 failed to compile ("no C spelling for function 'pow' on i32"). Fixed with ``tl_ipow``
in backend/cuda_prelude.h (exact exponentiation by squaring, wrapping on overflow like numpy) and its
spelling in backend/lower/cexpr.py."""
import numpy as np
import onnx
import pytest
from onnx import helper as h
from onnx import numpy_helper as nh

from tilec.driver import compile_model, make_executor


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
def test_integer_pow_is_exact_and_wraps_like_numpy(tmp_path, dtype):
    # 3**39 > 2**53: a double pow would round it; 3**21 overflows int32 and must wrap as numpy's does
    x = np.array([1, 2, 3, -3, 7, 3, 3, 0], dtype)
    y = np.array([4, 5, 6, 3, 0, 21, 39 if dtype == np.int64 else 19, 0], dtype)
    elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(dtype))
    g = h.make_graph([h.make_node("Pow", ["x", "y"], ["z"])], "g", [h.make_tensor_value_info("x", elem, [8])],
                     [h.make_tensor_value_info("z", elem, [8])], [nh.from_array(y, "y")])
    onnx.save(h.make_model(g, opset_imports=[h.make_opsetid("", 15)]), tmp_path / "m.onnx")
    compile_model(str(tmp_path / "m.onnx"), str(tmp_path / "b"), pipeline="roller")
    got = make_executor(str(tmp_path / "b"), "emu").run({"x": x})["z"]
    with np.errstate(over="ignore"):
        want = np.power(x.astype(np.int64), y.astype(np.int64)).astype(dtype)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got, want)
