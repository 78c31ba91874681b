"""Where a campaign's work units run (issue #22): in this process, or as tasks on a Ray cluster.

A :class:`Unit` is a module-level function and its arguments, named by the SHA-256 of its content (the
function's qualified name, then every argument: bytes, text, numbers, arrays, ONNX protos, and the bytes of
each :class:`FileInput`), so any worker can run any unit. Both executors return results in the units' order,
so a campaign folds them into the same table whichever ran them:

- :class:`LocalExecutor` calls each unit here (``jobs`` > 1: on that many threads), as the scripts always did;
- :class:`RayExecutor` submits each unit as a ``ray.remote`` task with ``max_retries`` (a worker that dies
  mid-task is rerun by Ray). The worker hashes the inputs it received and returns that hash with the result;
  a result is accepted only when the hash is the unit's own, else the unit is resubmitted once.

Ray is optional (``pip install -e ".[ray]"``); without it only the local executor exists. Caches (ptxas, the
emulator's builds) stay per worker and keyed by content, as they are on one machine.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from ..ir.diagnostics import CompileError

RAY_MISSING = "--ray needs Ray: pip install -e \".[ray]\" (or pip install 'ray>=2.9')"


@dataclass(frozen=True)
class FileInput:
    """A file a unit reads, named by its content. Locally it is the file itself; shipped to a Ray worker it
    carries its bytes (``data``), which the worker writes once under its cache folder, by hash, unless a file
    with that content is already at ``path`` (a worker on the same machine)."""

    path: str
    sha256: str
    data: bytes | None = field(default=None, repr=False, compare=False)

    @classmethod
    def of(cls, path) -> "FileInput":
        return cls(str(path), _file_sha(Path(path)))

    def shipped(self) -> "FileInput":
        return self if self.data is not None else dataclasses.replace(self, data=Path(self.path).read_bytes())

    def local(self) -> str:
        """A path on this machine holding the content (written once per worker when shipped)."""
        if self.data is None:
            return self.path
        p = Path(self.path)
        if p.is_file() and p.stat().st_size == len(self.data) and _file_sha(p) == self.sha256:
            return self.path
        from ..backend.ptxas import cache_dir
        out = cache_dir() / "campaign" / self.sha256 / p.name
        if not out.is_file():
            out.parent.mkdir(parents=True, exist_ok=True)
            tmp = out.with_name(f".{p.name}.{os.getpid()}")
            tmp.write_bytes(self.data)
            os.replace(tmp, out)   # atomic: concurrent workers write the same bytes
        return str(out)


def _file_sha(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:   # in chunks: real exports are hundreds of MB
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def content_hash(fn, args: tuple) -> str:
    """SHA-256 of a unit's function name and arguments (see the module docstring)."""
    h = hashlib.sha256(f"{fn.__module__}.{fn.__qualname__}".encode())
    _feed(h, args)
    return h.hexdigest()


def _feed(h, x) -> None:
    import numpy as np
    if isinstance(x, FileInput):   # shipped: the bytes that arrived, not the name they claim
        h.update(b"F" + (x.sha256 if x.data is None else hashlib.sha256(x.data).hexdigest()).encode())
    elif isinstance(x, (bytes, bytearray)):
        h.update(b"B%d:" % len(x) + bytes(x))
    elif isinstance(x, str):
        b = x.encode("utf-8", "surrogatepass")   # mutated IR text may hold lone surrogates
        h.update(b"S%d:" % len(b) + b)
    elif x is None or isinstance(x, (bool, int, float)):
        h.update(b"V" + repr(x).encode() + b";")
    elif isinstance(x, Path):
        _feed(h, str(x))
    elif isinstance(x, np.ndarray):
        h.update(b"A" + f"{x.dtype.str}{x.shape}".encode() + np.ascontiguousarray(x).tobytes())
    elif isinstance(x, np.generic):
        _feed(h, np.asarray(x))
    elif isinstance(x, (list, tuple)):
        h.update(b"L%d:" % len(x))
        for y in x:
            _feed(h, y)
    elif isinstance(x, dict):
        h.update(b"D%d:" % len(x))
        for k in sorted(x, key=repr):
            _feed(h, k)
            _feed(h, x[k])
    elif dataclasses.is_dataclass(x):
        _feed(h, [type(x).__qualname__] + [(f.name, getattr(x, f.name)) for f in dataclasses.fields(x)])
    elif hasattr(x, "SerializeToString"):   # an ONNX (protobuf) message
        h.update(b"P" + x.SerializeToString(deterministic=True))
    elif callable(x) and hasattr(x, "__qualname__"):
        h.update(b"C" + f"{x.__module__}.{x.__qualname__}".encode())
    else:
        raise TypeError(f"a campaign unit's input of type {type(x).__name__} has no content hash")


@dataclass(frozen=True)
class Unit:
    """One piece of a campaign: ``fn(*args)``, ``key`` its content hash."""

    fn: object
    args: tuple
    key: str

    @classmethod
    def of(cls, fn, *args) -> "Unit":
        return cls(fn, args, content_hash(fn, args))


