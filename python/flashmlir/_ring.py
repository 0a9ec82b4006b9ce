"""Context-parallel (ring) attention over ``torch.distributed``.

The sequence is sharded over the ranks of a process group; each rank keeps
its query shard and passes its key / value shard around the ring (rank r
sends to r + 1 and receives from r - 1, ``torch.distributed`` point-to-point
operations: NCCL on GPUs, gloo on the CPU), attending its queries to every
shard that visits with FlashMLIR's kernel while the next shard is in flight.
The partial outputs are merged by their log-sum-exp; the result is the
attention of the whole sequence. The backward runs the same ring: dQ stays
with its rank, dK / dV travel with their key / value shard and arrive back
at its owner after a full turn. Every partial product uses the global output
and log-sum-exp, so each gradient is the one of the unsharded attention.

Layouts of the shards (``layout_chunks``):

* ``"zigzag"`` (the default; Llama 3's load balancing for causal masks): the
  sequence is cut into 2W chunks and rank r holds chunks r and 2W - 1 - r, so
  every rank does the same causal work;
* ``"contiguous"``: rank r holds chunk r (for non-causal attention).

``shard_sequence`` / ``unshard_sequence`` cut and reassemble a full sequence
in either layout. Shards are torch tensors ``[B, N / W, H, D]`` (bshd), the
same length on every rank; GQA/MQA as in ``flashmlir.attention``.
"""

import math


def _torch():
    import torch
    return torch


def chunk_ids(rank, world, layout):
    """The global chunk indices (in units of N / (2W) for zigzag, N / W for
    contiguous) that rank `rank` holds, in order."""
    if layout == "zigzag":
        return (rank, 2 * world - 1 - rank)
    if layout == "contiguous":
        return (rank,)
    raise ValueError(f"ring_attention: layout_chunks must be 'zigzag' or 'contiguous', "
                     f"got {layout!r}")


def shard_sequence(x, rank, world, layout="zigzag", dim=1):
    """Rank `rank`'s shard of a full sequence tensor `x` (sequence along
    `dim`)."""
    torch = _torch()
    parts = 2 * world if layout == "zigzag" else world
    n = x.shape[dim]
    if n % parts:
        raise ValueError(f"shard_sequence: sequence length {n} is not a multiple of "
                         f"{parts} ({layout} layout over {world} ranks)")
    chunks = x.chunk(parts, dim=dim)
    return torch.cat([chunks[c] for c in chunk_ids(rank, world, layout)], dim=dim)


def unshard_sequence(shards, layout="zigzag", dim=1):
    """The full sequence from every rank's shard (a list, rank order)."""
    torch = _torch()
    world = len(shards)
    per = 2 if layout == "zigzag" else 1
    pieces = {}
    for r, s in enumerate(shards):
        for c, piece in zip(chunk_ids(r, world, layout), s.chunk(per, dim=dim)):
            pieces[c] = piece
    return torch.cat([pieces[c] for c in range(per * world)], dim=dim)


def _pairs(q_ids, kv_ids, causal):
    """(query chunk position, key chunk position, diagonal) for every pair of
    this rank's query chunks and a visiting shard's key chunks that a causal
    mask leaves anything of (all pairs without one)."""
    out = []
    for i, qc in enumerate(q_ids):
        for j, kc in enumerate(kv_ids):
            if not causal or kc < qc:
                out.append((i, j, False))
            elif kc == qc:
                out.append((i, j, True))
    return out


def _merge(o_acc, lse_acc, o, lse):
    """Running (out, lse) merged with a partial one: rows with no keys yet
    (lse -inf) take the other side as is."""
    torch = _torch()
    new = torch.logaddexp(lse_acc, lse)
    a = torch.where(torch.isinf(new), torch.zeros_like(new), torch.exp(lse_acc - new))
    b = torch.where(torch.isinf(new), torch.zeros_like(new), torch.exp(lse - new))
    # lse [B, H, N] -> weights [B, N, H, 1] for bshd outputs.
    a = a.transpose(1, 2).unsqueeze(-1)
    b = b.transpose(1, 2).unsqueeze(-1)
    return o_acc * a + o.float() * b, new


class _Ring:
    """The ring's point-to-point exchange: send to rank + 1, receive from
    rank - 1, overlapped with the caller's work."""

    def __init__(self, group):
        import torch.distributed as dist
        self.dist = dist
        self.group = group
        self.rank = dist.get_rank(group)
        self.world = dist.get_world_size(group)
        # Global ranks of the neighbours (P2POp takes global ranks).
        ranks = dist.get_process_group_ranks(group) if group is not None else None
        glob = (lambda r: ranks[r]) if ranks is not None else (lambda r: r)
        self.next = glob((self.rank + 1) % self.world)
        self.prev = glob((self.rank - 1) % self.world)

    def start(self, tensors):
        """Sends `tensors`, receives the same shapes; returns (requests,
        received)."""
        dist = self.dist
        recv = [t.new_empty(t.shape) for t in tensors]
        ops = [dist.P2POp(dist.isend, t.contiguous(), self.next, self.group) for t in tensors]
        ops += [dist.P2POp(dist.irecv, r, self.prev, self.group) for r in recv]
        return dist.batch_isend_irecv(ops), recv

    @staticmethod
    def wait(reqs):
        for r in reqs:
            r.wait()


def _split(t, parts):
    return list(t.chunk(parts, dim=1)) if parts > 1 else [t]


