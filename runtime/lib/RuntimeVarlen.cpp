//===- RuntimeVarlen.cpp - the variable-length entry points ----------------===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// fa_forward_varlen and fa_backward_varlen: packed q/k/v/o [T, H, D] and lse
// [Hq, Tq] seen as batch-1 [1, H, T, D] / [1, Hq, Tq] views, the sequences
// from cu_seqlens_q/k (the kernels' row policy, KernelAbi.h); the launches
// are the dense entry points' (runKernel, runBackward: RuntimeAttention.cpp).
//
//===----------------------------------------------------------------------===//

#include "RuntimeState.h"

#include <initializer_list>

using namespace flashmlir::rt;

extern "C" {

namespace {

/// Packed [T, H, D] tensors (sizes[0..2]) and lse [Hq, Tq] as batch-1
/// [1, H, T, D] / [1, Hq, Tq] views.
fa_tensor packedView(const fa_tensor *t) {
  fa_tensor d{};
  if (!t)
    return d;
  d.data = t->data;
  d.sizes[0] = 1;
  d.sizes[1] = t->sizes[1];
  d.sizes[2] = t->sizes[0];
  d.sizes[3] = t->sizes[2];
  d.strides[0] = 0;
  d.strides[1] = t->strides[1];
  d.strides[2] = t->strides[0];
  d.strides[3] = t->strides[2];
  return d;
}
fa_tensor packedLseView(const fa_tensor *lse) {
  fa_tensor l3{};
  if (!lse)
    return l3;
  l3.data = lse->data;
  l3.sizes[0] = 1;
  l3.sizes[1] = lse->sizes[0];
  l3.sizes[2] = lse->sizes[1];
  l3.strides[0] = 0;
  l3.strides[1] = lse->strides[0];
  l3.strides[2] = lse->strides[1];
  return l3;
}
/// The varlen arguments of a problem built on packed views.
void setVarlen(Problem *p, const int32_t *cuQ, const int32_t *cuK,
               int64_t batch, int64_t maxQ, int64_t maxK) {
  p->varlen = true;
  p->seqs = batch;
  p->setI64("total_q", p->Nq);
  p->setI64("batch", batch);
  p->setI64("seqlen_q", maxQ);
  p->setI64("seqlen_k", maxK);
  p->setBuffer("cu_seqlens_q", reinterpret_cast<uint64_t>(cuQ), batch + 1);
  p->setBuffer("cu_seqlens_k", reinterpret_cast<uint64_t>(cuK), batch + 1);
}
/// The checks fa_forward_varlen and fa_backward_varlen share.
fa_status checkVarlenCall(fa_runtime *rt, const char *where,
                          std::initializer_list<const void *> ptrs,
                          const fa_tensor *q, const fa_tensor *v,
                          int64_t batch, int64_t maxQ, int64_t maxK) {
  for (const void *x : ptrs)
    if (!x)
      return fail(rt, FA_ERR_INVALID,
                  std::string(where) + "null tensor or offsets pointer");
  if (batch < 0 || maxQ < 0 || maxK < 0)
    return fail(rt, FA_ERR_INVALID,
                std::string(where) + "batch and max lengths must be >= 0");
  if (q->sizes[2] % 8 || v->sizes[2] % 8)
    return fail(rt, FA_ERR_INVALID,
                std::string(where) +
                    "head dims must be multiples of 8 (got " +
                    std::to_string(q->sizes[2]) + ", " +
                    std::to_string(v->sizes[2]) + ")");
  return FA_OK;
}

fa_status forwardVarlenLocked(fa_runtime *rt, const fa_attn_params *params,
                              const fa_tensor *q, const fa_tensor *k,
                              const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                              const int32_t *cuQ, const int32_t *cuK,
                              int64_t batch, int64_t maxQ, int64_t maxK,
                              void *stream) {
  const char *where = "fa_forward_varlen: ";
  FA_TRY(checkVarlenCall(rt, where, {q, k, v, o, lse, cuQ, cuK}, q, v, batch,
                         maxQ, maxK));
  fa_tensor q4 = packedView(q), k4 = packedView(k), v4 = packedView(v),
            o4 = packedView(o), l3 = packedLseView(lse);
  Problem p;
  std::string err;
  if (buildForwardProblem(params, &q4, &k4, &v4, &o4, &l3, &p, &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, where + err);
  setVarlen(&p, cuQ, cuK, batch, maxQ, maxK);
  if (batch == 0 || maxQ == 0)
    return FA_OK;
  ContextState *cs;
  FA_TRY(currentContext(rt, &cs));
  return runKernel(rt, cs, KernelKind::Fwd, p, stream);
}

/// fa_backward_varlen: the packed tensors as batch-1 views (as the varlen
/// forward), the sequences from cu_seqlens_q/k, packed workspaces.
fa_status backwardVarlenLocked(fa_runtime *rt, const fa_attn_params *params,
                               const fa_tensor *q, const fa_tensor *k,
                               const fa_tensor *v, const fa_tensor *o,
                               const fa_tensor *dout, const fa_tensor *lse,
                               fa_tensor *dq, fa_tensor *dk, fa_tensor *dv,
                               const int32_t *cuQ, const int32_t *cuK,
                               int64_t batch, int64_t maxQ, int64_t maxK,
                               void *stream) {
  const char *where = "fa_backward_varlen: ";
  FA_TRY(checkVarlenCall(rt, where,
                         {q, k, v, o, dout, lse, dq, dk, dv, cuQ, cuK}, q, v,
                         batch, maxQ, maxK));
  fa_tensor q4 = packedView(q), k4 = packedView(k), v4 = packedView(v),
            o4 = packedView(o), do4 = packedView(dout), dq4 = packedView(dq),
            dk4 = packedView(dk), dv4 = packedView(dv),
            l3 = packedLseView(lse);
  Problem p;
  std::string err;
  if (buildBackwardProblem(params, &q4, &k4, &v4, &o4, &do4, &l3, &dq4, &dk4,
                           &dv4, &p, &err) != FA_OK)
    return fail(rt, FA_ERR_INVALID, where + err);
  setVarlen(&p, cuQ, cuK, batch, maxQ, maxK);
  if (batch == 0 || p.Nk == 0)
    return FA_OK;
  return runBackward(rt, p, nullptr, stream);
}

} // namespace

fa_status fa_forward_varlen(fa_runtime *rt, const fa_attn_params *params,
                            const fa_tensor *q, const fa_tensor *k,
                            const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                            const int32_t *cu_seqlens_q,
                            const int32_t *cu_seqlens_k, int64_t batch,
                            int64_t max_seqlen_q, int64_t max_seqlen_k,
                            void *stream) {
  FA_BEGIN(rt)
  return forwardVarlenLocked(rt, params, q, k, v, o, lse, cu_seqlens_q,
                             cu_seqlens_k, batch, max_seqlen_q, max_seqlen_k,
                             stream);
  FA_END(rt)
}

fa_status fa_backward_varlen(fa_runtime *rt, const fa_attn_params *params,
                             const fa_tensor *q, const fa_tensor *k,
                             const fa_tensor *v, const fa_tensor *o,
                             const fa_tensor *dout, const fa_tensor *lse,
                             fa_tensor *dq, fa_tensor *dk, fa_tensor *dv,
                             const int32_t *cu_seqlens_q,
                             const int32_t *cu_seqlens_k, int64_t batch,
                             int64_t max_seqlen_q, int64_t max_seqlen_k,
                             void *stream) {
  FA_BEGIN(rt)
  return backwardVarlenLocked(rt, params, q, k, v, o, dout, lse, dq, dk, dv,
                              cu_seqlens_q, cu_seqlens_k, batch, max_seqlen_q,
                              max_seqlen_k, stream);
  FA_END(rt)
}

} // extern "C"
