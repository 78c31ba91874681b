"""``onnx_load.tensor_to_array`` decodes little-endian raw data itself (one copy of the bytes, not two): the
array must be the one ``onnx.numpy_helper.to_array`` gives, for every type it takes that path for, and the
other encodings still go through ``to_array``."""
from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from tilec.frontend.onnx_load import ONNX_TO_IR, RAW_NUMPY, tensor_to_array
from tilec.ir.diagnostics import CompileError


@pytest.mark.parametrize("ir", sorted(RAW_NUMPY))
def test_raw_data_decodes_as_numpy_helper_does(ir):
    rng = np.random.default_rng(1)
    a = (rng.standard_normal((3, 4)) * 50).astype(RAW_NUMPY[ir])
    t = numpy_helper.from_array(a, "w")
    assert t.HasField("raw_data") and ONNX_TO_IR[t.data_type] == ir
    got, want = tensor_to_array(t, None, None, "initializer"), numpy_helper.to_array(t)
    assert got.dtype == want.dtype and got.shape == want.shape == (3, 4)
    assert got.tobytes() == want.tobytes() == a.tobytes()


def test_typed_fields_and_bf16_still_decode():
    t = helper.make_tensor("w", TensorProto.FLOAT, [2, 2], [1.0, 2.0, 3.0, 4.0])   # float_data, no raw_data
    assert not t.HasField("raw_data")
    assert tensor_to_array(t, None, None, "initializer").tolist() == [[1.0, 2.0], [3.0, 4.0]]
    b = helper.make_tensor("b", TensorProto.BFLOAT16, [2], [1.5, -2.0])   # int32_data, through to_array
    assert tensor_to_array(b, None, None, "initializer").astype(np.float32).tolist() == [1.5, -2.0]


def test_raw_data_of_the_wrong_length_is_an_error():
    t = numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    t.raw_data = t.raw_data[:-4]
    with pytest.raises(CompileError, match="bytes of data, expected 24"):
        tensor_to_array(t, None, None, "initializer")
