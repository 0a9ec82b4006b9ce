"""flashmlir on CUDA tensors (GPU runtime + kernel bundle): values and
gradients against a float64 reference for f32/f16/bf16, opcheck,
torch.compile(fullgraph=True), streams, and runtime errors as Python
exceptions. Skipped without torch or without a CUDA device.

The configurations are in the default bundle (head dims 8..256, D=64/Dv=32,
192/128, softcap), so the tests also run where the compiler library is
absent (a GPU machine without MLIR)."""

import math
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("no CUDA device", allow_module_level=True)

import flashmlir  # noqa: E402
from reference import attention_grad_ref, attention_ref, rel_err  # noqa: E402
from torch_common import check_case, f64, run_compiled, run_direct_path, run_opcheck  # noqa: E402

if not flashmlir.available()["runtime"]:
    pytest.skip("libflashmlir_rt not found", allow_module_level=True)

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
IDS = ["f32", "f16", "bf16"]

CASES = [
    # name, B, Hq, Hkv, Nq, Nk, D, Dv, options
    ("plain", 2, 2, 2, 70, 70, 64, 64, {}),
    ("gqa-causal-cross", 1, 4, 2, 50, 130, 64, 64, dict(causal=True)),
    ("mqa-window", 2, 4, 1, 97, 97, 32, 32, dict(window=(16, 5))),
    ("softcap-causal", 1, 2, 2, 65, 65, 128, 128, dict(causal=True, softcap=20.0)),
    ("causal-nq>nk-empty-rows", 1, 2, 1, 90, 40, 64, 64, dict(causal=True)),
    ("dv!=d", 1, 2, 2, 33, 47, 64, 32, {}),
    ("bshd-gqa", 2, 6, 2, 41, 41, 128, 128, dict(causal=True, layout="bshd")),
    ("scale-window-left", 1, 2, 2, 64, 80, 16, 16, dict(scale=0.1, window=(20, -1))),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_cuda_against_reference(case, dtype):
    check_case("cuda", dtype, case)


# Tensor-core head dims of the default bundle (f16 / bf16), MLA's 192 / 128,
# softcap at 256 (Gemma 2), and head dims that are not multiples of 8 (36 ->
# 40, 190 / 124 -> 192 / 128: zero-padded by the front end, the scale of the
# true head dim).
TC_CASES = [
    ("d80-gqa-causal-cross", 1, 4, 2, 70, 90, 80, 80, dict(causal=True)),
    ("d112-window", 2, 2, 2, 77, 77, 112, 112, dict(window=(20, 3))),
    ("mla-192-128-causal", 1, 2, 2, 50, 60, 192, 128, dict(causal=True)),
    ("d256-softcap-causal", 1, 2, 1, 65, 65, 256, 256, dict(causal=True, softcap=30.0)),
    ("d36-padded", 1, 2, 2, 40, 41, 36, 36, dict(causal=True)),
    ("d190-dv124-padded-bshd", 1, 2, 2, 33, 33, 190, 124, dict(layout="bshd")),
]


@pytest.mark.parametrize("dtype", DTYPES[1:], ids=IDS[1:])
@pytest.mark.parametrize("case", TC_CASES, ids=[c[0] for c in TC_CASES])
def test_cuda_head_dims(case, dtype):
    check_case("cuda", dtype, case)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_opcheck_cuda(dtype):
    run_opcheck("cuda", dtype)


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
def test_direct_path_cuda(dtype):
    run_direct_path("cuda", dtype)


def test_torch_compile_fullgraph_cuda_f32():
    run_compiled("cuda", torch.float32, 1e-5)


def test_torch_compile_fullgraph_cuda_bf16():
    run_compiled("cuda", torch.bfloat16, 3.2e-2)


def test_current_stream_is_used():
    """Work is issued on torch.cuda.current_stream(): inputs written on a side
    stream and consumed there without a device synchronization."""
    s = torch.cuda.Stream()
    with torch.cuda.stream(s):
        q = torch.randn(2, 4, 300, 64, device="cuda", dtype=torch.float16)
        k = torch.randn(2, 4, 300, 64, device="cuda", dtype=torch.float16)
        v = torch.randn(2, 4, 300, 64, device="cuda", dtype=torch.float16)
        for _ in range(3):
            o = flashmlir.attention(q, k, v, causal=True)
        o = o.float().cpu()  # synchronizes with s only
    ref = attention_ref(*(f64(t) for t in (q, k, v)), causal=True)[0]
    assert rel_err(o.numpy(), ref) <= 2e-3


def test_sdpa_matches_torch_cuda():
    q = torch.randn(2, 8, 128, 64, device="cuda", dtype=torch.bfloat16)
    k = torch.randn(2, 2, 128, 64, device="cuda", dtype=torch.bfloat16)
    v = torch.randn(2, 2, 128, 64, device="cuda", dtype=torch.bfloat16)
    ours = flashmlir.sdpa(q, k, v, is_causal=True, enable_gqa=True)
    theirs = torch.nn.functional.scaled_dot_product_attention(
        q.double(), k.double(), v.double(), is_causal=True, enable_gqa=True)
    assert rel_err(f64(ours), f64(theirs)) <= 1.6e-2


def test_mixed_devices():
    q = torch.randn(1, 2, 8, 64, device="cuda")
    with pytest.raises(ValueError, match="same device"):
        flashmlir.attention(q, q.cpu(), q)


def test_missing_kernel_is_a_python_error(tmp_path, monkeypatch):
    """A head dim the bundle lacks: compiled on demand where the compiler is
    installed, else FA_ERR_NO_KERNEL (as FlashMLIRError) saying why."""
    monkeypatch.setenv("FLASHMLIR_CACHE_DIR", str(tmp_path))
    q = torch.randn(1, 2, 40, 24, device="cuda")
    if flashmlir.available()["compiler"]:
        o = flashmlir.attention(q, q, q, causal=True)
        ref = attention_ref(*(f64(t) for t in (q, q, q)), causal=True)[0]
        assert rel_err(f64(o), ref) <= 1e-5
        assert any("d24" in d for d in os.listdir(os.path.join(tmp_path, "bundles",
                                                                flashmlir.__version__)))
    else:
        with pytest.raises(flashmlir.FlashMLIRError) as e:
            flashmlir.attention(q, q, q, causal=True)
        assert e.value.status_name == "FA_ERR_NO_KERNEL"
        assert "head_dim=24" in str(e.value) and "compiler library" in str(e.value)
    # a head dim that is not a multiple of 8 is zero-padded (20 -> 24): the
    # same on-demand kernel, or the same error naming the padded head dim
    q = torch.randn(1, 2, 40, 20, device="cuda")
    if flashmlir.available()["compiler"]:
        o = flashmlir.attention(q, q, q)
        ref = attention_ref(*(f64(t) for t in (q, q, q)))[0]
        assert rel_err(f64(o), ref) <= 1e-5
    else:
        with pytest.raises(flashmlir.FlashMLIRError) as e:
            flashmlir.attention(q, q, q)
        assert "head_dim=24" in str(e.value)
    # the interpreter and the device are still fine
    x = torch.randn(1, 2, 16, 64, device="cuda")
    assert torch.isfinite(flashmlir.attention(x, x, x)).all()


def test_bad_bundle_is_a_python_error(tmp_path):
    """FLASHMLIR_BUNDLE pointing at a broken bundle: FA_ERR_BUNDLE."""
    (tmp_path / "manifest.json").write_text("{ not json")
    env = dict(os.environ, FLASHMLIR_BUNDLE=str(tmp_path),
               FLASHMLIR_CACHE_DIR=str(tmp_path / "cache"))
    pkg = os.path.dirname(os.path.dirname(flashmlir.__file__))
    env["PYTHONPATH"] = pkg + os.pathsep + env.get("PYTHONPATH", "")
    code = textwrap.dedent("""
        import torch, flashmlir
        q = torch.randn(1, 1, 8, 64, device="cuda")
        try:
            flashmlir.attention(q, q, q)
        except flashmlir.FlashMLIRError as e:
            print(e.status_name)
    """)
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().endswith("FA_ERR_BUNDLE"), r.stdout + r.stderr


def test_gradcheck_like_consistency_f32():
    """Backward through attention_backward equals autograd's."""
    q, k, v = (torch.randn(1, 2, 33, 32, device="cuda", requires_grad=True) for _ in range(3))
    o, lse = flashmlir.attention(q, k, v, causal=True, return_lse=True)
    do = torch.randn_like(o)
    o.backward(do)
    dq, dk, dv = flashmlir.attention_backward(q.detach(), k.detach(), v.detach(), o.detach(),
                                              lse, do, causal=True)
    ref = attention_grad_ref(*(f64(t) for t in (q, k, v, do)), causal=True)
    for a, b, r in ((q.grad, dq, ref[2]), (k.grad, dk, ref[3]), (v.grad, dv, ref[4])):
        assert rel_err(f64(a), r) <= 2e-5 and rel_err(f64(b), r) <= 2e-5


def test_flash_attn_func_cuda_bf16():
    """FlashAttention-2's front end on the GPU: [B, N, H, D], GQA, bottom-right
    causal with a left window, against the float64 reference."""
    B, Nq, Nk, Hq, Hkv, D = 2, 100, 150, 8, 2, 128
    g = torch.Generator().manual_seed(13)
    mk = lambda *s: torch.randn(*s, generator=g).to("cuda", torch.bfloat16).requires_grad_()  # noqa: E731
    q, k, v = mk(B, Nq, Hq, D), mk(B, Nk, Hkv, D), mk(B, Nk, Hkv, D)
    do = torch.randn(B, Nq, Hq, D, generator=g).to("cuda", torch.bfloat16)
    out, lse, _ = flashmlir.flash_attn_func(q, k, v, causal=True, window_size=(40, 7),
                                            return_attn_probs=True)
    out.backward(do)
    t = lambda x: f64(x.transpose(1, 2))  # noqa: E731
    ref = attention_grad_ref(t(q), t(k), t(v), t(do), causal=True, window=(40, 0))
    assert rel_err(t(out), ref[0]) <= 1.6e-2 and rel_err(f64(lse), ref[1]) <= 1e-3
    for x, r in zip((q, k, v), ref[2:]):
        assert rel_err(t(x.grad), r) <= 3.2e-2


def test_flash_attn_deterministic_cuda():
    """deterministic=True: dq bit-identical over repeated backwards on a shape
    with many key blocks per query block (the atomic dQ path's sums are
    ordered by the scheduler)."""
    g = torch.Generator().manual_seed(14)
    q = torch.randn(2, 1024, 8, 64, generator=g).to("cuda", torch.bfloat16).requires_grad_()
    k = torch.randn(2, 1024, 8, 64, generator=g).to("cuda", torch.bfloat16).requires_grad_()
    v = torch.randn(2, 1024, 8, 64, generator=g).to("cuda", torch.bfloat16).requires_grad_()
    do = torch.randn(2, 1024, 8, 64, generator=g).to("cuda", torch.bfloat16)
    dqs = []
    for _ in range(5):
        q.grad = None
        flashmlir.flash_attn_func(q, k, v, deterministic=True).backward(do)
        dqs.append(q.grad.clone())
    assert all(torch.equal(dqs[0], d) for d in dqs[1:])


# Attention sinks on the GPU kernels (the forward's rows start from the sink;
# fwd_combine adds it as one more range in the split-KV decode; bwd_pre sums
# d sinks): values, lse and gradients incl. d sinks against the float64
# reference.
SINK_CASES = [
    ("sinks-plain", 2, 4, 4, 70, 70, 64, 64, dict(sinks=True)),
    ("sinks-gqa-causal-cross", 1, 4, 2, 50, 130, 128, 128, dict(causal=True, sinks=True)),
    ("sinks-causal-nq>nk-empty-rows", 1, 2, 1, 90, 40, 64, 64, dict(causal=True, sinks=True)),
    ("sinks-window-softcap-bshd", 2, 4, 2, 97, 97, 64, 64,
     dict(window=(16, 5), softcap=20.0, layout="bshd", sinks=True)),
    ("sinks-d36-padded", 1, 2, 2, 40, 41, 36, 36, dict(sinks=True)),
    ("sinks-decode-gqa-split", 3, 8, 2, 1, 3000, 128, 128, dict(sinks=True)),
    ("sinks-decode-causal-split", 2, 4, 1, 4, 700, 64, 64, dict(causal=True, sinks=True)),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("case", SINK_CASES, ids=[c[0] for c in SINK_CASES])
def test_sinks_cuda(case, dtype):
    check_case("cuda", dtype, case)


def test_sinks_cuda_edges():
    """A row that sees no key gets O = 0 and lse = the sink; sinks of -inf
    change nothing; the errors name the problem."""
    q = torch.randn(1, 2, 8, 64, device="cuda", dtype=torch.float16)
    kv = torch.randn(1, 2, 0, 64, device="cuda", dtype=torch.float16)
    sk = torch.tensor([0.5, -2.0], device="cuda")
    o, lse = flashmlir.attention(q, kv, kv, sinks=sk, return_lse=True)
    assert torch.all(o == 0) and torch.equal(lse, sk.view(1, 2, 1).expand(1, 2, 8))
    k = torch.randn(1, 2, 30, 64, device="cuda", dtype=torch.float16)
    o0, l0 = flashmlir.attention(q, k, k, return_lse=True, causal=True)
    o1, l1 = flashmlir.attention(q, k, k, return_lse=True, causal=True,
                                 sinks=torch.full((2,), -math.inf, device="cuda"))
    assert torch.equal(o0, o1) and torch.equal(l0, l1)
    with pytest.raises(ValueError, match="sinks is on cpu but q is on cuda"):
        flashmlir.attention(q, k, k, sinks=sk.cpu())
    with pytest.raises(ValueError, match=r"sinks must have shape \(nheads,\) = \(2,\)"):
        flashmlir.attention(q, k, k, sinks=torch.ones(3, device="cuda"))


def test_score_mods_on_cuda_raise():
    """User regions have no GPU kernels yet: a clear error naming the
    argument, never a silently different result."""
    q = torch.randn(1, 2, 8, 64, device="cuda", dtype=torch.float16)
    for kw, name in ((dict(mask_mod=lambda b, h, i, j: j <= i), "mask_mod"),
                     (dict(score_mod=lambda s, b, h, i, j: s * 2), "score_mod")):
        with pytest.raises(NotImplementedError,
                           match=f"{name} on CUDA: .*attention sinks, ALiBi and RoPE"):
            flashmlir.attention(q, q, q, **kw)


# Fused RoPE on the GPU kernels (the `_rope` kernel variant: Q / K tiles
# rotated in shared memory, dQ / dK rotated back): forward and gradients
# against the float64 reference on rotated q / k (reference.rope_reference).
ROPE_CASES = [
    ("rope-neox", 2, 4, 4, 70, 70, 64, 64, dict(rotary=(64, False))),
    ("rope-gptj-causal-gqa-cross", 2, 4, 2, 50, 130, 64, 64,
     dict(causal=True, rotary=(64, True))),
    ("rope-partial-d128-causal", 1, 4, 4, 300, 300, 128, 128, dict(causal=True, rotary=(64, False))),
    ("rope-partial-gptj-window-bshd", 2, 4, 2, 97, 97, 128, 128,
     dict(window=(16, 5), softcap=20.0, layout="bshd", rotary=(32, True))),
    ("rope-d128-long", 1, 2, 2, 1000, 1000, 128, 128, dict(causal=True, rotary=(128, False))),
    ("rope-sinks-alibi", 1, 4, 2, 130, 130, 64, 64,
     dict(causal=True, sinks=True, alibi="head", rotary=(64, False))),
    ("rope-decode-gqa", 3, 8, 2, 1, 3000, 128, 128, dict(rotary=(128, False))),
    ("rope-decode-causal", 2, 4, 1, 4, 700, 64, 64, dict(causal=True, rotary=(64, True))),
]


@pytest.mark.parametrize("case", ROPE_CASES, ids=[c[0] for c in ROPE_CASES])
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=["f16", "bf16"])
def test_rope_cuda(case, dtype):
    check_case("cuda", dtype, case)


def test_rope_cuda_errors():
    """What the GPU kernels cannot do is an error that names it: a rotary dim
    that is not a multiple of 16, float32 (SIMT kernels)."""
    q = torch.randn(1, 2, 8, 64, device="cuda", dtype=torch.float16)
    cos, sin = torch.ones(8, 12, device="cuda"), torch.zeros(8, 12, device="cuda")
    with pytest.raises(flashmlir.FlashMLIRError, match="rotary_dim 24 must be a multiple of 16"):
        flashmlir.attention(q, q, q, rotary_cos=cos, rotary_sin=sin)
    cos, sin = torch.ones(8, 32, device="cuda"), torch.zeros(8, 32, device="cuda")
    with pytest.raises(ValueError, match="rotary_cos is on cpu but q is on cuda"):
        flashmlir.attention(q, q, q, rotary_cos=cos.cpu(), rotary_sin=sin.cpu())
    o = flashmlir.attention(q, q, q, rotary_cos=cos, rotary_sin=sin)  # cos 1, sin 0: identity
    assert torch.allclose(o, flashmlir.attention(q, q, q), atol=1e-3)


# ALiBi on the GPU kernels (the `_alibi` kernel variant: -slope |i + Nk - Nq -
# j| added to each score in the forward, the split-KV decode and the
# backward): values, lse and gradients against the float64 reference, slopes
# per head ("head", [Hq]) or per sequence and head ("batch", [B, Hq]).
ALIBI_CASES = [
    ("alibi-plain", 2, 4, 4, 70, 70, 64, 64, dict(alibi="head")),
    ("alibi-gqa-causal-cross", 2, 4, 2, 50, 130, 64, 64, dict(causal=True, alibi="batch")),
    ("alibi-causal-nq>nk", 1, 2, 1, 90, 40, 64, 64, dict(causal=True, alibi="head")),
    ("alibi-window-softcap-bshd", 2, 4, 2, 97, 97, 64, 64,
     dict(window=(16, 5), softcap=20.0, layout="bshd", alibi="batch")),
    ("alibi-sinks-causal", 1, 4, 2, 130, 130, 64, 64, dict(causal=True, alibi="head", sinks=True)),
    ("alibi-d128-causal-long", 1, 4, 4, 1000, 1000, 128, 128, dict(causal=True, alibi="batch")),
    ("alibi-d128-noncausal-cross", 2, 4, 1, 200, 333, 128, 128, dict(alibi="head")),
    ("alibi-decode-gqa-split", 3, 8, 2, 1, 3000, 128, 128, dict(alibi="batch")),
    ("alibi-decode-causal-split", 2, 4, 1, 4, 700, 64, 64, dict(causal=True, alibi="head")),
]


@pytest.mark.parametrize("dtype", DTYPES, ids=IDS)
@pytest.mark.parametrize("case", ALIBI_CASES, ids=[c[0] for c in ALIBI_CASES])
def test_alibi_cuda(case, dtype):
    check_case("cuda", dtype, case)


def test_alibi_cuda_matches_flash_attn_api_and_changes_result():
    """flash_attn_func's alibi_slopes reach the GPU kernels: the result is the
    one flashmlir.attention gives, and slopes of 0 give the plain attention
    (the ALiBi kernels with a zero bias)."""
    g = torch.Generator().manual_seed(21)
    q = torch.randn(2, 300, 4, 64, generator=g).to("cuda", torch.bfloat16)
    k = torch.randn(2, 300, 4, 64, generator=g).to("cuda", torch.bfloat16)
    sl = (torch.rand(2, 4, generator=g) * 0.3).cuda()
    o1 = flashmlir.flash_attn_func(q, k, k, causal=True, alibi_slopes=sl)
    o2 = flashmlir.attention(q, k, k, causal=True, alibi_slopes=sl, layout="bshd")
    assert torch.equal(o1, o2)
    plain = flashmlir.attention(q, k, k, causal=True, layout="bshd")
    zero = flashmlir.attention(q, k, k, causal=True, layout="bshd",
                               alibi_slopes=torch.zeros(4, device="cuda"))
    assert (zero.float() - plain.float()).abs().max() < 2e-2
    assert (o1.float() - plain.float()).abs().max() > 0.1
    with pytest.raises(ValueError, match="alibi_slopes is on cpu but q is on cuda"):
        flashmlir.attention(q, k, k, alibi_slopes=sl.cpu(), layout="bshd")
    with pytest.raises(TypeError, match="alibi_slopes"):
        flashmlir.attention(q, k, k, alibi_slopes=sl.double(), layout="bshd")

def test_sinks_grad_bit_reproducible():
    """d sinks is summed in a fixed order (attn_bwd_pre's second pass): the
    same inputs give the same bits."""
    g = torch.Generator().manual_seed(15)
    q = torch.randn(3, 8, 700, 64, generator=g).to("cuda", torch.bfloat16)
    k = torch.randn(3, 2, 700, 64, generator=g).to("cuda", torch.bfloat16)
    do = torch.randn(3, 8, 700, 64, generator=g).to("cuda", torch.bfloat16)
    sk = torch.randn(8, generator=g).to("cuda").requires_grad_()
    grads = []
    for _ in range(3):
        sk.grad = None
        flashmlir.attention(q, k, k, causal=True, sinks=sk).backward(do)
        grads.append(sk.grad.clone())
    assert grads[0].abs().max() > 0
    assert all(torch.equal(grads[0], x) for x in grads[1:])


def test_kvcache_rotary_cuda():
    """flash_attn_with_kvcache's RoPE (FlashAttention-2's semantics) on CUDA
    tensors against float64 per sequence: the appended keys rotated (GPT-J
    pairs, the function's default) at their cache positions, q at
    cache_seqlens + i (causal), attention over the updated cache. (Needs no
    compiler library: the GPU machine has only the runtime.)"""
    import numpy as np
    from reference import rotate
    g = torch.Generator().manual_seed(7)
    B, Hq, Hkv, D, Nn, cap = 2, 8, 2, 64, 1, 256
    mk = lambda *s: torch.randn(*s, generator=g)  # noqa: E731
    q, kn, vn = mk(B, Nn, Hq, D), mk(B, Nn, Hkv, D), mk(B, Nn, Hkv, D)
    kc, vc = mk(B, cap, Hkv, D), mk(B, cap, Hkv, D)
    lens = [17, 200]
    inv = 10000.0 ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)
    ang = torch.arange(cap, dtype=torch.float64)[:, None] * inv[None, :]
    cos, sin = ang.cos().float(), ang.sin().float()
    t = [x.to("cuda", torch.float16) for x in (q, kc, vc, kn, vn)]
    o = flashmlir.flash_attn_with_kvcache(
        t[0], t[1], t[2], k=t[3], v=t[4], rotary_cos=cos.cuda(), rotary_sin=sin.cuda(),
        cache_seqlens=torch.tensor(lens, dtype=torch.int32, device="cuda"), causal=True)
    # The reference from the float16-rounded inputs, [B, H, N, D] float64.
    h = lambda x: x.half().double().transpose(1, 2).numpy()  # noqa: E731
    qh, kch, vch, knh, vnh = (h(x) for x in (q, kc, vc, kn, vn))
    cn, sn = cos.numpy(), sin.numpy()
    for b, L in enumerate(lens):
        pos = np.arange(L, L + Nn)
        krot = rotate(knh[b:b + 1], pos, cn, sn, True)
        keys = np.concatenate([kch[b:b + 1, :, :L], krot], axis=2)
        vals = np.concatenate([vch[b:b + 1, :, :L], vnh[b:b + 1]], axis=2)
        ref = attention_ref(rotate(qh[b:b + 1], pos, cn, sn, True), keys, vals, causal=True)[0]
        got = f64(o[b:b + 1]).transpose(0, 2, 1, 3)
        assert rel_err(got, ref) < 2e-3, (b, rel_err(got, ref))
        cached = f64(t[1][b:b + 1, :L + Nn]).transpose(0, 2, 1, 3)
        assert rel_err(cached, keys) < 2e-3, b
