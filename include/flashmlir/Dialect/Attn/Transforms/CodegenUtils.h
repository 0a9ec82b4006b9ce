//===- CodegenUtils.h - IR building helpers for attn lowerings --*- C++ -*-===//
//
// Part of FlashMLIR.
//
// A small builder used by the attn lowerings (tiled forward and backward,
// unfused reference): scalar loops, typed loads/stores through f32, the mask
// predicate, and the score function. Shared by the attn lowerings (CPU
// loops and GPU kernels); not a stable API.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_TRANSFORMS_CODEGENUTILS_H
#define FLASHMLIR_DIALECT_ATTN_TRANSFORMS_CODEGENUTILS_H

#include "flashmlir/Dialect/Attn/IR/AttnOps.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

namespace mlir {
namespace attn {
namespace detail {

/// Emits scalar loop nests and arithmetic at the builder's insertion point.
/// All arithmetic on values is f32; index arithmetic is signed.
class Codegen {
public:
  explicit Codegen(ImplicitLocOpBuilder &b) : b(b) {}

  /// Emit exp2/log2 as the PTX instructions ex2.approx / lg2.approx (inline
  /// PTX) instead of math ops. GPU kernels use this: convert-gpu-to-nvvm
  /// would turn math.exp2 into a libdevice call (__nv_exp2f) that needs the
  /// CUDA toolkit at compile time.
  bool nvptxApprox = false;

  ImplicitLocOpBuilder &builder() { return b; }

  // Constants.
  Value idx(int64_t v);
  Value f32(double v);
  Value negInf() { return f32(-INFINITY); }

  // Index arithmetic.
  Value add(Value a, Value c);
  Value sub(Value a, Value c);
  Value mul(Value a, Value c);
  Value divs(Value a, Value c);
  Value ceilDiv(Value a, Value c);
  Value min(Value a, Value c);
  Value max(Value a, Value c);
  Value cmp(arith::CmpIPredicate p, Value a, Value c);
  Value andI(Value a, Value c);
  Value dim(Value memref, int64_t i);

  // f32 arithmetic.
  Value fadd(Value a, Value c);
  Value fsub(Value a, Value c);
  Value fmul(Value a, Value c);
  Value fdiv(Value a, Value c);
  Value fmax(Value a, Value c);
  Value fcmp(arith::CmpFPredicate p, Value a, Value c);
  Value select(Value cond, Value t, Value f);
  Value exp2(Value x);
  Value log2(Value x);
  /// tanh(x) from exp2 only (no libm or libdevice on any target): an odd
  /// polynomial (Taylor to x^11) for |x| < 1/4, where the exponential form
  /// would cancel, else sign(x) (1 - e) / (1 + e) with e = exp(-2|x|).
  /// `sech2Out` receives 1 - tanh(x)^2 = 4e / (1 + e)^2, computed without the
  /// cancellation of 1 - t^2 when |t| is close to 1.
  Value tanh(Value x, Value *sech2Out = nullptr);

  /// Loads `mem[indices]` and extends it to f32.
  Value load(Value mem, ValueRange indices);
  /// Truncates f32 `v` to the element type of `mem` and stores it.
  void store(Value v, Value mem, ValueRange indices);

  /// `for iv in [lb, ub)` with unit step; `body` emits at the loop body.
  void forLoop(Value lb, Value ub, function_ref<void(Value)> body);
  /// Same with one loop-carried value: returns the final value.
  Value reduce(Value lb, Value ub, Value init,
               function_ref<Value(Value iv, Value acc)> body);
  /// `scf.parallel` over [0, ubs) with unit steps.
  void parallel(ValueRange ubs, function_ref<void(ValueRange)> body);
  /// `scf.if cond { then } else { otherwise }` without results.
  void ifElse(Value cond, function_ref<void()> then,
              function_ref<void()> otherwise);

  /// Allocates a buffer with memref.alloc (dynamic sizes where the shape has
  /// ?). Heap allocation on purpose: the CPU runner counts it as workspace.
  Value alloc(ArrayRef<int64_t> shape, ValueRange dynSizes = {});
  void fill(Value mem, ArrayRef<Value> ubs, Value v);

  /// Dot product of mem1[prefix1..., d] and mem2[prefix2..., d] over d in
  /// [0, n), accumulated in f32.
  Value dot(Value mem1, ValueRange prefix1, Value mem2, ValueRange prefix2,
            int64_t n);

  /// i1: query row `qi` sees key `kj` under `mask`, with off = Nk - Nq.
  Value visible(const MaskSpec &mask, Value qi, Value kj, Value off);

