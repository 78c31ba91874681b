"""``utask`` dialect hooks (DESIGN §6): Grinder's ``device_loop`` / ``device_if`` kernels. Every block of one
meets every other at grid barriers, so all must be resident at once, as an rProgram's vEUs must
(``rprog.program``): the grid is at most ``blocks_per_sm`` per SM of the target, and that many blocks of its
width with its stages' shared arrays (``utask.stage`` kernels, laid out one after another) fit an SM."""
from ..attributes import SymbolRef
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
    per_sm = control.get("blocks_per_sm")
    if not isinstance(control.get("arch"), str) or isinstance(per_sm, bool) or not isinstance(per_sm, int) \
            or per_sm < 1:
        raise CompileError.at(f"'kernel.func' of kind \"{a['kind']}\" needs control.arch (a name) and "
                              "control.blocks_per_sm (a positive int): its residency", op.loc)
    spec = get_arch(control["arch"])
    smem = 0
    for s in op.body.ops:
        ref = s.attributes.get("kernel")
        if s.name != "utask.stage" or not isinstance(ref, SymbolRef):
            continue   # the stage's own verification reports a missing or mistyped kernel attribute
        kernel = lookup_symbol(module, ref.name)
        if kernel is None or kernel.name != "kernel.func":
            raise CompileError.at(f"'utask.stage' refers to unknown kernel {s.attributes['kernel']}", s.loc)
        smem += shared_bytes(kernel)
    grid = a["grid"][0]
    if grid > per_sm * spec.num_sms or per_sm > resident_blocks(spec, a["block"][0], smem):
        raise CompileError.at(f"'kernel.func' @{op.sym_name} ({a['kind']}) needs {grid} resident blocks at {per_sm} "
                              f"per SM: over the {control['arch']} resident-block limit, so its grid barriers "
                              "could deadlock", op.loc)
