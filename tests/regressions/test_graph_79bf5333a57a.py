"""Regression found by scripts/fuzz.py (import): output 't23': shape [1, 0, 2, 3], expected [1, 5, 2, 3]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOskBCi4KAnQ0CgNzMTQKA3MxNQoDczE2CgNzMTcSA3QxOBoIU2xpY2VfMTgiBVNsaWNlEgZnZW43NDkqEwgBEAdCA3MxNEoIAAAAAAAAAAAqEwgBEAdCA3MxNUoI+v////////8qEwgBEAdCA3MxNkoIAQAAAAAAAAAqEwgBEAdCA3MxN0oI//////////9aHAoCdDQSFgoUCAESEAoCCAEKAggBCgIIAQoCCAFiHQoDdDE4EhYKFAgBEhAKAggBCgIIAQoCCAEKAggBQgQKABAS"
INPUTS = "UEsDBC0AAAAAAAAAIQDx47Ve//////////8GABQAdDQubnB5AQAQAIQAAAAAAAAAhAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMSwgMSwgMSwgMSksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgCl/z7T9QSwECLQMtAAAAAAAAACEA8eO1XoQAAACEAAAABgAAAAAAAAAAAAAAgAEAAAAAdDQubnB5UEsFBgAAAAABAAEANAAAALwAAAAAAA=="


@pytest.mark.xfail(strict=True, reason="output 't23': shape [1, 0, 2, 3], expected [1, 5, 2, 3]")
def test_graph_79bf5333a57a():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
