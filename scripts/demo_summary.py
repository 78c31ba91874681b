"""Print what `make demo` did: the stages dumped, the kernels, and emulator vs numpy agreement."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np


def main(demo: str) -> int:
    d = Path(demo)
    dumps = sorted(p.name for p in (d / "dumps").glob("*.tir"))
    report = json.loads((d / "tl" / "report.json").read_text())["totals"]
    run = json.loads((d / "run.json").read_text())["totals"]
    emu, ref = np.load(d / "emu.npz"), np.load(d / "ref.npz")
    err = max(float(np.abs(emu[k] - ref[k]).max()) for k in ref.files)
    print("stages dumped:   ", ", ".join(dumps))
    print(f"kernels:          {report['kernels']} (ptxas sm_90: max {report.get('max_registers', '?')} registers, "
          f"{report.get('spill_bytes', '?')} spill bytes)")
    print(f"emulated launches {run['launches']}, global bytes {run['global_bytes']} "
          f"(lower bound {report['lower_bound_bytes']})")
    print(f"max |emu - numpy| = {err:.3g}")
    return 0 if err < 1e-3 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
