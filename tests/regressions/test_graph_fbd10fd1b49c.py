"""Regression found by scripts/fuzz.py (import): output 't13': shape [0, 7, 2], expected [1, 7, 2]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOsEBCi4KA2luMQoCczkKA3MxMAoDczExCgNzMTISA3QxMxoIU2xpY2VfMTMiBVNsaWNlEgZnZW44NDUqEggBEAdCAnM5SggAAAAAAAAAACoTCAEQB0IDczEwSgj6/////////yoTCAEQB0IDczExSggAAAAAAAAAACoTCAEQB0IDczEySgj//////////1oZCgNpbjESEgoQCAESDAoCCAEKAggHCgIIAmIZCgN0MTMSEgoQCAESDAoCCAEKAggHCgIIAkIECgAQEQ=="
INPUTS = "UEsDBC0AAAAAAAAAIQCD3Ia4//////////8HABQAaW4xLm5weQEAEAC4AAAAAAAAALgAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDcsIDIpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAq0I749skN2vbE29D8Vt/+/pdw1u9DEHj+O/qs+8EytPp6o1j8dBKM/eFjSv1DG8j7W8QS/nMdCP1BLAQItAy0AAAAAAAAAIQCD3Ia4uAAAALgAAAAHAAAAAAAAAAAAAACAAQAAAABpbjEubnB5UEsFBgAAAAABAAEANQAAAPEAAAAAAA=="


@pytest.mark.xfail(strict=True, reason="output 't13': shape [0, 7, 2], expected [1, 7, 2]")
def test_graph_fbd10fd1b49c():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
