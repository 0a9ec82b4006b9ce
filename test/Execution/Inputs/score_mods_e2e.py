"""ALiBi slopes and attention sinks end to end on the CPU: attn.attention and
attn.attention_backward with alibi_slopes / sinks / grad_sinks, lowered by
the tiled passes (4x4 tiles, so full and masked blocks both occur) and by
the unfused lowering, run with mlir-runner, against a float64 reference
written here from the op's documented semantics (softcap, then the bias
-slope |i + off - j|, then the mask; the sink one more logit of every row
with a zero value row). Checks O, lse, dQ, dK, dV and d sinks.

Cases: GQA 4/2 with Nq != Nk (bottom-right aligned masks), causal with
Nq > Nk (rows that see no key: O = 0, lse = sink), window + softcap,
per-head [Hq] and per-sequence [B, Hq] slopes, sinks alone, and both."""
import math
import random
import sys

from mlir_e2e import dense, execute

fa_opt, runner, libdir, work = sys.argv[1:5]
rng = random.Random(2026)


def tensor(shape, lo=-1.0, hi=1.0):
    return [rng.uniform(lo, hi) for _ in range(math.prod(shape))]


def reference(case, q, k, v, do, slopes, sinks):
    """float64 forward and backward of one case: o, lse, dq, dk, dv, dsinks."""
    B, HQ, HKV, NQ, NK, D = (case[x] for x in ("B", "HQ", "HKV", "NQ", "NK", "D"))
    G, off, scale = HQ // HKV, NK - NQ, 1 / math.sqrt(D)
    cap, (wl, wr), causal = case.get("softcap"), case.get("window", (-1, -1)), case.get("causal")
    at4 = lambda n, d: (lambda b, h, i, x: ((b * HQ + h) * n + i) * d + x)  # noqa: E731
    iq, ik = at4(NQ, D), (lambda b, h, j, x: ((b * HKV + h) * NK + j) * D + x)
    o, lse = [0.0] * (B * HQ * NQ * D), [0.0] * (B * HQ * NQ)
    dq, dk, dv = [0.0] * len(q), [0.0] * len(k), [0.0] * len(v)
    dsinks = [0.0] * HQ
    for b in range(B):
        for h in range(HQ):
            hk = h // G
            for i in range(NQ):
                S, T = [], []
                for j in range(NK):
                    x = scale * sum(q[iq(b, h, i, d)] * k[ik(b, hk, j, d)] for d in range(D))
                    t = 1.0
                    if cap:
                        th = math.tanh(x / cap)
                        x, t = cap * th, 1 - th * th
                    if slopes is not None:
                        x -= slopes(b, h) * abs(i + off - j)
                    if "score_mod" in case:
                        f, df = case["score_mod"]
                        x, t = f(b, h, i, j, x), t * df(b, h, i, j, x)
                    vis = True
                    if causal or wr >= 0:
                        vis = j <= i + off + (0 if causal else wr)
                    if wl >= 0:
                        vis = vis and j >= i + off - wl
                    if "mask_mod" in case:
                        vis = vis and case["mask_mod"](b, h, i, j)
                    S.append(x if vis else -math.inf)
                    T.append(t)
                logits = S + ([sinks[h]] if sinks is not None else [])
                m = max(logits)
                if m == -math.inf:
                    lse[(b * HQ + h) * NQ + i] = -math.inf
                    continue
                z = sum(math.exp(x - m) for x in logits)
                L = m + math.log(z)
                lse[(b * HQ + h) * NQ + i] = L
                P = [math.exp(x - L) for x in S]
                O = [sum(P[j] * v[ik(b, hk, j, d)] for j in range(NK)) for d in range(D)]
                for d in range(D):
                    o[iq(b, h, i, d)] = O[d]
                dO = [do[iq(b, h, i, d)] for d in range(D)]
                Dr = sum(dO[d] * O[d] for d in range(D))
                for j in range(NK):
                    if P[j] == 0.0:
                        continue
                    dP = sum(dO[d] * v[ik(b, hk, j, d)] for d in range(D))
                    dS = P[j] * (dP - Dr) * T[j]
                    for d in range(D):
                        dq[iq(b, h, i, d)] += scale * dS * k[ik(b, hk, j, d)]
                        dk[ik(b, hk, j, d)] += scale * dS * q[iq(b, h, i, d)]
                        dv[ik(b, hk, j, d)] += P[j] * dO[d]
                if sinks is not None:
                    dsinks[h] -= math.exp(sinks[h] - L) * Dr
    return o, lse, dq, dk, dv, dsinks


