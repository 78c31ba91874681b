"""Regression found by scripts/fuzz.py (import): output 't21': shape [0, 5, 1, 3], expected [7, 5, 1, 3]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOr8BCikKA2luMgoCczMKAnM0CgJzNQoCczYSAnQ3GgdTbGljZV83IgVTbGljZRIFZ2VuOTgqEggBEAdCAnMzSggBAAAAAAAAACoSCAEQB0ICczRKCPn/////////KhIIARAHQgJzNUoIAAAAAAAAAAAqEggBEAdCAnM2Sgj//////////1odCgNpbjISFgoUCAESEAoCCAIKAggDCgIIAwoCCANiHAoCdDcSFgoUCAESEAoCCAIKAggDCgIIAwoCCANCBAoAEBI="
INPUTS = "UEsDBC0AAAAAAAAAIQAQLbD///////////8HABQAaW4yLm5weQEAEABYAQAAAAAAAFgBAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMsIDMsIDMpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAqrCNu/0OFVv1mV078Tshm/fZxhv1WL6L/RkFa/CsPYvuywsL8b+fO/dBiCv0Nv0r64iZ6+NavcPzJtKj8yLIg+HNRkvyFu8r9C7mO/cxhivz+Exb7X+ug/w/K+P7Emn74RaVy/20TGP2C1LL+fgMo/toruv3a5Gz7BDyW9EIG1v5A66r8diy+/g7XUv28Wv7+iTug/tO6tPj04mD7npLq+Un/TP9ihcr+E0YQ+8Mvav6PtKD782FI/OyThv0+/gL/opd0/DOKoP6zRrT4EW0O+71jhv7P0tr9QSwECLQMtAAAAAAAAACEAEC2w/1gBAABYAQAABwAAAAAAAAAAAAAAgAEAAAAAaW4yLm5weVBLBQYAAAAAAQABADUAAACRAQAAAAA="


@pytest.mark.xfail(strict=True, reason="output 't21': shape [0, 5, 1, 3], expected [7, 5, 1, 3]")
def test_graph_d36526ca6fce():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
