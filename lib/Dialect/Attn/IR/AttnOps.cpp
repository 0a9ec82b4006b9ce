//===- AttnOps.cpp - attn dialect ops ---------------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Verifiers, folders and interface methods of attn.attention and
// attn.attention_backward. Every rule of the op documentation has one check
// here, and each check's message names the operand or attribute at fault.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Dialect/Attn/IR/AttnOps.h"

#include "flashmlir/runtime/Limits.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/OpImplementation.h"
#include "llvm/ADT/STLExtras.h"

#include <cmath>

using namespace mlir;
using namespace mlir::attn;

//===----------------------------------------------------------------------===//
// MaskSpec
//===----------------------------------------------------------------------===//

MaskSpec MaskSpec::get(bool causal, std::optional<ArrayRef<int64_t>> window) {
  MaskSpec spec;
  if (window && window->size() == 2) {
    spec.left = (*window)[0];
    spec.right = (*window)[1];
  }
  // Causal caps the right side of the window at the diagonal.
  if (causal)
    spec.right = 0;
  return spec;
}

static std::optional<double> toDouble(std::optional<APFloat> f) {
  if (!f)
    return std::nullopt;
  return f->convertToDouble();
}

//===----------------------------------------------------------------------===//
// Shared verification
//===----------------------------------------------------------------------===//

namespace {
/// A named operand of an attention op.
struct NamedOperand {
  Value value;
  StringRef name;
};

/// Verifier shared by the forward and backward ops.
class AttentionVerifier {
public:
  explicit AttentionVerifier(Operation *op) : op(op) {}

  ShapedType type(Value v) { return cast<ShapedType>(v.getType()); }

  LogicalResult checkKinds(ArrayRef<NamedOperand> operands) {
    bool anyTensor = false, anyMemRef = false;
    for (const NamedOperand &o : operands) {
      anyTensor |= isa<RankedTensorType>(o.value.getType());
      anyMemRef |= isa<MemRefType>(o.value.getType());
    }
    if (anyTensor && anyMemRef)
      return op->emitOpError(
          "operands must be all tensors or all memrefs, not a mix");
    isTensor = anyTensor;
    return success();
  }

  LogicalResult checkRank(const NamedOperand &o, int64_t rank,
                          StringRef layout) {
    int64_t got = type(o.value).getRank();
    if (got != rank)
      return op->emitOpError() << "expects '" << o.name << "' to have rank "
                               << rank << " (" << layout << "), got rank "
                               << got;
    return success();
  }

  LogicalResult checkElementTypes(const NamedOperand &query,
                                  ArrayRef<NamedOperand> same) {
    Type et = type(query.value).getElementType();
    if (!et.isF16() && !et.isBF16() && !et.isF32())
      return op->emitOpError() << "'" << query.name
                               << "' element type must be f16, bf16 or f32, "
                                  "got "
                               << et;
    for (const NamedOperand &o : same) {
      Type ot = type(o.value).getElementType();
      if (ot != et)
        return op->emitOpError()
               << "'" << o.name << "' element type " << ot
               << " differs from the query's " << et;
    }
    return success();
  }

  LogicalResult checkLse(const NamedOperand &lse, int64_t rank,
                         StringRef layout) {
    if (failed(checkRank(lse, rank, layout)))
      return failure();
    Type lt = type(lse.value).getElementType();
    if (!lt.isF32())
      return op->emitOpError()
             << "'" << lse.name << "' must have element type f32, got " << lt;
    return success();
  }