class _Executor:
    """What both executors share: ``with executor:`` closes it at the end (:meth:`close`)."""

    def close(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class LocalExecutor(_Executor):
    """Runs units in this process, one after another (``jobs`` > 1: on that many threads, for units that
    wait on child processes); ``progress(index, result)`` as each finishes."""

    def __init__(self, jobs: int = 1):
        self.jobs = max(1, jobs)

    def run(self, units, progress=None) -> list:
        units = list(units)
        if self.jobs == 1:
            out = []
            for i, u in enumerate(units):
                out.append(u.fn(*u.args))
                if progress:
                    progress(i, out[-1])
            return out
        results = [None] * len(units)
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = {pool.submit(u.fn, *u.args): i for i, u in enumerate(units)}
            for f in as_completed(futures):
                results[futures[f]] = f.result()
                if progress:
                    progress(futures[f], results[futures[f]])
        return results


def _run_unit(fn, args):
    """The Ray task: the hash of the inputs as received here, and the result."""
    return content_hash(fn, args), fn(*args)


def _shipped(x):
    if isinstance(x, FileInput):
        return x.shipped()
    if isinstance(x, (list, tuple)) and not hasattr(x, "_fields"):
        return type(x)(_shipped(y) for y in x)
    if isinstance(x, dict):
        return {k: _shipped(v) for k, v in x.items()}
    return x


class RayExecutor(_Executor):
    """Runs units as Ray tasks (see the module docstring). ``address``: ``"auto"`` an existing cluster, a
    ``host:port``, ``None`` or ``"local"`` a new local one (``num_cpus`` of it; shut down by :meth:`close`).
    ``num_gpus`` per task pins units to GPU workers (``tilec tune --ray``). An already initialised Ray
    (a test's cluster) is used as it is and left running."""

    def __init__(self, address: str | None = None, max_retries: int = 3, num_cpus_per_task: float = 1,
                 num_gpus: float = 0, num_cpus: int | None = None):
        try:
            import ray
        except ImportError:
            raise CompileError(RAY_MISSING) from None
        self.ray = ray
        self.max_retries, self.task_cpus, self.num_gpus = max_retries, num_cpus_per_task, num_gpus
        self._owned = not ray.is_initialized()
        if self._owned:
            # The workers import tilec as installed on them (an editable install; PYTHONPATH=src travels
            # with a local cluster's environment). Their output stays in Ray's logs: the table is the driver's.
            local = address in (None, "local")
            ray.init(address=address or "local", include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                     **({"num_cpus": num_cpus} if num_cpus and local else {}))

    def run(self, units, progress=None) -> list:
        ray = self.ray
        units = list(units)
        if self.num_gpus and units and not ray.cluster_resources().get("GPU"):
            # Ray would wait for a GPU worker forever.
            raise CompileError("the Ray cluster has no GPU workers for units that need one (tilec tune --ray "
                               "--backend emu times the candidates on the emulator instead)")
        self._by_value(units)
        task = ray.remote(_run_unit).options(max_retries=self.max_retries, retry_exceptions=False,
                                             num_cpus=self.task_cpus, num_gpus=self.num_gpus)
        submit = lambda u: task.remote(u.fn, _shipped(u.args))  # noqa: E731
        pending = {submit(u): i for i, u in enumerate(units)}
        results, resubmitted = [None] * len(units), set()
        while pending:
            refs = list(pending)
            first, _ = ray.wait(refs, num_returns=1)
            more, _ = ray.wait(refs, num_returns=len(refs), timeout=0)   # and every other one done by now
            for ref in dict.fromkeys(first + more):
                i = pending.pop(ref)
                key, value = ray.get(ref)
                if key != units[i].key:
                    if i in resubmitted:
                        raise RuntimeError(f"campaign unit {i} came back twice with inputs hashing to {key[:12]}, "
                                           f"not its own {units[i].key[:12]}: result refused")
                    resubmitted.add(i)
                    pending[submit(units[i])] = i
                    continue
                results[i] = value
                if progress:
                    progress(i, value)
        return results

    def _by_value(self, units) -> None:
        """Code a worker cannot import by name travels by value: a unit's function from a file loaded by path
        (``scripts/*.py`` in a test, a test module), and the modules of the functions and classes its globals
        name (``tests/frontend/node_harness.py``'s ``run_case`` in the node-test sweep). A script run as __main__ is pickled by value anyway. (A module object in the
        globals is not enough: pickled by value it takes all its attributes, ``lru_cache`` wrappers too.)"""
        import types
        for u in units:
            mods = [sys.modules.get(u.fn.__module__)]
            mods += [sys.modules.get(getattr(v, "__module__", None) or "")
                     for v in getattr(u.fn, "__globals__", {}).values() if isinstance(v, (types.FunctionType, type))]
            for mod in mods:
                if mod is not None and mod.__name__ != "__main__" and _local_only(mod):
                    self.ray.cloudpickle.register_pickle_by_value(mod)

    def close(self) -> None:
        if self._owned and self.ray.is_initialized():
            self.ray.shutdown()


def _local_only(mod) -> bool:
    """Whether ``mod`` comes from a file outside the installed packages and the standard library (so only a
    folder this process put on sys.path finds it). tilec itself is installed on every worker."""
    import site
    import sysconfig
    path = getattr(mod, "__file__", None)
    if not path or mod.__name__.split(".")[0] == "tilec":
        return False
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return not any(os.path.abspath(path).startswith(os.path.abspath(r) + os.sep) for r in roots if r)


def executor_for(ray_address: str | None, jobs: int = 1, **ray_options):
    """:class:`RayExecutor` when ``--ray`` was given (``ray_address`` from :func:`add_ray_argument`), else
    :class:`LocalExecutor`."""
    if ray_address is None:
        return LocalExecutor(jobs)
    return RayExecutor(None if ray_address == "local" else ray_address, **ray_options)


def add_ray_argument(parser) -> None:
    """``--ray [ADDRESS]`` on an argparse parser: absent, run here; bare, a local Ray cluster; ``auto``, the
    running cluster; ``host:port``, that one."""
    parser.add_argument("--ray", nargs="?", const="local", default=None, metavar="ADDRESS",
                        help="run the work units as Ray tasks: no value starts a local Ray cluster, 'auto' joins "
                             "the running one, HOST:PORT that cluster (needs pip install -e \".[ray]\")")
