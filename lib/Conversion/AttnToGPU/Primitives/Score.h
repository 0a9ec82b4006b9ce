//===- Score.h - the score function of the tensor-core kernels --*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: from a raw dot product x = q.k (an f32 accumulator
// element) to the score s = scale x, or with softcap c > 0 to s = c tanh(scale
// x / c) (Gemma 2). The kernels work in the log2 domain on a transformed
// value x' with s log2(e) = x' * scale2:
//   no softcap: x' = x,                   scale2 = scale log2(e);
//   softcap:    x' = tanh(x scale / c),   scale2 = c log2(e),
// so masking, the running max and P = exp2(x' scale2 - m) are the same code
// with or without softcap. The backward also needs ds/d(scale x) = 1 - x'^2
// (sech2), which multiplies dS.
//
// tanh: `fast` is one tanh.approx.f32 (sm_75+, FlashAttention-2's choice;
// max relative error 2^-11); otherwise ex2.approx and rcp.approx:
// t = sign(x) (1 - e) / (1 + e), e = 2^(-2 |x| log2 e), sech2 = 4 e / (1 +
// e)^2 (absolute error ~1e-7, no cancellation in sech2).
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_SCORE_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_SCORE_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace score {

/// tanh(x) on the GPU; with `sech2Out`, also 1 - tanh(x)^2.
Value tanh(KernelBuilder &k, Value x, bool fast, Value *sech2Out = nullptr);

/// The softcap transform of the kernels: x' = tanh(x * capMul) (capMul =
/// scale / c), and with `sech2Out` its 1 - x'^2.
Value softcap(KernelBuilder &k, Value x, Value capMul, bool fast,
              Value *sech2Out = nullptr);

/// The ALiBi weight of sequence `bi`, query head `h`: its slope
/// (alibi_slopes[bi * alibi_stride_b + h], f32) times `unit`, the kernel's
/// units per score (log2(e) in the log2 domain, log2(e) / scale2 on x').
Value alibiWeight(KernelBuilder &k, Value bi, Value h, Value unit);

/// key - (query + off) as f32 (index operands; |.| < 2^24 stays exact).
Value alibiDist(KernelBuilder &k, Value key, Value query, Value off);

/// x - w |dist + c|.
Value alibi(KernelBuilder &k, Value x, Value w, Value dist, int64_t c);

} // namespace score
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_SCORE_H