  /// The variable-length operands: all four or none; the offsets rank-1
  /// i32 `[batch + 1]`, of one length.
  LogicalResult checkVarlen(Value cuQ, Value cuK, Value maxQ, Value maxK) {
    int given = int(bool(cuQ)) + int(bool(cuK)) + int(bool(maxQ)) +
                int(bool(maxK));
    if (given != 0 && given != 4)
      return op->emitOpError(
          "the varlen operands 'cu_seqlens_q', 'cu_seqlens_k', "
          "'max_seqlen_q', 'max_seqlen_k' must be given together");
    if (!given)
      return success();
    for (NamedOperand cu : {NamedOperand{cuQ, "cu_seqlens_q"},
                            NamedOperand{cuK, "cu_seqlens_k"}}) {
      ShapedType t = type(cu.value);
      if (t.getRank() != 1 || !t.getElementType().isInteger(32))
        return op->emitOpError()
               << "expects '" << cu.name
               << "' to be a rank-1 i32 [batch + 1] of offsets, got "
               << cu.value.getType();
      if (!t.isDynamicDim(0) && t.getDimSize(0) < 1)
        return op->emitOpError()
               << "'" << cu.name
               << "' must have at least one element (batch + 1)";
    }
    return checkDim({cuQ, "cu_seqlens_q"}, 0, {cuK, "cu_seqlens_k"}, 0,
                    "batch + 1");
  }
  /// The KV-cache operands: cache_seqlens i32 [batch]; block_table (needs
  /// cache_seqlens) i32 [batch, max_blocks]; not with varlen.
  LogicalResult checkKvCache(const NamedOperand &q, Value lens, Value table,
                             bool varlen) {
    if (!lens && !table)
      return success();
    if (!lens)
      return op->emitOpError(
          "'block_table' needs the per-sequence lengths: add "
          "kv_cache(cache_seqlens)");
    if (varlen)
      return op->emitOpError(
          "the KV-cache form (kv_cache) cannot be combined with varlen");
    ShapedType lt = type(lens);
    if (lt.getRank() != 1 || !lt.getElementType().isInteger(32))
      return op->emitOpError()
             << "expects 'cache_seqlens' to be a rank-1 i32 [batch], got "
             << lens.getType();
    if (failed(checkDim(q, 0, {lens, "cache_seqlens"}, 0, "batch")))
      return failure();
    if (!table)
      return success();
    ShapedType tt = type(table);
    if (tt.getRank() != 2 || !tt.getElementType().isInteger(32))
      return op->emitOpError()
             << "expects 'block_table' to be a rank-2 i32 [batch, "
                "max_blocks], got "
             << table.getType();
    if (!tt.isDynamicDim(1) && tt.getDimSize(1) < 1)
      return op->emitOpError("'block_table' must have at least one column");
    return checkDim(q, 0, {table, "block_table"}, 0, "batch");
  }
  /// The score modifications: alibi_slopes f32 [Hq] or [batch, Hq]; sinks
  /// f32 [Hq]; grad_sinks (backward) f32 [Hq], only with sinks. In the
  /// variable-length form the batch of [batch, Hq] slopes is the number of
  /// sequences (cu_seqlens_q's length - 1).
  LogicalResult checkScoreMods(const NamedOperand &q, Value alibi, Value sinks,
                               Value gradSinks, bool varlen, Value cuQ) {
    const unsigned H = 1;
    auto isF32 = [&](Value x) {
      return type(x).getElementType().isF32();
    };
    if (alibi) {
      ShapedType t = type(alibi);
      if ((t.getRank() != 1 && t.getRank() != 2) || !isF32(alibi))
        return op->emitOpError()
               << "expects 'alibi_slopes' to be f32 [heads] or [batch, "
                  "heads], got "
               << alibi.getType();
      NamedOperand a{alibi, "alibi_slopes"};
      if (failed(checkDim(q, H, a, t.getRank() - 1, "query head count")))
        return failure();
      if (t.getRank() == 2) {
        if (!varlen && failed(checkDim(q, 0, a, 0, "batch")))
          return failure();
        if (varlen && !t.isDynamicDim(0) &&
            !type(cuQ).isDynamicDim(0) &&
            t.getDimSize(0) != type(cuQ).getDimSize(0) - 1)
          return op->emitOpError()
                 << "batch mismatch: 'alibi_slopes' has " << t.getDimSize(0)
                 << " rows but 'cu_seqlens_q' describes "
                 << type(cuQ).getDimSize(0) - 1 << " sequences";
      }
    }
    for (NamedOperand x : {NamedOperand{sinks, "sinks"},
                           NamedOperand{gradSinks, "grad_sinks"}}) {
      if (!x.value)
        continue;
      if (type(x.value).getRank() != 1 || !isF32(x.value))
        return op->emitOpError() << "expects '" << x.name
                                 << "' to be f32 [heads], got "
                                 << x.value.getType();
      if (failed(checkDim(q, H, x, 0, "query head count")))
        return failure();
    }
    if (gradSinks && !sinks)
      return op->emitOpError(
          "'grad_sinks' needs the sinks: add sinks(%s) to the operands");
    return success();
  }
  /// The rotary tables: both or none, f32 [P, R/2] of one shape with R/2
  /// static and 2 * (R/2) <= D; not with a KV cache (yet);
  /// rotary_interleaved only with them.
  LogicalResult checkRotary(const NamedOperand &q, Value cos, Value sin,
                            bool interleaved, bool varlen, bool kvCache) {
    if (!cos && !sin) {
      if (interleaved)
        return op->emitOpError(
            "'rotary_interleaved' needs the rotary tables: add rotary(%cos, "
            "%sin)");
      return success();
    }
    for (NamedOperand x : {NamedOperand{cos, "rotary_cos"},
                           NamedOperand{sin, "rotary_sin"}}) {
      ShapedType t = type(x.value);
      if (t.getRank() != 2 || !t.getElementType().isF32())
        return op->emitOpError()
               << "expects '" << x.name
               << "' to be f32 [positions, rotary_dim / 2], got "
               << x.value.getType();
    }
    if (type(cos).getShape() != type(sin).getShape())
      return op->emitOpError() << "'rotary_cos' " << cos.getType()
                               << " and 'rotary_sin' " << sin.getType()
                               << " must have one shape";
    int64_t half = type(cos).getDimSize(1);
    if (ShapedType::isDynamic(half) || half < 1)
      return op->emitOpError(
          "the rotary tables need a static rotary_dim / 2 >= 1 (dim 1)");
    int64_t d = type(q.value).getDimSize(type(q.value).getRank() - 1);
    if (!ShapedType::isDynamic(d) && 2 * half > d)
      return op->emitOpError()
             << "rotary_dim = " << 2 * half << " (2 x dim 1 of the tables) "
             << "exceeds the head dim " << d;
    if (kvCache)
      return op->emitOpError("rotary with kv_cache is not supported yet");
    return success();
  }

