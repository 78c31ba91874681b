"""Seed corpora shared by the pytest suite and ``scripts/fuzz.py``: IR texts (hand-written seeds plus
dumps of imported, and when possible decomposed, random graphs) and valid ONNX models to mutate."""
from __future__ import annotations

from pathlib import Path

from ..ir.diagnostics import CompileError
from .graphgen import generate
from .ir_mutator import all_seeds
from .onnx_cases import small_model

SAMPLES = Path(__file__).resolve().parents[3] / "samples"


def ir_seeds(n_graphs: int = 4, samples: bool = True) -> dict:
    """Hand-written seeds plus IR dumps of ``n_graphs`` generated graphs (and of the samples that import;
    their dumps are long, so mutants of them parse slowly: CI leaves them to ``make fuzz``)."""
    from ..frontend.importer import import_onnx
    from ..ir.printer import print_module
    seeds = all_seeds()
    models = {f"gen{s}": generate(1000 + s, 5).model for s in range(n_graphs)}
    if samples:
        models.update({p.stem: str(p) for p in sorted(SAMPLES.glob("*.onnx"))})
    for name, model in models.items():
        try:
            module = import_onnx(model)
        except CompileError:
            continue  # a sample with ops the frontend does not support yet
        seeds[f"import:{name}"] = print_module(module)
        from ..driver import FRONT_PASSES
        from ..passes.pipeline import PassManager, parse_pipeline
        try:
            PassManager(passes=parse_pipeline(FRONT_PASSES)).run(module)
            seeds[f"decompose:{name}"] = print_module(module)
        except CompileError:
            pass
    return seeds


def onnx_bases(n_graphs: int = 8) -> dict:
    """{name: serialized model}: the samples, a small hand-built model and ``n_graphs`` generated graphs."""
    bases = {p.stem: p.read_bytes() for p in sorted(SAMPLES.glob("*.onnx"))}
    bases["small17"] = small_model(17).SerializeToString()
    bases["small18"] = small_model(18).SerializeToString()
    for s in range(n_graphs):
        bases[f"gen{s}"] = generate(2000 + s, 6).model.SerializeToString()
    return bases
