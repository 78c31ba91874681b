"""SASS as data: parse ``cuobjdump -sass`` (or ``nvdisasm``) text into instructions, classify them, find a
kernel's main loop, and count its instruction mix and FLOPs.

**Parsing.** Both tools print one instruction per line as ``/*0a30*/  @!P0 BRA 0x17d0 ;``. cuobjdump writes
branch targets as addresses and each function under ``Function : NAME``; nvdisasm writes them as labels
(``BRA `(.L_x_3)``) defined on lines of their own (``.L_x_3:``) and each function under
``.text.NAME:``. The hexadecimal encodings cuobjdump adds in ``/* 0x... */`` comments are ignored.

**The main loop.** A branch to an earlier address closes a loop ``[target, branch]`` (what compilers emit
for every ``for``/``while``; an unconditional ``BRA`` to itself after ``EXIT`` is padding, not a loop). The
main loop is the loop whose body does the most FLOPs (tensor-core instructions by their shape, FFMA, ...);
among loops doing as many, the one with the most memory instructions, then the smallest (the innermost).
Its counts are static: each instruction of the range counted once, so an inner loop (e.g. a staging loop
inside the k loop) counts one trip. A kernel whose arithmetic is all outside loops (a k loop unrolled away,
loops left only for staging) has no main loop, nor has one without loops; a kernel with no arithmetic at
all (a copy, a gather) has as main loop its loop with the most memory instructions.

**FLOPs per warp instruction.** ``HMMA.MNK`` = M·N·K·2 (HMMA.16816 = 4096, HMMA.1688 = 2048); ``HGMMA.64xNxK``
is one instruction of each of a warpgroup's 4 warps computing a 64×N×K product together, so 64·N·K·2 / 4 per
warp (HGMMA.64x256x16 = 131,072); ``IMMA.MNK`` as HMMA (integer ops); FFMA = 32 lanes × 2 = 64; FADD, FMUL = 32;
HFMA2 = 128, HADD2/HMUL2 = 64. ``HFMA2.MMA Rd, -RZ, RZ, ...`` is ptxas' idiom for a move, and an instruction
predicated ``@!PT`` never executes (a scheduling pad): both count as other, without FLOPs.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

_ADDR_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
_FUNCTION = re.compile(r"^\s*Function\s*:\s*(\S+)")
_NVDISASM_FUNCTION = re.compile(r"^\s*\.text\.(\S+):")
_LABEL = re.compile(r"^\s*(\.L_[\w.]+):")
_TARGET = re.compile(r"(?:`\((\.L_[\w.]+)\)|\b0x([0-9a-f]+)\b)")

# Tensor-core shapes whose digits run together in the opcode (HMMA.16816: M, N, K = 16, 8, 16).
MMA_SHAPES = {"16816": (16, 8, 16), "1688": (16, 8, 8), "1684": (16, 8, 4), "884": (8, 8, 4),
              "16832": (16, 8, 32), "8816": (8, 8, 16), "8832": (8, 8, 32), "16864": (16, 8, 64)}
_HGMMA_SHAPE = re.compile(r"^(\d+)x(\d+)x(\d+)$")
WARPGROUP_WARPS = 4
SIMT_FLOPS = {"FFMA": 64, "FADD": 32, "FMUL": 32, "HFMA2": 128, "HADD2": 64, "HMUL2": 64}
BARRIERS = {"BAR", "DEPBAR", "LDGDEPBAR", "MEMBAR", "SYNCS", "WARPSYNC", "ARRIVES", "WARPGROUP", "ERRBAR",
            "CCTL", "FENCE"}
# Memory classes with a width (bits per thread), by opcode.
MEMORY = {"LDG": "ld_global", "LDS": "ld_shared", "LDSM": "ldsm", "LDGSTS": "cp_async", "LDL": "local",
          "LD": "ld_generic", "STG": "st_global", "STS": "st_shared", "STL": "local", "ST": "st_generic",
          "UTMALDG": "tma", "UBLKCP": "tma", "UTMASTG": "tma", "ATOMG": "atomic", "RED": "atomic",
          "ATOMS": "atomic", "ATOM": "atomic", "REDG": "atomic"}
_WIDTHS = {"128": 128, "64": 64, "32": 32, "U16": 16, "S16": 16, "16": 16, "U8": 8, "S8": 8, "8": 8}
CLASSES = ("tensor", "fp32", "half2", "ld_global", "ld_shared", "ldsm", "cp_async", "tma", "ld_generic",
           "st_global", "st_shared", "st_generic", "local", "atomic", "barrier", "sfu", "branch", "other")


@dataclass(frozen=True)
class Instruction:
    """One SASS instruction: ``addr`` (bytes), predicate (``@!P0`` or ""), opcode and its dot-modifiers,
    operands as written, and the branch target's address (``None`` where it is not a branch)."""

    addr: int
    predicate: str
    opcode: str
    modifiers: tuple
    operands: str
    target: int | None = None

    @property
    def mnemonic(self) -> str:
        return ".".join((self.opcode, *self.modifiers))