  /// The user regions' signatures: score_mod (f32, index, index, index,
  /// index) yielding f32; mask_mod (index x 4) yielding i1.
  LogicalResult checkRegions(Region &scoreMod, Region &maskMod) {
    auto check = [&](Region &r, StringRef name, ArrayRef<Type> args,
                     Type yields, StringRef signature) -> LogicalResult {
      if (r.empty())
        return success();
      Block &body = r.front();
      if (body.getArgumentTypes() != TypeRange(args))
        return op->emitOpError()
               << "'" << name << "' region must take " << signature
               << ", got " << body.getNumArguments() << " argument(s)";
      auto yield = dyn_cast<YieldOp>(body.getTerminator());
      if (!yield || yield.getValue().getType() != yields)
        return op->emitOpError() << "'" << name
                                 << "' region must end with attn.yield of "
                                 << yields;
      return success();
    };
    Builder b(op->getContext());
    Type f32 = b.getF32Type(), idx = b.getIndexType();
    if (failed(check(scoreMod, "score_mod", {f32, idx, idx, idx, idx}, f32,
                     "(%score: f32, %batch: index, %head: index, %query: "
                     "index, %key: index)")))
      return failure();
    return check(maskMod, "mask_mod", {idx, idx, idx, idx}, b.getI1Type(),
                 "(%batch: index, %head: index, %query: index, %key: "
                 "index)");
  }
  /// Static dims `a[ai]` and `b[bi]` must agree (dynamic dims always do).
  LogicalResult checkDim(const NamedOperand &a, unsigned ai,
                         const NamedOperand &b, unsigned bi, StringRef what) {
    int64_t x = type(a.value).getDimSize(ai), y = type(b.value).getDimSize(bi);
    if (ShapedType::isDynamic(x) || ShapedType::isDynamic(y) || x == y)
      return success();
    return op->emitOpError() << what << " mismatch: '" << a.name << "' has "
                             << x << " but '" << b.name << "' has " << y;
  }

  /// `grad` must have the shape of `primal`, dim by dim.
  LogicalResult checkSameShape(const NamedOperand &grad,
                               const NamedOperand &primal, bool varlen) {
    static const char *dense[] = {"batch", "head count", "sequence length",
                                  "head dim"};
    static const char *packed[] = {"total tokens", "head count", "head dim"};
    for (unsigned i = 0, e = varlen ? 3 : 4; i < e; ++i)
      if (failed(checkDim(grad, i, primal, i, varlen ? packed[i] : dense[i])))
        return failure();
    return success();
  }

