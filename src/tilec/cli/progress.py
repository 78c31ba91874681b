"""Stage progress of a long compile on stderr (issue #19: "compiles longer than about a second show progress").

The driver calls ``Progress.stage(index, total, name)`` before each stage (import, every pass, writing the build)
and ``Progress.done()`` at the end. Nothing is shown for the first ``delay_s`` seconds, so a fast compile prints
nothing. After that:

- on a terminal, one status line is rewritten in place (``\\r``) and erased when the compile ends, so the
  terminal keeps only the summary line, as cargo and ninja do;
- elsewhere (CI logs, pipes) each stage that starts after the delay prints one plain line, never rewritten.

``--quiet`` (``enabled=False``) silences both. The clock is injectable so tests need not sleep.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Callable, TextIO


@dataclass
class Progress:
    """Reports compile stages on ``stream`` once the compile has run for ``delay_s`` seconds."""

    stream: TextIO = field(default_factory=lambda: sys.stderr)
    enabled: bool = True
    delay_s: float = 1.0
    clock: Callable[[], float] = time.perf_counter
    terminal: bool | None = None          # None: ask the stream
    _start: float | None = None
    _shown: bool = False                  # a terminal status line is on screen

    def __post_init__(self) -> None:
        if self.terminal is None:
            isatty = getattr(self.stream, "isatty", None)
            self.terminal = bool(isatty and isatty())

    def stage(self, index: int, total: int, name: str) -> None:
        """Stage ``index`` (1-based) of ``total``, called ``name``, starts now."""
        now = self.clock()
        if self._start is None:
            self._start = now
        if not self.enabled or now - self._start < self.delay_s:
            return
        text = f"tilec: [{index}/{total}] {name} ({now - self._start:.1f} s)"
        if self.terminal:
            self.stream.write("\r\x1b[K" + text)
            self._shown = True
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def done(self) -> None:
        """The compile ended (or failed): erase the terminal status line so the next output starts clean."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False
