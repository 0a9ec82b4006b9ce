//===- OnlineSoftmax.h - online softmax on accumulator rows -----*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to AttnToGPU: the online softmax of the tensor-core forward
// kernels on the rows of an m16n8 accumulator fragment. A row is spread over
// the 4 lanes of a quad (lane = 4 g + t): its max is reduced with two xor
// shuffles; its sum stays per lane until the epilogue. Scores are raw dot
// products x whose log2-domain value is x * scale2 (scale2 > 0), so the max
// is taken on the raw values and P = exp2(x scale2 - m) is one FMA and one
// ex2.approx.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_ONLINESOFTMAX_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_ONLINESOFTMAX_H

#include "KernelBuilder.h"

namespace mlir {
namespace attn {
namespace softmax {

/// Max (`isMax`) or sum of `x` over the 4 lanes of the quad.
Value quadReduce(KernelBuilder &k, Value x, bool isMax);

/// One row's update: the new running max m (log2 units), per-lane sum l,
/// the rescale factor alpha of the old accumulators, and P per element.
struct Row {
  Value m, l, alpha;
  SmallVector<Value> p;
};

/// Attention sinks (KernelAbi.h): the sink logit of query head `h` in log2
/// units (sinks[h] log2 e), or -inf when the kernel's `sinks` buffer is
/// empty. Loaded once, after the key loop (nothing live across it).
Value sinkLog2(KernelBuilder &k, Value h);

/// A finished row (running max `m`, whole-row sum `l`) with the sink `s`
/// (log2 units, -inf: none) joined as one more term of O = 0: the new max
/// and sum, and `alpha` = exp2(m - new max), the factor the row's O
/// accumulators take (O = alpha acc / l). Rows that saw no key get m = s,
/// l = 1 (O = 0, lse = the sink); without a sink nothing changes.
struct Merged {
  Value m, l, alpha;
};
Merged withSink(KernelBuilder &k, Value m, Value l, Value s);

/// The row's update for raw scores `x` (this lane's elements of the row)
/// against the running max `m` and per-lane sum `l`. A row that has seen no
/// key keeps m = -inf and P = 0.
Row update(KernelBuilder &k, ArrayRef<Value> x, Value m, Value l,
           Value scale2);

} // namespace softmax
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_PRIMITIVES_ONLINESOFTMAX_H
