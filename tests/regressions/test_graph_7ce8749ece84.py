"""Regression found by scripts/fuzz.py (import): output 't19': shape [2, 0, 1], expected [2, 2, 1]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOsABCi4KAnQ2CgNzMTUKA3MxNgoDczE3CgNzMTgSA3QxORoIU2xpY2VfMTkiBVNsaWNlEgVnZW4xNioTCAEQB0IDczE1SggBAAAAAAAAACoTCAEQB0IDczE2Sgj5/////////yoTCAEQB0IDczE3SggBAAAAAAAAACoTCAEQB0IDczE4Sgj//////////1oYCgJ0NhISChAIARIMCgIIAgoCCAIKAggBYhkKA3QxORISChAIARIMCgIIAgoCCAIKAggBQgQKABAS"
INPUTS = "UEsDBC0AAAAAAAAAIQA1cEms//////////8GABQAdDYubnB5AQAQAJAAAAAAAAAAkAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMiwgMiwgMSksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgCgOTqz/2sK8+rvmKP512Br5QSwECLQMtAAAAAAAAACEANXBJrJAAAACQAAAABgAAAAAAAAAAAAAAgAEAAAAAdDYubnB5UEsFBgAAAAABAAEANAAAAMgAAAAAAA=="


@pytest.mark.xfail(strict=True, reason="output 't19': shape [2, 0, 1], expected [2, 2, 1]")
def test_graph_7ce8749ece84():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