  LogicalResult checkHeads(const NamedOperand &query,
                           const NamedOperand &key) {
    int64_t hq = type(query.value).getDimSize(1);
    int64_t hkv = type(key.value).getDimSize(1);
    if (!ShapedType::isDynamic(hkv) && hkv <= 0)
      return op->emitOpError()
             << "'" << key.name << "' must have at least one head, got "
             << hkv;
    if (ShapedType::isDynamic(hq) || ShapedType::isDynamic(hkv))
      return success();
    if (hq % hkv != 0)
      return op->emitOpError()
             << "query head count (" << hq
             << ") must be a multiple of the key/value head count (" << hkv
             << ")";
    return success();
  }

  /// Static head dims (dim 3) and sequence lengths (dim 2) of 4-d operands
  /// must be within the limits every lowering supports
  /// (flashmlir/runtime/Limits.h).
  LogicalResult checkSizeLimits(ArrayRef<NamedOperand> operands) {
    namespace lim = flashmlir::limits;
    for (const NamedOperand &o : operands) {
      ShapedType t = type(o.value);
      // [B, H, N, D], or packed [total, H, D] (varlen: the sequence
      // lengths are the offsets', checked with max_seqlen).
      if (t.getRank() != 4 && t.getRank() != 3)
        continue;
      int64_t d = t.getDimSize(t.getRank() - 1);
      int64_t n = t.getRank() == 4 ? t.getDimSize(2) : ShapedType::kDynamic;
      if (!ShapedType::isDynamic(d))
        if (std::string msg = lim::checkHeadDim(
                "'" + o.name.str() + "' head dim", d);
            !msg.empty())
          return op->emitOpError() << msg;
      if (!ShapedType::isDynamic(n))
        if (std::string msg = lim::checkRange(
                "'" + o.name.str() + "' sequence length", n, 0,
                lim::kMaxSeqLen);
            !msg.empty())
          return op->emitOpError() << msg;
    }
    return success();
  }

  LogicalResult checkAttributes(std::optional<double> scale,
                                std::optional<ArrayRef<int64_t>> window,
                                std::optional<double> softcap,
                                std::optional<ArrayRef<int64_t>> blockSizes,
                                const NamedOperand &query) {
    namespace lim = flashmlir::limits;
    int64_t headDim = type(query.value).getRank() - 1;
    if (scale && !std::isfinite(*scale))
      return op->emitOpError() << "'scale' must be finite, got " << *scale;
    if (scale)
      if (std::string msg = lim::checkScale("'scale'", *scale); !msg.empty())
        return op->emitOpError() << msg;
    if (!scale &&
        ShapedType::isDynamic(type(query.value).getDimSize(headDim)))
      return op->emitOpError()
             << "requires an explicit 'scale' when the head dim of '"
             << query.name << "' is dynamic (the default is 1/sqrt(D))";
    if (window) {
      if (window->size() != 2)
        return op->emitOpError()
               << "'window' must have two values [left, right], got "
               << window->size();
      for (int64_t w : *window)
        if (w < -1)
          return op->emitOpError()
                 << "'window' values must be >= -1 (-1 = unbounded), got ["
                 << (*window)[0] << ", " << (*window)[1] << "]";
      static const char *sides[] = {"'window' left", "'window' right"};
      for (int i = 0; i < 2; ++i)
        if (std::string msg = lim::checkWindow(sides[i], (*window)[i]);
            !msg.empty())
          return op->emitOpError() << msg;
    }
    if (softcap && !(std::isfinite(*softcap) && *softcap > 0))
      return op->emitOpError()
             << "'softcap' must be a finite value > 0, got " << *softcap;
    if (softcap)
      if (std::string msg = lim::checkSoftcap("'softcap'", *softcap);
          !msg.empty())
        return op->emitOpError() << msg;
    if (blockSizes) {
      if (blockSizes->size() != 2)
        return op->emitOpError()
               << "'block_sizes' must have two values [BM, BN], got "
               << blockSizes->size();
      for (int64_t b : *blockSizes)
        if (b <= 0)
          return op->emitOpError()
                 << "'block_sizes' values must be positive, got ["
                 << (*blockSizes)[0] << ", " << (*blockSizes)[1] << "]";
      static const char *names[] = {"'block_sizes' BM", "'block_sizes' BN"};
      for (int i = 0; i < 2; ++i)
        if (std::string msg = lim::checkBlock(names[i], (*blockSizes)[i]);
            !msg.empty())
          return op->emitOpError() << msg;
    }
    return success();
  }

