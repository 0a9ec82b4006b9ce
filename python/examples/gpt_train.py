#!/usr/bin/env python3
"""Train a small GPT twice -- once with flashmlir.attention, once with
torch.nn.functional.scaled_dot_product_attention -- and compare the loss curves.

    python3 python/examples/gpt_train.py --device cuda            # f32
    python3 python/examples/gpt_train.py --device cuda --dtype bf16
    python3 python/examples/gpt_train.py --device cpu             # f32, small sizes

The model: token + position embeddings, 2 pre-LayerNorm blocks of causal
multi-head self-attention and a GELU MLP, a tied output head. Both runs start
from the same seed (same initial weights), see the same batches of random
tokens (two fixed batches, so the loss falls as the model memorizes them) and use
the same AdamW; they differ only in the attention function. Since Nq == Nk,
FlashMLIR's bottom-right causal mask equals SDPA's top-left one.

Prints both loss curves and the largest relative difference between them, and
exits 1 when it exceeds the tolerance or when either run fails to learn.

The tolerance. Both attention implementations compute the same function; in
f32 each is within ~1e-6 (relative, ||x - ref|| / ||ref||) of a float64
reference, the kernels' checked bound being 1e-5 for outputs and 2e-5 for
gradients. Such perturbations of a single step change the loss by about the
same relative amount, and 30 optimizer steps amplify them by a modest factor
(the runs stay on the same trajectory; measured differences are ~1e-6 to
1e-5 on both devices). The f32 tolerance, 1e-3, leaves two orders of magnitude
of headroom for that growth while still failing on any real error: a wrong
mask, scale or gradient moves the loss by >= 1e-2 within a few steps. In bf16
(autocast on CUDA) each attention call is only ~2e-3..1e-2 accurate (the bf16
kernel bounds are 1.6e-2 / 3.2e-2; every output is rounded to bf16, ~4e-3 per
element), and training amplifies such differences chaotically: PyTorch's own
SDPA backends (its default kernel and its math backend) drift apart by several
percent over 30 steps. So a bf16 run also trains with the math backend to
measure that noise floor in the same process, and the bound is
max(3.2e-2 (the bf16 gradient bound), 4 x the floor): FlashMLIR may differ
from PyTorch's default kernel no more than about as much as PyTorch's two
kernels differ from each other.
"""

import argparse
import math
import os
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import flashmlir  # noqa: E402

TOLERANCE = {"f32": 1e-3, "bf16": 3.2e-2}


def flashmlir_attention(q, k, v):
    return flashmlir.attention(q, k, v, causal=True)


def torch_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def torch_math_attention(q, k, v):
    from torch.nn.attention import SDPBackend, sdpa_kernel
    with sdpa_kernel(SDPBackend.MATH):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)


class Block(nn.Module):
    def __init__(self, dim, heads, attn):
        super().__init__()
        self.heads, self.attn = heads, attn
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(B, N, 3, self.heads, C // self.heads).unbind(2)
        # [B, N, H, D] -> [B, H, N, D] views (no copies)
        o = self.attn(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2))
        x = x + self.proj(o.transpose(1, 2).reshape(B, N, C))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    def __init__(self, vocab, dim, heads, layers, seq, attn):
        super().__init__()
        self.tok = nn.Embedding(vocab, dim)
        nn.init.normal_(self.tok.weight, std=0.02)
        self.pos = nn.Parameter(torch.randn(seq, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, attn) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)

    def forward(self, idx):
        x = self.tok(idx) + self.pos[: idx.shape[1]]
        for b in self.blocks:
            x = b(x)
        return self.ln(x) @ self.tok.weight.t()


def train(attn, args, batches, device):
    torch.manual_seed(args.seed)
    model = GPT(args.vocab, args.dim, args.heads, 2, args.seq, attn).to(device)
    if args.compile:
        model = torch.compile(model, fullgraph=True)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    losses = []
    t0 = time.time()
    for step in range(args.steps):
        x, y = batches[step % len(batches)]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16"):
            logits = model(x)
        loss = F.cross_entropy(logits.float().reshape(-1, args.vocab), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    ap.add_argument("--dtype", choices=["f32", "bf16"], default="f32",
                    help="f32, or bf16 autocast (CUDA only)")
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--compile", action="store_true", help="torch.compile(fullgraph=True) both")
    ap.add_argument("--tolerance", type=float, default=None,
                    help="max relative loss difference (default: 1e-3 f32, 3.2e-2 bf16)")
    args = ap.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpt_train: --device cuda but torch sees no CUDA device", file=sys.stderr)
        return 2
    if args.device == "cpu" and args.dtype != "f32":
        print("gpt_train: --device cpu runs f32 only", file=sys.stderr)
        return 2
    if args.device == "cuda":  # head dim 64, in the default kernel bundle
        args.vocab, args.dim, args.heads, args.seq, args.batch = 256, 256, 4, 256, 4
    else:  # small: the CPU kernels are plain loops
        args.vocab, args.dim, args.heads, args.seq, args.batch = 128, 64, 4, 48, 4
    device = torch.device(args.device)
    if device.type == "cuda":
        # plain f32 matmuls in both runs (no TF32), so attention is the only difference
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False

    g = torch.Generator().manual_seed(1234)
    batches = []
    for _ in range(2):
        data = torch.randint(0, args.vocab, (args.batch, args.seq + 1), generator=g)
        batches.append((data[:, :-1].to(device), data[:, 1:].to(device)))

    print(f"gpt_train: device={args.device} dtype={args.dtype} steps={args.steps} "
          f"dim={args.dim} heads={args.heads} seq={args.seq} batch={args.batch} "
          f"compile={args.compile}; flashmlir {flashmlir.__version__}, torch {torch.__version__}")
    fm, t_fm = train(flashmlir_attention, args, batches, device)
    ref, t_ref = train(torch_attention, args, batches, device)
    floor = None
    if args.dtype == "bf16":
        # the noise floor: PyTorch's default SDPA kernel vs its math backend
        math_curve, _ = train(torch_math_attention, args, batches, device)
        floor = max(abs(a - b) / max(abs(b), 1e-12) for a, b in zip(math_curve, ref))

    print(f"{'step':>4}  {'flashmlir':>12}  {'torch sdpa':>12}  {'rel diff':>9}")
    worst = 0.0
    for i, (a, b) in enumerate(zip(fm, ref)):
        d = abs(a - b) / max(abs(b), 1e-12)
        worst = max(worst, d)
        print(f"{i:>4}  {a:>12.6f}  {b:>12.6f}  {d:>9.2e}")
    tol = TOLERANCE[args.dtype]
    if floor is not None:
        print(f"noise floor (torch sdpa default vs math backend, bf16): {floor:.3e}")
        tol = max(tol, 4 * floor)
    if args.tolerance is not None:
        tol = args.tolerance
    print(f"time: flashmlir {t_fm:.2f} s, torch sdpa {t_ref:.2f} s")
    print(f"max relative loss difference: {worst:.3e} (tolerance {tol:.1e})")

    ok = True
    if not all(math.isfinite(x) for x in fm + ref):
        print("FAIL: non-finite loss")
        ok = False
    if worst > tol:
        print("FAIL: the loss curves diverge")
        ok = False
    for name, curve in (("flashmlir", fm), ("torch sdpa", ref)):
        if not curve[-1] < 0.9 * curve[0]:
            print(f"FAIL: the {name} run did not learn ({curve[0]:.4f} -> {curve[-1]:.4f})")
            ok = False
    print("gpt_train: " + ("PASS" if ok else "FAIL"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
