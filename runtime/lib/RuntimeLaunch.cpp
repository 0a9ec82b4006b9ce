//===- RuntimeLaunch.cpp - Problems, kernel selection, grids, packing -----===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// Everything between the C API and cuLaunchKernel that needs no GPU:
//   * validate the tensors of a call and turn them into named argument
//     values (buffers with their addressable extent, sizes, strides, mask
//     and scale scalars);
//   * pick the bundle's kernel for the call and the device;
//   * compute launch grids and pack kernel parameters in the order the
//     manifest lists them.
//
//===----------------------------------------------------------------------===//

#include "RuntimeInternal.h"

#include "flashmlir/runtime/Limits.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

namespace flashmlir::rt {

namespace {

std::string sizesString(const int64_t *v, int rank) {
  std::string s = "[";
  for (int i = 0; i < rank; ++i) {
    if (i)
      s += ", ";
    s += std::to_string(v[i]);
  }
  return s + "]";
}

bool dtypeFromC(int dt, DType *out) {
  switch (dt) {
  case FA_F32:
    *out = DType::F32;
    return true;
  case FA_F16:
    *out = DType::F16;
    return true;
  case FA_BF16:
    *out = DType::BF16;
    return true;
  }
  return false;
}

/// Builds a Problem tensor by tensor, stopping at the first error.
class Builder {
public:
  Builder(Problem *p, std::string *err) : p(p), err(err) {}

  bool fail(const std::string &msg) {
    *err = msg;
    return false;
  }

  /// Checks `t` (named `name`) against `expect` (rank 4, or 3 for lse) and
  /// adds its buffer and stride arguments.
  bool tensor(const char *name, const fa_tensor *t, const int64_t *expect,
              int rank) {
    if (!t)
      return fail(std::string(name) + " is null");
    for (int i = 0; i < rank; ++i) {
      if (t->sizes[i] != expect[i])
        return fail(std::string(name) + " has sizes " +
                    sizesString(t->sizes, rank) + ", expected " +
                    sizesString(expect, rank));
    }
    int64_t strides[4];
    for (int i = 0; i < rank; ++i) {
      strides[i] = t->strides[i];
      if (strides[i] < 0)
        return fail("bad strides for " + std::string(name) + ": " +
                    sizesString(t->strides, rank) +
                    " (strides must be >= 0)");
    }
    // A size-1 innermost dim has no meaningful stride (PyTorch may report
    // anything there); it is passed as 1.
    if (t->sizes[rank - 1] == 1)
      strides[rank - 1] = 1;
    if (strides[rank - 1] != 1)
      return fail("bad strides for " + std::string(name) + ": " +
                  sizesString(t->strides, rank) +
                  " (the innermost stride must be 1)");
    // Elements addressable from data: 1 + sum((size - 1) * stride).
    int64_t extent = 1;
    bool empty = false;
    for (int i = 0; i < rank; ++i) {
      if (t->sizes[i] == 0) {
        empty = true;
        break;
      }
      int64_t term;
      if (__builtin_mul_overflow(t->sizes[i] - 1, strides[i], &term) ||
          __builtin_add_overflow(extent, term, &extent))
        return fail(std::string(name) + " is too large (extent overflows)");
    }
    if (empty)
      extent = 0;
    if (extent > 0 && !t->data)
      return fail(std::string(name) + " has a null data pointer");

    // The kernels move rows of 4D tensors as 16-byte vectors (every kernel's
    // head dim is a multiple of 16 bytes): the data pointer and the b/h/n
    // strides must keep every row 16-byte aligned.
    int64_t bytes = p->dtype == DType::F32 ? 4 : 2;
    if (rank == 4 && extent > 0 && (t->sizes[3] * bytes) % 16 == 0) {
      bool aligned = reinterpret_cast<uint64_t>(t->data) % 16 == 0;
      for (int i = 0; i < 3; ++i)
        aligned &= t->sizes[i] == 1 || (strides[i] * bytes) % 16 == 0;
      if (!aligned)
        return fail(std::string(name) + " is not 16-byte aligned (data " +
                    std::to_string(reinterpret_cast<uint64_t>(t->data) % 16) +
                    " bytes past a 16-byte boundary, strides " +
                    sizesString(t->strides, rank) +
                    "): rows must start on 16-byte boundaries (make the "
                    "tensor contiguous)");
    }
    p->setBuffer(name, reinterpret_cast<uint64_t>(t->data), extent);
    std::string n(name);
    if (rank == 4) {
      integer(n + "_stride_b", strides[0]);
      integer(n + "_stride_h", strides[1]);
      integer(n + "_stride_n", strides[2]);
    } else {
      integer(n + "_stride_b", strides[0]);
      integer(n + "_stride_h", strides[1]);
    }
    return true;
  }

