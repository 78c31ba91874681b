"""``make gpu-calibrate``'s microbenchmarks: one latency-model constant each (``analysis/measured.py``).

Each benchmark launches small CUDA kernels (the prelude's ``TL_LD4``/``TL_ST4``, so the same text runs on the
emulator) through a runtime ``Device``: CuPy on a GPU, timed with CUDA events, or the emulator for the dry run,
whose numbers only prove the path works. A benchmark returns ``{constant: value}``:

- ``dram_bytes_per_s``: a float4 copy of 4x the L2 size (read + write bytes / time);
- ``l2_bytes_per_clk``: passes over a buffer of a quarter of the L2 (bytes read / time / clock);
- ``fp32_flops``: 8 independent FFMA chains per thread over a full grid;
- ``sfu_per_clk_per_sm``: ``__expf`` chains (results / time / clock / SMs);
- ``launch_overhead_us``: back-to-back empty launches (time / launches);
- ``barrier_cycles``: ``__syncthreads`` in a loop, one block per SM (time / barriers x clock).

``python -m tilec.bench.calibrate SPEC_JSON OUT_JSON`` runs one in a child process (``scripts/gpu_calibrate.py``
runs each with a timeout, so a hang costs one constant).
"""
from __future__ import annotations

import json
import sys
import time

import numpy as np

KERNELS = r"""
extern "C" __global__ void cal_copy(const float* __restrict__ x, float* __restrict__ y, long long n4) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride)
    TL_ST4(y, 4 * i, TL_LD4(x, 4 * i));
}
extern "C" __global__ void cal_read(const float* __restrict__ x, float* __restrict__ out, long long n4, int passes) {
  const long long stride = (long long)gridDim.x * blockDim.x;
  float s = 0.f;
  for (int p = 0; p < passes; ++p)
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < n4; i += stride) {
      float4 v = TL_LD4(x, 4 * i);
      s += v.x + v.y + v.z + v.w;
    }
  TL_ST(out, blockIdx.x * blockDim.x + threadIdx.x, s);
}
extern "C" __global__ void cal_ffma(float* __restrict__ out, int iters, float b, float c) {
  float a0 = threadIdx.x, a1 = a0 + 1, a2 = a0 + 2, a3 = a0 + 3, a4 = a0 + 4, a5 = a0 + 5, a6 = a0 + 6, a7 = a0 + 7;
  for (int i = 0; i < iters; ++i) {
    a0 = a0 * b + c; a1 = a1 * b + c; a2 = a2 * b + c; a3 = a3 * b + c;
    a4 = a4 * b + c; a5 = a5 * b + c; a6 = a6 * b + c; a7 = a7 * b + c;
  }
  TL_ST(out, blockIdx.x * blockDim.x + threadIdx.x, a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7);
}
extern "C" __global__ void cal_sfu(float* __restrict__ out, int iters) {
  float a0 = threadIdx.x * 1e-3f, a1 = a0 + 0.1f, a2 = a0 + 0.2f, a3 = a0 + 0.3f;
  for (int i = 0; i < iters; ++i) {
    a0 = __expf(-a0); a1 = __expf(-a1); a2 = __expf(-a2); a3 = __expf(-a3);
  }
  TL_ST(out, blockIdx.x * blockDim.x + threadIdx.x, a0 + a1 + a2 + a3);
}
extern "C" __global__ void cal_empty(float* __restrict__ out) {}
extern "C" __global__ void cal_barrier(float* __restrict__ out, int iters) {
  __shared__ float s[1024];
  float v = 0.f;
  for (int i = 0; i < iters; ++i) {
    s[threadIdx.x] = v + i;
    __syncthreads();
    v += s[(threadIdx.x + 1) % blockDim.x];
    __syncthreads();
  }
  TL_ST(out, blockIdx.x * blockDim.x + threadIdx.x, v);
}
"""
BENCHMARKS = ("dram_bytes_per_s", "l2_bytes_per_clk", "fp32_flops", "sfu_per_clk_per_sm", "launch_overhead_us",
              "barrier_cycles")


def make_device(dry_run: bool):
    if dry_run:
        from ..runtime.emu_device import EmuDevice
        return EmuDevice(l2_model=False)
    from ..runtime.cupy_device import CupyDevice
    return CupyDevice()


