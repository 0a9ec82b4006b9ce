//===- RuntimeAttention.cpp - the attention entry points ------------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// fa_forward, fa_forward_splitkv, fa_forward_mods, fa_forward_kvcache,
// fa_backward and fa_backward_mods: each validates its call into a Problem
// (RuntimeLaunch.cpp), selects and loads its kernels, packs their arguments
// and launches them on the caller's stream, with the steps of RuntimeState.h
// (runKernel and runBackward, here, serve RuntimeVarlen.cpp's entry points
// too). Head dims that are not multiples of 8 run on zero-padded copies
// (PaddedCall).
//
//===----------------------------------------------------------------------===//

#include "RuntimeState.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>

using namespace flashmlir::rt;

namespace {

/// FA_ERR_NO_KERNEL when `p` has a score-modification buffer (`name`) that
/// kernel `k` does not take (a bundle built before it existed).
fa_status checkTakes(fa_runtime *rt, const Prepared &k, const Problem &p,
                     const char *name) {
  auto it = p.args.find(name);
  if (it == p.args.end() || it->second.ptr == 0)
    return FA_OK;
  const KernelDesc &kd = rt->manifest.kernels[k.kernel];
  if (kernelTakes(kd, name))
    return FA_OK;
  return fail(rt, FA_ERR_NO_KERNEL,
              "kernel '" + kd.name + "' does not take '" + name +
                  "' (attention sinks): the bundle predates them; rebuild it "
                  "with this version's fa-compile");
}

} // namespace

/// Selects, loads, packs and launches the one kernel of `kind` for `p`.
fa_status flashmlir::rt::runKernel(fa_runtime *rt, ContextState *cs,
                                   KernelKind kind, const Problem &p,
                                   void *stream) {
  Prepared k;
  FA_TRY(selectAndLoad(rt, cs, kind, p, &k));
  FA_TRY(checkTakes(rt, k, p, "sinks"));
  FA_TRY(pack(rt, p, &k));
  return launch(rt, k, static_cast<cu::Stream>(stream));
}

/// The backward's three launches (and d sinks' second bwd_pre pass) for a
/// built problem: kernel selection, workspaces, launches.
fa_status flashmlir::rt::runBackward(fa_runtime *rt, Problem &p,
                                     const fa_score_mods *mods, void *stream) {
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  // Select and load all three kernels before touching the workspace or
  // launching anything.
  Prepared stages[3];
  const KernelKind kinds[3] = {KernelKind::BwdPre, KernelKind::BwdMain,
                               KernelKind::BwdPost};
  for (int i = 0; i < 3; ++i)
    FA_TRY(selectAndLoad(rt, cs, kinds[i], p, &stages[i]));
  FA_TRY(checkTakes(rt, stages[0], p, "dsinks"));

  // dqacc_ws must start at zero: a bwd_pre kernel that takes dqacc_ws zeroes
  // it itself, otherwise the runtime clears it on the stream.
  WorkspaceLayout ws = workspaceLayout(p);
  bool needWorkspace = false, needDqAcc = false;
  for (const Prepared &s : stages) {
    const KernelDesc &kd = rt->manifest.kernels[s.kernel];
    needWorkspace |= kernelTakes(kd, "dr_ws") || kernelTakes(kd, "dqacc_ws");
    needDqAcc |= kernelTakes(kd, "dqacc_ws");
  }
  bool zeroDqAcc =
      needDqAcc && !kernelTakes(rt->manifest.kernels[stages[0].kernel],
                                "dqacc_ws");
  // Without a kernel that takes dqacc_ws (a deterministic bundle: its
  // bwd_post kernel computes dq itself) only dr_ws is allocated.
  size_t wsBytes = needDqAcc ? ws.totalBytes
                             : static_cast<size_t>(ws.drElems) * 4;
  if (needWorkspace && wsBytes > 0) {
    FA_TRY(ensureWorkspace(rt, cs, wsBytes));
    addWorkspaceArgs(&p, cs->workspace);
  } else {
    addWorkspaceArgs(&p, 0);
  }
  for (Prepared &s : stages)
    FA_TRY(pack(rt, p, &s));

  cu::Stream st = static_cast<cu::Stream>(stream);
  if (zeroDqAcc && ws.dqaccElems > 0) {
    cu::Result r = rt->drv->cuMemsetD32Async(
        cs->workspace + ws.dqaccOffset, 0,
        static_cast<size_t>(ws.dqaccElems), st);
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH,
                        "cuMemsetD32Async (zeroing dqacc_ws)");
  }
  // d sinks: attn_bwd_pre's second pass (KernelAbi.h), after the first has
  // written dr_ws.
  Prepared sinkPass;
  if (mods && mods->dsinks) {
    sinkPass = stages[0];
    p.setI64("sinks_pass", 1);
    FA_TRY(pack(rt, p, &sinkPass));
  }
  for (Prepared &s : stages)
    FA_TRY(launch(rt, s, st));
  if (mods && mods->dsinks)
    FA_TRY(launch(rt, sinkPass, st));
  return FA_OK;
}

