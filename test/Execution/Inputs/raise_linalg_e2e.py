#!/usr/bin/env python3
"""End to end for attn-raise-linalg: a linalg module (naive attention as
torch-mlir emits it: 4-D contractions, K^T by a permuting linalg.generic,
scale by multiply, a constant causal + sliding-window additive mask,
max / sub / exp / sum / div softmax, GQA by repeat_interleave of K and V)
with random constant inputs, run on the CPU twice with mlir-runner: as is
(linalg lowered to loops) and after fa-opt --attn-raise-linalg (the
attn.attention through FlashMLIR's tiled CPU lowering). Both printed
outputs are compared with each other and with a float64 reference computed
here.

usage: raise_linalg_e2e.py FA_OPT MLIR_RUNNER LIB_DIR WORK_DIR
Prints "raised: yes/no", the two errors, and "OK" or "FAIL"; exit 1 on FAIL.
"""
import math
import random
import re
import sys

from mlir_e2e import dense, execute, run

fa_opt, runner, libdir, work = sys.argv[1:5]
B, HQ, HKV, N, D = 1, 4, 2, 12, 8
G = HQ // HKV
WINDOW = 4          # keys i - WINDOW .. i (causal sliding window)
SCALE = 1 / math.sqrt(D)
rng = random.Random(1234)


def tensor(shape):
    n = math.prod(shape)
    return [rng.uniform(-1, 1) for _ in range(n)]


q, k, v = tensor([B, HQ, N, D]), tensor([B, HKV, N, D]), tensor([B, HKV, N, D])


def visible(i, j):
    return i - WINDOW <= j <= i


mask = [0.0 if visible(i, j) else float("-inf") for i in range(N) for j in range(N)]
mask_text = "[" + ", ".join(
    "[" + ", ".join("0.0" if visible(i, j) else "0xFF800000" for j in range(N)) + "]"
    for i in range(N)) + "]"