  void integer(const std::string &name, int64_t v) { p->setI64(name, v); }
  void real(const std::string &name, float v) { p->setF32(name, v); }

  /// Sizes from q, k, v and the scalar params.
  bool common(const fa_attn_params *params, const fa_tensor *q,
              const fa_tensor *k, const fa_tensor *v) {
    if (!params)
      return fail("params is null");
    if (!q || !k || !v)
      return fail(std::string(!q ? "q" : !k ? "k" : "v") + " is null");
    if (!dtypeFromC(rawDtype(params), &p->dtype))
      return fail("unknown dtype " + std::to_string(rawDtype(params)) +
                  " (expected FA_F32, FA_F16 or FA_BF16)");
    p->B = q->sizes[0];
    p->Hq = q->sizes[1];
    p->Nq = q->sizes[2];
    p->D = q->sizes[3];
    p->Hkv = k->sizes[1];
    p->Nk = k->sizes[2];
    p->Dv = v->sizes[3];
    if (p->B < 1 || p->Hq < 1 || p->Nq < 0 || p->D < 1)
      return fail("q has sizes " + sizesString(q->sizes, 4) +
                  " (batch, heads and head dim must be >= 1)");
    if (p->Hkv < 1 || p->Nk < 0)
      return fail("k has sizes " + sizesString(k->sizes, 4) +
                  " (heads must be >= 1)");
    if (p->Dv < 1)
      return fail("v has sizes " + sizesString(v->sizes, 4) +
                  " (head dim must be >= 1)");
    if (p->Hq % p->Hkv != 0)
      return fail("q has " + std::to_string(p->Hq) +
                  " heads, not a multiple of the " + std::to_string(p->Hkv) +
                  " heads of k and v");
    // Ranges (flashmlir/runtime/Limits.h): the kernels hold mask bounds in
    // i32 and fold scale / softcap into f32 constants.
    namespace lim = flashmlir::limits;
    for (const std::string &msg :
         {lim::checkHeadDim("head dim D (q dim 3)", p->D),
          lim::checkHeadDim("head dim Dv (v dim 3)", p->Dv),
          lim::checkRange("seqlen_q (q dim 2)", p->Nq, 0, lim::kMaxSeqLen),
          lim::checkRange("seqlen_k (k dim 2)", p->Nk, 0, lim::kMaxSeqLen)})
      if (!msg.empty())
        return fail(msg);

    // Scalars.
    if (!std::isfinite(params->scale))
      return fail("scale is not finite");
    if (!std::isfinite(params->softcap) || params->softcap < 0)
      return fail("softcap must be >= 0 (0 = off)");
    for (const std::string &msg :
         {lim::checkScale("scale", params->scale),
          lim::checkSoftcapOrOff("softcap", params->softcap),
          // Any negative value is unbounded.
          params->window_left < 0
              ? std::string()
              : lim::checkWindow("window_left", params->window_left),
          params->window_right < 0
              ? std::string()
              : lim::checkWindow("window_right", params->window_right)})
      if (!msg.empty())
        return fail(msg);
    p->scale = params->scale > 0
                   ? params->scale
                   : static_cast<float>(1.0 / std::sqrt(double(p->D)));
    p->softcap = params->softcap > 0;
    p->softcapValue = params->softcap;
    // Masks in the compiler's canonical form: causal implies the window's
    // right side; -1 (any negative) = unbounded.
    p->causal = params->causal != 0;
    int64_t wl = params->window_left < 0 ? -1 : params->window_left;
    int64_t wr = params->window_right < 0 ? -1 : params->window_right;
    if (p->causal)
      wr = -1;
    p->window = wl >= 0 || wr >= 0;
    p->windowLeft = wl;
    p->windowRight = p->causal ? 0 : wr;

    // No attention sinks unless the caller adds them (addScoreMods).
    p->setBuffer("sinks", 0, 0);
    p->setBuffer("dsinks", 0, 0);
    p->setI64("sinks_pass", 0);
    integer("batch", p->B);
    integer("heads", p->Hq);
    integer("kv_heads", p->Hkv);
    integer("seqlen_q", p->Nq);
    integer("seqlen_k", p->Nk);
    integer("head_dim", p->D);
    integer("head_dim_v", p->Dv);
    integer("window_left", p->windowLeft);
    integer("window_right", p->windowRight);
    real("scale", p->scale);
    real("softcap", p->softcapValue);

    int64_t qs[4] = {p->B, p->Hq, p->Nq, p->D};
    int64_t ks[4] = {p->B, p->Hkv, p->Nk, p->D};
    int64_t vs[4] = {p->B, p->Hkv, p->Nk, p->Dv};
    return tensor("q", q, qs, 4) && tensor("k", k, ks, 4) &&
           tensor("v", v, vs, 4);
  }

