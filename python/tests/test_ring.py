"""Context-parallel (ring) attention (flashmlir.ring_attention) on the CPU:
W = 1..4 gloo processes, each with its shard; the gathered output and
gradients against flashmlir.attention on the whole sequence in one process
(the same kernels: differences are summation order only), causal
(zigzag and contiguous shards) and not, MHA and GQA. Skipped without torch,
torch.distributed's gloo backend or the compiler library (CPU tensors)."""

import os
import socket

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
import torch.multiprocessing as mp  # noqa: E402

import flashmlir  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not flashmlir.available()["compiler"],
                       reason="libflashmlir_c (runs CPU tensors) not found"),
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(),
                       reason="torch.distributed with gloo not available"),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _inputs(B, N, Hq, Hkv, D, seed):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(B, N, Hq, D, generator=g)
    k = torch.randn(B, N, Hkv, D, generator=g)
    v = torch.randn(B, N, Hkv, D, generator=g)
    do = torch.randn(B, N, Hq, D, generator=g)
    return q, k, v, do


def _worker(rank, world, port, case, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        B, N, Hq, Hkv, D, causal, layout = case
        q, k, v, do = _inputs(B, N, Hq, Hkv, D, 7)
        shard = lambda t: flashmlir.shard_sequence(t, rank, world, layout).clone()  # noqa: E731
        ql, kl, vl = (shard(t).requires_grad_() for t in (q, k, v))
        out = flashmlir.ring_attention(ql, kl, vl, causal=causal, layout_chunks=layout)
        out.backward(shard(do))
        torch.save({"out": out.detach(), "dq": ql.grad, "dk": kl.grad, "dv": vl.grad},
                   os.path.join(out_dir, f"r{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _relerr(x, ref):
    return ((x.double() - ref.double()).norm() / ref.double().norm()).item()


CASES = [
    # B, N, Hq, Hkv, D, causal, layout
    (1, 32, 2, 2, 16, True, "zigzag"),
    (2, 48, 4, 2, 16, True, "zigzag"),
    (1, 40, 2, 1, 8, False, "contiguous"),
    (1, 24, 2, 2, 16, True, "contiguous"),
]


@pytest.mark.parametrize("world", [1, 2, 3, 4])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"N{c[1]}-{c[2]}/{c[3]}-"
                         f"{'causal' if c[5] else 'full'}-{c[6]}")
def test_ring_matches_one_process(world, case, tmp_path):
    B, N, Hq, Hkv, D, causal, layout = case
    parts = 2 * world if layout == "zigzag" else world
    if N % parts:
        pytest.skip(f"N={N} is not a multiple of {parts}")
    mp.start_processes(_worker, args=(world, _free_port(), case, str(tmp_path)), nprocs=world,
                       join=True, start_method="fork")
    res = [torch.load(tmp_path / f"r{r}.pt") for r in range(world)]
    got = {k: flashmlir.unshard_sequence([x[k] for x in res], layout) for k in res[0]}
    q, k, v, do = _inputs(B, N, Hq, Hkv, D, 7)
    q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
    ref = flashmlir.attention(q, k, v, causal=causal, layout="bshd")
    ref.backward(do)
    for name, r in (("out", ref), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)):
        assert _relerr(got[name], r.detach()) < 2e-6, name


def test_shard_roundtrip_and_errors():
    x = torch.arange(2 * 24 * 3).reshape(2, 24, 3)
    for layout in ("zigzag", "contiguous"):
        shards = [flashmlir.shard_sequence(x, r, 3, layout) for r in range(3)]
        assert torch.equal(flashmlir.unshard_sequence(shards, layout), x)
    # zigzag: rank 0 holds the first and the last of 2W chunks
    assert flashmlir.shard_sequence(x, 0, 3, "zigzag")[0, :, 0].tolist() == \
        [0, 3, 6, 9, 60, 63, 66, 69]
    with pytest.raises(ValueError, match="not a multiple of 6"):
        flashmlir.shard_sequence(torch.zeros(1, 10, 1), 0, 3)
    with pytest.raises(ValueError, match="layout_chunks must be"):
        flashmlir.shard_sequence(x, 0, 3, "striped")
    with pytest.raises(RuntimeError, match="torch.distributed is not initialized"):
        flashmlir.ring_attention(torch.zeros(1, 4, 1, 8), torch.zeros(1, 4, 1, 8),
                                 torch.zeros(1, 4, 1, 8))