T = lambda *s: "tensor<" + "x".join(map(str, s)) + "xf32>"  # noqa: E731
S4, Q4, K4 = T(B, HQ, N, N), T(B, HQ, N, D), T(B, HKV, N, D)
R4 = T(B, HQ, N)
ID4 = "affine_map<(a, b, c, d) -> (a, b, c, d)>"
ROW4 = "affine_map<(a, b, c, d) -> (a, b, c)>"
PAR4 = '["parallel", "parallel", "parallel", "parallel"]'
module = f"""
#qmap = affine_map<(b, h, m, n, k) -> (b, h, m, k)>
#ktmap = affine_map<(b, h, m, n, k) -> (b, h, k, n)>
#smap = affine_map<(b, h, m, n, k) -> (b, h, m, n)>
func.func @attention(%q: {Q4}, %k: {K4}, %v: {K4}) -> {Q4} {{
  %zero = arith.constant 0.0 : f32
  %ninf = arith.constant 0xFF800000 : f32
  %scale = arith.constant {SCALE:.9e} : f32
  %mask = arith.constant dense<{mask_text}> : {T(N, N)}
  // repeat_interleave(k, G, dim=1) and the same for v
  %k5 = tensor.expand_shape %k [[0], [1, 2], [3], [4]] output_shape [{B}, {HKV}, 1, {N}, {D}] : {K4} into {T(B, HKV, 1, N, D)}
  %v5 = tensor.expand_shape %v [[0], [1, 2], [3], [4]] output_shape [{B}, {HKV}, 1, {N}, {D}] : {K4} into {T(B, HKV, 1, N, D)}
  %e5 = tensor.empty() : {T(B, HKV, G, N, D)}
  %kb = linalg.generic {{indexing_maps = [affine_map<(a, b, c, d, e) -> (a, b, 0, d, e)>, affine_map<(a, b, c, d, e) -> (a, b, c, d, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}} ins(%k5 : {T(B, HKV, 1, N, D)}) outs(%e5 : {T(B, HKV, G, N, D)}) {{
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  }} -> {T(B, HKV, G, N, D)}
  %vb = linalg.generic {{indexing_maps = [affine_map<(a, b, c, d, e) -> (a, b, 0, d, e)>, affine_map<(a, b, c, d, e) -> (a, b, c, d, e)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "parallel"]}} ins(%v5 : {T(B, HKV, 1, N, D)}) outs(%e5 : {T(B, HKV, G, N, D)}) {{
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  }} -> {T(B, HKV, G, N, D)}
  %kr = tensor.collapse_shape %kb [[0], [1, 2], [3], [4]] : {T(B, HKV, G, N, D)} into {Q4}
  %vr = tensor.collapse_shape %vb [[0], [1, 2], [3], [4]] : {T(B, HKV, G, N, D)} into {Q4}
  // k.transpose(-2, -1)
  %kt0 = tensor.empty() : {T(B, HQ, D, N)}
  %kt = linalg.generic {{indexing_maps = [affine_map<(a, b, c, d) -> (a, b, d, c)>, {ID4}], iterator_types = {PAR4}}} ins(%kr : {Q4}) outs(%kt0 : {T(B, HQ, D, N)}) {{
  ^bb0(%x: f32, %o: f32):
    linalg.yield %x : f32
  }} -> {T(B, HQ, D, N)}
  %s0 = tensor.empty() : {S4}
  %sz = linalg.fill ins(%zero : f32) outs(%s0 : {S4}) -> {S4}
  %s = linalg.generic {{indexing_maps = [#qmap, #ktmap, #smap], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}} ins(%q, %kt : {Q4}, {T(B, HQ, D, N)}) outs(%sz : {S4}) {{
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  }} -> {S4}
  %ss = linalg.generic {{indexing_maps = [{ID4}, {ID4}], iterator_types = {PAR4}}} ins(%s : {S4}) outs(%s0 : {S4}) {{
  ^bb0(%x: f32, %o: f32):
    %y = arith.mulf %x, %scale : f32
    linalg.yield %y : f32
  }} -> {S4}
  %sm = linalg.generic {{indexing_maps = [{ID4}, affine_map<(a, b, c, d) -> (c, d)>, {ID4}], iterator_types = {PAR4}}} ins(%ss, %mask : {S4}, {T(N, N)}) outs(%s0 : {S4}) {{
  ^bb0(%x: f32, %mk: f32, %o: f32):
    %y = arith.addf %x, %mk : f32
    linalg.yield %y : f32
  }} -> {S4}
  %r0 = tensor.empty() : {R4}
  %mx0 = linalg.fill ins(%ninf : f32) outs(%r0 : {R4}) -> {R4}
  %mx = linalg.generic {{indexing_maps = [{ID4}, {ROW4}], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}} ins(%sm : {S4}) outs(%mx0 : {R4}) {{
  ^bb0(%x: f32, %acc: f32):
    %y = arith.maximumf %x, %acc : f32
    linalg.yield %y : f32
  }} -> {R4}
  %sub = linalg.generic {{indexing_maps = [{ID4}, {ROW4}, {ID4}], iterator_types = {PAR4}}} ins(%sm, %mx : {S4}, {R4}) outs(%s0 : {S4}) {{
  ^bb0(%x: f32, %m: f32, %o: f32):
    %y = arith.subf %x, %m : f32
    linalg.yield %y : f32
  }} -> {S4}
  %ex = linalg.generic {{indexing_maps = [{ID4}, {ID4}], iterator_types = {PAR4}}} ins(%sub : {S4}) outs(%s0 : {S4}) {{
  ^bb0(%x: f32, %o: f32):
    %y = math.exp %x : f32
    linalg.yield %y : f32
  }} -> {S4}
  %sum0 = linalg.fill ins(%zero : f32) outs(%r0 : {R4}) -> {R4}
  %sum = linalg.generic {{indexing_maps = [{ID4}, {ROW4}], iterator_types = ["parallel", "parallel", "parallel", "reduction"]}} ins(%ex : {S4}) outs(%sum0 : {R4}) {{
  ^bb0(%x: f32, %acc: f32):
    %y = arith.addf %x, %acc : f32
    linalg.yield %y : f32
  }} -> {R4}
  %p = linalg.generic {{indexing_maps = [{ID4}, {ROW4}, {ID4}], iterator_types = {PAR4}}} ins(%ex, %sum : {S4}, {R4}) outs(%s0 : {S4}) {{
  ^bb0(%x: f32, %z: f32, %o: f32):
    %y = arith.divf %x, %z : f32
    linalg.yield %y : f32
  }} -> {S4}
  %o0 = tensor.empty() : {Q4}
  %oz = linalg.fill ins(%zero : f32) outs(%o0 : {Q4}) -> {Q4}
  %o = linalg.generic {{indexing_maps = [affine_map<(b, h, m, n, k) -> (b, h, m, k)>, affine_map<(b, h, m, n, k) -> (b, h, k, n)>, affine_map<(b, h, m, n, k) -> (b, h, m, n)>], iterator_types = ["parallel", "parallel", "parallel", "parallel", "reduction"]}} ins(%p, %vr : {S4}, {Q4}) outs(%oz : {Q4}) {{
  ^bb0(%a: f32, %b: f32, %acc: f32):
    %m = arith.mulf %a, %b : f32
    %r = arith.addf %acc, %m : f32
    linalg.yield %r : f32
  }} -> {Q4}
  return %o : {Q4}
}}

func.func private @printMemrefF32(memref<*xf32>) attributes {{llvm.emit_c_interface}}

func.func @main() {{
  %q = arith.constant dense<{dense(q, [B, HQ, N, D])}> : {Q4}
  %k = arith.constant dense<{dense(k, [B, HKV, N, D])}> : {K4}
  %v = arith.constant dense<{dense(v, [B, HKV, N, D])}> : {K4}
  %o = call @attention(%q, %k, %v) : ({Q4}, {K4}, {K4}) -> {Q4}
  %m = bufferization.to_buffer %o : {Q4} to memref<{B}x{HQ}x{N}x{D}xf32>
  %u = memref.cast %m : memref<{B}x{HQ}x{N}x{D}xf32> to memref<*xf32>
  call @printMemrefF32(%u) : (memref<*xf32>) -> ()
  return
}}
"""

