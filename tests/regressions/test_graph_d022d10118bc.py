"""Regression found by scripts/fuzz.py (import): output 't17': shape [2, 0], expected [2, 1]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOr0BCjAKBGluMTAKA3MxMQoDczEyCgNzMTMKA3MxNBIDdDE1GghTbGljZV8xNSIFU2xpY2USBmdlbjk5OCoTCAEQB0IDczExSggAAAAAAAAAACoTCAEQB0IDczEySgj6/////////yoTCAEQB0IDczEzSggBAAAAAAAAACoTCAEQB0IDczE0Sgj//////////1oWCgRpbjEwEg4KDAgBEggKAggBCgIIAWIVCgN0MTUSDgoMCAESCAoCCAEKAggBQgQKABAR"
INPUTS = "UEsDBC0AAAAAAAAAIQA0I7iI//////////8IABQAaW4xMC5ucHkBABAAhAAAAAAAAACEAAAAAAAAAJNOVU1QWQEAdgB7J2Rlc2NyJzogJzxmNCcsICdmb3J0cmFuX29yZGVyJzogRmFsc2UsICdzaGFwZSc6ICgxLCAxKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAK2Gzev1BLAQItAy0AAAAAAAAAIQA0I7iIhAAAAIQAAAAIAAAAAAAAAAAAAACAAQAAAABpbjEwLm5weVBLBQYAAAAAAQABADYAAAC+AAAAAAA="


@pytest.mark.xfail(strict=True, reason="output 't17': shape [2, 0], expected [2, 1]")
def test_graph_d022d10118bc():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
