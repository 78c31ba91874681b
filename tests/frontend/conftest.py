"""Collects the node-test outcomes and prints the per-op pass table at the end of the session."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

_RESULTS: dict = {}


def pytest_runtest_logreport(report):
    props = dict(report.user_properties)
    if "node_case" not in props:
        return
    key = (props["node_case"], props["node_stage"])
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _RESULTS[key] = report.outcome


def pytest_terminal_summary(terminalreporter):
    if not _RESULTS:
        return
    import node_harness
    terminalreporter.section("ONNX node tests per op")
    terminalreporter.write(node_harness.op_table(_RESULTS))
