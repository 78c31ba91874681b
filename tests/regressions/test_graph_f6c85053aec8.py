"""Regression found by scripts/fuzz.py (emu): weight '__const__.const0' has shape [1], expected []

A shrunk random graph (2 nodes: Add, Pow). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOpYBChwKA3QxMQoDYzEyEgN0MTMaBkFkZF8xMyIDQWRkChwKA3QxMwoDdDEwEgN0MTQaBlBvd18xNCIDUG93EgRnZW44Kg0QAUIDYzEySgQAAAA/Wg0KA3QxMBIGCgQIARIAWhkKA3QxMRISChAIARIMCgIIAgoCCAEKAggBYhkKA3QxNBISChAIARIMCgIIAgoCCAEKAggBQgQKABAR"
INPUTS = "UEsDBC0AAAAAAAAAIQA5Aeks//////////8HABQAdDEwLm5weQEAEACEAAAAAAAAAIQAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKCksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIApeN2e+UEsDBC0AAAAAAAAAIQD2Htpx//////////8HABQAdDExLm5weQEAEACIAAAAAAAAAIgAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDEsIDEpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIApuj6Q/AWiwP1BLAQItAy0AAAAAAAAAIQA5AekshAAAAIQAAAAHAAAAAAAAAAAAAACAAQAAAAB0MTAubnB5UEsBAi0DLQAAAAAAAAAhAPYe2nGIAAAAiAAAAAcAAAAAAAAAAAAAAIABvQAAAHQxMS5ucHlQSwUGAAAAAAIAAgBqAAAAfgEAAAAA"


@pytest.mark.xfail(strict=True, reason="weight '__const__.const0' has shape [1], expected []")
def test_graph_f6c85053aec8():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('emu',))
    assert not failing(outcomes), outcomes