  bool outputs(const fa_tensor *o, const fa_tensor *lse, bool lseRequired) {
    int64_t os[4] = {p->B, p->Hq, p->Nq, p->Dv};
    int64_t ls[3] = {p->B, p->Hq, p->Nq};
    if (!tensor("o", o, os, 4))
      return false;
    if (!lse && !lseRequired)
      return true;
    return tensor("lse", lse, ls, 3);
  }

  Problem *p;
  std::string *err;
};

} // namespace

fa_status buildForwardProblem(const fa_attn_params *params, const fa_tensor *q,
                              const fa_tensor *k, const fa_tensor *v,
                              const fa_tensor *o, const fa_tensor *lse,
                              Problem *out, std::string *err) {
  Problem p;
  Builder b(&p, err);
  if (!b.common(params, q, k, v) || !b.outputs(o, lse, false))
    return FA_ERR_INVALID;
  *out = std::move(p);
  return FA_OK;
}

fa_status buildBackwardProblem(const fa_attn_params *params,
                               const fa_tensor *q, const fa_tensor *k,
                               const fa_tensor *v, const fa_tensor *o,
                               const fa_tensor *dout, const fa_tensor *lse,
                               const fa_tensor *dq, const fa_tensor *dk,
                               const fa_tensor *dv, Problem *out,
                               std::string *err) {
  Problem p;
  p.backward = true;
  Builder b(&p, err);
  if (!b.common(params, q, k, v) || !b.outputs(o, lse, true))
    return FA_ERR_INVALID;
  int64_t qs[4] = {p.B, p.Hq, p.Nq, p.D};
  int64_t ks[4] = {p.B, p.Hkv, p.Nk, p.D};
  int64_t vs[4] = {p.B, p.Hkv, p.Nk, p.Dv};
  int64_t os[4] = {p.B, p.Hq, p.Nq, p.Dv};
  if (!b.tensor("do", dout, os, 4) || !b.tensor("dq", dq, qs, 4) ||
      !b.tensor("dk", dk, ks, 4) || !b.tensor("dv", dv, vs, 4))
    return FA_ERR_INVALID;
  // The workspace size must be computable (workspaceLayout does not check).
  int64_t rows = 0, elems = 0;
  namespace lim = flashmlir::limits;
  if (!lim::mulChecked(p.B, p.Hq, &rows) ||
      !lim::mulChecked(rows, abi::dqaccRows(p.Nq), &rows) ||
      !lim::mulChecked(rows, p.D + 1, &elems) || elems > (int64_t(1) << 60)) {
    *err = "the backward workspace for batch " + std::to_string(p.B) +
           " x heads " + std::to_string(p.Hq) + " x seqlen_q " +
           std::to_string(p.Nq) + " x head dim " + std::to_string(p.D) +
           " is too large (over 2^60 f32 values)";
    return FA_ERR_INVALID;
  }
  *out = std::move(p);
  return FA_OK;
}

fa_status addCacheTensors(Problem *p, const fa_tensor *kc, const fa_tensor *vc,
                          std::string *err) {
  Builder b(p, err);
  if (!kc || !vc)
    return b.fail(std::string(!kc ? "k_cache" : "v_cache") + " is null"),
           FA_ERR_INVALID;
  int64_t ks[4] = {kc->sizes[0], p->Hkv, kc->sizes[2], p->D};
  int64_t vs[4] = {kc->sizes[0], p->Hkv, kc->sizes[2], p->Dv};
  if (kc->sizes[0] < 1 || kc->sizes[2] < 1)
    return b.fail("k_cache has sizes " + sizesString(kc->sizes, 4) +
                  " (blocks and block size must be >= 1)"),
           FA_ERR_INVALID;
  if (!b.tensor("k", kc, ks, 4) || !b.tensor("v", vc, vs, 4))
    return FA_ERR_INVALID;
  return FA_OK;
}

WorkspaceLayout workspaceLayout(const Problem &p) {
  WorkspaceLayout w;
  w.drElems = p.B * p.Hq * p.Nq;
  // dqacc: [B, Hq, Nq rounded up to 16, D] (16-row groups: the tensor-core
  // bwd_main keeps them in mma fragment order).
  w.dqaccElems = p.varlen ? p.Hq * abi::varlenDqaccRows(p.Nq, p.seqs) * p.D
                         : p.B * p.Hq * abi::dqaccRows(p.Nq) * p.D;
  w.dqaccOffset = (static_cast<size_t>(w.drElems) * 4 + 255) & ~size_t(255);
  w.totalBytes = w.dqaccOffset + static_cast<size_t>(w.dqaccElems) * 4;
  return w;
}

void addWorkspaceArgs(Problem *p, uint64_t base) {
  WorkspaceLayout w = workspaceLayout(*p);
  p->setBuffer("dr_ws", base, w.drElems);
  p->setBuffer("dqacc_ws", base + w.dqaccOffset, w.dqaccElems);
}

int64_t splitKvHeuristic(const Problem &p, int numSms) {
  const int64_t blocks = p.B * p.Hkv;
  const int64_t slots = 2 * std::max(numSms, 1); // blocks per wave
  if (blocks * 10 >= slots * 8)
    return 1;
  const int64_t tiles = (p.Nk + 127) / 128; // fwd_split's keys per tile
  // At most one wave: counts that fill two or more waves exactly look as
  // full but cost more ranges (1 x 128k: 64 ranges 249 us, 128 283 us,
  // against 227 us for 33).
  const int64_t most = std::max<int64_t>(
      1, std::min<int64_t>({abi::kMaxSplits, slots / blocks, tiles}));
  auto efficiency = [&](int64_t s) {
    double waves = double(blocks * s) / double(slots);
    return waves / std::ceil(waves);
  };
  // A count is only worth its ranges when it shortens the longest one.
  auto eligible = [&](int64_t s) {
    return s == 1 || (tiles + s - 1) / s != (tiles + s - 2) / (s - 1);
  };
  double best = 0;
  for (int64_t s = 1; s <= most; ++s)
    if (eligible(s))
      best = std::max(best, efficiency(s));
  // The fullest wave, the fewest ranges on a tie. (FlashAttention-2 takes
  // the fewest within 85% of the best: at batch 1 x 8 KV heads x 128k keys
  // that is 28 ranges, 224 blocks on 264 slots, 254 us against 227 us for
  // 33 (H100, 2026-12-08, fa-run --bench). 32, the best eligible count,
  // has 33's longest range: predicted ~227 us, not measured yet.)
  for (int64_t s = 1; s <= most; ++s)
    if (eligible(s) && efficiency(s) >= best * (1 - 1e-9))
      return s;
  return 1;
}

namespace {
struct SplitLayout {
  int64_t oaccElems, lseElems;
  size_t lseOffset, totalBytes;
};
SplitLayout splitLayout(const Problem &p, int64_t splits) {
  SplitLayout l;
  l.oaccElems = abi::splitOaccElems(splits, p.B, p.Hq, p.Nq, p.Dv);
  l.lseElems = abi::splitLseElems(splits, p.B, p.Hq, p.Nq);
  l.lseOffset = (static_cast<size_t>(l.oaccElems) * 4 + 255) & ~size_t(255);
  l.totalBytes = l.lseOffset + static_cast<size_t>(l.lseElems) * 4;
  return l;
}
} // namespace

size_t splitWorkspaceBytes(const Problem &p, int64_t splits) {
  return splitLayout(p, splits).totalBytes;
}

void addSplitArgs(Problem *p, int64_t splits, uint64_t base) {
  SplitLayout l = splitLayout(*p, splits);
  p->setBuffer("oacc_ws", base, l.oaccElems);
  p->setBuffer("lseacc_ws", base + l.lseOffset, l.lseElems);
  p->setI64("num_splits", splits);
  // A dense call: no KV cache (fa_forward_kvcache sets these first).
  if (!p->args.count("kv_mode"))
    addKvArgs(p, abi::kKvDense, std::max<int64_t>(p->Nk, 1), nullptr, nullptr,
              0);
}

void addKvArgs(Problem *p, int64_t mode, int64_t blockSize,
               const int32_t *cacheSeqlens, const int32_t *blockTable,
               int64_t tableStride) {
  p->setI64("kv_mode", mode);
  p->setI64("block_size", blockSize);
  p->setI64("block_shift",
            (blockSize & (blockSize - 1)) == 0
                ? static_cast<int64_t>(__builtin_ctzll(
                      static_cast<unsigned long long>(blockSize)))
                : -1);
  p->setI64("block_table_stride", tableStride);
  p->setBuffer("cache_seqlens", reinterpret_cast<uint64_t>(cacheSeqlens),
               cacheSeqlens ? p->B : 0);
  p->setBuffer("block_table", reinterpret_cast<uint64_t>(blockTable),
               blockTable ? p->B * tableStride : 0);
}

//===----------------------------------------------------------------------===//
// Selection
//===----------------------------------------------------------------------===//

const char *forcedGpuTarget() {
  const char *e = std::getenv("FLASHMLIR_GPU_TARGET");
  return e && *e ? e : nullptr;
}

std::vector<std::string> targetsForDevice(int ccMajor, int ccMinor) {
  std::vector<std::string> t;
  auto add = [&](const std::string &s) {
    if (std::find(t.begin(), t.end(), s) == t.end())
      t.push_back(s);
  };
  const int cc = ccMajor * 10 + ccMinor;
  if (const char *f = forcedGpuTarget()) {
    // One target whose PTX the device can run (the driver JIT-compiles an
    // older target's PTX; sm_90a's needs a 9.0 device).
    const limits::GpuTarget *target = limits::findGpuTarget(f);
    if (target && target->sm <= cc && (!target->archSpecific || target->sm == cc))
      add(f);
    return t;
  }
  if (cc == 75) // Turing: its own kernels (f16 tensor cores, SIMT else)
    add("sm_75");
  if (ccMajor < 8)
    return t;
  std::string exact = "sm_" + std::to_string(ccMajor) + std::to_string(ccMinor);
  if (ccMajor == 9) {
    add(exact + "a");
    add(exact);
    add("sm_90");
  } else {
    add(exact);
  }
  add("sm_80");
  return t;
}

namespace {

std::string flagsString(bool causal, bool window, bool softcap) {
  return std::string("causal=") + (causal ? "true" : "false") +
         " window=" + (window ? "true" : "false") +
         " softcap=" + (softcap ? "true" : "false");
}

/// (causal, window) flag pairs whose kernels compute `p` exactly, best
/// first. The kernels read window_left/right (-1 = unbounded), so a window
/// kernel also serves unmasked calls (-1, -1) and causal ones (right = 0).
std::vector<std::pair<bool, bool>> maskCandidates(const Problem &p) {
  std::vector<std::pair<bool, bool>> c;
  auto add = [&](bool causal, bool window) {
    std::pair<bool, bool> x(causal, window);
    if (std::find(c.begin(), c.end(), x) == c.end())
      c.push_back(x);
  };
  add(p.causal, p.window);
  // A window [left, 0] without causal is causal (+ the left side).
  if (!p.causal && p.window && p.windowRight == 0)
    add(true, p.windowLeft >= 0);
  if (!p.window)
    add(p.causal, true);
  if (p.causal)
    add(false, true);
  return c;
}

} // namespace

int selectKernel(const Manifest &m, KernelKind kind, const Problem &p,
                 int ccMajor, int ccMinor, std::string *err) {
  std::vector<std::string> targets = targetsForDevice(ccMajor, ccMinor);
  std::vector<std::pair<bool, bool>> masks = maskCandidates(p);
  for (const std::string &target : targets) {
    for (const auto &mask : masks) {
      // Autotune candidates share a config: the selected one wins, else the
      // default (rank 1, like a kernel of no group); other candidates only
      // run when selected.
      int best = -1, bestRank = 0;
      for (size_t i = 0; i < m.kernels.size(); ++i) {
        const KernelDesc &k = m.kernels[i];
        const KernelConfig &c = k.config;
        if (k.kind == kind && c.dtype == p.dtype && c.headDim == p.D &&
            c.headDimV == p.Dv && c.softcap == p.softcap &&
            c.causal == mask.first && c.window == mask.second &&
            c.target == target && c.varlen == p.varlen &&
            c.alibi == p.alibi && c.rotary == p.rotary) {
          int rank = k.selected ? 2 : k.group.empty() || k.isDefault ? 1 : 0;
          if (best < 0 || rank > bestRank)
            best = static_cast<int>(i), bestRank = rank;
        }
      }
      if (best >= 0)
        return best;
    }
  }

  // No match: say what was asked and what the bundle has for this dtype and
  // head dim (or, if nothing, which dtype/head dims it has at all).
  std::string msg = std::string("no kernel for ") + kernelKindName(kind) +
                    " " + dtypeName(p.dtype) +
                    " head_dim=" + std::to_string(p.D) +
                    " head_dim_v=" + std::to_string(p.Dv) + " " +
                    flagsString(p.causal, p.window, p.softcap) +
                    (p.varlen ? " varlen" : "") + (p.alibi ? " alibi" : "") +
                    (p.rotary ? " rotary" : "") +
                    " on sm_" +
                    std::to_string(ccMajor) + std::to_string(ccMinor);
  const char *forced = forcedGpuTarget();
  if (targets.empty() && forced)
    msg += std::string(" (FLASHMLIR_GPU_TARGET=") + forced +
           (limits::findGpuTarget(forced)
                ? ": this device cannot run that target's kernels)"
                : ": not a target; one of " + limits::gpuTargetList() + ")");
  else if (targets.empty())
    msg += " (devices below sm_75 are not supported; sm_75 (Turing) is the "
           "oldest target)";
  else {
    msg += " (targets tried:";
    for (const std::string &t : targets)
      msg += " " + t;
    msg += ")";
  }
  msg += " in bundle " + (m.dir.empty() ? std::string("<memory>") : m.dir);
  std::vector<std::string> same;
  std::set<std::string> others;
  for (const KernelDesc &k : m.kernels) {
    const KernelConfig &c = k.config;
    if (c.dtype == p.dtype && c.headDim == p.D)
      same.push_back(k.name + " (" + kernelKindName(k.kind) +
                     " head_dim_v=" + std::to_string(c.headDimV) + " " +
                     flagsString(c.causal, c.window, c.softcap) + " " +
                     c.target + ")");
    else
      others.insert(std::string(dtypeName(c.dtype)) + " head_dim=" +
                    std::to_string(c.headDim));
  }
  const size_t kMaxListed = 24;
  if (!same.empty()) {
    msg += "; it has for " + std::string(dtypeName(p.dtype)) +
           " head_dim=" + std::to_string(p.D) + ":";
    for (size_t i = 0; i < same.size() && i < kMaxListed; ++i)
      msg += (i ? ", " : " ") + same[i];
    if (same.size() > kMaxListed)
      msg += ", ... (" + std::to_string(same.size() - kMaxListed) + " more)";
  } else {
    msg += "; it has no " + std::string(dtypeName(p.dtype)) +
           " kernel with head_dim=" + std::to_string(p.D) + ", only:";
    size_t n = 0;
    for (const std::string &o : others) {
      if (n == kMaxListed) {
        msg += ", ...";
        break;
      }
      msg += (n++ ? ", " : " ") + o;
    }
  }
  *err = msg;
  return -1;
}

//===----------------------------------------------------------------------===//
// Grids and parameters
//===----------------------------------------------------------------------===//

bool computeGrid(const KernelDesc &k, const Problem &p, unsigned grid[3],
                 bool *empty, std::string *err) {
  static const int64_t limits[3] = {0x7fffffff, 65535, 65535};
  *empty = false;
  for (int i = 0; i < 3; ++i) {
    int64_t g = 1;
    if (i < static_cast<int>(k.grid.size())) {
      const GridDimSpec &s = k.grid[i];
      if (s.dim.empty()) {
        g = s.constant;
      } else {
        auto it = p.args.find(s.dim);
        if (it == p.args.end() || it->second.kind != ArgKind::I64) {
          *err = "kernel '" + k.name + "': grid dim '" + s.dim +
                 "' has no value";
          return false;
        }
        int64_t v = it->second.i;
        g = v <= 0 ? 0 : (v - 1) / s.div + 1;
      }
    }
    if (g > limits[i]) {
      *err = "kernel '" + k.name + "': grid dimension " + std::to_string(i) +
             " is " + std::to_string(g) + ", over the limit of " +
             std::to_string(limits[i]);
      return false;
    }
    if (g == 0)
      *empty = true;
    grid[i] = static_cast<unsigned>(g);
  }
  return true;
}

int32_t PackedArgs::asI32(size_t i) const {
  int32_t v;
  std::memcpy(&v, &storage[i], sizeof(v));
  return v;
}

float PackedArgs::asF32(size_t i) const {
  float v;
  std::memcpy(&v, &storage[i], sizeof(v));
  return v;
}

bool packArgs(const KernelDesc &k, const Problem &p, PackedArgs *out,
              std::string *err) {
  size_t slots = 0;
  for (const KernelArg &a : k.args)
    slots += a.kind == ArgKind::Buffer ? 5 : 1;
  out->storage.assign(slots, 0);
  out->params.clear();
  out->params.reserve(slots);
  size_t s = 0;
  for (const KernelArg &a : k.args) {
    auto it = p.args.find(a.name);
    if (it == p.args.end()) {
      *err = "kernel '" + k.name + "' takes argument '" + a.name + "', which " +
             (p.backward ? "fa_backward" : "fa_forward") +
             " does not provide" +
             (a.name == "lse" ? " (lse is null)" : "");
      return false;
    }
    const ArgValue &v = it->second;
    bool wantBuffer = a.kind == ArgKind::Buffer;
    bool isBuffer = v.kind == ArgKind::Buffer;
    bool isFloat = v.kind == ArgKind::F32;
    if (wantBuffer != isBuffer || (a.kind == ArgKind::F32) != isFloat) {
      *err = "kernel '" + k.name + "': argument '" + a.name +
             "' cannot be passed as " + argKindName(a.kind);
      return false;
    }
    switch (a.kind) {
    case ArgKind::Buffer:
      // memref<?xT> descriptor: allocated, aligned, offset, size, stride.
      out->storage[s++] = v.ptr;
      out->storage[s++] = v.ptr;
      out->storage[s++] = 0;
      out->storage[s++] = static_cast<uint64_t>(v.extent);
      out->storage[s++] = 1;
      break;
    case ArgKind::I64:
      out->storage[s++] = static_cast<uint64_t>(v.i);
      break;
    case ArgKind::I32: {
      if (v.i < INT32_MIN || v.i > INT32_MAX) {
        *err = "kernel '" + k.name + "': argument '" + a.name + "' = " +
               std::to_string(v.i) + " does not fit its i32 parameter";
        return false;
      }
      int32_t x = static_cast<int32_t>(v.i);
      std::memcpy(&out->storage[s++], &x, sizeof(x));
      break;
    }
    case ArgKind::F32:
      std::memcpy(&out->storage[s++], &v.f, sizeof(v.f));
      break;
    }
  }
  for (uint64_t &slot : out->storage)
    out->params.push_back(&slot);
  return true;
}

} // namespace flashmlir::rt
