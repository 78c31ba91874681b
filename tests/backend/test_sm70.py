"""V100 (sm_70) without CUDA 12's nvcc: CUDA 13 dropped Volta, so `--arch v100 --check-ptx --check-nvrtc`
goes through CUDA 12's NVRTC (the `sm70` extra, part of `test`): its built-in ptxas reports registers, shared
memory and spills for every kernel, and the cubins are real sm_70 code."""
from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from tilec.cli.main import cli

ROOT = Path(__file__).resolve().parents[2]
EM_CUDA = 190   # ELF e_machine of a cubin


def _cubin_sm(path: Path) -> int:
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and int.from_bytes(data[18:20], "little") == EM_CUDA, path
    flags = int.from_bytes(data[48:52], "little")   # e_flags of a 64-bit ELF
    # The sm is e_flags' low byte up to CUDA 12 (ELF ABI version 7), its second byte from CUDA 13 (version 8):
    # 0x460546 -> 70 (NVRTC 12.9), 0x6005a04 -> 90 (nvcc 13).
    return (flags >> 8) & 0xff if data[8] >= 8 else flags & 0xff


def test_v100_build_is_checked_for_sm_70(tmp_path):
    out = tmp_path / "b"
    r = CliRunner().invoke(cli, ["compile", str(ROOT / "samples" / "mlp.onnx"), "-o", str(out), "--arch", "v100",
                                 "--check-ptx", "--check-nvrtc", "--quiet"])
    assert r.exit_code == 0, r.output
    report = json.loads((out / "report.json").read_text())
    assert report["nvrtc"]["sm_arch"] == "sm_70" and report["nvrtc"]["version"].startswith("12.")
    assert report["ptxas_checked"] and report["totals"]["spill_bytes"] == 0
    kernels = [k for k in report["kernels"] if k.get("ptxas")]
    assert kernels and all(k["ptxas"]["registers"] > 0 for k in kernels)
    for k in kernels:
        assert _cubin_sm(out / "kernels" / f"{k['name']}.cubin") == 70