  /// With run-time window bounds `wl`, `wr` (index values, < 0 = unbounded;
  /// causal is wr = 0) and off = Nk - Nq: the keys [lo, hi) that some query
  /// row in [q0, qLast] sees, within [0, nk) ...
  std::pair<Value, Value> visibleKeys(Value q0, Value qLast, Value off,
                                      Value nk, Value wl, Value wr);
  /// ... and the query rows [lo, hi) that see some key in [k0, kLast],
  /// within [0, nq).
  std::pair<Value, Value> visibleQueries(Value k0, Value kLast, Value off,
                                         Value nq, Value wl, Value wr);

private:
  ImplicitLocOpBuilder &b;
};

/// The scalar score pipeline shared by the lowerings: given the raw dot
/// product `qk`, returns `outScale * S` with `S = scale*qk`, or
/// `S = softcap * tanh(scale*qk / softcap)` when softcap is set; with softcap
/// the derivative dS/ds = 1 - tanh^2 is also returned in `derivOut` (for the
/// backward). `outScale = log2(e)` gives scores in the log2 domain.
Value emitScore(Codegen &cg, Value qk, double scale,
                std::optional<double> softcap, Value *derivOut = nullptr,
                double outScale = 1.0);

/// The score modifications of an op (its optional `alibi_slopes` and
/// `sinks` operands), as every lowering reads them.
struct ScoreMods {
  Value alibi; // f32 [Hq] or [B, Hq], or null
  Value sinks; // f32 [Hq], or null

  template <typename OpTy> static ScoreMods of(OpTy op) {
    return {op.getAlibiSlopes(), op.getSinks()};
  }
  /// `-slope * outScale` of sequence `seq` and query head `h` (the ALiBi
  /// bias per key of distance), or null without ALiBi.
  Value negSlope(Codegen &cg, Value seq, Value h, double outScale = 1.0) const;
  /// `sinks[h] * outScale`, or null without sinks.
  Value sink(Codegen &cg, Value h, double outScale = 1.0) const;
};

/// Fused rotary position embedding (the ops' `rotary(%cos, %sin)` operands):
/// the first `dim` elements of a row rotated in pairs at a position, in f32.
struct Rotary {
  Value cos, sin; // f32 [P, dim / 2]
  int64_t dim = 0;
  bool interleaved = false;

  template <typename OpTy> static Rotary of(OpTy op) {
    Rotary r;
    if (!op.getRotaryCos())
      return r;
    r.cos = op.getRotaryCos();
    r.sin = op.getRotarySin();
    r.dim = 2 * cast<ShapedType>(r.cos.getType()).getDimSize(1);
    r.interleaved = op.getRotaryInterleaved();
    return r;
  }
  explicit operator bool() const { return bool(cos); }

  /// Element `d` (an index value) of the row rotated at position `pos`;
  /// `row(e)` gives element `e` of the unrotated row as f32. `inverse`
  /// rotates back (R^T: the backward's dQ and dK). Elements past `dim` are
  /// `row(d)` unchanged.
  Value element(Codegen &cg, function_ref<Value(Value)> row, Value d, Value pos,
                bool inverse = false) const;
};

/// The ALiBi bias `negSlope * |qi + off - kj|` (f32) of query `qi` and key
/// `kj` (index values).
Value alibiBias(Codegen &cg, Value negSlope, Value qi, Value kj, Value off);

/// The common operand facts of both attention ops.
struct AttnShape {
  Value B, Hq, Hkv, Nq, Nk, group, off;
  int64_t D, Dv;
  Type elementType;
};
AttnShape getShape(Codegen &cg, Value q, Value k, Value v);

/// The variable-length form, seen through the dense layout: a packed operand
/// `[T, H, D]` (lse `[H, T]`) as a batch-1 strided view `[1, H, T, D]`
/// (`[1, H, T]`) of the same memory, without a copy.
Value packedAsDense(Codegen &cg, Value packed);
/// Sequence `b`'s rows of such a view: `[1, H, len, D]` (`[1, H, len]`)
/// starting at row `start`.
Value sequenceRows(Codegen &cg, Value dense, Value start, Value len);
/// The start and the length of sequence `b` from the offsets `cu` (i32):
/// `cu[b]` and `cu[b+1] - cu[b]`, as index values.
std::pair<Value, Value> sequenceRange(Codegen &cg, Value cu, Value b);

/// Checks the preconditions every lowering needs: memref operands and static
/// head dims; the variable-length form only where `varlenSupported`, the
/// KV-cache form only where `kvCacheSupported`, score modifications
/// (alibi_slopes, sinks) only where `scoreModsSupported`. Emits an error
/// naming `passName` on failure.
LogicalResult checkLowerable(Operation *op, StringRef passName,
                             bool varlenSupported = false,
                             bool kvCacheSupported = false,
                             bool scoreModsSupported = false);

/// Checks tile sizes and the vector width against flashmlir/runtime/Limits.h
/// (block sizes in [1, kMaxBlock], vector width in [1, kMaxVectorWidth]).
/// `what` prefixes the names in the message ("option " for pass options).
/// Emits an error at `op` naming `passName` on failure.
LogicalResult checkTiling(Operation *op, StringRef passName, StringRef what,
                          int64_t blockM, int64_t blockN, int64_t vectorWidth);

/// checkTiling, then the vectors a tile row spans for this op's head dims
/// (q's and v's innermost sizes; Limits.h checkTileVectors): what the CPU
/// tiling passes check before rewriting `op`.
LogicalResult checkOpTiling(Operation *op, StringRef passName, Value query,
                            Value value, int64_t blockM, int64_t blockN,
                            int64_t vectorWidth);

/// The head dim (innermost size) of a q/k/v/o buffer: [B, H, N, D] or packed
/// varlen [T, H, D].
inline int64_t headDimOf(Value buffer) {
  auto t = cast<ShapedType>(buffer.getType());
  return t.getDimSize(t.getRank() - 1);
}

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_DIALECT_ATTN_TRANSFORMS_CODEGENUTILS_H