def _split(addr: int, text: str) -> tuple:
    pred = ""
    if text.startswith("@"):
        pred, _, text = text.partition(" ")
    head, _, operands = text.strip().partition(" ")
    opcode, *mods = head.split(".")
    return Instruction(addr, pred, opcode, tuple(mods), operands.strip()), operands


def parse_sass(text: str) -> dict:
    """``{function name: [Instruction, ...]}`` in address order, from cuobjdump's or nvdisasm's text."""
    functions: dict = {}
    labels: dict = {}
    pending_labels: list = []
    current = name = None
    for line in text.splitlines():
        m = _FUNCTION.match(line) or _NVDISASM_FUNCTION.match(line)
        if m:
            name = m.group(1)
            current = functions.setdefault(name, [])
            labels.setdefault(name, {})
            pending_labels = []
            continue
        m = _LABEL.match(line)
        if m and current is not None:
            pending_labels.append(m.group(1))
            continue
        m = _ADDR_LINE.match(line)
        if not m or current is None:
            continue
        ins, operands = _split(int(m.group(1), 16), m.group(2))
        for label in pending_labels:
            labels[name][label] = ins.addr
        pending_labels = []
        current.append((ins, operands))
    out = {}
    for name, rows in functions.items():
        out[name] = [_with_target(ins, ops, labels[name]) for ins, ops in rows]
    return out


def _with_target(ins: Instruction, operands: str, labels: dict) -> Instruction:
    if ins.opcode != "BRA":
        return ins
    m = _TARGET.search(operands)
    if not m:
        return ins
    target = labels.get(m.group(1)) if m.group(1) else int(m.group(2), 16)
    return Instruction(ins.addr, ins.predicate, ins.opcode, ins.modifiers, ins.operands, target)


def is_nop(ins: Instruction) -> bool:
    """An instruction that issues but does nothing: ``@!PT`` (never true), ``NOP``, or HFMA2.MMA of zeros
    used as a move (counted as other, never as math)."""
    return ins.predicate == "@!PT" or ins.opcode == "NOP"


def _is_move(ins: Instruction) -> bool:
    return ins.opcode == "HFMA2" and "MMA" in ins.modifiers and ", -RZ, RZ," in f" {ins.operands}"


def width_bits(ins: Instruction) -> int | None:
    """Bits moved per thread by a load/store (LDG.E.128 = 128, LDG.E = 32, LDSM.16.M88.4 = 4 × 32); None for
    other instructions and for TMA (a whole tile per instruction)."""
    if ins.opcode not in MEMORY or MEMORY[ins.opcode] in ("tma", "atomic"):
        return None
    if ins.opcode == "LDSM":
        return 32 * int(ins.modifiers[-1]) if ins.modifiers and ins.modifiers[-1].isdigit() else 32
    for mod in ins.modifiers:
        if mod in _WIDTHS:
            return _WIDTHS[mod]
    return 32


def classify(ins: Instruction) -> str:
    """The instruction's class (one of CLASSES)."""
    op = ins.opcode
    if is_nop(ins) or _is_move(ins):
        return "other"
    if op in ("HMMA", "HGMMA", "IMMA", "BMMA", "QGMMA", "IGMMA"):
        return "tensor"
    if op in ("FFMA", "FADD", "FMUL"):
        return "fp32"
    if op in ("HFMA2", "HADD2", "HMUL2"):
        return "half2"
    if op in MEMORY:
        return MEMORY[op]
    if op in BARRIERS:
        return "barrier"
    if op == "MUFU":
        return "sfu"
    if op in ("BRA", "BRX", "JMP", "EXIT", "RET", "CALL", "BSSY", "BSYNC"):
        return "branch"
    return "other"


def tensor_dtype(ins: Instruction) -> str:
    """The input type of a tensor-core instruction: f16, bf16, tf32, int8 (IMMA), fp8 (QGMMA)."""
    mods = set(ins.modifiers)
    if ins.opcode in ("IMMA", "IGMMA"):
        return "int8"
    if ins.opcode == "QGMMA" or mods & {"E4M3", "E5M2"}:
        return "fp8"
    if "BF16" in mods:
        return "bf16"
    if "TF32" in mods:
        return "tf32"
    return "f16"


