"""Regression found by scripts/fuzz.py (import): output 't19': shape [0, 1], expected [7, 1]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOrsBCi8KA3QxNAoDczE1CgNzMTYKA3MxNwoDczE4EgN0MTkaCFNsaWNlXzE5IgVTbGljZRIGZ2VuOTQxKhMIARAHQgNzMTVKCAAAAAAAAAAAKhMIARAHQgNzMTZKCPr/////////KhMIARAHQgNzMTdKCAAAAAAAAAAAKhMIARAHQgNzMThKCP//////////WhUKA3QxNBIOCgwIARIICgIIAQoCCAFiFQoDdDE5Eg4KDAgBEggKAggBCgIIAUIECgAQEg=="
INPUTS = "UEsDBC0AAAAAAAAAIQAnXfkx//////////8HABQAdDE0Lm5weQEAEACEAAAAAAAAAIQAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDEpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAr8EB6/UEsBAi0DLQAAAAAAAAAhACdd+TGEAAAAhAAAAAcAAAAAAAAAAAAAAIABAAAAAHQxNC5ucHlQSwUGAAAAAAEAAQA1AAAAvQAAAAAA"


@pytest.mark.xfail(strict=True, reason="output 't19': shape [0, 1], expected [7, 1]")
def test_graph_57c834979eec():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