LOWER = ["--one-shot-bufferize=bufferize-function-boundaries", "--convert-linalg-to-loops",
         "--attn-to-loops", "--convert-scf-to-cf", "--expand-strided-metadata",
         "--lower-affine", "--convert-to-llvm", "--reconcile-unrealized-casts"]


def execute_module(text):
    return execute(fa_opt, runner, libdir, text, LOWER)[0]


with open(f"{work}/naive.mlir", "w") as f:
    f.write(module)
raised = run([fa_opt, "--attn-raise-linalg", f"{work}/naive.mlir"])
with open(f"{work}/raised.mlir", "w") as f:
    f.write(raised)
attn_line = [l.strip() for l in raised.splitlines() if "attn.attention" in l]
print("raised:", "yes" if attn_line else "no")
if attn_line:
    print(re.sub(r"%\w+", "%_", attn_line[0]))
naive_out, raised_out = execute_module(module), execute_module(raised)

# float64 reference
ref = []
for h in range(HQ):
    hk = h // G
    for i in range(N):
        s = [sum(q[((h * N) + i) * D + d] * k[((hk * N) + j) * D + d] for d in range(D)) * SCALE
             if visible(i, j) else -math.inf for j in range(N)]
        m = max(s)
        e = [math.exp(x - m) for x in s]
        z = sum(e)
        for d in range(D):
            ref.append(sum(e[j] / z * v[((hk * N) + j) * D + d] for j in range(N)))
n = len(ref)
assert len(naive_out) == n and len(raised_out) == n, (len(naive_out), len(raised_out), n)
err_raised = max(abs(a - b) for a, b in zip(raised_out, ref))
err_naive = max(abs(a - b) for a, b in zip(naive_out, ref))
diff = max(abs(a - b) for a, b in zip(raised_out, naive_out))
print(f"elements {n}")
print(f"naive vs float64 {err_naive:.2e}, raised vs float64 {err_raised:.2e}, raised vs naive {diff:.2e}")
ok = attn_line and err_raised < 1e-5 and err_naive < 1e-5 and diff < 1e-5
print("OK" if ok else "FAIL")
sys.exit(0 if ok else 1)