extern "C" {

namespace {

/// Fused RoPE (fa_score_mods.rotary_*): the tables and their shape as the
/// kernels take them (KernelAbi.h Variant::rotary), after checking what the
/// kernels rely on.
fa_status addRotary(fa_runtime *rt, Problem *p, const fa_score_mods *mods,
                    const char *where) {
  auto bad = [&](const std::string &msg) {
    return fail(rt, FA_ERR_INVALID, std::string(where) + ": " + msg);
  };
  if (!mods->rotary_cos && !mods->rotary_sin) {
    if (mods->rotary_dim || mods->rotary_positions || mods->rotary_stride ||
        mods->rotary_interleaved)
      return bad("rotary_dim / rotary_positions / rotary_stride / "
                 "rotary_interleaved are set but rotary_cos and rotary_sin "
                 "are null");
    return FA_OK;
  }
  if (!mods->rotary_cos || !mods->rotary_sin)
    return bad("rotary_cos and rotary_sin go together (one of them is null)");
  if (p->varlen)
    return bad("fused RoPE with variable-length batches has no GPU kernels "
               "yet");
  const int64_t dim = mods->rotary_dim;
  if (dim < 16 || dim % 16 != 0 || dim > p->D)
    return bad("rotary_dim " + std::to_string(dim) +
               " must be a multiple of 16 in [16, head_dim = " +
               std::to_string(p->D) + "]");
  const int64_t stride = mods->rotary_stride ? mods->rotary_stride : dim / 2;
  if (stride < dim / 2 || stride % 4 != 0)
    return bad("rotary_stride " + std::to_string(stride) +
               " must be a multiple of 4 and >= rotary_dim / 2");
  if (reinterpret_cast<uintptr_t>(mods->rotary_cos) % 16 ||
      reinterpret_cast<uintptr_t>(mods->rotary_sin) % 16)
    return bad("rotary_cos and rotary_sin must be 16-byte aligned");
  if (p->Nq > p->Nk)
    return bad("fused RoPE needs seqlen_q <= seqlen_k (query i is at "
               "position i + seqlen_k - seqlen_q); got " +
               std::to_string(p->Nq) + " > " + std::to_string(p->Nk));
  if (mods->rotary_positions < p->Nk)
    return bad("the rotary tables have " +
               std::to_string(mods->rotary_positions) +
               " positions, fewer than seqlen_k = " + std::to_string(p->Nk));
  if (mods->rotary_interleaved != 0 && mods->rotary_interleaved != 1)
    return bad("rotary_interleaved must be 0 or 1");
  const int64_t elems = (mods->rotary_positions - 1) * stride + dim / 2;
  p->rotary = true;
  p->setBuffer("rotary_cos", reinterpret_cast<uint64_t>(mods->rotary_cos),
               elems);
  p->setBuffer("rotary_sin", reinterpret_cast<uint64_t>(mods->rotary_sin),
               elems);
  p->setI64("rotary_stride", stride);
  p->setI64("rotary_dim", dim);
  p->setI64("rotary_interleaved", mods->rotary_interleaved);
  return FA_OK;
}

/// Adds the score modifications `mods` (may be null) to `p`: the sinks
/// buffers of KernelAbi.h ([Hq] f32 each) and the ALiBi slopes (p->alibi:
/// only ALiBi kernels serve the call).
fa_status addScoreMods(fa_runtime *rt, Problem *p, const fa_score_mods *mods,
                       const char *where) {
  if (!mods)
    return FA_OK;
  if (mods->dsinks && !mods->sinks)
    return fail(rt, FA_ERR_INVALID,
                std::string(where) + ": dsinks is set but sinks is null");
  if (mods->sinks)
    p->setBuffer("sinks", reinterpret_cast<uint64_t>(mods->sinks), p->Hq);
  if (mods->dsinks)
    p->setBuffer("dsinks", reinterpret_cast<uint64_t>(mods->dsinks), p->Hq);
  if (mods->alibi_slopes) {
    const int64_t stride = mods->alibi_batch_stride;
    if (stride != 0 && stride < p->Hq)
      return fail(rt, FA_ERR_INVALID,
                  std::string(where) + ": alibi_batch_stride " +
                      std::to_string(stride) +
                      " must be 0 (one slope per head) or >= the query heads (" +
                      std::to_string(p->Hq) + ")");
    const int64_t seqs = p->varlen ? p->seqs : p->B;
    p->alibi = true;
    p->setBuffer("alibi_slopes",
                 reinterpret_cast<uint64_t>(mods->alibi_slopes),
                 stride * (seqs - 1) + p->Hq);
    p->setI64("alibi_stride_b", stride);
  } else if (mods->alibi_batch_stride != 0) {
    return fail(rt, FA_ERR_INVALID,
                std::string(where) +
                    ": alibi_batch_stride is set but alibi_slopes is null");
  }
  return addRotary(rt, p, mods, where);
}

/// The split-KV forward (decode) of `p` with `splits` key ranges:
/// fwd_split writes the partials to the context's workspace, fwd_combine
/// merges them into o and lse.
fa_status forwardSplit(fa_runtime *rt, ContextState *cs, Problem &p,
                       int64_t splits, cu::Stream stream) {
  Prepared part, combine;
  FA_TRY(selectAndLoad(rt, cs, KernelKind::FwdSplit, p, &part));
  FA_TRY(selectAndLoad(rt, cs, KernelKind::FwdCombine, p, &combine));
  FA_TRY(checkTakes(rt, combine, p, "sinks"));
  FA_TRY(ensureWorkspace(rt, cs, splitWorkspaceBytes(p, splits)));
  addSplitArgs(&p, splits, cs->workspace);
  FA_TRY(pack(rt, p, &part));
  FA_TRY(pack(rt, p, &combine));
  FA_TRY(launch(rt, part, stream));
  return launch(rt, combine, stream);
}

/// `numSplits`: 0 = the runtime's choice (the split-KV forward where the
/// bundle has it and a KV head's query rows, times its query heads, fit
/// one block, abi::kSplitRows, with its key ranges by splitKvHeuristic;
/// unless that is one range without GQA rows to pack), 1 = the one-pass
/// forward kernel, n > 1 = the split-KV forward with n ranges (at most
/// abi::kMaxSplits) where it applies.
fa_status forwardLocked(fa_runtime *rt, const fa_attn_params *params,
                        const fa_tensor *q, const fa_tensor *k,
                        const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                        void *stream, int64_t numSplits = 0,
                        const fa_score_mods *mods = nullptr) {
  Problem p;
  std::string err;
  if (buildForwardProblem(params, q, k, v, o, lse, &p, &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, "fa_forward: " + err);
  FA_TRY(addScoreMods(rt, &p, mods, "fa_forward_mods"));
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  if (numSplits != 1 && !p.varlen && p.Hkv > 0 && p.Hq % p.Hkv == 0 &&
      p.Nq * (p.Hq / p.Hkv) <= flashmlir::abi::kSplitRows && p.B * p.Hq * p.Nq > 0 &&
      p.Nk > 0 && hasSplitKernels(rt, cs, p)) {
    int64_t splits = numSplits > 1
                         ? std::min<int64_t>(numSplits, flashmlir::abi::kMaxSplits)
                         : splitKvHeuristic(p, cs->numSms);
    // One range and no GQA group to pack: the one-pass kernel (on sm_90a
    // the wgmma one) does the same work.
    if (splits > 1 || p.Hq > p.Hkv)
      return forwardSplit(rt, cs, p, splits, static_cast<cu::Stream>(stream));
  }
  return runKernel(rt, cs, KernelKind::Fwd, p, stream);
}

fa_status forwardKvcacheLocked(fa_runtime *rt, const fa_attn_params *params,
                               const fa_tensor *q, const fa_tensor *kc,
                               const fa_tensor *vc, fa_tensor *o, fa_tensor *lse,
                               const int32_t *cacheSeqlens,
                               const int32_t *blockTable, int64_t btStride,
                               int64_t maxBlocks, int64_t numSplits,
                               void *stream) {
  namespace abi = flashmlir::abi;
  const std::string where = "fa_forward_kvcache: ";
  if (!q || !kc || !vc || !o || !lse)
    return fail(rt, FA_ERR_INVALID,
                where +
                    (!q ? "q" : !kc ? "k_cache" : !vc ? "v_cache" : !o ? "o" : "lse") +
                    " is null" +
                    (!lse && q && kc && vc && o
                         ? " (the split-KV kernels write the row log-sum-exp)"
                         : ""));
  const bool paged = blockTable != nullptr;
  if (paged && !cacheSeqlens)
    return fail(rt, FA_ERR_INVALID,
                where + "a block table needs cache_seqlens");
  if (paged && (maxBlocks < 1 || btStride < maxBlocks))
    return fail(rt, FA_ERR_INVALID,
                where + "max_blocks must be >= 1 and block_table_stride >= "
                        "max_blocks (got " +
                    std::to_string(maxBlocks) + ", " +
                    std::to_string(btStride) + ")");
  if (numSplits < 0 || numSplits > abi::kMaxSplits)
    return fail(rt, FA_ERR_INVALID,
                where + "num_splits must be 0 (automatic) to " +
                    std::to_string(abi::kMaxSplits) + ", got " +
                    std::to_string(numSplits));
  const int64_t blockSize = kc->sizes[2];
  int64_t capacity = blockSize;
  if (paged && __builtin_mul_overflow(maxBlocks, blockSize, &capacity))
    return fail(rt, FA_ERR_INVALID, where + "max_blocks x block_size overflows");
  // The call as a dense one of `capacity` keys per sequence (views of the
  // cache with q's batch), then the cache tensors themselves.
  fa_tensor kv = *kc, vv = *vc;
  kv.sizes[0] = vv.sizes[0] = q->sizes[0];
  kv.sizes[2] = vv.sizes[2] = capacity;
  kv.strides[0] = vv.strides[0] = 0;
  kv.strides[2] = vv.strides[2] = 0;
  Problem p;
  std::string err;
  if (buildForwardProblem(params, q, &kv, &vv, o, lse, &p, &err) != FA_OK ||
      addCacheTensors(&p, kc, vc, &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, where + err);
  if (!paged && kc->sizes[0] != p.B)
    return fail(rt, FA_ERR_INVALID,
                where + "k_cache has " + std::to_string(kc->sizes[0]) +
                    " sequences, q " + std::to_string(p.B) +
                    " (without a block table the cache is [batch, kv_heads, "
                    "capacity, head_dim])");
  if (p.D % 8 || p.Dv % 8)
    return fail(rt, FA_ERR_INVALID,
                where + "head dims must be multiples of 8 (got " +
                    std::to_string(p.D) + ", " + std::to_string(p.Dv) + ")");
  if (p.Nq * (p.Hq / p.Hkv) > abi::kSplitRows)
    return fail(rt, FA_ERR_INVALID,
                where + "seqlen_q x (heads / kv_heads) = " +
                    std::to_string(p.Nq * (p.Hq / p.Hkv)) +
                    " query rows per KV head; the split-KV kernels take at "
                    "most " +
                    std::to_string(abi::kSplitRows));
  addKvArgs(&p,
            paged          ? abi::kKvPaged
            : cacheSeqlens ? abi::kKvCacheLens
                           : abi::kKvDense,
            blockSize, cacheSeqlens, blockTable, paged ? btStride : 0);
  if (p.B * p.Hq * p.Nq == 0)
    return FA_OK;
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  if (!hasSplitKernels(rt, cs, p))
    return fail(rt, FA_ERR_NO_KERNEL,
                where + "the bundle has no split-KV kernels (fwd_split / "
                        "fwd_combine) for " +
                    std::string(dtypeName(p.dtype)) +
                    " head_dim=" + std::to_string(p.D) +
                    " head_dim_v=" + std::to_string(p.Dv) +
                    " (f16 / bf16 only; fa-compile --split-kv 1)");
  int64_t splits = numSplits > 0 ? numSplits : splitKvHeuristic(p, cs->numSms);
  return forwardSplit(rt, cs, p, splits, static_cast<cu::Stream>(stream));
}

fa_status backwardLocked(fa_runtime *rt, const fa_attn_params *params,
                         const fa_tensor *q, const fa_tensor *k,
                         const fa_tensor *v, const fa_tensor *o,
                         const fa_tensor *dout, const fa_tensor *lse,
                         fa_tensor *dq, fa_tensor *dk, fa_tensor *dv,
                         void *stream, const fa_score_mods *mods = nullptr) {
  Problem p;
  std::string err;
  if (buildBackwardProblem(params, q, k, v, o, dout, lse, dq, dk, dv, &p,
                           &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, "fa_backward: " + err);
  FA_TRY(addScoreMods(rt, &p, mods, "fa_backward_mods"));
  return runBackward(rt, p, mods, stream);
}

/// Head dims that are not multiples of 8 (the GPU kernels' 16-byte rows):
/// FlashAttention-2's way. The call runs on zero-padded contiguous copies
/// ([B, H, N, roundUp(D, 8)]) in a per-context scratch buffer, made and
/// read back with 2-D copies on the call's stream (so, like the backward
/// workspace, one scratch per context: calls on different streams of one
/// context must not overlap). The scale is the caller's (the true head
/// dim's); the padding columns add nothing to the scores, and only the true
/// columns of O (and dQ, dK, dV) are copied back.
struct PaddedCall {
  fa_runtime *rt;
  ContextState *cs;
  cu::Stream stream;
  int64_t eb;
  cu::DevicePtr next = 0;

  static int64_t pad8(int64_t d) { return (d + 7) / 8 * 8; }
  static int64_t elems(const fa_tensor *t, int64_t d) {
    return t->sizes[0] * t->sizes[1] * t->sizes[2] * d;
  }
  /// Reserves the padded copy of `t` (head dim `dp`); returns its tensor.
  fa_tensor reserve(const fa_tensor *t, int64_t dp) {
    fa_tensor r{};
    r.data = reinterpret_cast<void *>(next);
    for (int i = 0; i < 3; ++i)
      r.sizes[i] = t->sizes[i];
    r.sizes[3] = dp;
    r.strides[3] = 1;
    r.strides[2] = dp;
    r.strides[1] = dp * t->sizes[2];
    r.strides[0] = r.strides[1] * t->sizes[1];
    next += static_cast<cu::DevicePtr>((elems(t, dp) * eb + 255) / 256 * 256);
    return r;
  }
  /// Copies the first `cols` columns of every row between `from` and `to`
  /// (any strides, innermost 1), one 2-D copy per (batch, head).
  fa_status copyRows(const fa_tensor *from, const fa_tensor *to,
                     int64_t cols) {
    for (int64_t b = 0; b < from->sizes[0]; ++b)
      for (int64_t h = 0; h < from->sizes[1]; ++h) {
        cu::Memcpy2D c;
        c.srcDevice = reinterpret_cast<cu::DevicePtr>(from->data) +
                      (b * from->strides[0] + h * from->strides[1]) * eb;
        c.dstDevice = reinterpret_cast<cu::DevicePtr>(to->data) +
                      (b * to->strides[0] + h * to->strides[1]) * eb;
        c.WidthInBytes = static_cast<size_t>(cols * eb);
        c.srcPitch = std::max<size_t>(from->strides[2] * eb, c.WidthInBytes);
        c.dstPitch = std::max<size_t>(to->strides[2] * eb, c.WidthInBytes);
        c.Height = static_cast<size_t>(from->sizes[2]);
        cu::Result r = rt->drv->cuMemcpy2DAsync(&c, stream);
        if (r != cu::SUCCESS)
          return driverFail(rt, r, FA_ERR_LAUNCH,
                            "cuMemcpy2DAsync (head dim padding)");
      }
    return FA_OK;
  }
  /// Makes room for `bytes` of padded tensors and zeroes it.
  fa_status begin(size_t bytes) {
    FA_TRY(growDeviceBuffer(rt, &cs->padScratch, &cs->padScratchBytes, bytes,
                            1, "padding scratch", "head-dim padding scratch"));
    next = cs->padScratch;
    cu::Result r = rt->drv->cuMemsetD32Async(cs->padScratch, 0, bytes / 4,
                                             stream);
    if (r != cu::SUCCESS)
      return driverFail(rt, r, FA_ERR_LAUNCH,
                        "cuMemsetD32Async (head dim padding)");
    return FA_OK;
  }
};

/// True when a call needs PaddedCall: rank-4 q / v whose head dims are not
/// multiples of 8 (sizes are validated by the problem builders first).
bool needsPadding(const fa_tensor *q, const fa_tensor *v) {
  return q && v && q->data && v->data &&
         (q->sizes[3] % 8 != 0 || v->sizes[3] % 8 != 0);
}

int64_t dtypeBytes(const fa_attn_params *params) {
  return rawDtype(params) == FA_F32 ? 4 : 2;
}

} // namespace

fa_status fa_forward(fa_runtime *rt, const fa_attn_params *params,
                     const fa_tensor *q, const fa_tensor *k, const fa_tensor *v,
                     fa_tensor *o, fa_tensor *lse, void *stream) {
  return fa_forward_splitkv(rt, params, q, k, v, o, lse, 0, stream);
}

fa_status fa_forward_splitkv(fa_runtime *rt, const fa_attn_params *params,
                             const fa_tensor *q, const fa_tensor *k,
                             const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                             int64_t num_splits, void *stream) {
  return fa_forward_mods(rt, params, nullptr, q, k, v, o, lse, num_splits,
                         stream);
}

fa_status fa_forward_mods(fa_runtime *rt, const fa_attn_params *params,
                          const fa_score_mods *mods, const fa_tensor *q,
                          const fa_tensor *k, const fa_tensor *v, fa_tensor *o,
                          fa_tensor *lse, int64_t num_splits, void *stream) {
  FA_BEGIN(rt)
  if (num_splits < 0 || num_splits > flashmlir::abi::kMaxSplits)
    return fail(rt, FA_ERR_INVALID,
                "fa_forward_splitkv: num_splits must be 0 (automatic) to " +
                    std::to_string(flashmlir::abi::kMaxSplits) + ", got " +
                    std::to_string(num_splits));
  if (!needsPadding(q, v))
    return forwardLocked(rt, params, q, k, v, o, lse, stream, num_splits,
                         mods);
  {
    Problem p; // the shapes, strides and parameters as given
    std::string err;
    if (buildForwardProblem(params, q, k, v, o, lse, &p, &err) != FA_OK)
      return fail(rt, FA_ERR_INVALID, "fa_forward: " + err);
    if (p.B * p.Hq * p.Nq == 0 || p.Nk == 0)
      return forwardLocked(rt, params, q, k, v, o, lse, stream, num_splits,
                           mods);
  }
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  PaddedCall pc{rt, cs, static_cast<cu::Stream>(stream), dtypeBytes(params)};
  const int64_t dp = PaddedCall::pad8(q->sizes[3]),
                dvp = PaddedCall::pad8(v->sizes[3]);
  size_t bytes = 0;
  for (auto [t, d] : {std::pair{q, dp}, {k, dp}, {v, dvp}, {static_cast<const fa_tensor *>(o), dvp}})
    bytes += (PaddedCall::elems(t, d) * pc.eb + 255) / 256 * 256;
  FA_TRY(pc.begin(bytes));
  fa_tensor pq = pc.reserve(q, dp), pk = pc.reserve(k, dp),
            pv = pc.reserve(v, dvp), po = pc.reserve(o, dvp);
  FA_TRY(pc.copyRows(q, &pq, q->sizes[3]));
  FA_TRY(pc.copyRows(k, &pk, k->sizes[3]));
  FA_TRY(pc.copyRows(v, &pv, v->sizes[3]));
  fa_attn_params pp = *params; // the default scale of the true head dim
  if (!(pp.scale > 0))
    pp.scale = static_cast<float>(1.0 / std::sqrt(double(q->sizes[3])));
  FA_TRY(forwardLocked(rt, &pp, &pq, &pk, &pv, &po, lse, stream, num_splits,
                       mods));
  return pc.copyRows(&po, o, o->sizes[3]);
  FA_END(rt)
}

fa_status fa_forward_kvcache(fa_runtime *rt, const fa_attn_params *params,
                             const fa_tensor *q, const fa_tensor *k_cache,
                             const fa_tensor *v_cache, fa_tensor *o,
                             fa_tensor *lse, const int32_t *cache_seqlens,
                             const int32_t *block_table,
                             int64_t block_table_stride, int64_t max_blocks,
                             int64_t num_splits, void *stream) {
  FA_BEGIN(rt)
  return forwardKvcacheLocked(rt, params, q, k_cache, v_cache, o, lse,
                              cache_seqlens, block_table, block_table_stride,
                              max_blocks, num_splits, stream);
  FA_END(rt)
}

fa_status fa_backward(fa_runtime *rt, const fa_attn_params *params,
                      const fa_tensor *q, const fa_tensor *k,
                      const fa_tensor *v, const fa_tensor *o,
                      const fa_tensor *dout, const fa_tensor *lse,
                      fa_tensor *dq, fa_tensor *dk, fa_tensor *dv,
                      void *stream) {
  return fa_backward_mods(rt, params, nullptr, q, k, v, o, dout, lse, dq, dk,
                          dv, stream);
}

fa_status fa_backward_mods(fa_runtime *rt, const fa_attn_params *params,
                           const fa_score_mods *mods, const fa_tensor *q,
                           const fa_tensor *k, const fa_tensor *v,
                           const fa_tensor *o, const fa_tensor *dout,
                           const fa_tensor *lse, fa_tensor *dq, fa_tensor *dk,
                           fa_tensor *dv, void *stream) {
  FA_BEGIN(rt)
  if (!needsPadding(q, v))
    return backwardLocked(rt, params, q, k, v, o, dout, lse, dq, dk, dv,
                          stream, mods);
  {
    Problem p;
    std::string err;
    if (buildBackwardProblem(params, q, k, v, o, dout, lse, dq, dk, dv, &p,
                             &err) != FA_OK)
      return fail(rt, FA_ERR_INVALID, "fa_backward: " + err);
    if (p.B * p.Hq * p.Nq == 0 || p.Nk == 0)
      return backwardLocked(rt, params, q, k, v, o, dout, lse, dq, dk, dv,
                            stream, mods);
  }
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  PaddedCall pc{rt, cs, static_cast<cu::Stream>(stream), dtypeBytes(params)};
  const int64_t dp = PaddedCall::pad8(q->sizes[3]),
                dvp = PaddedCall::pad8(v->sizes[3]);
  const fa_tensor *ins[5] = {q, k, v, o, dout};
  const fa_tensor *outs[3] = {dq, dk, dv};
  const int64_t inDims[5] = {dp, dp, dvp, dvp, dvp}, outDims[3] = {dp, dp, dvp};
  size_t bytes = 0;
  for (int i = 0; i < 5; ++i)
    bytes += (PaddedCall::elems(ins[i], inDims[i]) * pc.eb + 255) / 256 * 256;
  for (int i = 0; i < 3; ++i)
    bytes += (PaddedCall::elems(outs[i], outDims[i]) * pc.eb + 255) / 256 * 256;
  FA_TRY(pc.begin(bytes));
  fa_tensor pin[5], pout[3];
  for (int i = 0; i < 5; ++i) {
    pin[i] = pc.reserve(ins[i], inDims[i]);
    FA_TRY(pc.copyRows(ins[i], &pin[i], ins[i]->sizes[3]));
  }
  for (int i = 0; i < 3; ++i)
    pout[i] = pc.reserve(outs[i], outDims[i]);
  fa_attn_params pp = *params; // the default scale of the true head dim
  if (!(pp.scale > 0))
    pp.scale = static_cast<float>(1.0 / std::sqrt(double(q->sizes[3])));
  FA_TRY(backwardLocked(rt, &pp, &pin[0], &pin[1], &pin[2], &pin[3], &pin[4],
                        lse, &pout[0], &pout[1], &pout[2], stream, mods));
  for (int i = 0; i < 3; ++i)
    FA_TRY(pc.copyRows(&pout[i], outs[i], outs[i]->sizes[3]));
  return FA_OK;
  FA_END(rt)
}

} // extern "C"
