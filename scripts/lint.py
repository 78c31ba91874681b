"""A small lint: every module has a docstring, and no file under src/ is unreasonably long."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

MAX_LINES = 600


def main() -> int:
    problems = []
    for path in sorted(Path("src").rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        if not ast.get_docstring(tree) and text.strip():
            problems.append(f"{path}: missing module docstring")
        if text.count("\n") > MAX_LINES:
            problems.append(f"{path}: {text.count(chr(10))} lines (> {MAX_LINES}); split it")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
