"""Shared by the NumPy-based CPU tests (test_numpy, test_varlen,
test_score_mods): the dtypes, their error thresholds, seeded generators and
the skip marker for installations without the compiler library."""

import os
import zlib

import numpy as np
import pytest

import flashmlir

HAVE_COMPILER = flashmlir.available()["compiler"]
needs_compiler = pytest.mark.skipif(not HAVE_COMPILER,
                                    reason="libflashmlir_c (the compiler library) not found")

try:
    import ml_dtypes
    BF16 = np.dtype(ml_dtypes.bfloat16)
except ImportError:
    BF16 = None

# ||x - ref|| / ||ref||: (forward, gradients)
TOL = {"f32": (1e-5, 2e-5), "f16": (2e-3, 4e-3), "bf16": (1.6e-2, 3.2e-2)}
NP_DTYPE = {"f32": np.float32, "f16": np.float16, "bf16": BF16}


def rng_for(name):
    """A generator seeded by the test's name (and $FLASHMLIR_TEST_SEED)."""
    seed = zlib.crc32(name.encode()) ^ int(os.environ.get("FLASHMLIR_TEST_SEED", "0"))
    return np.random.default_rng(seed)