  LogicalResult checkResults(ArrayRef<NamedOperand> inits) {
    if (!isTensor) {
      if (op->getNumResults() != 0)
        return op->emitOpError("on memrefs must have no results");
      return success();
    }
    if (op->getNumResults() != inits.size())
      return op->emitOpError()
             << "on tensors must return one result per init ("
             << inits.size() << "), got " << op->getNumResults();
    for (auto [i, init] : llvm::enumerate(inits))
      if (op->getResult(i).getType() != init.value.getType())
        return op->emitOpError()
               << "result #" << i << " type " << op->getResult(i).getType()
               << " must match the type of init '" << init.name << "' "
               << init.value.getType();
    return success();
  }

  bool isTensor = false;

private:
  Operation *op;
};
} // namespace

/// Shape agreement of q [B, Hq, Nq, D], k [B, Hkv, Nk, D], v [B, Hkv, Nk, Dv],
/// o [B, Hq, Nq, Dv] and lse [B, Hq, Nq]; in the variable-length form
/// q [Tq, Hq, D], k [Tk, Hkv, D], v [Tk, Hkv, Dv], o [Tq, Hq, Dv] and
/// lse [Hq, Tq].
static LogicalResult verifyShapes(AttentionVerifier &v, bool varlen,
                                  const NamedOperand &q,
                                  const NamedOperand &k,
                                  const NamedOperand &val,
                                  const NamedOperand &o,
                                  const NamedOperand *lse,
                                  bool paged = false) {
  const unsigned S = varlen ? 0 : 2, H = 1, Dd = varlen ? 2 : 3;
  if (paged) // k / v [num_blocks, Hkv, block_size, D]
    if (failed(v.checkDim(k, 0, val, 0, "key/value block count")))
      return failure();
  if (!varlen)
    for (const NamedOperand *x : {&k, &val, &o})
      if (!(paged && x != &o) && failed(v.checkDim(q, 0, *x, 0, "batch")))
        return failure();
  StringRef kvLen = varlen ? "key/value total tokens"
                           : "key/value sequence length";
  StringRef qLen = varlen ? "query total tokens" : "query sequence length";
  if (failed(v.checkDim(k, H, val, H, "key/value head count")) ||
      failed(v.checkHeads(q, k)) ||
      failed(v.checkDim(q, H, o, H, "query head count")) ||
      failed(v.checkDim(k, S, val, S, kvLen)) ||
      failed(v.checkDim(q, S, o, S, qLen)) ||
      failed(v.checkDim(q, Dd, k, Dd, "query/key head dim")) ||
      failed(v.checkDim(val, Dd, o, Dd, "value/output head dim")))
    return failure();
  if (!lse)
    return success();
  if (varlen)
    return failure(failed(v.checkDim(q, H, *lse, 0, "query head count")) ||
                   failed(v.checkDim(q, S, *lse, 1, qLen)));
  if (failed(v.checkDim(q, 0, *lse, 0, "batch")) ||
      failed(v.checkDim(q, 1, *lse, 1, "query head count")) ||
      failed(v.checkDim(q, 2, *lse, 2, "query sequence length")))
    return failure();
  return success();
}

static constexpr StringLiteral kLayout4 = "[batch, heads, seq, dim]";
static constexpr StringLiteral kLayout3 = "[total_tokens, heads, dim]";
static constexpr StringLiteral kLseLayout = "[batch, heads, seq]";
static constexpr StringLiteral kLseLayoutVarlen = "[heads, total_q]";

/// The scale of an op whose query is `q` (the attribute or 1/sqrt(D)).
static double scaleValue(std::optional<APFloat> attr, Value q) {
  if (std::optional<double> s = toDouble(attr))
    return *s;
  auto t = cast<ShapedType>(q.getType());
  return 1.0 / std::sqrt(double(t.getDimSize(t.getRank() - 1)));
}

