//===- VectorCodegen.h - f32 vector tiles for the CPU lowerings -*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The vector half of the CPU tile lowerings (attn-tile-forward,
// attn-tile-backward): f32 vectors of the host's width, a polynomial exp2
// and tanh on them, and one register-blocked outer-product contraction that
// every tile product (S = Q K^T, P V, dP, dV, dK, dQ) is built from. The GPU
// kernels do not use it.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_TRANSFORMS_VECTORCODEGEN_H
#define FLASHMLIR_DIALECT_ATTN_TRANSFORMS_VECTORCODEGEN_H

#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"

#include "mlir/IR/BuiltinTypes.h"

namespace mlir {
namespace attn {
namespace detail {

/// One tile contraction in outer-product form:
///
///   for row in [0, rows), col in cols:
///     acc[row][col] = init(row, col) + sum_{k in [kLo, kHi)} lhs(row, k) * rhs(k, col)
///     finish(row, col, acc)
///
/// `cols` is split into vectors (`chunks`, lane counts from
/// VecCodegen::chunks); `lhs` is a scalar broadcast to every lane, `rhs` a
/// vector. The rows are blocked so that a block's accumulators stay in
/// registers for the whole k loop (VecCodegen::blocking).
struct OuterProduct {
  Value rows;
  ArrayRef<int64_t> chunks;
  Value kLo, kHi;
  /// f32 scalar lhs[row][k].
  function_ref<Value(Value row, Value k)> lhs;
  /// f32 vector of `width` lanes: rhs[k][col .. col + width).
  function_ref<Value(Value k, int64_t col, int64_t width)> rhs;
  /// The initial accumulator of `width` lanes at (row, col); null: zeros.
  function_ref<Value(Value row, int64_t col, int64_t width)> init;
  /// Receives the final accumulator.
  function_ref<void(Value row, int64_t col, Value acc)> finish;
};

/// Emits f32 vector code at a Codegen's insertion point.
class VecCodegen {
public:
  /// `width`: f32 lanes of the widest host vector (16 AVX-512, 8 AVX2, 4
  /// SSE/NEON). Vector registers are assumed to be 32 for width >= 16, else
  /// 16.
  VecCodegen(Codegen &cg, int64_t width);

  Codegen &cg;
  ImplicitLocOpBuilder &b;
  const int64_t width;
  const int64_t registers;

  /// `n` lanes split into vectors: full `width` vectors and one shorter tail
  /// (40 at width 16: {16, 16, 8}).
  SmallVector<int64_t> chunks(int64_t n) const;
  /// Rows per register block and vectors per block for a contraction with
  /// `numChunks` vectors per row: R rows x G vectors of accumulators plus G
  /// rhs vectors and one broadcast fit in the registers.
  std::pair<int64_t, int64_t> blocking(int64_t numChunks) const;

  VectorType vecType(int64_t lanes, Type elem = {});
  Value splat(double v, int64_t lanes);
  Value splatI32(int64_t v, int64_t lanes);
  /// <0, 1, ..., lanes-1> as i32.
  Value iota(int64_t lanes);
  Value broadcast(Value scalar, int64_t lanes);
  /// Loads `lanes` elements at mem[indices] (innermost contiguous) as f32.
  Value load(Value mem, ValueRange indices, int64_t lanes);
  /// Stores f32 `v` at mem[indices], truncated to mem's element type.
  void store(Value v, Value mem, ValueRange indices);

  Value fma(Value a, Value x, Value c);
  /// s + negSlope * |dist| on f32 vectors (`dist`: i32 vector of query
  /// diagonal minus key, `negSlope` an f32 scalar): the ALiBi bias.
  Value addAlibi(Value s, Value dist, Value negSlope);
  /// 2^x on f32 vectors: 2^round(x) from the exponent bits times a degree-6
  /// polynomial of the fraction (relative error ~1.5e-7); x <= -127 (and
  /// -inf) gives 0, x >= 127 is clamped.
  Value exp2(Value x);
  /// tanh on f32 vectors, the same formula as Codegen::tanh (odd Taylor
  /// polynomial below 1/4, exp2 form above); `sech2Out` = 1 - tanh^2.
  Value tanh(Value x, Value *sech2Out = nullptr);

  /// scf.for over [lb, ub) carrying `inits`; returns the final values.
  SmallVector<Value>
  loop(Value lb, Value ub, ValueRange inits,
       function_ref<SmallVector<Value>(Value iv, ValueRange acc)> body);

  /// Emits `p` (see OuterProduct).
  void outerProduct(const OuterProduct &p);

private:
  void outerProductBlock(const OuterProduct &p, Value row0, int64_t rows,
                         ArrayRef<std::pair<int64_t, int64_t>> cols);
};

} // namespace detail
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_DIALECT_ATTN_TRANSFORMS_VECTORCODEGEN_H
