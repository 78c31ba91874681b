"""``utask`` dialect hooks (DESIGN §6): Grinder's ``device_loop`` / ``device_if`` kernels. Every block of one
meets every other at grid barriers, so all must be resident at once, as an rProgram's vEUs must
(``rprog.program``): the grid is at most ``blocks_per_sm`` per SM of the target, and that many blocks of its
width with its stages' shared arrays (``utask.stage`` kernels, laid out one after another) fit an SM."""
from ..core import lookup_symbol
from ..diagnostics import CompileError
from ..verifier import verify_hook

DEVICE_KINDS = ("device_loop", "device_if")


@verify_hook("kernel.func")
def _verify_device_grid(op, module):
    a = op.attributes
    if a.get("kind") not in DEVICE_KINDS:
        return
    from ...analysis.hardware import get_arch
    from ...analysis.rammer.cost import resident_blocks
    from ...analysis.rammer.shared import shared_bytes
    control = a.get("control") or {}
    if "arch" not in control or "blocks_per_sm" not in control:
        raise CompileError.at(f"'kernel.func' of kind \"{a['kind']}\" needs control.arch and "
                              "control.blocks_per_sm (its residency)", op.loc)
    spec = get_arch(control["arch"])
    per_sm = control["blocks_per_sm"]
    smem = 0
    for s in op.body.ops:
        if s.name != "utask.stage":
            continue
        kernel = lookup_symbol(module, s.attributes["kernel"].name)
        if kernel is None or kernel.name != "kernel.func":
            raise CompileError.at(f"'utask.stage' refers to unknown kernel {s.attributes['kernel']}", s.loc)
        smem += shared_bytes(kernel)
    grid = a["grid"][0]
    if grid > per_sm * spec.num_sms or per_sm > resident_blocks(spec, a["block"][0], smem):
        raise CompileError.at(f"'kernel.func' @{op.sym_name} ({a['kind']}) needs {grid} resident blocks at {per_sm} "
                              f"per SM: over the {control['arch']} resident-block limit, so its grid barriers "
                              "could deadlock", op.loc)
