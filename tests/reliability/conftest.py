"""``slow`` tests (make-fuzz-sized sweeps) run only when asked for with ``-m slow``."""
import pytest


def pytest_collection_modifyitems(config, items):
    if "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="a make-fuzz-sized sweep: run with -m slow (or make fuzz)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