class Bench:
    """One device, the calibration kernels loaded on it, and the arch spec's sizes (scaled down in a dry run)."""

    def __init__(self, device, spec, dry_run: bool):
        from ..backend.cstyle import prelude_text
        self.dev, self.spec, self.dry = device, spec, dry_run
        source = prelude_text() + KERNELS
        self.k = {n: device.load(n, source) for n in ("cal_copy", "cal_read", "cal_ffma", "cal_sfu", "cal_empty",
                                                     "cal_barrier")}
        self.reps = 1 if dry_run else 20
        self.threads = 256
        self.blocks = 2 if dry_run else spec.num_sms * 8

    def buffer(self, floats: int):
        raw = self.dev.alloc(floats * 4)
        self.dev.write(raw, 0, np.ones(floats, np.float32))
        return self.dev.typed(raw, 0, "f32", (floats,))

    def timed(self, name, grid, block, args) -> float:
        """Seconds per launch, over ``reps`` launches after one warm-up (scalars typed as the kernel declares
        them: CuPy passes numpy scalars as they are)."""
        self.dev.launch(self.k[name], name, grid, block, 0, args)
        self.dev.synchronize()
        t = self.dev.start_timer()
        for _ in range(self.reps):
            self.dev.launch(self.k[name], name, grid, block, 0, args)
        return self.dev.stop_timer(t) / self.reps

    def run(self, constant: str) -> dict:
        s, clock = self.spec, self.spec.clock_ghz * 1e9
        out = self.buffer(self.blocks * max(self.threads, 1024))
        grid, block = (self.blocks, 1, 1), (self.threads, 1, 1)
        if constant == "dram_bytes_per_s":
            n = 4096 if self.dry else 4 * s.l2_bytes // 4
            x, y = self.buffer(n), self.buffer(n)
            return {constant: 2 * n * 4 / self.timed("cal_copy", grid, block, [x, y, np.int64(n // 4)])}
        if constant == "l2_bytes_per_clk":
            n, passes = (4096, 2) if self.dry else (s.l2_bytes // 4 // 4, 20)
            x = self.buffer(n)
            secs = self.timed("cal_read", grid, block, [x, out, np.int64(n // 4), np.int32(passes)])
            return {constant: n * 4 * passes / secs / clock}
        if constant == "fp32_flops":
            iters = 16 if self.dry else 4096
            secs = self.timed("cal_ffma", grid, block, [out, np.int32(iters), np.float32(0.999), np.float32(0.001)])
            return {constant: self.blocks * self.threads * iters * 8 * 2 / secs}
        if constant == "sfu_per_clk_per_sm":
            iters = 16 if self.dry else 2048
            secs = self.timed("cal_sfu", grid, block, [out, np.int32(iters)])
            return {constant: self.blocks * self.threads * iters * 4 / secs / clock / s.num_sms}
        if constant == "launch_overhead_us":
            return {constant: self.timed("cal_empty", (1, 1, 1), (32, 1, 1), [out]) * 1e6}
        if constant == "barrier_cycles":
            iters = 8 if self.dry else 4096
            blocks = 1 if self.dry else s.num_sms
            secs = self.timed("cal_barrier", (blocks, 1, 1), (1024, 1, 1), [out, np.int32(iters)])
            return {constant: max(1, round(secs / (2 * iters) * clock))}
        raise ValueError(f"unknown calibration benchmark {constant!r} (known: {', '.join(BENCHMARKS)})")


def run_one(spec_json: dict) -> dict:
    """Measure ``spec_json["constant"]`` on ``spec_json["arch"]``'s device (``dry_run``: the emulator)."""
    from ..analysis.hardware import get_arch
    dry = bool(spec_json.get("dry_run"))
    t0 = time.perf_counter()
    bench = Bench(make_device(dry), get_arch(spec_json["arch"]), dry)
    values = bench.run(spec_json["constant"])
    return {"constant": spec_json["constant"], "values": values, "seconds": round(time.perf_counter() - t0, 3)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec_json, out = json.loads(argv[0]), argv[1]
    result = run_one(spec_json)
    with open(out, "w") as f:
        json.dump(result, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