def _forward(q, k, v, causal, scale, ring, layout):
    import flashmlir
    torch = _torch()
    W, r = ring.world, ring.rank
    q_ids = chunk_ids(r, W, layout)
    qs = _split(q, len(q_ids))
    B, Nq, Hq, Dv = q.shape[0], q.shape[1], q.shape[2], v.shape[3]
    n = Nq // len(q_ids)
    o_acc = [torch.zeros(B, n, Hq, Dv, dtype=torch.float32, device=q.device) for _ in qs]
    lse_acc = [torch.full((B, Hq, n), -math.inf, dtype=torch.float32, device=q.device)
               for _ in qs]
    kv = (k, v)
    for step in range(W):
        src = (r - step) % W
        reqs, nxt = ring.start(kv) if step + 1 < W else ([], None)
        ks, vs = _split(kv[0], len(q_ids)), _split(kv[1], len(q_ids))
        for i, j, diag in _pairs(q_ids, chunk_ids(src, W, layout), causal):
            o, lse = flashmlir.attention(qs[i], ks[j], vs[j], causal=diag, scale=scale,
                                         layout="bshd", return_lse=True)
            o_acc[i], lse_acc[i] = _merge(o_acc[i], lse_acc[i], o, lse)
        ring.wait(reqs)
        if nxt is not None:
            kv = tuple(nxt)
    out = torch.cat(o_acc, dim=1).to(q.dtype)
    lse = torch.cat(lse_acc, dim=2)
    return out, lse


def _backward(do, q, k, v, out, lse, causal, scale, ring, layout):
    import flashmlir
    torch = _torch()
    W, r = ring.world, ring.rank
    q_ids = chunk_ids(r, W, layout)
    parts = len(q_ids)
    qs, dos, outs = _split(q, parts), _split(do, parts), _split(out, parts)
    lses = list(lse.chunk(parts, dim=2)) if parts > 1 else [lse]
    dq = torch.zeros(q.shape, dtype=torch.float32, device=q.device)
    dqs = _split(dq, parts)
    # The visiting shard with its dK / dV accumulators (f32).
    kv = (k, v, torch.zeros(k.shape, dtype=torch.float32, device=k.device),
          torch.zeros(v.shape, dtype=torch.float32, device=v.device))
    for step in range(W):
        src = (r - step) % W
        kk, vv, dk, dv = kv
        # K / V go on at once (under this step's products); dK / dV after.
        kv_reqs, kv_next = ring.start((kk, vv)) if step + 1 < W else ([], None)
        ks, vs = _split(kk, parts), _split(vv, parts)
        dks, dvs = _split(dk, parts), _split(dv, parts)
        for i, j, diag in _pairs(q_ids, chunk_ids(src, W, layout), causal):
            g = flashmlir.attention_backward(qs[i], ks[j], vs[j], outs[i], lses[i], dos[i],
                                             causal=diag, scale=scale, layout="bshd")
            dqs[i] += g[0].float()
            dks[j] += g[1].float()
            dvs[j] += g[2].float()
        # (dks / dvs are views of dk / dv.) Pass the shard on with its
        # accumulators; after W hops they are back at their owner (the last
        # hop carries dK / dV only; one rank keeps its own).
        if W == 1:
            break
        reqs, got = ring.start((dk, dv))
        ring.wait(kv_reqs)
        ring.wait(reqs)
        kv = (tuple(kv_next) if kv_next is not None else (None, None)) + tuple(got)
    dq = torch.cat(dqs, dim=1) if parts > 1 else dqs[0]
    return dq.to(q.dtype), kv[2].to(k.dtype), kv[3].to(v.dtype)


def _function():
    torch = _torch()

    class RingAttention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, causal, scale, group, layout):
            ring = _Ring(group)
            out, lse = _forward(q, k, v, causal, scale, ring, layout)
            ctx.save_for_backward(q, k, v, out, lse)
            ctx.args = (causal, scale, group, layout)
            return out, lse

        @staticmethod
        def backward(ctx, do, dlse):
            q, k, v, out, lse = ctx.saved_tensors
            causal, scale, group, layout = ctx.args
            dq, dk, dv = _backward(do.contiguous(), q, k, v, out, lse, causal, scale,
                                   _Ring(group), layout)
            return dq, dk, dv, None, None, None, None

    return RingAttention


_RING = None


def ring_attention(q, k, v, *, causal=False, scale=None, group=None,
                   layout_chunks="zigzag", return_lse=False):
    """Attention of a sequence sharded over the ranks of `group` (default: the
    world): q ``[B, N/W, Hq, D]``, k / v ``[B, N/W, Hkv, D / Dv]`` this
    rank's shards in `layout_chunks` order (``shard_sequence``). Returns this
    rank's shard of the output (and, with ``return_lse``, its lse ``[B, Hq,
    N/W]``); differentiable. ``scale`` defaults to 1/sqrt(D); ``causal`` is
    the global causal mask (the chunks' positions in the full sequence)."""
    global _RING
    torch = _torch()
    import torch.distributed as dist
    where = "ring_attention"
    for name, t in (("q", q), ("k", k), ("v", v)):
        if not isinstance(t, torch.Tensor) or t.dim() != 4:
            raise TypeError(f"{where}: {name} must be a 4-d torch.Tensor [batch, seq/world, "
                            f"heads, dim], got {getattr(t, 'shape', type(t).__name__)}")
    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(f"{where}: torch.distributed is not initialized "
                           f"(init_process_group first)")
    if not isinstance(causal, bool):
        raise TypeError(f"{where}: causal must be a bool, got {causal!r}")
    parts = len(chunk_ids(0, 1, layout_chunks))
    if q.shape[1] != k.shape[1] or q.shape[1] % parts:
        raise ValueError(f"{where}: q and k/v shards must have the same length, a multiple "
                         f"of {parts} ({layout_chunks}); got {q.shape[1]} and {k.shape[1]}")
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    if _RING is None:
        _RING = _function()
    out, lse = _RING.apply(q, k, v, causal, float(scale), group, layout_chunks)
    return (out, lse) if return_lse else out
