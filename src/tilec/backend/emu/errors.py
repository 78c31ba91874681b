"""The emulator's one exception type."""
from __future__ import annotations


class EmuError(Exception):
    """A kernel that does not compile (with the compiler's output), a bad launch, an out-of-bounds global
    access, or a deadlock. The message names the kernel."""
