"""lookup_symbol's cached table answers as the scan of the module body did: after inserts, removals and
renames (to a name not in use: two ops of one name are invalid IR), for names present, gone and never
there."""
from __future__ import annotations

import random

from tilec.ir.attributes import SymbolRef
from tilec.ir.core import Operation, lookup_symbol, new_module


def _scan(module, name):
    return next((op for op in module.body.ops if op.sym_name == name), None)


def _kernel(name: str) -> Operation:
    return Operation("kernel.func", attributes={"sym_name": SymbolRef(name)})


def test_lookups_follow_every_change_of_the_body():
    rng = random.Random(3)
    module = new_module(None)
    names = [f"k{i}" for i in range(12)]
    for _ in range(400):
        ops = module.body.ops
        what = rng.random()
        if what < 0.35 or not ops:
            module.body.insert(rng.randint(0, len(ops)), _kernel(rng.choice(names)))
        elif what < 0.55:
            module.body.remove(rng.choice(ops))
        elif what < 0.7:   # renamed in place (no insert or remove tells the table) to a name not in use:
            fresh = f"r{len(names)}"   # a name in use makes two symbols of one name, which the verifier rejects
            names.append(fresh)
            rng.choice(ops).attributes["sym_name"] = SymbolRef(fresh)
        for name in names + ["absent"]:
            assert lookup_symbol(module, name) is _scan(module, name), name


def test_the_table_is_built_once_per_change():
    module = new_module(None)
    for i in range(5):
        module.body.append(_kernel(f"k{i}"))
    assert lookup_symbol(module, "k3") is module.body.ops[3]
    table = module.body.symbols
    assert lookup_symbol(module, "k1") is module.body.ops[1] and module.body.symbols is table
    module.body.remove(module.body.ops[1])
    assert lookup_symbol(module, "k1") is None and module.body.symbols is not table