def flops(ins: Instruction) -> tuple:
    """``(unit, FLOPs per warp instruction)``; unit is ``"<dtype>_tensor"``, ``"fp32"``, ``"half2"`` or
    None (no arithmetic, or a tensor shape this table does not know: FLOPs 0)."""
    cls = classify(ins)
    if cls == "tensor":
        shape = ins.modifiers[0] if ins.modifiers else ""
        unit = tensor_dtype(ins) + "_tensor"
        m = _HGMMA_SHAPE.match(shape)
        if m:
            mm, nn, kk = map(int, m.groups())
            return unit, mm * nn * kk * 2 // WARPGROUP_WARPS
        if shape in MMA_SHAPES:
            mm, nn, kk = MMA_SHAPES[shape]
            return unit, mm * nn * kk * 2
        return None, 0
    if cls in ("fp32", "half2"):
        return cls, SIMT_FLOPS[ins.opcode]
    return None, 0


@dataclass(frozen=True)
class Loop:
    """A backward branch's range: instructions at addresses ``start``..``end`` (the branch), inclusive."""

    start: int
    end: int

    def contains(self, ins: Instruction) -> bool:
        return self.start <= ins.addr <= self.end


def loops(instrs: list) -> list:
    """Every backward branch's ``Loop``, in address order (a ``BRA`` to itself is padding after EXIT). A
    backward branch over an unpredicated EXIT is no loop: it returns from a block ptxas placed after the
    kernel's end (the retry of an mbarrier try_wait in sm_90 kernels: ``TRYWAIT; @!P BRA self; BRA back``)."""
    exits = [i.addr for i in instrs if i.opcode == "EXIT" and not i.predicate]
    found = {Loop(i.target, i.addr) for i in instrs
             if i.opcode == "BRA" and i.target is not None and i.target < i.addr
             and not any(i.target < e < i.addr for e in exits)}
    return sorted(found, key=lambda lp: (lp.start, lp.end))


@dataclass
class Mix:
    """What a range of instructions holds: counts per class, per memory instruction and width
    (``"LDG.128"``), per tensor-core mnemonic, and FLOPs per unit."""

    instructions: int = 0
    classes: Counter = field(default_factory=Counter)
    memory: Counter = field(default_factory=Counter)
    tensor: Counter = field(default_factory=Counter)
    flops: Counter = field(default_factory=Counter)

    @property
    def total_flops(self) -> int:
        return sum(self.flops.values())

    @property
    def tensor_flops(self) -> int:
        return sum(v for u, v in self.flops.items() if u.endswith("_tensor"))

    @property
    def memory_ops(self) -> int:
        return sum(self.memory.values())

    def to_json(self) -> dict:
        return {"instructions": self.instructions, "classes": dict(sorted(self.classes.items())),
                "memory": dict(sorted(self.memory.items())), "tensor": dict(sorted(self.tensor.items())),
                "flops": dict(sorted(self.flops.items()))}


def mix(instrs) -> Mix:
    """The :class:`Mix` of ``instrs``."""
    out = Mix()
    for ins in instrs:
        out.instructions += 1
        cls = classify(ins)
        out.classes[cls] += 1
        width = width_bits(ins)
        if cls in MEMORY.values():
            out.memory[ins.opcode if width is None else f"{ins.opcode}.{width}"] += 1
        if cls == "tensor":
            out.tensor[ins.mnemonic] += 1
        unit, f = flops(ins)
        if unit is not None:
            out.flops[unit] += f
    return out


def main_loop(instrs: list) -> tuple:
    """``(Loop, Mix)`` of the kernel's main loop (module docstring), or ``(None, None)`` where there is none:
    no loop does arithmetic, or (in a kernel without any arithmetic) memory work."""
    computes = mix(instrs).total_flops > 0
    best = None
    mixes = [(lp, mix(i for i in instrs if lp.contains(i))) for lp in loops(instrs)]
    for lp, m in mixes:
        key = (m.total_flops, m.memory_ops, -m.instructions, -lp.start)
        if (m.total_flops if computes else m.memory_ops) and (best is None or key > best[0]):
            best = (key, lp, m)
    if best and computes:
        # A loop nested in it that does all of its arithmetic is the main loop: the outer one only adds a
        # prologue and an epilogue per iteration (a persistent kernel's tile loop around its k loop). Where
        # it uses tensor cores, all of its tensor-core arithmetic: a fused epilogue's FFMA (bias, GELU) run
        # once per tile, in the tile loop only.
        tensor = best[2].tensor_flops > 0
        for lp, m in mixes:
            if best[1].start <= lp.start and lp.end <= best[1].end and lp != best[1]:
                same = (m.tensor_flops == best[2].tensor_flops if tensor
                        else m.total_flops == best[2].total_flops)
                if same and m.instructions < best[2].instructions:
                    best = (best[0], lp, m)
    return (best[1], best[2]) if best else (None, None)
