"""attn.attention's KV-cache form end to end on the CPU: a paged cache
(block size 4, a shuffled block table, per-sequence lengths 0, 1, 9 and the
full 12) and a contiguous cache with lengths, each lowered by
attn-tile-forward (with bufferization) and run with mlir-runner, against a
float64 per-sequence reference (GQA 4/2, causal with Nq = 2: masks aligned
to each sequence's own length; a sequence with no key gives O = 0)."""
import math
import random
import sys

from mlir_e2e import dense, execute

fa_opt, runner, libdir, work = sys.argv[1:5]
B, HQ, HKV, NQ, D, BS, MB = 4, 4, 2, 2, 8, 4, 3   # 3 blocks of 4 rows per sequence
CAP = BS * MB
NB = B * MB + 2                                    # two spare blocks in the pool
G = HQ // HKV
SCALE = 1 / math.sqrt(D)
LENS = [0, 1, 9, 12]
rng = random.Random(77)


def tensor(shape):
    return [rng.uniform(-1, 1) for _ in range(math.prod(shape))]


q = tensor([B, HQ, NQ, D])
pool_k, pool_v = tensor([NB, HKV, BS, D]), tensor([NB, HKV, BS, D])
perm = list(range(NB))
rng.shuffle(perm)
table = [perm[b * MB:(b + 1) * MB] for b in range(B)]


def pool_at(pool, blk, h, r, d):
    return pool[((blk * HKV + h) * BS + r) * D + d]


def key(pool, b, h, n, d):  # key n of sequence b through the table
    return pool_at(pool, table[b][n // BS], h, n % BS, d)


# The same keys as a contiguous cache [B, HKV, CAP, D].
cont_k = [key(pool_k, b, h, n, d) for b in range(B) for h in range(HKV) for n in range(CAP)
          for d in range(D)]
cont_v = [key(pool_v, b, h, n, d) for b in range(B) for h in range(HKV) for n in range(CAP)
          for d in range(D)]

Q4 = f"tensor<{B}x{HQ}x{NQ}x{D}xf32>"
P4 = f"tensor<{NB}x{HKV}x{BS}x{D}xf32>"
C4 = f"tensor<{B}x{HKV}x{CAP}x{D}xf32>"
module = f"""
func.func private @printMemrefF32(memref<*xf32>) attributes {{llvm.emit_c_interface}}

func.func @main() {{
  %q = arith.constant dense<{dense(q, [B, HQ, NQ, D])}> : {Q4}
  %pk = arith.constant dense<{dense(pool_k, [NB, HKV, BS, D])}> : {P4}
  %pv = arith.constant dense<{dense(pool_v, [NB, HKV, BS, D])}> : {P4}
  %ck = arith.constant dense<{dense(cont_k, [B, HKV, CAP, D])}> : {C4}
  %cv = arith.constant dense<{dense(cont_v, [B, HKV, CAP, D])}> : {C4}
  %lens = arith.constant dense<{LENS}> : tensor<{B}xi32>
  %table = arith.constant dense<{table}> : tensor<{B}x{MB}xi32>
  %o0 = tensor.empty() : {Q4}
  %po = attn.attention ins(%q, %pk, %pv : {Q4}, {P4}, {P4})
      kv_cache(%lens : tensor<{B}xi32>) block_table(%table : tensor<{B}x{MB}xi32>)
      outs(%o0 : {Q4}) {{causal}} -> {Q4}
  %co = attn.attention ins(%q, %ck, %cv : {Q4}, {C4}, {C4})
      kv_cache(%lens : tensor<{B}xi32>)
      outs(%o0 : {Q4}) {{causal}} -> {Q4}
  %m1 = bufferization.to_buffer %po : {Q4} to memref<{B}x{HQ}x{NQ}x{D}xf32>
  %u1 = memref.cast %m1 : memref<{B}x{HQ}x{NQ}x{D}xf32> to memref<*xf32>
  call @printMemrefF32(%u1) : (memref<*xf32>) -> ()
  %m2 = bufferization.to_buffer %co : {Q4} to memref<{B}x{HQ}x{NQ}x{D}xf32>
  %u2 = memref.cast %m2 : memref<{B}x{HQ}x{NQ}x{D}xf32> to memref<*xf32>
  call @printMemrefF32(%u2) : (memref<*xf32>) -> ()
  return
}}
"""

LOWER = ["--one-shot-bufferize=bufferize-function-boundaries", "--attn-to-loops",
         "--convert-scf-to-cf", "--expand-strided-metadata", "--lower-affine",
         "--convert-to-llvm", "--reconcile-unrealized-casts"]


with open(f"{work}/kv_cache.mlir", "w") as f:
    f.write(module)
paged_out, cont_out = execute(fa_opt, runner, libdir, module, LOWER)

ref = []
for b in range(B):
    n = LENS[b]
    for h in range(HQ):
        hk = h // G
        for i in range(NQ):
            diag = i + (n - NQ)
            s = [sum(q[((b * HQ + h) * NQ + i) * D + d] * key(pool_k, b, hk, j, d)
                     for d in range(D)) * SCALE if j <= diag else -math.inf for j in range(n)]
            if not s or max(s) == -math.inf:
                ref += [0.0] * D
                continue
            m = max(s)
            e = [math.exp(x - m) for x in s]
            z = sum(e)
            ref += [sum(e[j] / z * key(pool_v, b, hk, j, d) for j in range(n)) for d in range(D)]
assert len(paged_out) == len(ref) == len(cont_out), (len(paged_out), len(cont_out), len(ref))
ep = max(abs(a - r) for a, r in zip(paged_out, ref))
ec = max(abs(a - r) for a, r in zip(cont_out, ref))
print(f"elements {len(ref)}")
print(f"paged vs float64 {ep:.2e}, contiguous vs float64 {ec:.2e}, "
      f"paged == contiguous: {paged_out == cont_out}")
ok = ep < 1e-5 and ec < 1e-5 and paged_out == cont_out
print("OK" if ok else "FAIL")
sys.exit(0 if ok else 1)
