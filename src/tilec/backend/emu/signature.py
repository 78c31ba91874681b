"""Kernel signatures in a ``.cu`` text, and the C++ the runner appends so ctypes can call the kernels.

The source itself is compiled unchanged; after it come one ``tl_emu_tramp_<kernel>(void** args)`` per
``extern "C" __global__`` kernel (each ``args[i]`` points at the i-th argument's value), the definitions
of the dynamic shared arrays (``extern __shared__ T name[]``), which the emulator keeps thread-local, and
the module's ``tl_emu_launch``, which hands the runtime library this module's hooks.

A kernel declared with ``__cluster_dims__(X, 1, 1)`` (sm_90 thread-block clusters; the emulator header
expands the attribute to nothing) runs in clusters of X blocks: ``kernel_clusters`` reads X from the
source and ``EmuModule.launch`` passes it to the runtime.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from .errors import EmuError

_KERNEL = re.compile(
    r'extern\s+"C"\s+(?P<quals>(?:(?:__global__|void|(?:__launch_bounds__|__cluster_dims__)\s*\([^()]*\))\s*)+)'
    r"(?P<name>[A-Za-z_]\w*)\s*\((?P<params>[^()]*)\)\s*\{")
_DYN_SHARED = re.compile(r"extern\s+__shared__\s+(?P<type>[^;\[\]]*?)\s*\b(?P<name>[A-Za-z_]\w*)\s*\[\s*\]\s*;")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)
_RESTRICT = re.compile(r"\b(?:__restrict__|__restrict|restrict)\b")
_ALIGN = re.compile(r"__align__\s*\(\s*\d+\s*\)")

# Scalar parameter types (by value) and the numpy dtype an argument is converted to.
SCALARS = {
    "int": np.int32, "signed int": np.int32, "int32_t": np.int32, "unsigned": np.uint32,
    "unsigned int": np.uint32, "uint32_t": np.uint32, "long long": np.int64, "long long int": np.int64,
    "int64_t": np.int64, "long": np.int64, "unsigned long long": np.uint64, "uint64_t": np.uint64,
    "size_t": np.uint64, "unsigned long": np.uint64, "float": np.float32, "double": np.float64,
    "bool": np.bool_, "short": np.int16, "unsigned short": np.uint16, "char": np.int8,
    "signed char": np.int8, "unsigned char": np.uint8,
}
# Structs passed by value, with their sizes: the sm_90 tensor map (a `const __grid_constant__ TlTensorMap`
# parameter; emu_tma.h), whose argument is its bytes (tilec.runtime.tensor_map.TensorMapSpec.emu_bytes).
STRUCTS = {"TlTensorMap": 128}
# Element sizes of pointer parameters, to catch an array of the wrong dtype.
ELEMENT_SIZES = {**{k: np.dtype(v).itemsize for k, v in SCALARS.items()},
                 "__half": 2, "half": 2, "__nv_bfloat16": 2, "nv_bfloat16": 2, "int8_t": 1, "uint8_t": 1,
                 "int16_t": 2, "uint16_t": 2, "float4": 16, "int4": 16, "float2": 8, "int2": 8}


@dataclass(frozen=True)
class Param:
    """One kernel parameter: its C type (``__restrict__`` dropped), name, and whether it is a pointer."""

    ctype: str
    name: str
    pointer: bool

    @property
    def base(self) -> str:
        """The type without pointers and cv-qualifiers: ``const float*`` → ``float``."""
        return " ".join(t for t in self.ctype.replace("*", " ").split()
                        if t not in ("const", "volatile", "__grid_constant__"))

    @property
    def writable(self) -> bool:
        """Whether the kernel may write through this pointer (no ``const`` before the ``*``)."""
        return self.pointer and "const" not in self.ctype.split("*")[0].split()


def _param(text: str, kernel: str) -> Param:
    text = " ".join(_RESTRICT.sub(" ", text).split())
    m = re.fullmatch(r"(?P<type>.*?[\s*&])(?P<name>[A-Za-z_]\w*)", text)
    if not m or not m.group("type").strip():
        raise EmuError(f"kernel {kernel}: cannot parse parameter '{text}'")
    ctype = m.group("type").strip()
    if "&" in ctype or "[" in ctype:
        raise EmuError(f"kernel {kernel}: parameter '{text}' is neither a pointer nor a scalar")
    param = Param(ctype, m.group("name"), "*" in ctype)
    if not param.pointer and param.base not in SCALARS and param.base not in STRUCTS:
        raise EmuError(f"kernel {kernel}: unsupported scalar parameter type '{ctype}'")
    return param


def strip_comments(source: str) -> str:
    """``source`` with its comments blanked (what the kernel and shared-array patterns match against)."""
    return _COMMENT.sub(" ", source)


def parse_kernels(source: str) -> dict:
    """``{name: [Param, ...]}`` for every ``extern "C" __global__`` kernel defined in ``source``, in order."""
    text = _COMMENT.sub(" ", source)
    kernels: dict = {}
    for m in _KERNEL.finditer(text):
        quals = m.group("quals")
        if "__global__" not in quals or not re.search(r"\bvoid\b", quals):
            continue
        name, params = m.group("name"), m.group("params").strip()
        if name in kernels:
            raise EmuError(f"kernel {name} is defined twice")
        plist = [] if params in ("", "void") else [_param(p, name) for p in params.split(",")]
        kernels[name] = plist
    return kernels


_CLUSTER = re.compile(r"__cluster_dims__\s*\((?P<dims>[^()]*)\)")


def max_cluster() -> int:
    """The largest cluster any known GPU runs (the arch specs' ``max_cluster_blocks``: 8 on sm_90)."""
    from ...analysis.hardware import available_archs, get_arch
    return max(get_arch(a).max_cluster_blocks for a in available_archs())


def kernel_clusters(source: str) -> dict:
    """``{name: X}`` for every kernel of ``source`` (X = 1 without ``__cluster_dims__``). Only 1-D clusters
    along x of up to :func:`max_cluster` blocks are supported; anything else is an EmuError."""
    clusters: dict = {}
    for m in _KERNEL.finditer(_COMMENT.sub(" ", source)):
        quals, name = m.group("quals"), m.group("name")
        if "__global__" not in quals or not re.search(r"\bvoid\b", quals):
            continue
        found = _CLUSTER.findall(quals)
        x = 1
        if found:
            dims = [d.strip() for d in found[-1].split(",")]
            if (len(found) > 1 or not 1 <= len(dims) <= 3 or not all(re.fullmatch(r"\d+[uU]?", d) for d in dims)):
                raise EmuError(f"kernel {name}: cannot read __cluster_dims__({found[-1].strip()}) (the emulator "
                               "needs literal sizes)")
            dims = [int(d.rstrip("uU")) for d in dims] + [1] * (3 - len(dims))
            if dims[1:] != [1, 1] or not 1 <= dims[0] <= max_cluster():
                raise EmuError(f"kernel {name}: __cluster_dims__({', '.join(map(str, dims))}) is not supported: "
                               f"clusters are 1 to {max_cluster()} blocks along x")
            x = dims[0]
        clusters[name] = x
    return clusters


def dynamic_shared(source: str) -> dict:
    """``{name: element type}`` of the ``extern __shared__ T name[]`` declarations in ``source``."""
    found: dict = {}
    for m in _DYN_SHARED.finditer(_COMMENT.sub(" ", source)):
        ctype = " ".join(_ALIGN.sub(" ", m.group("type")).split())
        if found.setdefault(m.group("name"), ctype) != ctype:
            raise EmuError(f"dynamic shared array '{m.group('name')}' is declared with two types")
    return found


def appendix(kernels: dict, dyn: dict) -> str:
    """The C++ appended to the source: dynamic shared storage, the module's hooks for the runtime library
    (``tl_emu::Module``), its ``tl_emu_launch`` entry point, and one trampoline per kernel."""
    out = ["", "// ---- appended by tilec.backend.emu ----"]
    for name, ctype in dyn.items():
        out.append(f"thread_local __attribute__((aligned(16))) {ctype} {name}[tl_emu::kSmemCap / sizeof({ctype})];")
    out.append("static void tl_emu_bind(tl_emu::Worker* w) { tl_emu::tl_w = w; }")
    out.append("static void* tl_emu_dyn_address(int i) {")
    for i, name in enumerate(dyn):
        out.append(f"  if (i == {i}) return (void*){name};")
    out.append("  return nullptr;\n}")
    out.append(f"static const tl_emu::Module tl_emu_module = {{tl_emu_bind, tl_emu_dyn_address, {len(dyn)}, "
               "&tl_emu::g_shared_total};")
    out.append(_LAUNCH)
    for name, params in kernels.items():
        args = ", ".join(f"*({p.ctype}*)a[{i}]" for i, p in enumerate(params))
        out.append(f'extern "C" __attribute__((visibility("default"))) void tl_emu_tramp_{name}(void** a) '
                   f"{{ (void)a; {name}({args}); }}")
    return "\n".join(out) + "\n"


# The module's entry point: the runtime library's launch, told which module it runs.
_LAUNCH = """extern "C" __attribute__((visibility("default"))) int tl_emu_launch(
    void (*tramp)(void**), void** args, const char* name, const unsigned* grid, const unsigned* block,
    unsigned long long smem, int order, unsigned long long seed, int check, int nranges,
    const unsigned long long* ranges, int concurrent, int cluster, int nworkers, unsigned long long* bytes_out,
    char* err, int errlen) {
  return tl_emu_rt_launch(&tl_emu_module, tramp, args, name, grid, block, smem, order, seed, check, nranges,
                          ranges, concurrent, cluster, nworkers, bytes_out, err, errlen);
}"""
