"""Build the model zoo into a content-keyed cache.

Writes ``<name>-<size>.onnx`` per model into ``--out`` (default ``build/zoo/`` under the
repository root). Full models keep their weights as external data in one file beside the
model (``<name>-full.onnx.data``); small ones are self-contained. Each model also gets a
``<name>-<size>.json`` manifest (builder hash, parameter count, node count, ops used). A
model is rebuilt only when its builder hash - the text of its builder module, the shared
builder code, the size and the onnx version - differs from the manifest's, so rerunning
is cheap.

Usage::

    python samples/models/build_zoo.py --size small|full [--out DIR] [--only NAME ...]
                                       [--force] [--list]
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
if __package__ in (None, ""):       # run as a script: make ``samples.models`` importable
    sys.path.insert(0, ROOT)

import onnx  # noqa: E402

from samples.models import SIZES, ZOO, param_count  # noqa: E402

DEFAULT_OUT = os.path.join(ROOT, "build", "zoo")
_SHARED = ["samples/build_samples.py", "samples/models/_common.py"]


def builder_hash(name: str, size: str) -> str:
    """Hash of everything that determines the model's bytes."""
    entry = ZOO[name]
    h = hashlib.sha256(f"{name}\0{size}\0onnx {onnx.__version__}\0".encode())
    mod_path = os.path.join(ROOT, *entry.module.split(".")) + ".py"
    for path in [os.path.join(ROOT, p) for p in _SHARED] + [mod_path]:
        with open(path, "rb") as f:
            h.update(f.read())
    return h.hexdigest()


def save_model(model: onnx.ModelProto, path: str, external: bool) -> None:
    """Check and write ``model``; with ``external``, weights go to ``<path>.data``.

    Written in a temporary folder and moved into place, so an interrupted build never
    leaves a half-written model that looks cached (and so onnx, which appends to an
    existing data file, always starts from an empty one).
    """
    out_dir = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        tmp_path = os.path.join(tmp, base)
        if external:
            onnx.save_model(model, tmp_path, save_as_external_data=True,
                            all_tensors_to_one_file=True, location=base + ".data")
            onnx.checker.check_model(tmp_path, full_check=True)
            os.replace(tmp_path + ".data", path + ".data")
        else:
            onnx.checker.check_model(model, full_check=True)
            with open(tmp_path, "wb") as f:
                f.write(model.SerializeToString(deterministic=True))
        os.replace(tmp_path, path)


def build_one(name: str, size: str, out_dir: str, force: bool = False) -> tuple[str, bool]:
    """Build one model unless cached; returns (model path, whether it was built)."""
    path = os.path.join(out_dir, f"{name}-{size}.onnx")
    manifest = path[:-len(".onnx")] + ".json"
    key = builder_hash(name, size)
    external = size == "full"
    if not force and os.path.exists(path) and os.path.exists(manifest) and (
            not external or os.path.exists(path + ".data")):
        with open(manifest) as f:
            if json.load(f).get("builder_hash") == key:
                return path, False
    model = ZOO[name].build(size, "random")
    ops = collections.Counter(n.op_type for n in model.graph.node)
    info = {"name": name, "size": size, "builder_hash": key, "params": param_count(model),
            "nodes": len(model.graph.node), "ops": dict(sorted(ops.items())),
            "inputs": [i.name for i in model.graph.input],
            "outputs": [o.name for o in model.graph.output]}
    save_model(model, path, external)
    with open(manifest, "w") as f:
        json.dump(info, f, indent=1, sort_keys=True)
        f.write("\n")
    return path, True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=SIZES, default="small")
    ap.add_argument("--out", default=DEFAULT_OUT, help="cache folder (default: build/zoo)")
    ap.add_argument("--only", nargs="+", metavar="NAME", choices=sorted(ZOO),
                    help="build just these models")
    ap.add_argument("--force", action="store_true", help="rebuild even when cached")
    ap.add_argument("--list", action="store_true", help="list the models and exit")
    args = ap.parse_args(argv)
    if args.list:
        for e in ZOO.values():
            print(f"{e.name:13} {e.evaluated_in:18} {e.full_shape}")
        return 0
    os.makedirs(args.out, exist_ok=True)
    for name in args.only or list(ZOO):
        t0 = time.perf_counter()
        path, built = build_one(name, args.size, args.out, args.force)
        what = f"built in {time.perf_counter() - t0:.1f}s" if built else "cached"
        print(f"{path}  ({what})", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
