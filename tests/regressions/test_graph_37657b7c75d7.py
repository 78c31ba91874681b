"""Regression found by scripts/fuzz.py (emu): weight '__const__.const0' has shape [1], expected []

A shrunk random graph (2 nodes: Add, ReduceLogSum). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOsoBChwKA3QxMAoDYzExEgN0MTIaBkFkZF8xMiIDQWRkCkIKA3QxMgoGYXhlczEzEgN0MTQaD1JlZHVjZUxvZ1N1bV8xNCIMUmVkdWNlTG9nU3VtKg8KCGtlZXBkaW1zGACgAQISBWdlbjM0Kg0QAUIDYzExSgQAAAA/KiYIAxAHQgZheGVzMTNKGAAAAAAAAAAA/v////////8CAAAAAAAAAFoZCgN0MTASEgoQCAESDAoCCAEKAggBCgIIAWINCgN0MTQSBgoECAESAEIECgAQFA=="
INPUTS = "UEsDBC0AAAAAAAAAIQDjQrwx//////////8HABQAdDEwLm5weQEAEACEAAAAAAAAAIQAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDEsIDEpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIApeN2e+UEsBAi0DLQAAAAAAAAAhAONCvDGEAAAAhAAAAAcAAAAAAAAAAAAAAIABAAAAAHQxMC5ucHlQSwUGAAAAAAEAAQA1AAAAvQAAAAAA"


@pytest.mark.xfail(strict=True, reason="weight '__const__.const0' has shape [1], expected []")
def test_graph_37657b7c75d7():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('emu',))
    assert not failing(outcomes), outcomes
