"""An incremental results table: a markdown file and a JSON-lines file that grow one row at a time.

Each finished row is appended and flushed to disk at once, so when the run is killed (or the machine is given
back) the rows done so far are on disk, and a row whose process crashed or hung is there with why.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path


def _cell(value) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text.replace("|", "/").replace("\n", " ")


class Journal:
    """``Journal(md, jsonl, columns)``: ``start(lines)`` writes the preamble and the table head; ``append(row,
    cells)`` adds one markdown line (``cells``: the row's column texts) and one JSON line (the whole row);
    ``write(lines)`` adds free text after the table (summaries). Thread-safe: rows may finish in parallel."""

    def __init__(self, md: Path, jsonl: Path, columns: list[str]):
        self.md, self.jsonl, self.columns = Path(md), Path(jsonl), columns
        self._lock = threading.Lock()

    def start(self, preamble: list[str]) -> None:
        self.md.parent.mkdir(parents=True, exist_ok=True)
        head = ["| " + " | ".join(self.columns) + " |", "|" + " --- |" * len(self.columns)]
        with self._lock:
            self.md.write_text("\n".join([*preamble, "", *head]) + "\n")
            self.jsonl.write_text("")

    def append(self, row: dict, cells: list) -> None:
        if len(cells) != len(self.columns):
            raise ValueError(f"{len(cells)} cells for {len(self.columns)} columns")
        line = "| " + " | ".join(_cell(c) for c in cells) + " |\n"
        data = json.dumps(row, sort_keys=True, default=float) + "\n"
        with self._lock:
            _append(self.md, line)
            _append(self.jsonl, data)

    def write(self, lines: list[str]) -> None:
        with self._lock:
            _append(self.md, "\n".join(["", *lines]) + "\n")

    def rows(self) -> list[dict]:
        """The rows appended so far, read back from the JSON-lines file."""
        return [json.loads(ln) for ln in self.jsonl.read_text().splitlines() if ln.strip()]


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
