"""The order an rProgram's fallback launches its members in (backend/fallback.data_order): after every
launch writing one of its inputs, otherwise the rOperators' own order."""
from __future__ import annotations

import pytest

from tilec.backend.fallback import data_order


def _names(entries):
    return [e[0] for e in data_order(entries, "persistent kernel @rammer0")]


def test_program_order_is_kept_when_it_follows_the_data():
    entries = [("a", ["x"], ["t"]), ("b", ["x"], ["u"]), ("c", ["t", "u"], ["y"])]
    assert _names(entries) == ["a", "b", "c"]


def test_a_reader_waits_for_every_writer_of_a_buffer():
    # Two members write halves of one buffer (a concat); its reader is listed first.
    entries = [("read", ["cat"], ["y"]), ("left", ["x"], ["cat"]), ("right", ["x"], ["cat"])]
    assert _names(entries) == ["left", "right", "read"]


def test_updating_a_buffer_in_place_is_not_a_self_dependence():
    entries = [("init", ["x"], ["acc"]), ("add", ["acc", "x"], ["acc"]), ("out", ["acc"], ["y"])]
    assert _names(entries) == ["init", "add", "out"]


def test_a_cycle_is_an_internal_error():
    with pytest.raises(RuntimeError, match="@rammer0: its rOperators' data dependences form a cycle"):
        _names([("a", ["u"], ["t"]), ("b", ["t"], ["u"])])
