"""Regression found by scripts/fuzz.py (import): output 't19': shape [1, 7, 2, 0], expected [1, 7, 2, 2]

A shrunk random graph (1 nodes: Slice). It is expected to fail until the bug is fixed; then drop the
xfail mark (strict: a fix makes this test fail until you do).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOssBCi8KA2luMgoDczEyCgNzMTMKA3MxNAoDczE1EgN0MTYaCFNsaWNlXzE2IgVTbGljZRIGZ2VuOTMzKhMIARAHQgNzMTJKCAEAAAAAAAAAKhMIARAHQgNzMTNKCPn/////////KhMIARAHQgNzMTRKCAMAAAAAAAAAKhMIARAHQgNzMTVKCP//////////Wh0KA2luMhIWChQIARIQCgIIAQoCCAcKAggCCgIIAmIdCgN0MTYSFgoUCAESEAoCCAEKAggHCgIIAgoCCAJCBAoAEBQ="
INPUTS = "UEsDBC0AAAAAAAAAIQCP2RlP//////////8HABQAaW4yLm5weQEAEADwAAAAAAAAAPAAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsIDcsIDIsIDIpLCB9ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIApW+cm/33HsvQsejL8sKbo//R8Kv4+zsr5SK1Q/QSyxvpp7dL9CDYg/3GMXvut1J79iaz6/TWK/v3V27D8+EGW/QuWNP/jY4r/jpxM/nQ27PwCG6b/sy1c/d037v6vAwL7Y0a29qOa+P0I9D77j0SU/UEsBAi0DLQAAAAAAAAAhAI/ZGU/wAAAA8AAAAAcAAAAAAAAAAAAAAIABAAAAAGluMi5ucHlQSwUGAAAAAAEAAQA1AAAAKQEAAAAA"


@pytest.mark.xfail(strict=True, reason="output 't19': shape [1, 7, 2, 0], expected [1, 7, 2, 2]")
def test_graph_c34e2e338fc7():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('import',))
    assert not failing(outcomes), outcomes
