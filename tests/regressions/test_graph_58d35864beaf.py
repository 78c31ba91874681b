"""Regression found by scripts/fuzz.py (import): output 't7': shape [0, 7], expected [7, 7]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOq4BCigKAnQyCgJzMwoCczQKAnM1CgJzNhICdDcaB1NsaWNlXzciBVNsaWNlEgZnZW41MzYqEggBEAdCAnMzSggCAAAAAAAAACoSCAEQB0ICczRKCPj/////////KhIIARAHQgJzNUoIAAAAAAAAAAAqEggBEAdCAnM2Sgj//////////1oUCgJ0MhIOCgwIARIICgIIAwoCCANiFAoCdDcSDgoMCAESCAoCCAMKAggDQgQKABAU"
INPUTS = "UEsDBC0AAAAAAAAAIQA253fw//////////8GABQAdDIubnB5AQAQAKQAAAAAAAAApAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMywgMyksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgChZT2z/QP5M+P/Mpvtlsr7/Iq/+/6ooqv0IrhL2/jvy+3Nr5v1BLAQItAy0AAAAAAAAAIQA253fwpAAAAKQAAAAGAAAAAAAAAAAAAACAAQAAAAB0Mi5ucHlQSwUGAAAAAAEAAQA0AAAA3AAAAAAA"


@pytest.mark.xfail(strict=True, reason="output 't7': shape [0, 7], expected [7, 7]")
def test_graph_58d35864beaf():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
