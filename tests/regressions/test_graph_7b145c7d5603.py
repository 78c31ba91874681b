"""Regression found by scripts/fuzz.py (emu): weight '__const__.const0' has shape [1], expected []

A shrunk random graph (2 nodes: Add, Sqrt). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOnUKGAoCdDcKAmM4EgJ0ORoFQWRkXzkiA0FkZAoYCgJ0ORIDdDEwGgdTcXJ0XzEwIgRTcXJ0EgRnZW4zKgwQAUICYzhKBAAAAD9aFAoCdDcSDgoMCAESCAoCCAIKAggDYhUKA3QxMBIOCgwIARIICgIIAgoCCANCBAoAEBE="
INPUTS = "UEsDBC0AAAAAAAAAIQAcT7cB//////////8GABQAdDcubnB5AQAQAJgAAAAAAAAAmAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgCohovz/vduO+vlNUP9g4+7/5ANy/L3XEP1BLAQItAy0AAAAAAAAAIQAcT7cBmAAAAJgAAAAGAAAAAAAAAAAAAACAAQAAAAB0Ny5ucHlQSwUGAAAAAAEAAQA0AAAA0AAAAAAA"


@pytest.mark.xfail(strict=True, reason="weight '__const__.const0' has shape [1], expected []")
def test_graph_7b145c7d5603():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('emu',))
    assert not failing(outcomes), outcomes
