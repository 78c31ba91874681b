"""Hostile-input testing for tilec: seeded generators, mutators and shrinkers shared by the pytest suite
(``tests/reliability/``) and ``scripts/fuzz.py`` (``make fuzz``).

- ``guard``: run one input under a time limit and classify the result (ok / diagnostic / crash / ...).
- ``ir_mutator``: valid IR seeds and token/byte mutations of them.
- ``onnx_cases``: hand-made hostile ONNX models and seeded mutations of valid ones.
- ``graphgen``: random valid ONNX graphs over the ops tilec supports (NNSmith style).
- ``differential``: onnxruntime vs tilec's interpreter (after import, after decompose, under the emulator).
- ``shrink``: reduce a failing graph to a small reproducer and write it to ``tests/regressions/``.
- ``campaign`` / ``executors``: the campaigns cut into content-addressed work units, run here or as Ray tasks
  (``--ray``), results in unit order (issue #22).

Everything is deterministic for a given seed, so a failure found by ``make fuzz`` can be replayed.
"""