//===----------------------------------------------------------------------===//
// AttentionOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionOp::verify() {
  AttentionVerifier v(getOperation());
  NamedOperand q{getQuery(), "query"}, k{getKey(), "key"},
      val{getValue(), "value"}, o{getOutput(), "output"};
  std::optional<NamedOperand> lse;
  if (getLse())
    lse = NamedOperand{getLse(), "lse"};
  SmallVector<NamedOperand> all = {q, k, val, o};
  if (lse)
    all.push_back(*lse);
  for (NamedOperand cu : {NamedOperand{getCuSeqlensQ(), "cu_seqlens_q"},
                          NamedOperand{getCuSeqlensK(), "cu_seqlens_k"},
                          NamedOperand{getCacheSeqlens(), "cache_seqlens"},
                          NamedOperand{getBlockTable(), "block_table"},
                          NamedOperand{getAlibiSlopes(), "alibi_slopes"},
                          NamedOperand{getSinks(), "sinks"},
                          NamedOperand{getRotaryCos(), "rotary_cos"},
                          NamedOperand{getRotarySin(), "rotary_sin"}})
    if (cu.value)
      all.push_back(cu);
  if (failed(v.checkKinds(all)) ||
      failed(v.checkVarlen(getCuSeqlensQ(), getCuSeqlensK(), getMaxSeqlenQ(),
                           getMaxSeqlenK())) ||
      failed(v.checkKvCache(q, getCacheSeqlens(), getBlockTable(),
                            isVarlen())))
    return failure();
  bool varlen = isVarlen();
  for (const NamedOperand &x : {q, k, val, o})
    if (failed(v.checkRank(x, varlen ? 3 : 4, varlen ? kLayout3 : kLayout4)))
      return failure();
  if ((lse && failed(v.checkLse(*lse, varlen ? 2 : 3,
                                varlen ? kLseLayoutVarlen : kLseLayout))) ||
      failed(v.checkElementTypes(q, {k, val, o})) ||
      failed(verifyShapes(v, varlen, q, k, val, o, lse ? &*lse : nullptr,
                          isPaged())) ||
      failed(v.checkSizeLimits({q, k, val, o})) ||
      failed(v.checkScoreMods(q, getAlibiSlopes(), getSinks(), Value(), varlen,
                              getCuSeqlensQ())) ||
      failed(v.checkRotary(q, getRotaryCos(), getRotarySin(),
                           getRotaryInterleaved(), varlen, isKvCache())) ||
      failed(v.checkRegions(getScoreMod(), getMaskMod())) ||
      failed(v.checkAttributes(toDouble(getScale()), getWindow(),
                               toDouble(getSoftcap()),
                               getBlockSizes(), q)))
    return failure();
  SmallVector<NamedOperand> inits = {o};
  if (lse)
    inits.push_back(*lse);
  return v.checkResults(inits);
}

double AttentionOp::getScaleValue() {
  return scaleValue(getScale(), getQuery());
}

MaskSpec AttentionOp::getMaskSpec() {
  return MaskSpec::get(getCausal(), getWindow());
}

/// Puts the mask attributes in canonical form, in place: a `[-1, -1]`
/// window is dropped, and with `causal` the window's right side (implied by
/// causal) is dropped too.
template <typename OpTy>
static LogicalResult canonicalizeMaskAttrs(OpTy op) {
  std::optional<ArrayRef<int64_t>> window = op.getWindow();
  if (!window || window->size() != 2)
    return failure();
  int64_t left = (*window)[0], right = (*window)[1];
  if (op.getCausal())
    right = -1;
  if (left == -1 && right == -1) {
    op.removeWindowAttr();
    return success();
  }
  if (right == (*window)[1])
    return failure();
  op.setWindow(ArrayRef<int64_t>{left, right});
  return success();
}

LogicalResult AttentionOp::fold(FoldAdaptor,
                                SmallVectorImpl<OpFoldResult> &) {
  return canonicalizeMaskAttrs(*this);
}

