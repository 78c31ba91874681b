"""Regression found by scripts/fuzz.py (emu): weight '__const__.const0' has shape [1], expected []

A shrunk random graph (1 nodes: Sub). The bug is fixed; this now guards the fix (the xfail mark was
dropped when it started passing).
"""
import base64
import io

import numpy as np
import onnx
import pytest

from tilec.testing.differential import check_graph, failing

MODEL = "CAkSDnRpbGVjLmdyYXBoZ2VuOlcKGwoDaW4xCgJjORIDdDEwGgZTdWJfMTAiA1N1YhIEZ2VuMSoMEAFCAmM5SgQo0gU/WhEKA2luMRIKCggIARIECgIIAWIRCgN0MTASCgoICAESBAoCCAFCBAoAEBE="
INPUTS = "UEsDBC0AAAAAAAAAIQBu08kE//////////8HABQAaW4xLm5weQEAEACEAAAAAAAAAIQAAAAAAAAAk05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDEsKSwgfSAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAp9r0E9UEsBAi0DLQAAAAAAAAAhAG7TyQSEAAAAhAAAAAcAAAAAAAAAAAAAAIABAAAAAGluMS5ucHlQSwUGAAAAAAEAAQA1AAAAvQAAAAAA"


def test_graph_6bc0051357bb():
    model = onnx.load_from_string(base64.b64decode(MODEL))
    with np.load(io.BytesIO(base64.b64decode(INPUTS))) as f:
        inputs = {k: f[k] for k in f.files}
    outcomes = check_graph(model, inputs, stages=('emu',))
    assert not failing(outcomes), outcomes
