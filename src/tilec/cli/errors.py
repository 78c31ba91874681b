"""Exit codes and the error boundary of every command: 0 ok, 1 user error, 2 usage, 3 internal error."""
from __future__ import annotations

import functools
import os
import sys
import traceback

import click

from ..ir.diagnostics import CompileError
from ..ir.limits import shape_problem

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERNAL = 0, 1, 2, 3


def guarded(fn):
    """Turn CompileError into a diagnostic + exit 1, and anything unexpected into exit 3 (no traceback
    unless TILEC_DEBUG=1), so scripts can tell a bad model from a compiler bug."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CompileError as e:
            click.echo(e.render(), err=True)
            sys.exit(EXIT_ERROR)
        except (click.exceptions.Exit, click.ClickException, SystemExit, KeyboardInterrupt):
            raise
        except RecursionError:
            click.echo("tilec: error: input nests too deeply", err=True)
            sys.exit(EXIT_ERROR)
        except MemoryError:
            click.echo("tilec: error: out of memory (is a dimension unreasonably large?)", err=True)
            sys.exit(EXIT_ERROR)
        except Exception as e:  # noqa: BLE001 - this is the internal-error boundary
            if os.environ.get("TILEC_DEBUG"):
                traceback.print_exc()
            click.echo(f"tilec: internal error: {type(e).__name__}: {e}\n"
                       "(this is a bug in tilec; rerun with TILEC_DEBUG=1 for a traceback)", err=True)
            sys.exit(EXIT_INTERNAL)
    return wrapper


def parse_input_shapes(specs) -> dict:
    """``NAME=1x128`` (repeatable) → ``{NAME: (1, 128)}``; bad text is a usage error."""
    shapes = {}
    for spec in specs or ():
        name, sep, dims = spec.rpartition("=")
        if not sep or not name:
            raise click.BadParameter(f"'{spec}' is not NAME=DIMS (e.g. x=1x128)", param_hint="--input-shape")
        try:
            shape = tuple(int(d) for d in dims.split("x")) if dims else ()
        except ValueError:
            raise click.BadParameter(f"'{dims}' is not dims like 1x128", param_hint="--input-shape") from None
        if any(d < 0 for d in shape):
            raise click.BadParameter(f"'{dims}' has a negative dim", param_hint="--input-shape")
        why = shape_problem(shape)  # ir/limits.py: refuse before anything is sized from it
        if why:
            raise click.BadParameter(f"'{dims}' {why}", param_hint="--input-shape")
        shapes[name] = shape
    return shapes


def parse_shape_profiles(specs) -> dict:
    """``NAME=1..32x64`` (repeatable) → ``{NAME: [(1, 32), 64]}`` (``runtime/profile.parse_profile_spec``);
    bad text or an input given twice is a usage error."""
    from ..runtime.profile import parse_profile_spec
    out = {}
    for spec in specs or ():
        try:
            name, dims = parse_profile_spec(spec)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--shape-profile") from None
        if name in out:
            raise click.BadParameter(f"input '{name}' is given twice", param_hint="--shape-profile")
        out[name] = dims
    return out


def parse_bucket_lists(specs) -> dict:
    """``DIM=128,256`` (repeatable; DIM a dim name or INPUT:AXIS) → ``{DIM: [128, 256]}``."""
    from ..runtime.profile import parse_buckets_spec
    out = {}
    for spec in specs or ():
        try:
            dim, sizes = parse_buckets_spec(spec)
        except ValueError as e:
            raise click.BadParameter(str(e), param_hint="--buckets") from None
        out[dim] = sizes
    return out


def refuse_profile_build(path: str, command: str) -> None:
    """A clear error when ``path`` is a shape-profile build's top folder (``profile.json``) for a command that
    works on one build: it names the buckets' folders to give instead."""
    from pathlib import Path

    from ..runtime.profile import load_profile
    profile = load_profile(path) if Path(path).is_dir() else None
    if profile is None:
        return
    dirs = [str(Path(path) / b["dir"]) for b in profile.data["buckets"]]
    raise CompileError(f"'{path}' is a shape-profile build; {command} takes one bucket's folder: "
                       + ", ".join(dirs[:4]) + (f", ... ({len(dirs)} buckets)" if len(dirs) > 4 else ""))
