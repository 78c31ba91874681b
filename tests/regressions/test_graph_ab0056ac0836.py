"""Regression found by scripts/fuzz.py (import): output 't14': shape [1, 2, 0, 3], expected [1, 2, 2, 3]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOsABCikKA2luMQoCczUKAnM2CgJzNwoCczgSAnQ5GgdTbGljZV85IgVTbGljZRIGZ2VuNjE1KhIIARAHQgJzNUoIAAAAAAAAAAAqEggBEAdCAnM2Sgj6/////////yoSCAEQB0ICczdKCAIAAAAAAAAAKhIIARAHQgJzOEoI//////////9aHQoDaW4xEhYKFAgBEhAKAggBCgIIAQoCCAEKAggBYhwKAnQ5EhYKFAgBEhAKAggBCgIIAQoCCAEKAggBQgQKABAR"
INPUTS = "UEsDBC0AAAAAAAAAIQBl60JQ//////////8HABQAaW4xLm5weQEAEACEAAAAAAAAAIQAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDEsIDEsIDEpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoFZfw/UEsBAi0DLQAAAAAAAAAhAGXrQlCEAAAAhAAAAAcAAAAAAAAAAAAAAIABAAAAAGluMS5ucHlQSwUGAAAAAAEAAQA1AAAAvQAAAAAA"


@pytest.mark.xfail(strict=True, reason="output 't14': shape [1, 2, 0, 3], expected [1, 2, 2, 3]")
def test_graph_ab0056ac0836():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
