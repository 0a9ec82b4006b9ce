"""runtime/bench/attn_reference.py (the float64 reference of the GPU check
scripts) against an independent per-row implementation, on CPU: causal,
window, softcap, GQA, Nq != Nk, rows with no key; forward and gradients.
Skipped without torch."""

import importlib.util
import os

import pytest

pytest.importorskip("torch")

_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                     "runtime", "bench", "attn_reference.py")
_spec = importlib.util.spec_from_file_location("attn_reference", _PATH)
attn_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(attn_reference)
CASES = attn_reference.SELFTEST_CASES


@pytest.mark.parametrize("n", range(len(CASES)), ids=[c[0] for c in CASES])
def test_against_rowwise(n):
    ok, _ = attn_reference.check_case(CASES[n], 1234 + n)
    assert ok, CASES[n][0]
