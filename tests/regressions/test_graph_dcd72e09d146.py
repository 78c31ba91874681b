"""Regression found by scripts/fuzz.py (import): output 't10': shape [7, 0, 3], expected [7, 3, 3]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOrgBCioKAnQ1CgJzNgoCczcKAnM4CgJzORIDdDEwGghTbGljZV8xMCIFU2xpY2USBWdlbjY5KhIIARAHQgJzNkoIAQAAAAAAAAAqEggBEAdCAnM3Sgj5/////////yoSCAEQB0ICczhKCAEAAAAAAAAAKhIIARAHQgJzOUoI//////////9aGAoCdDUSEgoQCAESDAoCCAMKAggCCgIIAmIZCgN0MTASEgoQCAESDAoCCAMKAggCCgIIAkIECgAQFA=="
INPUTS = "UEsDBC0AAAAAAAAAIQB2BIQH//////////8GABQAdDUubnB5AQAQALAAAAAAAAAAsAAAAAAAAACTTlVNUFkBAHYAeydkZXNjcic6ICc8ZjQnLCAnZm9ydHJhbl9vcmRlcic6IEZhbHNlLCAnc2hhcGUnOiAoMywgMiwgMiksIH0gICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgCnxyCD6UAyw/KTohvrbo3D+2nr2/zw8cv8sEL79OYoQ9d6HgvmfLL74oNHK/OPEHP1BLAQItAy0AAAAAAAAAIQB2BIQHsAAAALAAAAAGAAAAAAAAAAAAAACAAQAAAAB0NS5ucHlQSwUGAAAAAAEAAQA0AAAA6AAAAAAA"


@pytest.mark.xfail(strict=True, reason="output 't10': shape [7, 0, 3], expected [7, 3, 3]")
def test_graph_dcd72e09d146():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
