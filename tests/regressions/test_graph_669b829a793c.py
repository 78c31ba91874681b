"""Regression found by scripts/fuzz.py (import): output 't24': shape [0, 1], expected [1, 1]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOrkBCi8KA3QxMAoDczIwCgNzMjEKA3MyMgoDczIzEgN0MjQaCFNsaWNlXzI0IgVTbGljZRIEZ2VuNyoTCAEQB0IDczIwSggAAAAAAAAAACoTCAEQB0IDczIxSgj6/////////yoTCAEQB0IDczIySggAAAAAAAAAACoTCAEQB0IDczIzSgj//////////1oVCgN0MTASDgoMCAESCAoCCAEKAggBYhUKA3QyNBIOCgwIARIICgIIAQoCCAFCBAoAEBI="
INPUTS = "UEsDBC0AAAAAAAAAIQDlLmNi//////////8HABQAdDEwLm5weQEAEACEAAAAAAAAAIQAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDEpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIApeN2e+UEsBAi0DLQAAAAAAAAAhAOUuY2KEAAAAhAAAAAcAAAAAAAAAAAAAAIABAAAAAHQxMC5ucHlQSwUGAAAAAAEAAQA1AAAAvQAAAAAA"


@pytest.mark.xfail(strict=True, reason="output 't24': shape [0, 1], expected [1, 1]")
def test_graph_669b829a793c():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
