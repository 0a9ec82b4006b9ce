"""flashmlir on CPU torch tensors: values and gradients against a float64
reference, the custom ops under torch.library.opcheck, torch.compile with
fullgraph=True through forward and backward. Skipped without torch (and
without the compiler library, which runs CPU tensors)."""

import pytest

torch = pytest.importorskip("torch")
import numpy as np  # noqa: E402

import flashmlir  # noqa: E402
from reference import attention_grad_ref, rel_err  # noqa: E402
from torch_common import check_case, f64, run_compiled, run_direct_path, run_opcheck  # noqa: E402

pytestmark = pytest.mark.skipif(not flashmlir.available()["compiler"],
                                reason="libflashmlir_c (runs CPU tensors) not found")

CASES = [
    # name, B, Hq, Hkv, Nq, Nk, D, Dv, options
    ("plain", 2, 2, 2, 24, 24, 16, 16, {}),
    ("gqa-causal-cross", 1, 4, 2, 20, 33, 16, 16, dict(causal=True)),
    ("mqa-window-softcap", 1, 4, 1, 30, 30, 16, 16, dict(window=(5, 3), softcap=6.0)),
    ("causal-nq>nk", 1, 2, 2, 30, 12, 16, 16, dict(causal=True)),
    ("bshd-dv", 2, 2, 1, 17, 21, 32, 16, dict(causal=True, layout="bshd")),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16],
                         ids=["f32", "f16", "bf16"])
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cpu_against_reference(case, dtype):
    check_case("cpu", dtype, case)


def test_strided_no_copy_inputs():
    """A packed qkv projection split into views (innermost stride 1): used in
    place; gradients flow back into the packed tensor."""
    B, N, H, D = 2, 19, 2, 16
    qkv = torch.randn(B, N, 3, H, D, dtype=torch.float32, requires_grad=True)
    q, k, v = qkv.unbind(2)  # [B, N, H, D] views, not contiguous
    o = flashmlir.attention(q, k, v, causal=True, layout="bshd")
    do = torch.randn_like(o)
    o.backward(do)
    ref = attention_grad_ref(*(f64(t.transpose(1, 2)) for t in (q, k, v, do)), causal=True)
    assert rel_err(f64(o.transpose(1, 2)), ref[0]) <= 1e-5
    g = qkv.grad.unbind(2)
    for i in range(3):
        assert rel_err(f64(g[i].transpose(1, 2)), ref[2 + i]) <= 2e-5


def test_sdpa_matches_torch():
    q = torch.randn(2, 4, 20, 16)
    k = torch.randn(2, 2, 20, 16)
    v = torch.randn(2, 2, 20, 16)
    ours = flashmlir.sdpa(q, k, v, is_causal=True, enable_gqa=True)
    theirs = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True)
    assert rel_err(f64(ours), f64(theirs)) <= 1e-5
    with pytest.raises(ValueError, match="attn_mask"):
        flashmlir.sdpa(q, q, q, attn_mask=torch.ones(20, 20, dtype=torch.bool))
    with pytest.raises(ValueError, match="dropout_p"):
        flashmlir.sdpa(q, q, q, dropout_p=0.5)
    with pytest.raises(RuntimeError, match="enable_gqa"):
        flashmlir.sdpa(q, k, v)


def test_errors():
    q = torch.randn(1, 2, 4, 8)
    with pytest.raises(TypeError, match="float64"):
        flashmlir.attention(q.double(), q.double(), q.double())
    with pytest.raises(TypeError, match="same dtype"):
        flashmlir.attention(q, q.half(), q)
    with pytest.raises(ValueError, match="rank 4"):
        flashmlir.attention(q[0], q[0], q[0])
    with pytest.raises(ValueError, match="multiple"):
        flashmlir.attention(torch.randn(1, 3, 4, 8), q, q)
    with pytest.raises(TypeError, match="torch.Tensor"):
        flashmlir.attention(q, q.numpy(), q)
    with pytest.raises(ValueError, match="device"):
        flashmlir.attention(q.to("meta"), q.to("meta"), q.to("meta"))
    with pytest.raises(ValueError, match="layout"):
        flashmlir.attention(q, q, q, layout="nope")


def test_opcheck_cpu():
    run_opcheck("cpu", torch.float32)


def test_direct_path_cpu():
    run_direct_path("cpu", torch.float32)


def test_torch_compile_fullgraph_cpu():
    run_compiled("cpu", torch.float32, 1e-5)


def test_sdpa_under_compile():
    f = torch.compile(lambda q, k, v: flashmlir.sdpa(q, k, v, is_causal=True), fullgraph=True)
    q, k, v = (torch.randn(1, 2, 12, 16) for _ in range(3))
    assert rel_err(f64(f(q, k, v)), f64(flashmlir.sdpa(q, k, v, is_causal=True))) <= 1e-6


def test_numpy_and_torch_agree():
    q, k, v = (torch.randn(1, 2, 9, 8) for _ in range(3))
    a = flashmlir.attention(q, k, v, causal=True)
    b = flashmlir.attention(q.numpy(), k.numpy(), v.numpy(), causal=True)
    assert np.array_equal(a.numpy(), b)
