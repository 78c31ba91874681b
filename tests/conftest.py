"""Every test compiles with the verifier after every pass (``driver.compile_model``'s ``TILEC_VERIFY_EACH``),
as MLIR's tests run with ``-verify-each``: a pass that leaves bad IR fails at that pass. Normal compiles
verify the import, the reference IR and the final IR only (tests/ir/test_verify_final.py covers them)."""
import os

os.environ.setdefault("TILEC_VERIFY_EACH", "1")
