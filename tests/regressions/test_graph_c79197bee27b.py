"""Regression found by scripts/fuzz.py (import): output 't15': shape [1, 0, 7], expected [1, 7, 7]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOsUBCjAKBGluMTAKA3MxMQoDczEyCgNzMTMKA3MxNBIDdDE1GghTbGljZV8xNSIFU2xpY2USBmdlbjI4NioTCAEQB0IDczExSggGAAAAAAAAACoTCAEQB0IDczEySgj0/////////yoTCAEQB0IDczEzSggBAAAAAAAAACoTCAEQB0IDczE0Sgj//////////1oaCgRpbjEwEhIKEAgBEgwKAggBCgIIBwoCCAdiGQoDdDE1EhIKEAgBEgwKAggBCgIIBwoCCAdCBAoAEBI="
INPUTS = "UEsDBC0AAAAAAAAAIQDfuH2r//////////8IABQAaW4xMC5ucHkBABAARAEAAAAAAABEAQAAAAAAAJNOVU1QWQEAdgB7J2Rlc2NyJzogJzxmNCcsICdmb3J0cmFuX29yZGVyJzogRmFsc2UsICdzaGFwZSc6ICgxLCA3LCA3KSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAKw5JlvmSKJ76Vqfa+vy2PvzcErb9U1RG/ISOmvwu3Iz8GcB8/RnedP9oKOj01ROS/2yucP0YFGL+6Y4W/4obCPzRxjz7ZeLC+vimXP2LdpT+xDcM+tLffPxVQ6b8yM4m/VBOkP4XZXr/3j+U/5hWhvoQNM79dKhy/2rPdvwF5m78goOk/dlGEvsjw+b/OKVG/XCYqv99bpT+82QW/sfudv4+Ikz969SA+JbBzPnTlir7YqFK/Lnb+PpMNaD9H7+o/hn8YP1BLAQItAy0AAAAAAAAAIQDfuH2rRAEAAEQBAAAIAAAAAAAAAAAAAACAAQAAAABpbjEwLm5weVBLBQYAAAAAAQABADYAAAB+AQAAAAA="


@pytest.mark.xfail(strict=True, reason="output 't15': shape [1, 0, 7], expected [1, 7, 7]")
def test_graph_c79197bee27b():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
