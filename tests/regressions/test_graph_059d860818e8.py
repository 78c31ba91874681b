"""Regression found by scripts/fuzz.py (emu): weight '__const__.const0' has shape [1], expected []

A shrunk random graph (2 nodes: Add, Div). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOooBChsKAnQ5CgNjMTASA3QxMRoGQWRkXzExIgNBZGQKGwoCdDMKA3QxMRIDdDEyGgZEaXZfMTIiA0RpdhIEZ2VuNioNEAFCA2MxMEoEAAAAP1oUCgJ0MxIOCgwIARIICgIIAwoCCANaDAoCdDkSBgoECAESAGIVCgN0MTISDgoMCAESCAoCCAMKAggDQgQKABAU"
INPUTS = "UEsDBC0AAAAAAAAAIQBMCg1b//////////8GABQAdDMubnB5AQAQAKQAAAAAAAAApAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMywgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgCrQhlr5CfvO/zpwcP3l90z+kUYM/4qmavwRtWj4Py94/DfFUPlBLAwQtAAAAAAAAACEAiN1kzf//////////BgAUAHQ5Lm5weQEAEACEAAAAAAAAAIQAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIArGSuM/UEsBAi0DLQAAAAAAAAAhAEwKDVukAAAApAAAAAYAAAAAAAAAAAAAAIABAAAAAHQzLm5weVBLAQItAy0AAAAAAAAAIQCI3WTNhAAAAIQAAAAGAAAAAAAAAAAAAACAAdwAAAB0OS5ucHlQSwUGAAAAAAIAAgBoAAAAmAEAAAAA"


@pytest.mark.xfail(strict=True, reason="weight '__const__.const0' has shape [1], expected []")
def test_graph_059d860818e8():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('emu',))
    assert not failing(outcomes), outcomes
