"""Regression found by scripts/fuzz.py (import): output 't9': shape [0, 7, 2], expected [3, 7, 2]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOrYBCigKAnQyCgJzNQoCczYKAnM3CgJzOBICdDkaB1NsaWNlXzkiBVNsaWNlEgZnZW4zOTYqEggBEAdCAnM1SggCAAAAAAAAACoSCAEQB0ICczZKCPj/////////KhIIARAHQgJzN0oIAAAAAAAAAAAqEggBEAdCAnM4Sgj//////////1oYCgJ0MhISChAIARIMCgIIAwoCCAcKAggCYhgKAnQ5EhIKEAgBEgwKAggDCgIIBwoCCAJCBAoAEBE="
INPUTS = "UEsDBC0AAAAAAAAAIQDtZFsG//////////8GABQAdDIubnB5AQAQACgBAAAAAAAAKAEAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMywgNywgMiksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgChZT2z/QP5M+P/Mpvtlsr7/Iq/+/6ooqv0IrhL2/jvy+3Nr5v0Zzh7/9dcw/Wcn/P5Xe1j8VXr0+brqSvmv0277sMl+/BW8zPzChBD/iGuE+rJMJP/131z/4Tf6/G/trv2zvk74gqqy/KsmRv7esmT/Od/0/hO0Sv9ZxPL5yHag/k5TVvxC9Fz9Ict6/gUa/vz4hbT/j6XG+Sshov+uyu78E3U+//0PqPlBLAQItAy0AAAAAAAAAIQDtZFsGKAEAACgBAAAGAAAAAAAAAAAAAACAAQAAAAB0Mi5ucHlQSwUGAAAAAAEAAQA0AAAAYAEAAAAA"


@pytest.mark.xfail(strict=True, reason="output 't9': shape [0, 7, 2], expected [3, 7, 2]")
def test_graph_485329421989():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