/// Memref operands are read (inputs) or read and written (inits); on tensors
/// the op has no memory effects.
static void
getAttentionEffects(DestinationStyleOpInterface op,
                    SmallVectorImpl<SideEffects::EffectInstance<
                        MemoryEffects::Effect>> &effects) {
  for (OpOperand *operand : op.getDpsInputOperands())
    if (isa<MemRefType>(operand->get().getType()))
      effects.emplace_back(MemoryEffects::Read::get(), operand,
                           SideEffects::DefaultResource::get());
  for (OpOperand &operand : op.getDpsInitsMutable())
    if (isa<MemRefType>(operand.get().getType()))
      effects.emplace_back(MemoryEffects::Write::get(), &operand,
                           SideEffects::DefaultResource::get());
}

void AttentionOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getAttentionEffects(*this, effects);
}

//===----------------------------------------------------------------------===//
// AttentionBackwardOp
//===----------------------------------------------------------------------===//

LogicalResult AttentionBackwardOp::verify() {
  AttentionVerifier v(getOperation());
  NamedOperand q{getQuery(), "query"}, k{getKey(), "key"},
      val{getValue(), "value"}, o{getOutput(), "output"},
      dO{getGradOutput(), "grad_output"}, lse{getLse(), "lse"},
      dq{getGradQuery(), "grad_query"}, dk{getGradKey(), "grad_key"},
      dv{getGradValue(), "grad_value"};
  SmallVector<NamedOperand> all = {q, k, val, o, dO, lse, dq, dk, dv};
  for (NamedOperand cu : {NamedOperand{getCuSeqlensQ(), "cu_seqlens_q"},
                          NamedOperand{getCuSeqlensK(), "cu_seqlens_k"},
                          NamedOperand{getAlibiSlopes(), "alibi_slopes"},
                          NamedOperand{getSinks(), "sinks"},
                          NamedOperand{getGradSinks(), "grad_sinks"},
                          NamedOperand{getRotaryCos(), "rotary_cos"},
                          NamedOperand{getRotarySin(), "rotary_sin"}})
    if (cu.value)
      all.push_back(cu);
  if (failed(v.checkKinds(all)) ||
      failed(v.checkVarlen(getCuSeqlensQ(), getCuSeqlensK(), getMaxSeqlenQ(),
                           getMaxSeqlenK())))
    return failure();
  bool varlen = isVarlen();
  for (const NamedOperand &x : {q, k, val, o, dO, dq, dk, dv})
    if (failed(v.checkRank(x, varlen ? 3 : 4, varlen ? kLayout3 : kLayout4)))
      return failure();
  if (failed(v.checkLse(lse, varlen ? 2 : 3,
                        varlen ? kLseLayoutVarlen : kLseLayout)) ||
      failed(v.checkElementTypes(q, {k, val, o, dO, dq, dk, dv})) ||
      failed(verifyShapes(v, varlen, q, k, val, o, &lse)) ||
      failed(v.checkSameShape(dO, o, varlen)) ||
      failed(v.checkSameShape(dq, q, varlen)) ||
      failed(v.checkSameShape(dk, k, varlen)) ||
      failed(v.checkSameShape(dv, val, varlen)) ||
      failed(v.checkSizeLimits({q, k, val, o, dO, dq, dk, dv})) ||
      failed(v.checkScoreMods(q, getAlibiSlopes(), getSinks(), getGradSinks(),
                              varlen, getCuSeqlensQ())) ||
      failed(v.checkRotary(q, getRotaryCos(), getRotarySin(),
                           getRotaryInterleaved(), varlen, false)) ||
      failed(v.checkRegions(getScoreMod(), getMaskMod())) ||
      failed(v.checkAttributes(toDouble(getScale()), getWindow(),
                               toDouble(getSoftcap()),
                               getBlockSizes(), q)))
    return failure();
  SmallVector<NamedOperand> inits = {dq, dk, dv};
  if (getGradSinks())
    inits.push_back({getGradSinks(), "grad_sinks"});
  return v.checkResults(inits);
}

double AttentionBackwardOp::getScaleValue() {
  return scaleValue(getScale(), getQuery());
}

MaskSpec AttentionBackwardOp::getMaskSpec() {
  return MaskSpec::get(getCausal(), getWindow());
}

LogicalResult AttentionBackwardOp::fold(FoldAdaptor,
                                        SmallVectorImpl<OpFoldResult> &) {
  return canonicalizeMaskAttrs(*this);
}

void AttentionBackwardOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  getAttentionEffects(*this, effects);
}

#define GET_OP_CLASSES
#include "flashmlir/Dialect/Attn/IR/AttnOps.cpp.inc"