def rotate_rows(x, rows, D, positions, cos, sin, R, interleaved, inverse=False):
    """Rows of x (row-major [rows, D]) rotated in pairs at `positions` (the
    op's RoPE: (d, d + R/2) or (2m, 2m + 1) with interleaved)."""
    out = list(x)
    sgn = 1.0 if inverse else -1.0
    for r in range(rows):
        p = positions[r]
        for m in range(R // 2):
            a, b = (2 * m, 2 * m + 1) if interleaved else (m, m + R // 2)
            c, s = cos[p][m], sin[p][m]
            xa, xb = x[r * D + a], x[r * D + b]
            out[r * D + a] = xa * c + sgn * xb * s
            out[r * D + b] = xb * c - sgn * xa * s
    return out


def show(name, t):
    """Prints tensor value `name` of type `t` (f32) from @main."""
    shape = t[len("tensor<"):-1].rsplit("x", 1)[0]
    mt, n = f"memref<{shape}xf32>", name[1:]
    return (f"  %m{n} = bufferization.to_buffer {name} : {t} to {mt}\n"
            f"  %u{n} = memref.cast %m{n} : {mt} to memref<*xf32>\n"
            f"  call @printMemrefF32(%u{n}) : (memref<*xf32>) -> ()\n")


def run_case(case, unfused):
    B, HQ, HKV, NQ, NK, D = (case[x] for x in ("B", "HQ", "HKV", "NQ", "NK", "D"))
    q, k, v = tensor([B, HQ, NQ, D]), tensor([B, HKV, NK, D]), tensor([B, HKV, NK, D])
    do = tensor([B, HQ, NQ, D])
    Q4, K4 = f"tensor<{B}x{HQ}x{NQ}x{D}xf32>", f"tensor<{B}x{HKV}x{NK}x{D}xf32>"
    L3, H1 = f"tensor<{B}x{HQ}x{NQ}xf32>", f"tensor<{HQ}xf32>"
    mods, slopes, sinks, consts = "", None, None, ""
    if case.get("alibi") == "head":
        sl = [rng.uniform(0.05, 0.6) for _ in range(HQ)]
        slopes = lambda b, h: sl[h]  # noqa: E731
        consts += f"  %al = arith.constant dense<{dense(sl, [HQ])}> : {H1}\n"
        mods += f" alibi_slopes(%al : {H1})"
    elif case.get("alibi") == "batch":
        sl = [rng.uniform(0.05, 0.6) for _ in range(B * HQ)]
        slopes = lambda b, h: sl[b * HQ + h]  # noqa: E731
        consts += f"  %al = arith.constant dense<{dense(sl, [B, HQ])}> : tensor<{B}x{HQ}xf32>\n"
        mods += f" alibi_slopes(%al : tensor<{B}x{HQ}xf32>)"
    if case.get("sinks"):
        sinks = [rng.uniform(-1.0, 2.0) for _ in range(HQ)]
        consts += f"  %sk = arith.constant dense<{dense(sinks, [HQ])}> : {H1}\n"
        mods += f" sinks(%sk : {H1})"
    if "rotary" in case:
        R, inter = case["rotary"]
        P = NK + 3
        theta = [10000.0 ** (-2.0 * m / R) for m in range(R // 2)]
        rcos = [[math.cos(p * t) for t in theta] for p in range(P)]
        rsin = [[math.sin(p * t) for t in theta] for p in range(P)]
        T2 = f"tensor<{P}x{R // 2}xf32>"
        consts += (f"  %rc = arith.constant dense<{dense(sum(rcos, []), [P, R // 2])}> : {T2}\n"
                   f"  %rs = arith.constant dense<{dense(sum(rsin, []), [P, R // 2])}> : {T2}\n")
        mods += f" rotary(%rc, %rs : {T2}, {T2})"
    attrs = ["block_sizes = array<i64: 4, 4>"]
    if case.get("rotary", (0, False))[1]:
        attrs.append("rotary_interleaved")
    if case.get("causal"):
        attrs.append("causal")
    if "window" in case:
        attrs.append(f"window = array<i64: {case['window'][0]}, {case['window'][1]}>")
    if case.get("softcap"):
        attrs.append(f"softcap = {case['softcap']:.1f} : f64")
    attrs = "{" + ", ".join(attrs) + "}"
    for name in ("score_mod_mlir", "mask_mod_mlir"):
        if name in case:
            attrs += " " + name[:-len("_mlir")] + " {\n" + case[name] + "\n  }"
    consts += case.get("consts", "")
    gs_out = f" grad_sinks(%gs0 : {H1})" if sinks else ""
    gs_type = f", {H1}" if sinks else ""
    gs_res = ", %gs" if sinks else ""
    prints = ["%o", "%lse", "%dq", "%dk", "%dv"] + (["%gs"] if sinks else [])
    types = [Q4, L3, Q4, K4, K4] + ([H1] if sinks else [])

    module = f"""
func.func private @printMemrefF32(memref<*xf32>) attributes {{llvm.emit_c_interface}}

func.func @main() {{
  %q = arith.constant dense<{dense(q, [B, HQ, NQ, D])}> : {Q4}
  %k = arith.constant dense<{dense(k, [B, HKV, NK, D])}> : {K4}
  %v = arith.constant dense<{dense(v, [B, HKV, NK, D])}> : {K4}
  %do = arith.constant dense<{dense(do, [B, HQ, NQ, D])}> : {Q4}
{consts}  %o0 = tensor.empty() : {Q4}
  %l0 = tensor.empty() : {L3}
  %dq0 = tensor.empty() : {Q4}
  %dk0 = tensor.empty() : {K4}
  %dv0 = tensor.empty() : {K4}
  %gs0 = tensor.empty() : {H1}
  %o, %lse = attn.attention ins(%q, %k, %v : {Q4}, {K4}, {K4}){mods}
      outs(%o0 : {Q4}) lse(%l0 : {L3}) {attrs} -> {Q4}, {L3}
  %dq, %dk, %dv{gs_res} = attn.attention_backward
      ins(%q, %k, %v, %o, %do, %lse : {Q4}, {K4}, {K4}, {Q4}, {Q4}, {L3}){mods}
      outs(%dq0, %dk0, %dv0 : {Q4}, {K4}, {K4}){gs_out} {attrs}
      -> {Q4}, {K4}, {K4}{gs_type}
{"".join(show(n, t) for n, t in zip(prints, types))}  return
}}
"""
    lower = ["--one-shot-bufferize=bufferize-function-boundaries",
             f"--attn-to-loops=unfused={int(unfused)}",
             "--convert-scf-to-cf", "--expand-strided-metadata", "--lower-affine",
             "--convert-to-llvm", "--reconcile-unrealized-casts"]
    with open(f"{work}/{case['name']}-{int(unfused)}.mlir", "w") as f:
        f.write(module)
    got = execute(fa_opt, runner, libdir, module, lower)
    if "rotary" in case:
        # RoPE: the reference on rotated q (positions i + Nk - Nq) and k
        # (positions j), its dq / dk rotated back.
        R, inter = case["rotary"]
        qpos = [i + NK - NQ for _ in range(B * HQ) for i in range(NQ)]
        kpos = [j for _ in range(B * HKV) for j in range(NK)]
        rq = rotate_rows(q, B * HQ * NQ, D, qpos, rcos, rsin, R, inter)
        rk = rotate_rows(k, B * HKV * NK, D, kpos, rcos, rsin, R, inter)
        ref = list(reference(case, rq, rk, v, do, slopes, sinks))
        ref[2] = rotate_rows(ref[2], B * HQ * NQ, D, qpos, rcos, rsin, R, inter, True)
        ref[3] = rotate_rows(ref[3], B * HKV * NK, D, kpos, rcos, rsin, R, inter, True)
    else:
        ref = reference(case, q, k, v, do, slopes, sinks)
    names = ["o", "lse", "dq", "dk", "dv", "dsinks"]
    worst, ok = [], True
    for name, g, r in zip(names, got, ref):
        assert len(g) == len(r), (name, len(g), len(r))
        # -inf lse (rows without keys, no sink) must match exactly.
        if any((a == -math.inf) != (x == -math.inf) for a, x in zip(g, r)):
            ok = False
            worst.append(f"{name} -inf mismatch")
            continue
        num = math.sqrt(sum((a - x) ** 2 for a, x in zip(g, r) if x != -math.inf))
        den = math.sqrt(sum(x * x for x in r if x != -math.inf)) or 1.0
        rel = num / den
        ok &= rel < 2e-5
        worst.append(f"{name} {rel:.1e}")
    print(f"{case['name']} {'unfused' if unfused else 'tiled'}: {', '.join(worst)}: "
          f"{'ok' if ok else 'FAIL'}")
    return ok


CASES = [
    dict(name="alibi-gqa-cross", B=2, HQ=4, HKV=2, NQ=5, NK=11, D=8, alibi="head"),
    dict(name="alibi-batch-causal", B=2, HQ=2, HKV=1, NQ=9, NK=9, D=8, alibi="batch",
         causal=True),
    dict(name="alibi-window-softcap", B=1, HQ=2, HKV=2, NQ=7, NK=10, D=4, alibi="head",
         window=(3, 2), softcap=5.0),
    dict(name="sinks-causal-empty-rows", B=1, HQ=4, HKV=2, NQ=9, NK=5, D=8, sinks=True,
         causal=True),
    dict(name="alibi-sinks-causal", B=2, HQ=4, HKV=1, NQ=6, NK=13, D=8, alibi="batch",
         sinks=True, causal=True),
    dict(name="sinks-window", B=1, HQ=2, HKV=2, NQ=10, NK=10, D=4, sinks=True,
         window=(2, 0)),
]
def run_varlen(rotary=None):
    """The variable-length form (tiled lowering): three packed sequences
    (query lengths 3, 2, 6; key lengths 5, 0, 9: the second sees no key, so
    its rows give O = 0, lse = sink), per-sequence slopes [3, Hq], sinks,
    causal, GQA, and with `rotary` = (R, interleaved) RoPE at each
    sequence's own positions; against the reference run per sequence."""
    HQ, HKV, D = 4, 2, 8
    lq, lk = [3, 2, 6], [5, 0, 9]
    B, TQ, TK = len(lq), sum(lq), sum(lk)
    cq = [sum(lq[:b]) for b in range(B + 1)]
    ck = [sum(lk[:b]) for b in range(B + 1)]
    q, k, v = tensor([TQ, HQ, D]), tensor([TK, HKV, D]), tensor([TK, HKV, D])
    do = tensor([TQ, HQ, D])
    sl = [rng.uniform(0.05, 0.6) for _ in range(B * HQ)]
    sinks = [rng.uniform(-1.0, 2.0) for _ in range(HQ)]
    Q3, K3, L2 = f"tensor<{TQ}x{HQ}x{D}xf32>", f"tensor<{TK}x{HKV}x{D}xf32>", \
        f"tensor<{HQ}x{TQ}xf32>"
    S2, H1, C1 = f"tensor<{B}x{HQ}xf32>", f"tensor<{HQ}xf32>", f"tensor<{B + 1}xi32>"
    mods = f" alibi_slopes(%al : {S2}) sinks(%sk : {H1})"
    vl = f" varlen(%cq, %ck, %mq, %mk : {C1}, {C1})"
    attrs = "{block_sizes = array<i64: 4, 4>, causal}"
    rconsts = ""
    if rotary:
        R, inter = rotary
        P = max(lk) + 2
        theta = [10000.0 ** (-2.0 * m / R) for m in range(R // 2)]
        rcos = [[math.cos(p * t) for t in theta] for p in range(P)]
        rsin = [[math.sin(p * t) for t in theta] for p in range(P)]
        T2 = f"tensor<{P}x{R // 2}xf32>"
        rconsts = (f"  %rc = arith.constant dense<{dense(sum(rcos, []), [P, R // 2])}> : {T2}\n"
                   f"  %rs = arith.constant dense<{dense(sum(rsin, []), [P, R // 2])}> : {T2}\n")
        mods += f" rotary(%rc, %rs : {T2}, {T2})"
        if inter:
            attrs = "{block_sizes = array<i64: 4, 4>, causal, rotary_interleaved}"

    outs = [("%o", Q3), ("%lse", L2), ("%dq", Q3), ("%dk", K3), ("%dv", K3), ("%gs", H1)]
    module = f"""
func.func private @printMemrefF32(memref<*xf32>) attributes {{llvm.emit_c_interface}}

func.func @main() {{
  %q = arith.constant dense<{dense(q, [TQ, HQ, D])}> : {Q3}
  %k = arith.constant dense<{dense(k, [TK, HKV, D])}> : {K3}
  %v = arith.constant dense<{dense(v, [TK, HKV, D])}> : {K3}
  %do = arith.constant dense<{dense(do, [TQ, HQ, D])}> : {Q3}
  %al = arith.constant dense<{dense(sl, [B, HQ])}> : {S2}
  %sk = arith.constant dense<{dense(sinks, [HQ])}> : {H1}
  %cq = arith.constant dense<{cq}> : {C1}
  %ck = arith.constant dense<{ck}> : {C1}
{rconsts}  %mq = arith.constant {max(lq)} : index
  %mk = arith.constant {max(lk)} : index
  %o0 = tensor.empty() : {Q3}
  %l0 = tensor.empty() : {L2}
  %dk0 = tensor.empty() : {K3}
  %dv0 = tensor.empty() : {K3}
  %gs0 = tensor.empty() : {H1}
  %o, %lse = attn.attention ins(%q, %k, %v : {Q3}, {K3}, {K3}){vl}{mods}
      outs(%o0 : {Q3}) lse(%l0 : {L2}) {attrs} -> {Q3}, {L2}
  %dq, %dk, %dv, %gs = attn.attention_backward
      ins(%q, %k, %v, %o, %do, %lse : {Q3}, {K3}, {K3}, {Q3}, {Q3}, {L2}){vl}{mods}
      outs(%o0, %dk0, %dv0 : {Q3}, {K3}, {K3}) grad_sinks(%gs0 : {H1}) {attrs}
      -> {Q3}, {K3}, {K3}, {H1}
{"".join(show(n, t) for n, t in outs)}  return
}}
"""
    lower = ["--one-shot-bufferize=bufferize-function-boundaries", "--attn-to-loops",
             "--convert-scf-to-cf", "--expand-strided-metadata", "--lower-affine",
             "--convert-to-llvm", "--reconcile-unrealized-casts"]
    with open(f"{work}/varlen.mlir", "w") as f:
        f.write(module)
    got = execute(fa_opt, runner, libdir, module, lower)
    # The reference, sequence by sequence, scattered back into packed layouts.
    want = [[0.0] * (TQ * HQ * D), [0.0] * (HQ * TQ), [0.0] * (TQ * HQ * D),
            [0.0] * (TK * HKV * D), [0.0] * (TK * HKV * D), [0.0] * HQ]
    for b in range(B):
        nq, nk = lq[b], lk[b]
        case = dict(B=1, HQ=HQ, HKV=HKV, NQ=nq, NK=nk, D=D, causal=True)

        def dense_of(x, start, n, H):
            return [x[((start + i) * H + h) * D + d] for h in range(H) for i in range(n)
                    for d in range(D)]
        qb, kb = dense_of(q, cq[b], nq, HQ), dense_of(k, ck[b], nk, HKV)
        qpos = [i + nk - nq for _ in range(HQ) for i in range(nq)]
        kpos = [j for _ in range(HKV) for j in range(nk)]
        if rotary:
            qb = rotate_rows(qb, HQ * nq, D, qpos, rcos, rsin, R, inter)
            kb = rotate_rows(kb, HKV * nk, D, kpos, rcos, rsin, R, inter)
        r = list(reference(case, qb, kb, dense_of(v, ck[b], nk, HKV),
                           dense_of(do, cq[b], nq, HQ), lambda _, h, b=b: sl[b * HQ + h],
                           sinks))
        if rotary:
            r[2] = rotate_rows(r[2], HQ * nq, D, qpos, rcos, rsin, R, inter, True)
            r[3] = rotate_rows(r[3], HKV * nk, D, kpos, rcos, rsin, R, inter, True)
        for out, src, start, n, H in ((0, r[0], cq[b], nq, HQ), (2, r[2], cq[b], nq, HQ),
                                      (3, r[3], ck[b], nk, HKV), (4, r[4], ck[b], nk, HKV)):
            for h in range(H):
                for i in range(n):
                    for d in range(D):
                        want[out][((start + i) * H + h) * D + d] = src[(h * n + i) * D + d]
        for h in range(HQ):
            for i in range(nq):
                want[1][h * TQ + cq[b] + i] = r[1][h * nq + i]
            want[5][h] += r[5][h]
    ok, worst = True, []
    for name, g, r in zip(["o", "lse", "dq", "dk", "dv", "dsinks"], got, want):
        num = math.sqrt(sum((a - x) ** 2 for a, x in zip(g, r)))
        den = math.sqrt(sum(x * x for x in r)) or 1.0
        ok &= len(g) == len(r) and num / den < 2e-5
        worst.append(f"{name} {num / den:.1e}")
    name = "varlen-alibi-sinks-causal" + (f"-rope{rotary[0]}" if rotary else "")
    print(f"{name} tiled: {', '.join(worst)}: {'ok' if ok else 'FAIL'}")
    return ok


# FlexAttention's attention-gym examples as score_mod / mask_mod regions (the
# region text, and the reference's function and derivative in the score).
SM = "^bb0(%s: f32, %b: index, %h: index, %i: index, %j: index):"
MM = "^bb0(%b: index, %h: index, %i: index, %j: index):"
DOCS = [0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3]          # document ids of 11 tokens
SLOPES = [0.5, 0.25, 0.125, 0.0625]
one = (lambda b, h, i, j, x: 1.0)  # noqa: E731
REGION_CASES = [
    dict(name="relative-position-bias", B=1, HQ=2, HKV=1, NQ=9, NK=14, D=8, causal=True,
         score_mod_mlir=SM + """
    %d = arith.subi %j, %i : index
    %di = arith.index_cast %d : index to i64
    %df = arith.sitofp %di : i64 to f32
    %c = arith.constant 0.125 : f32
    %t = arith.mulf %df, %c : f32
    %r = arith.addf %s, %t : f32
    attn.yield %r : f32""", score_mod=(lambda b, h, i, j, x: x + 0.125 * (j - i), one)),
    dict(name="tanh-softcap", B=2, HQ=2, HKV=2, NQ=7, NK=7, D=8,
         score_mod_mlir=SM + """
    %c = arith.constant 2.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %c : f32
    attn.yield %r : f32""",
         score_mod=(lambda b, h, i, j, x: 2.0 * math.tanh(x / 2.0),
                    lambda b, h, i, j, x: 1 - math.tanh(x / 2.0) ** 2)),
    dict(name="alibi-captured-slopes", B=1, HQ=4, HKV=2, NQ=6, NK=10, D=8,
         consts=f"  %slopes = arith.constant dense<{SLOPES}> : tensor<4xf32>\n",
         score_mod_mlir=SM + """
    %m = tensor.extract %slopes[%h] : tensor<4xf32>
    %d = arith.subi %j, %i : index
    %di = arith.index_cast %d : index to i64
    %df = arith.sitofp %di : i64 to f32
    %a = math.absf %df : f32
    %t = arith.mulf %m, %a : f32
    %r = arith.subf %s, %t : f32
    attn.yield %r : f32""",
         score_mod=(lambda b, h, i, j, x: x - SLOPES[h] * abs(j - i), one)),
    dict(name="document-mask", B=1, HQ=2, HKV=2, NQ=11, NK=11, D=8, causal=True,
         consts=f"  %docs = arith.constant dense<{DOCS}> : tensor<11xi32>\n",
         mask_mod_mlir=MM + """
    %a = tensor.extract %docs[%i] : tensor<11xi32>
    %c = tensor.extract %docs[%j] : tensor<11xi32>
    %m = arith.cmpi eq, %a, %c : i32
    attn.yield %m : i1""", mask_mod=(lambda b, h, i, j: DOCS[i] == DOCS[j])),
    dict(name="prefix-lm", B=1, HQ=2, HKV=1, NQ=10, NK=10, D=8,
         mask_mod_mlir=MM + """
    %p = arith.constant 4 : index
    %a = arith.cmpi slt, %j, %p : index
    %c = arith.cmpi sle, %j, %i : index
    %m = arith.ori %a, %c : i1
    attn.yield %m : i1""", mask_mod=(lambda b, h, i, j: j < 4 or j <= i)),
    dict(name="sliding-window-mask-and-softcap", B=1, HQ=2, HKV=2, NQ=12, NK=12, D=8,
         sinks=True,
         score_mod_mlir=SM + """
    %c = arith.constant 3.0 : f32
    %x = arith.divf %s, %c : f32
    %t = math.tanh %x : f32
    %r = arith.mulf %t, %c : f32
    attn.yield %r : f32""",
         score_mod=(lambda b, h, i, j, x: 3.0 * math.tanh(x / 3.0),
                    lambda b, h, i, j, x: 1 - math.tanh(x / 3.0) ** 2),
         mask_mod_mlir=MM + """
    %w = arith.constant 3 : index
    %d = arith.subi %i, %j : index
    %a = arith.cmpi sle, %d, %w : index
    %c = arith.cmpi sle, %j, %i : index
    %m = arith.andi %a, %c : i1
    attn.yield %m : i1""", mask_mod=(lambda b, h, i, j: 0 <= i - j <= 3)),
]

ROTARY_CASES = [
    dict(name="rope-neox-gqa-causal-cross", B=2, HQ=4, HKV=2, NQ=6, NK=11, D=8, causal=True,
         rotary=(8, False)),
    dict(name="rope-gptj-partial", B=1, HQ=2, HKV=2, NQ=9, NK=9, D=8, rotary=(4, True)),
    dict(name="rope-neox-partial-alibi-sinks-softcap", B=1, HQ=2, HKV=1, NQ=7, NK=10, D=8,
         rotary=(6, False), alibi="head", sinks=True, softcap=4.0, window=(4, 1)),
]

ok = True
for case in ROTARY_CASES:
    for unfused in (False, True):
        ok &= run_case(case, unfused)
for case in REGION_CASES:
    for unfused in (False, True):
        ok &= run_case(case, unfused)
for case in CASES:
    for unfused in (False, True):
        ok &= run_case(case, unfused)
ok &= run_varlen()
ok &= run_varlen(rotary=(6, False))
ok &= run_varlen(rotary=(8, True))
print("OK" if ok else "FAIL")
sys.exit(0 if ok else 1)
