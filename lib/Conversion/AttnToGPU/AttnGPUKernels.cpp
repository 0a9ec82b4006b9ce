//===- AttnGPUKernels.cpp - SIMT attention kernels --------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Builds the SIMT attention kernels as gpu.funcs (see the description of
// convert-attn-to-gpu in include/flashmlir/Conversion/Passes.td) and
// describes their ABI.
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

#include "AttnGPUKernelsMMA.h"
#include "AttnGPUKernelsMMABwd.h"
#include "AttnGPUKernelsMMADq.h"
#include "AttnGPUKernelsWgmma.h"

#include "flashmlir/Dialect/Attn/IR/AttnOps.h"
#include "flashmlir/Dialect/Attn/Transforms/CodegenUtils.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/IR/SymbolTable.h"

#include "llvm/ADT/StringMap.h"

using namespace mlir;
using namespace mlir::attn;
using namespace mlir::attn::detail;

static constexpr double kLog2e = 1.4426950408889634;
static constexpr double kLn2 = 0.6931471805599453;

// Kernel geometry. Forward: 4 warps x 8 rows = 32 query rows per block, 32
// keys per tile. Backward main: one warp per 32-key block.
static constexpr int64_t kWarp = 32;
static constexpr int64_t kFwdWarps = 4;
static constexpr int64_t kFwdRowsPerWarp = 8;
static constexpr int64_t kFwdBlockM = kFwdWarps * kFwdRowsPerWarp;
static constexpr int64_t kBlockN = kWarp;
static constexpr int64_t kRowThreads = 128; // bwd_pre / bwd_post

//===----------------------------------------------------------------------===//
// Kernel ABI
//===----------------------------------------------------------------------===//

static int64_t elementBytes(Type t) { return t.getIntOrFloatBitWidth() / 8; }

/// Row kernels (bwd_pre / bwd_post): a row of (batch, head, query) is
/// `rowLanes` consecutive lanes moving 16-byte pieces (coalesced); a block of
/// kRowThreads threads covers kRowThreads / rowLanes rows.
static int64_t rowChunks(GpuKernelKind kind, const GpuKernelSpec &s) {
  int64_t vec = 16 / elementBytes(s.elementType);
  if (kind ==
      GpuKernelKind::BackwardPre) { // dO.O over Dv; dqacc zeroed by f32x4
    int64_t dot = (s.headDimV + vec - 1) / vec;
    return s.deterministic ? dot : std::max(dot, (s.headDim + 3) / 4);
  }
  return (s.headDim + vec - 1) / vec; // dqacc -> dq, `vec` elements at a time
}
static int64_t rowLanes(GpuKernelKind kind, const GpuKernelSpec &s) {
  int64_t l = 1;
  while (l < rowChunks(kind, s) && l < 32)
    l *= 2;
  return l;
}
static int64_t alignUp(int64_t x, int64_t a) { return (x + a - 1) / a * a; }
/// Padding of the transposed [D][32] tiles so that a lane walking down a
/// column hits a different bank each row (row length of 17 or 33 words).
static int64_t transposedRow(Type et) { return et.isF32() ? 33 : 34; }

namespace {
/// Byte offsets of the shared-memory tiles of a kernel.
struct SmemLayout {
  SmallVector<int64_t> offsets;
  int64_t total = 0;
  int64_t add(int64_t bytes) {
    offsets.push_back(total);
    total = alignUp(total + bytes, 16);
    return offsets.back();
  }
};
} // namespace

static SmemLayout forwardSmem(const GpuKernelSpec &s) {
  int64_t eb = elementBytes(s.elementType);
  SmemLayout l;
  l.add(kFwdBlockM * s.headDim * eb);                   // Q tile
  l.add(s.headDim * transposedRow(s.elementType) * eb); // K^T tile
  l.add(kBlockN * s.headDimV * eb);                     // V tile
  return l;
}

static SmemLayout backwardSmem(const GpuKernelSpec &s) {
  int64_t eb = elementBytes(s.elementType);
  SmemLayout l;
  l.add(s.headDim * transposedRow(s.elementType) * eb);  // K^T
  l.add(s.headDimV * transposedRow(s.elementType) * eb); // V^T
  l.add(s.headDim * (kBlockN + 1) * 4);                  // dK accumulator
  l.add(s.headDimV * (kBlockN + 1) * 4);                 // dV accumulator
  l.add(s.headDim * 4);                                  // q row
  l.add(s.headDimV * 4);                                 // dO row
  l.add(kBlockN * 4);                                    // dS row
  return l;
}

/// The SIMT dQ kernel (deterministic): Q and dO tiles of the block's rows,
/// K^T and V^T tiles of 32 keys.
static SmemLayout dqSmem(const GpuKernelSpec &s) {
  int64_t eb = elementBytes(s.elementType);
  SmemLayout l;
  l.add(kFwdBlockM * s.headDim * eb);                    // Q tile
  l.add(kFwdBlockM * s.headDimV * eb);                   // dO tile
  l.add(s.headDim * transposedRow(s.elementType) * eb);  // K^T tile
  l.add(s.headDimV * transposedRow(s.elementType) * eb); // V^T tile
  return l;
}

static void addStrides(SmallVector<GpuKernelArg> &args, StringRef t,
                       bool rank3 = false) {
  args.push_back({(t + "_stride_b").str(), "i64"});
  args.push_back({(t + "_stride_h").str(), "i64"});
  if (!rank3)
    args.push_back({(t + "_stride_n").str(), "i64"});
}

bool mlir::attn::usesTensorCores(GpuKernelKind kind,
                                 const GpuKernelSpec &spec) {
  if (!spec.tensorCores)
    return false;
  if (kind == GpuKernelKind::Forward)
    return mma::supportsForward(spec);
  if (kind == GpuKernelKind::BackwardMain)
    return mma::supportsBackward(spec);
  if (kind == GpuKernelKind::BackwardPost)
    return spec.deterministic && mma::supportsDq(spec);
  return false;
}

bool mlir::attn::usesWgmma(GpuKernelKind kind, const GpuKernelSpec &spec) {
  if (kind == GpuKernelKind::Forward)
    return wgmma::supportsForward(spec);
  if (kind == GpuKernelKind::BackwardMain)
    return usesTensorCores(kind, spec) && mma::backwardWgmma(spec);
  return false;
}

GpuKernelInfo mlir::attn::getGpuKernelInfo(GpuKernelKind kind,
                                           const GpuKernelSpec &spec) {
  GpuKernelInfo info;
  auto buf = [&](StringRef n) { info.args.push_back({n.str(), "buffer"}); };
  auto i64 = [&](StringRef n) { info.args.push_back({n.str(), "i64"}); };
  auto f32 = [&](StringRef n) { info.args.push_back({n.str(), "f32"}); };
  // The attention-wide scalars of the fwd / bwd_main / bwd_dq kernels: sizes
  // (before the strides) and the score parameters (after them).
  auto sizes = [&] {
    for (StringRef n : {"batch", "heads", "kv_heads", "seqlen_q", "seqlen_k"})
      i64(n);
  };
  auto scoreParams = [&] {
    f32("scale");
    f32("softcap");
    i64("window_left");
    i64("window_right");
  };
  auto rowGrid = [&] {
    info.block[0] = kRowThreads;
    info.grid[0] = {"seqlen_q", kRowThreads / rowLanes(kind, spec)};
    info.grid[1] = {"heads", 1};
    info.grid[2] = {"batch", 1};
  };
  switch (kind) {
  case GpuKernelKind::Forward:
    info.entry = "attn_fwd";
    info.kind = "fwd";
    for (StringRef n : {"q", "k", "v", "o", "lse"})
      buf(n);
    sizes();
    for (StringRef t : {"q", "k", "v", "o"})
      addStrides(info.args, t);
    addStrides(info.args, "lse", /*rank3=*/true);
    scoreParams();
    info.block[0] = kFwdWarps * kWarp;
    info.grid[0] = {"seqlen_q", kFwdBlockM};
    info.grid[1] = {"heads", 1};
    info.grid[2] = {"batch", 1};
    info.dynamicSharedMemory = forwardSmem(spec).total;
    info.blockM = kFwdBlockM;
    info.blockN = kBlockN;
    if (usesWgmma(kind, spec)) { // Hopper variant
      info.block[0] = wgmma::forwardWarpGroups(spec) * 4 * kWarp;
      info.grid[0] = {"seqlen_q", wgmma::forwardBlockM(spec)};
      info.dynamicSharedMemory = wgmma::forwardSharedMemory(spec);
      info.blockM = wgmma::forwardBlockM(spec);
      info.blockN = wgmma::forwardBlockN(spec);
    } else if (usesTensorCores(kind, spec)) { // tensor-core variant
      info.block[0] = mma::forwardWarps(spec) * kWarp;
      info.grid[0] = {"seqlen_q", mma::forwardBlockM(spec)};
      info.dynamicSharedMemory = mma::forwardSharedMemory(spec);
      info.blockM = mma::forwardBlockM(spec);
      info.blockN = mma::forwardBlockN(spec);
    }
    break;
  case GpuKernelKind::BackwardPre:
    info.entry = "attn_bwd_pre";
    info.kind = "bwd_pre";
    for (StringRef n : {"o", "do", "dr_ws", "dqacc_ws"})
      if (!spec.deterministic || n != "dqacc_ws")
        buf(n);
    for (StringRef n : {"batch", "heads", "seqlen_q"})
      i64(n);
    addStrides(info.args, "o");
    addStrides(info.args, "do");
    rowGrid();
    break;
  case GpuKernelKind::BackwardMain:
    info.entry = "attn_bwd_main";
    info.kind = "bwd_main";
    for (StringRef n :
         {"q", "k", "v", "do", "lse", "dr_ws", "dqacc_ws", "dk", "dv"})
      if (!spec.deterministic || n != "dqacc_ws")
        buf(n);
    sizes();
    for (StringRef t : {"q", "k", "v", "do", "dk", "dv"})
      addStrides(info.args, t);
    addStrides(info.args, "lse", /*rank3=*/true);
    scoreParams();
    info.block[0] = kWarp;
    info.grid[0] = {"seqlen_k", kBlockN};
    info.grid[1] = {"kv_heads", 1};
    info.grid[2] = {"batch", 1};
    info.dynamicSharedMemory = backwardSmem(spec).total;
    info.blockN = kBlockN;
    if (usesTensorCores(kind, spec)) { // tensor-core variant
      info.block[0] = mma::kBwdWarps * kWarp;
      info.grid[0] = {"seqlen_k", mma::backwardBlockN(spec)};
      info.dynamicSharedMemory = mma::backwardSharedMemory(spec);
      info.blockM = mma::kBwdBlockM;
      info.blockN = mma::backwardBlockN(spec);
    }
    break;
  case GpuKernelKind::BackwardPost:
    if (spec.deterministic) { // dQ itself, query-parallel
      info.entry = "attn_bwd_dq";
      info.kind = "bwd_post";
      for (StringRef n : {"q", "k", "v", "do", "lse", "dr_ws", "dq"})
        buf(n);
      sizes();
      for (StringRef t : {"q", "k", "v", "do", "dq"})
        addStrides(info.args, t);
      addStrides(info.args, "lse", /*rank3=*/true);
      scoreParams();
      info.block[0] = kFwdWarps * kWarp;
      info.grid[0] = {"seqlen_q", kFwdBlockM};
      info.grid[1] = {"heads", 1};
      info.grid[2] = {"batch", 1};
      info.dynamicSharedMemory = dqSmem(spec).total;
      info.blockM = kFwdBlockM;
      info.blockN = kBlockN;
      if (usesTensorCores(kind, spec)) { // tensor-core variant
        info.block[0] = mma::dqWarps(spec) * kWarp;
        info.grid[0] = {"seqlen_q", mma::dqBlockM(spec)};
        info.dynamicSharedMemory = mma::dqSharedMemory(spec);
        info.blockM = mma::dqBlockM(spec);
        info.blockN = mma::dqBlockN(spec);
      }
      break;
    }
    info.entry = "attn_bwd_post";
    info.kind = "bwd_post";
    for (StringRef n : {"dqacc_ws", "dq"})
      buf(n);
    for (StringRef n : {"batch", "heads", "seqlen_q"})
      i64(n);
    addStrides(info.args, "dq");
    // The tensor-core bwd_main accumulates dS K unscaled (fragment order):
    // dq = scale * dqacc here.
    if (mma::fragmentOrderDqAcc(spec))
      f32("scale");
    rowGrid();
    break;
  }
  return info;
}

//===----------------------------------------------------------------------===//
// Kernel building helpers
//===----------------------------------------------------------------------===//

namespace {
/// Emits the body of one kernel: argument lookup by ABI name, thread ids,
/// shared-memory views, warp collectives, strided global addressing.
class KernelGen {
public:
  KernelGen(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
            const GpuKernelInfo &info, const GpuKernelSpec &spec)
      : b(b), cg(b), spec(spec) {
    cg.nvptxApprox = true;
    for (auto [i, arg] : llvm::enumerate(info.args))
      args[arg.name] = func.getArgument(i);
  }

  Value arg(StringRef name) {
    auto it = args.find(name);
    assert(it != args.end() && "kernel argument not in the ABI");
    return it->second;
  }

  Value tid() { return gpu::ThreadIdOp::create(b, gpu::Dimension::x); }
  Value bid(gpu::Dimension d) { return gpu::BlockIdOp::create(b, d); }
  void barrier() { gpu::BarrierOp::create(b); }

  /// A view of `shape` x `type` at `offset` bytes into dynamic shared memory.
  Value smem(int64_t offset, ArrayRef<int64_t> shape, Type type) {
    if (!dynBase) {
      auto i8 = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                                MemRefLayoutAttrInterface(), workgroup());
      dynBase = gpu::DynamicSharedMemoryOp::create(b, i8);
    }
    auto t =
        MemRefType::get(shape, type, MemRefLayoutAttrInterface(), workgroup());
    return memref::ViewOp::create(b, t, dynBase, cg.idx(offset), ValueRange{});
  }

  Attribute workgroup() {
    return gpu::AddressSpaceAttr::get(b.getContext(),
                                      gpu::AddressSpace::Workgroup);
  }

  /// Butterfly all-reduce over the warp (max or sum).
  Value warpReduce(Value x, bool isMax) {
    for (int64_t off = 16; off >= 1; off /= 2) {
      Value y = gpu::ShuffleOp::create(b, x, int32(off), int32(kWarp),
                                       gpu::ShuffleMode::XOR)
                    .getShuffleResult();
      x = isMax ? cg.fmax(x, y) : cg.fadd(x, y);
    }
    return x;
  }

  /// The value of `x` in lane `lane` (an index).
  Value shuffleIdx(Value x, Value lane) {
    Value l = arith::IndexCastOp::create(b, b.getI32Type(), lane);
    return gpu::ShuffleOp::create(b, x, l, int32(kWarp), gpu::ShuffleMode::IDX)
        .getShuffleResult();
  }

  Value int32(int64_t v) {
    return arith::ConstantIntOp::create(b, b.getI32Type(), v);
  }

  /// Element index of [b, h, n, d] in buffer `t` (strides from the ABI).
  Value at4(StringRef t, Value bi, Value h, Value n, Value d) {
    Value i = cg.add(cg.mul(bi, arg((t + "_stride_b").str())),
                     cg.mul(h, arg((t + "_stride_h").str())));
    i = cg.add(i, cg.mul(n, arg((t + "_stride_n").str())));
    return d ? cg.add(i, d) : i;
  }
  Value atLse(Value bi, Value h, Value n) {
    return cg.add(
        cg.add(cg.mul(bi, arg("lse_stride_b")), cg.mul(h, arg("lse_stride_h"))),
        n);
  }

  /// Elements of a 16-byte vector.
  int64_t vecWidth() const { return 16 / elementBytes(spec.elementType); }

  /// Loads `rows` x `cols` elements of buffer `t` (rows clamped to
  /// `rowLimit - 1`, so every address is valid) with 16-byte vectors spread
  /// over `threads` threads, and hands each vector to `sink(row, col, vec)`.
  void loadTile(StringRef t, Value bi, Value h, Value row0, Value rowLimit,
                int64_t rows, int64_t cols, int64_t threads,
                function_ref<void(Value, Value, Value)> sink) {
    int64_t vec = vecWidth();
    int64_t perRow = cols / vec;
    auto vt = VectorType::get({vec}, spec.elementType);
    Value total = cg.idx(rows * perRow);
    auto loop = scf::ForOp::create(b, tid(), total, cg.idx(threads));
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(loop.getBody()->getTerminator());
    Value i = loop.getInductionVar();
    Value r = cg.divs(i, cg.idx(perRow));
    Value c = cg.mul(arith::RemSIOp::create(b, i, cg.idx(perRow)), cg.idx(vec));
    Value n = cg.min(cg.add(row0, r), cg.sub(rowLimit, cg.idx(1)));
    auto load =
        vector::LoadOp::create(b, vt, arg(t), ValueRange{at4(t, bi, h, n, c)});
    load.setAlignment(16);
    sink(r, c, load);
  }

  ImplicitLocOpBuilder &b;
  Codegen cg;
  const GpuKernelSpec &spec;
  llvm::StringMap<Value> args;
  Value dynBase;
};
} // namespace

/// i1: key `kj` is visible from query `qi` (run-time window bounds; `wl`/`wr`
/// < 0 mean unbounded) and is a real key (< Nk).
static Value gpuVisible(KernelGen &k, Value qi, Value kj, Value off, Value nk) {
  Codegen &cg = k.cg;
  Value vis = cg.cmp(arith::CmpIPredicate::slt, kj, nk);
  if (!k.spec.masked)
    return vis;
  Value diag = cg.add(qi, off);
  Value wl = k.arg("window_left"), wr = k.arg("window_right");
  Value c0 = cg.idx(0);
  Value leftOk = arith::OrIOp::create(
      k.b, cg.cmp(arith::CmpIPredicate::slt, wl, c0),
      cg.cmp(arith::CmpIPredicate::sge, kj, cg.sub(diag, wl)));
  Value rightOk = arith::OrIOp::create(
      k.b, cg.cmp(arith::CmpIPredicate::slt, wr, c0),
      cg.cmp(arith::CmpIPredicate::sle, kj, cg.add(diag, wr)));
  return cg.andI(vis, cg.andI(leftOk, rightOk));
}

/// Score in the log2 domain from the raw dot product; with softcap,
/// `derivOut` receives dS/ds = 1 - tanh(scale qk / c)^2.
static Value gpuScore(KernelGen &k, Value qk, Value *derivOut = nullptr) {
  Codegen &cg = k.cg;
  Value scale = k.arg("scale");
  if (!k.spec.softcap)
    return cg.fmul(qk, cg.fmul(scale, cg.f32(kLog2e)));
  Value c = k.arg("softcap");
  Value t = cg.tanh(cg.fmul(qk, cg.fdiv(scale, c)), derivOut);
  return cg.fmul(t, cg.fmul(c, cg.f32(kLog2e)));
}

//===----------------------------------------------------------------------===//
// Forward kernel
//===----------------------------------------------------------------------===//

static void buildForwardBody(KernelGen &k) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t D = s.headDim, Dv = s.headDimV, R = kFwdRowsPerWarp;
  const int64_t C = (Dv + kWarp - 1) / kWarp; // accumulator columns per lane
  const int64_t ktRow = transposedRow(s.elementType);
  Type et = s.elementType, f32 = b.getF32Type();

  Value qb = k.bid(gpu::Dimension::x), h = k.bid(gpu::Dimension::y),
        bi = k.bid(gpu::Dimension::z);
  Value tid = k.tid();
  Value warp = cg.divs(tid, cg.idx(kWarp));
  Value lane = arith::RemSIOp::create(b, tid, cg.idx(kWarp));
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value hk = cg.divs(h, group);
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(kBlockN);
  Value q0 = cg.mul(qb, cg.idx(kFwdBlockM));
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(kFwdBlockM)), nq), c1);

  SmemLayout layout = forwardSmem(s);
  Value qs = k.smem(layout.offsets[0], {kFwdBlockM, D}, et);
  Value kt = k.smem(layout.offsets[1], {D, ktRow}, et);
  Value vs = k.smem(layout.offsets[2], {kBlockN, Dv}, et);

  // Q tile -> shared memory (rows beyond Nq are clamped copies, never
  // stored back).
  k.loadTile("q", bi, h, q0, nq, kFwdBlockM, D, kFwdWarps * kWarp,
             [&](Value r, Value c, Value vec) {
               auto st = vector::StoreOp::create(b, vec, qs, ValueRange{r, c});
               st.setAlignment(16);
             });

  // The key blocks any row of this query block can see.
  Value kLo = c0, kHi = nk;
  if (s.masked)
    std::tie(kLo, kHi) = cg.visibleKeys(
        q0, qLast, off, nk, k.arg("window_left"), k.arg("window_right"));
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

  // Loop-carried per-row state: m[R], l[R], acc[R][C].
  SmallVector<Value> init;
  for (int64_t i = 0; i < R; ++i)
    init.push_back(cg.negInf());
  for (int64_t i = 0; i < R; ++i)
    init.push_back(cg.f32(0.0));
  for (int64_t i = 0; i < R * C; ++i)
    init.push_back(cg.f32(0.0));

  auto kLoop = scf::ForOp::create(b, kbLo, kbHi, c1, init);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value kb = kLoop.getInductionVar();
    ValueRange st = kLoop.getRegionIterArgs();
    SmallVector<Value> m(st.begin(), st.begin() + R),
        l(st.begin() + R, st.begin() + 2 * R),
        acc(st.begin() + 2 * R, st.end());
    Value k0 = cg.mul(kb, bn);

    // Stage K (transposed) and V; the barrier before protects the tiles the
    // previous iteration still reads.
    k.barrier();
    k.loadTile("k", bi, hk, k0, nk, kBlockN, D, kFwdWarps * kWarp,
               [&](Value r, Value c, Value vec) {
                 for (int64_t e = 0; e < k.vecWidth(); ++e) {
                   Value x = vector::ExtractOp::create(b, vec, e);
                   memref::StoreOp::create(b, x, kt,
                                           ValueRange{cg.add(c, cg.idx(e)), r});
                 }
               });
    k.loadTile(
        "v", bi, hk, k0, nk, kBlockN, Dv, kFwdWarps * kWarp,
        [&](Value r, Value c, Value vec) {
          auto st = vector::StoreOp::create(b, vec, vs, ValueRange{r, c});
          st.setAlignment(16);
        });
    k.barrier();

    // Scores and online softmax, one row at a time; lane = key.
    Value kj = cg.add(k0, lane);
    SmallVector<Value> p(R), alpha(R), newM(R), newL(R);
    for (int64_t i = 0; i < R; ++i) {
      Value row = cg.add(cg.mul(warp, cg.idx(R)), cg.idx(i));
      Value qi = cg.add(q0, row);
      Value qk = cg.reduce(c0, cg.idx(D), cg.f32(0.0), [&](Value d, Value a) {
        return cg.fadd(a,
                       cg.fmul(cg.load(qs, {row, d}), cg.load(kt, {d, lane})));
      });
      Value s2 = cg.select(gpuVisible(k, qi, kj, off, nk), gpuScore(k, qk),
                           cg.negInf());
      Value mx = k.warpReduce(s2, /*isMax=*/true);
      newM[i] = cg.fmax(m[i], mx);
      Value mUse =
          cg.select(cg.fcmp(arith::CmpFPredicate::OEQ, newM[i], cg.negInf()),
                    cg.f32(0.0), newM[i]);
      alpha[i] = cg.exp2(cg.fsub(m[i], mUse));
      p[i] = cg.exp2(cg.fsub(s2, mUse));
      newL[i] =
          cg.fadd(cg.fmul(l[i], alpha[i]), k.warpReduce(p[i], /*isMax=*/false));
    }

    // acc = alpha acc + P V: lane owns columns lane + 32c; P_j comes from
    // lane j through a shuffle.
    SmallVector<Value> accInit;
    for (int64_t i = 0; i < R; ++i)
      for (int64_t c = 0; c < C; ++c)
        accInit.push_back(cg.fmul(acc[i * C + c], alpha[i]));
    SmallVector<Value> cols;
    for (int64_t c = 0; c < C; ++c)
      cols.push_back(cg.min(cg.add(lane, cg.idx(c * kWarp)), cg.idx(Dv - 1)));
    auto pv = scf::ForOp::create(b, c0, bn, c1, accInit);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(pv.getBody());
      Value j = pv.getInductionVar();
      ValueRange a = pv.getRegionIterArgs();
      SmallVector<Value> vj, out;
      for (int64_t c = 0; c < C; ++c)
        vj.push_back(cg.load(vs, {j, cols[c]}));
      for (int64_t i = 0; i < R; ++i) {
        Value pj = k.shuffleIdx(p[i], j);
        for (int64_t c = 0; c < C; ++c)
          out.push_back(cg.fadd(a[i * C + c], cg.fmul(pj, vj[c])));
      }
      scf::YieldOp::create(b, out);
    }
    SmallVector<Value> yield(newM);
    yield.append(newL);
    yield.append(pv.getResults().begin(), pv.getResults().end());
    scf::YieldOp::create(b, yield);
  }

  // Epilogue: O = acc / l; lse = (m + log2 l) ln 2; empty rows 0 / -inf.
  ValueRange res = kLoop.getResults();
  for (int64_t i = 0; i < R; ++i) {
    Value row = cg.add(cg.mul(warp, cg.idx(R)), cg.idx(i));
    Value qi = cg.add(q0, row);
    Value m = res[i], l = res[R + i];
    auto inRange =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, qi, nq),
                          /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    Value any = cg.fcmp(arith::CmpFPredicate::OGT, l, cg.f32(0.0));
    Value inv = cg.select(any, cg.fdiv(cg.f32(1.0), l), cg.f32(0.0));
    for (int64_t c = 0; c < C; ++c) {
      Value col = cg.add(lane, cg.idx(c * kWarp));
      auto colOk = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, col, cg.idx(Dv)), false);
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint(colOk.thenBlock()->getTerminator());
      Value o = cg.fmul(res[2 * R + i * C + c], inv);
      if (o.getType() != et)
        o = arith::TruncFOp::create(b, et, o);
      memref::StoreOp::create(b, o, k.arg("o"),
                              ValueRange{k.at4("o", bi, h, qi, col)});
    }
    auto lane0 =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::eq, lane, c0), false);
    b.setInsertionPoint(lane0.thenBlock()->getTerminator());
    Value lse = cg.select(any, cg.fmul(cg.fadd(m, cg.log2(l)), cg.f32(kLn2)),
                          cg.negInf());
    memref::StoreOp::create(b, lse, k.arg("lse"),
                            ValueRange{k.atLse(bi, h, qi)});
  }
  (void)f32;
}

//===----------------------------------------------------------------------===//
// Backward kernels
//===----------------------------------------------------------------------===//

/// Row-parallel kernels: `rowLanes` lanes per query row of (batch, head),
/// each moving 16-byte pieces, so a warp's accesses are contiguous.
///  * bwd_pre: dr = rowsum(dO * O) (f32, lane partial sums reduced with xor
///    shuffles inside the row's lane group) and dqacc[row] = 0.
///  * bwd_post: dq[row] = dqacc[row], converted (times the scale for the
///    tensor-core bwd_main's unscaled fragment-order accumulator).
static void buildRowKernelBody(KernelGen &k, GpuKernelKind kind) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t L = rowLanes(kind, s), R = kRowThreads / L;
  const int64_t vec = 16 / elementBytes(s.elementType);
  Type f32 = b.getF32Type(), et = s.elementType;
  Value tid = k.tid();
  Value lane = arith::RemSIOp::create(b, tid, cg.idx(L));
  Value h = k.bid(gpu::Dimension::y), bi = k.bid(gpu::Dimension::z);
  Value row = cg.add(cg.mul(k.bid(gpu::Dimension::x), cg.idx(R)),
                     cg.divs(tid, cg.idx(L)));
  Value nq = k.arg("seqlen_q");
  Value inRange = cg.cmp(arith::CmpIPredicate::slt, row, nq);
  // Loads use the clamped row (always valid); stores are guarded.
  Value rowC = cg.min(row, cg.sub(nq, cg.idx(1)));
  // Contiguous f32 workspaces: dr [B, Hq, Nq], dqacc [B, Hq, Nq16, D] (Nq
  // rounded up to 16) in row order, or in the tensor-core bwd_main's
  // fragment order (mma::fragmentOrderDqAcc) within each 16-row group.
  const bool fragOrder = mma::fragmentOrderDqAcc(s);
  Value bh = cg.add(cg.mul(bi, k.arg("heads")), h);
  Value flatRow = cg.add(cg.mul(bh, nq), row);
  Value nq16 = cg.mul(cg.ceilDiv(nq, cg.idx(16)), cg.idx(16));
  Value dqBase = cg.mul(cg.add(cg.mul(bh, nq16), row), cg.idx(s.headDim));
  auto vt = VectorType::get({vec}, et);
  auto vf = VectorType::get({vec}, f32);
  // Runs `body(c)` for the chunks c = lane + i L < n of this lane, under
  // `guard` (and c < n where the last round is partial).
  auto chunks = [&](int64_t n, Value guard, function_ref<void(Value)> body) {
    for (int64_t i = 0; i * L < n; ++i) {
      Value c = cg.add(lane, cg.idx(i * L));
      Value ok = guard;
      if ((i + 1) * L > n) {
        Value inN = cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(n));
        ok = ok ? cg.andI(ok, inN) : inN;
      }
      if (!ok) {
        body(c);
        continue;
      }
      auto ifOp = scf::IfOp::create(b, ok, false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      body(c);
    }
  };
  if (kind == GpuKernelKind::BackwardPre) {
    int64_t nv = (s.headDimV + vec - 1) / vec;
    assert(s.headDimV % vec == 0 && "head dims are multiples of 8");
    Value acc = cg.f32(0.0);
    for (int64_t i = 0; i * L < nv; ++i) {
      Value c = cg.add(lane, cg.idx(i * L));
      auto piece = [&]() -> Value {
        Value d = cg.mul(c, cg.idx(vec));
        auto x = vector::LoadOp::create(
            b, vt, k.arg("do"), ValueRange{k.at4("do", bi, h, rowC, d)});
        auto y = vector::LoadOp::create(b, vt, k.arg("o"),
                                        ValueRange{k.at4("o", bi, h, rowC, d)});
        x.setAlignment(16);
        y.setAlignment(16);
        Value sum = cg.f32(0.0);
        for (int64_t e = 0; e < vec; ++e) {
          Value xe = vector::ExtractOp::create(b, x, e),
                ye = vector::ExtractOp::create(b, y, e);
          if (et != f32) {
            xe = arith::ExtFOp::create(b, f32, xe);
            ye = arith::ExtFOp::create(b, f32, ye);
          }
          sum = cg.fadd(sum, cg.fmul(xe, ye));
        }
        return sum;
      };
      if ((i + 1) * L <= nv) {
        acc = cg.fadd(acc, piece());
      } else {
        auto ifOp = scf::IfOp::create(
            b, TypeRange{f32}, cg.cmp(arith::CmpIPredicate::slt, c, cg.idx(nv)),
            /*withElse=*/true);
        OpBuilder::InsertionGuard g(b);
        b.setInsertionPointToStart(ifOp.thenBlock());
        scf::YieldOp::create(b, piece());
        b.setInsertionPointToStart(ifOp.elseBlock());
        scf::YieldOp::create(b, cg.f32(0.0));
        b.setInsertionPointAfter(ifOp);
        acc = cg.fadd(acc, ifOp.getResult(0));
      }
    }
    for (int64_t off = L / 2; off >= 1; off /= 2) {
      Value y = gpu::ShuffleOp::create(b, acc, k.int32(off), k.int32(kWarp),
                                       gpu::ShuffleMode::XOR)
                    .getShuffleResult();
      acc = cg.fadd(acc, y);
    }
    {
      auto ifOp = scf::IfOp::create(
          b,
          cg.andI(inRange, cg.cmp(arith::CmpIPredicate::eq, lane, cg.idx(0))),
          false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(ifOp.thenBlock()->getTerminator());
      memref::StoreOp::create(b, acc, k.arg("dr_ws"), ValueRange{flatRow});
    }
    if (s.deterministic) // no dQ accumulator (attn_bwd_dq computes dQ)
      return;
    assert(s.headDim % 4 == 0 && "head dims are multiples of 8");
    auto v4 = VectorType::get({4}, f32);
    Value zeros = arith::ConstantOp::create(
        b, v4, DenseElementsAttr::get(v4, b.getZeroAttr(f32)));
    auto zeroRow = [&](Value base, Value guard) {
      chunks(s.headDim / 4, guard, [&](Value c) {
        vector::StoreOp::create(b, zeros, k.arg("dqacc_ws"),
                                ValueRange{cg.add(base, cg.mul(c, cg.idx(4)))})
            .setAlignment(16);
      });
    };
    zeroRow(dqBase, inRange);
    if (fragOrder) {
      // Fragment order spreads a 16-row group's rows over the whole group:
      // the lanes of the last row also zero the padding rows Nq .. Nq16 - 1.
      auto last = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::eq, row, cg.sub(nq, cg.idx(1))),
          false);
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPoint(last.thenBlock()->getTerminator());
      auto pad = scf::ForOp::create(b, nq, nq16, cg.idx(1));
      b.setInsertionPointToStart(pad.getBody());
      zeroRow(cg.mul(cg.add(cg.mul(bh, nq16), pad.getInductionVar()),
                     cg.idx(s.headDim)),
              Value());
    }
    return;
  }
  assert(s.headDim % vec == 0 && "head dims are multiples of 8");
  // Fragment order: row 16 G + 8 r + g, columns 8 n + 2 t + e (t = 0..3) of
  // chunk n are two 16-byte pieces (e = 0, 1) at (rowBase16 + 16 G) D +
  // 128 n + 32 (2 r + e) + 4 g.
  Value fragBase;
  if (fragOrder) {
    assert(vec == 8 && "fragment order is for f16 / bf16");
    Value i = arith::RemSIOp::create(b, row, cg.idx(16));
    Value g = arith::RemSIOp::create(b, i, cg.idx(8));
    Value r = cg.divs(i, cg.idx(8));
    fragBase = cg.add(
        cg.mul(cg.add(cg.mul(bh, nq16), cg.sub(row, i)), cg.idx(s.headDim)),
        cg.add(cg.mul(r, cg.idx(64)), cg.mul(g, cg.idx(4))));
  }
  chunks(s.headDim / vec, inRange, [&](Value c) {
    Value d = cg.mul(c, cg.idx(vec));
    SmallVector<Value> vals;
    if (fragOrder) {
      auto v4 = VectorType::get({4}, f32);
      Value base = cg.add(fragBase, cg.mul(c, cg.idx(128)));
      Value x[2];
      for (int64_t e = 0; e < 2; ++e) {
        auto ld = vector::LoadOp::create(
            b, v4, k.arg("dqacc_ws"), ValueRange{cg.add(base, cg.idx(32 * e))});
        ld.setAlignment(16);
        x[e] = ld;
      }
      Value scale = k.arg("scale");
      for (int64_t j = 0; j < vec; ++j)
        vals.push_back(cg.fmul(
            vector::ExtractOp::create(b, x[j % 2], j / 2), scale));
    } else {
      auto x = vector::LoadOp::create(b, vf, k.arg("dqacc_ws"),
                                      ValueRange{cg.add(dqBase, d)});
      x.setAlignment(16);
      for (int64_t e = 0; e < vec; ++e)
        vals.push_back(vector::ExtractOp::create(b, x, e));
    }
    SmallVector<Value> elems;
    for (Value v : vals)
      elems.push_back(
          et == f32 ? v : arith::TruncFOp::create(b, et, v).getResult());
    Value out = vector::FromElementsOp::create(b, vt, elems);
    vector::StoreOp::create(b, out, k.arg("dq"),
                            ValueRange{k.at4("dq", bi, h, row, d)})
        .setAlignment(16);
  });
}

static void buildBackwardMainBody(KernelGen &k) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t D = s.headDim, Dv = s.headDimV;
  const int64_t CD = (D + kWarp - 1) / kWarp;
  const int64_t tRow = transposedRow(s.elementType);
  Type et = s.elementType;

  Value kbk = k.bid(gpu::Dimension::x), hk = k.bid(gpu::Dimension::y),
        bi = k.bid(gpu::Dimension::z);
  Value lane = k.tid();
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(kBlockN);
  Value k0 = cg.mul(kbk, bn);
  Value kj = cg.add(k0, lane);
  Value kLast = cg.sub(cg.min(cg.add(k0, bn), nk), c1);

  SmemLayout layout = backwardSmem(s);
  Value kt = k.smem(layout.offsets[0], {D, tRow}, et);
  Value vt = k.smem(layout.offsets[1], {Dv, tRow}, et);
  Value dkAcc = k.smem(layout.offsets[2], {D, kBlockN + 1}, b.getF32Type());
  Value dvAcc = k.smem(layout.offsets[3], {Dv, kBlockN + 1}, b.getF32Type());
  Value qRow = k.smem(layout.offsets[4], {D}, b.getF32Type());
  Value doRow = k.smem(layout.offsets[5], {Dv}, b.getF32Type());
  Value dsRow = k.smem(layout.offsets[6], {kBlockN}, b.getF32Type());

  // Stage K^T and V^T of the block (each lane its own key, clamped) and zero
  // the accumulators.
  auto stageT = [&](StringRef t, Value dst, int64_t width) {
    k.loadTile(t, bi, hk, k0, nk, kBlockN, width, kWarp,
               [&](Value r, Value c, Value vec) {
                 for (int64_t e = 0; e < k.vecWidth(); ++e) {
                   Value x = vector::ExtractOp::create(b, vec, e);
                   memref::StoreOp::create(b, x, dst,
                                           ValueRange{cg.add(c, cg.idx(e)), r});
                 }
               });
  };
  stageT("k", kt, D);
  stageT("v", vt, Dv);
  cg.forLoop(c0, cg.idx(D), [&](Value d) {
    memref::StoreOp::create(b, cg.f32(0.0), dkAcc, ValueRange{d, lane});
  });
  cg.forLoop(c0, cg.idx(Dv), [&](Value d) {
    memref::StoreOp::create(b, cg.f32(0.0), dvAcc, ValueRange{d, lane});
  });

  // The query rows that can see some key of the block.
  Value qLo = c0, qHi = nq;
  if (s.masked)
    std::tie(qLo, qHi) = cg.visibleQueries(
        k0, kLast, off, nq, k.arg("window_left"), k.arg("window_right"));
  Value scale = k.arg("scale");

  cg.forLoop(c0, group, [&](Value g) {
    Value h = cg.add(cg.mul(hk, group), g);
    cg.forLoop(qLo, qHi, [&](Value i) {
      k.barrier(); // rows of the previous query are no longer read
      for (int64_t c = 0; c < CD; ++c) {
        Value d = cg.add(lane, cg.idx(c * kWarp));
        auto ok = scf::IfOp::create(
            b, cg.cmp(arith::CmpIPredicate::slt, d, cg.idx(D)), false);
        OpBuilder::InsertionGuard gd(b);
        b.setInsertionPoint(ok.thenBlock()->getTerminator());
        memref::StoreOp::create(b,
                                cg.load(k.arg("q"), {k.at4("q", bi, h, i, d)}),
                                qRow, ValueRange{d});
      }
      for (int64_t c = 0; c < (Dv + kWarp - 1) / kWarp; ++c) {
        Value d = cg.add(lane, cg.idx(c * kWarp));
        auto ok = scf::IfOp::create(
            b, cg.cmp(arith::CmpIPredicate::slt, d, cg.idx(Dv)), false);
        OpBuilder::InsertionGuard gd(b);
        b.setInsertionPoint(ok.thenBlock()->getTerminator());
        memref::StoreOp::create(
            b, cg.load(k.arg("do"), {k.at4("do", bi, h, i, d)}), doRow,
            ValueRange{d});
      }
      k.barrier();
      Value lse2 = cg.fmul(memref::LoadOp::create(
                               b, k.arg("lse"), ValueRange{k.atLse(bi, h, i)}),
                           cg.f32(kLog2e));
      Value flatRow =
          cg.add(cg.mul(cg.add(cg.mul(bi, k.arg("heads")), h), nq), i);
      Value dr = memref::LoadOp::create(b, k.arg("dr_ws"), ValueRange{flatRow});

      Value qk = cg.reduce(c0, cg.idx(D), cg.f32(0.0), [&](Value d, Value a) {
        return cg.fadd(a, cg.fmul(memref::LoadOp::create(b, qRow, d),
                                  cg.load(kt, {d, lane})));
      });
      Value th;
      Value s2 = gpuScore(k, qk, &th);
      Value p = cg.select(gpuVisible(k, i, kj, off, nk),
                          cg.exp2(cg.fsub(s2, lse2)), cg.f32(0.0));
      Value dp = cg.reduce(c0, cg.idx(Dv), cg.f32(0.0), [&](Value d, Value a) {
        return cg.fadd(a, cg.fmul(memref::LoadOp::create(b, doRow, d),
                                  cg.load(vt, {d, lane})));
      });
      Value ds = cg.fmul(p, cg.fsub(dp, dr));
      if (s.softcap)
        ds = cg.fmul(ds, th);
      cg.forLoop(c0, cg.idx(Dv), [&](Value d) {
        Value a = memref::LoadOp::create(b, dvAcc, ValueRange{d, lane});
        Value x = cg.fmul(p, memref::LoadOp::create(b, doRow, d));
        memref::StoreOp::create(b, cg.fadd(a, x), dvAcc, ValueRange{d, lane});
      });
      cg.forLoop(c0, cg.idx(D), [&](Value d) {
        Value a = memref::LoadOp::create(b, dkAcc, ValueRange{d, lane});
        Value x = cg.fmul(ds, memref::LoadOp::create(b, qRow, d));
        memref::StoreOp::create(b, cg.fadd(a, x), dkAcc, ValueRange{d, lane});
      });
      if (s.deterministic) // dQ: attn_bwd_dq
        return;
      memref::StoreOp::create(b, ds, dsRow, lane);
      k.barrier();
      // dQ[i, d] += scale sum_j dS_j K[j, d]; lane owns d = lane + 32c.
      // dqacc rows: [B, Hq, Nq rounded up to 16, D].
      Value nq16 = cg.mul(cg.ceilDiv(nq, cg.idx(16)), cg.idx(16));
      Value dqBase =
          cg.mul(cg.add(cg.mul(cg.add(cg.mul(bi, k.arg("heads")), h), nq16), i),
                 cg.idx(D));
      for (int64_t c = 0; c < CD; ++c) {
        Value d = cg.add(lane, cg.idx(c * kWarp));
        auto ok = scf::IfOp::create(
            b, cg.cmp(arith::CmpIPredicate::slt, d, cg.idx(D)), false);
        OpBuilder::InsertionGuard gd(b);
        b.setInsertionPoint(ok.thenBlock()->getTerminator());
        Value sum = cg.reduce(c0, bn, cg.f32(0.0), [&](Value j, Value a) {
          return cg.fadd(a, cg.fmul(memref::LoadOp::create(b, dsRow, j),
                                    cg.load(kt, {d, j})));
        });
        memref::AtomicRMWOp::create(b, arith::AtomicRMWKind::addf,
                                    cg.fmul(sum, scale), k.arg("dqacc_ws"),
                                    ValueRange{cg.add(dqBase, d)});
      }
    });
  });

  // Each lane writes its key's gradients.
  auto valid =
      scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, kj, nk), false);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPoint(valid.thenBlock()->getTerminator());
  cg.forLoop(c0, cg.idx(D), [&](Value d) {
    Value x = memref::LoadOp::create(b, dkAcc, ValueRange{d, lane});
    cg.store(cg.fmul(x, scale), k.arg("dk"), {k.at4("dk", bi, hk, kj, d)});
  });
  cg.forLoop(c0, cg.idx(Dv), [&](Value d) {
    Value x = memref::LoadOp::create(b, dvAcc, ValueRange{d, lane});
    cg.store(x, k.arg("dv"), {k.at4("dv", bi, hk, kj, d)});
  });
}

/// Deterministic dQ (attn_bwd_dq, SIMT): the forward's geometry (4 warps x
/// 8 query rows, key tiles of 32: lane = key). Per visible key tile and row
/// the kernel recomputes s = q.k (softcap: c tanh(s / c) and its derivative),
/// P = exp2(s log2e - lse log2e), dP = dO.v and dS = P (dP - Dr) exactly as
/// the SIMT attn_bwd_main does, then adds dS K to the row's f32 accumulator
/// (lane owns columns lane + 32c; dS_j comes from lane j through a shuffle).
/// The order of every sum is fixed: dq is bit-reproducible.
static void buildDqBody(KernelGen &k) {
  ImplicitLocOpBuilder &b = k.b;
  Codegen &cg = k.cg;
  const GpuKernelSpec &s = k.spec;
  const int64_t D = s.headDim, Dv = s.headDimV, R = kFwdRowsPerWarp;
  const int64_t C = (D + kWarp - 1) / kWarp; // accumulator columns per lane
  const int64_t tRow = transposedRow(s.elementType);
  Type et = s.elementType;
  const int64_t threads = kFwdWarps * kWarp;

  Value qb = k.bid(gpu::Dimension::x), h = k.bid(gpu::Dimension::y),
        bi = k.bid(gpu::Dimension::z);
  Value tid = k.tid();
  Value warp = cg.divs(tid, cg.idx(kWarp));
  Value lane = arith::RemSIOp::create(b, tid, cg.idx(kWarp));
  Value nq = k.arg("seqlen_q"), nk = k.arg("seqlen_k");
  Value group = cg.divs(k.arg("heads"), k.arg("kv_heads"));
  Value hk = cg.divs(h, group);
  Value off = cg.sub(nk, nq);
  Value c0 = cg.idx(0), c1 = cg.idx(1), bn = cg.idx(kBlockN);
  Value q0 = cg.mul(qb, cg.idx(kFwdBlockM));
  Value qLast = cg.sub(cg.min(cg.add(q0, cg.idx(kFwdBlockM)), nq), c1);
  Value scale = k.arg("scale");

  SmemLayout layout = dqSmem(s);
  Value qs = k.smem(layout.offsets[0], {kFwdBlockM, D}, et);
  Value dos = k.smem(layout.offsets[1], {kFwdBlockM, Dv}, et);
  Value kt = k.smem(layout.offsets[2], {D, tRow}, et);
  Value vt = k.smem(layout.offsets[3], {Dv, tRow}, et);

  // Q and dO rows of the block (rows >= Nq: clamped copies, never stored).
  auto stageRows = [&](StringRef t, Value dst, int64_t width) {
    k.loadTile(t, bi, h, q0, nq, kFwdBlockM, width, threads,
               [&](Value r, Value c, Value vec) {
                 vector::StoreOp::create(b, vec, dst, ValueRange{r, c})
                     .setAlignment(16);
               });
  };
  stageRows("q", qs, D);
  stageRows("do", dos, Dv);

  // Per row of this warp: lse log2e and Dr (clamped row: always valid).
  SmallVector<Value> rowOf(R), lse2(R), dr(R);
  Value rowBase = cg.mul(cg.add(cg.mul(bi, k.arg("heads")), h), nq);
  for (int64_t i = 0; i < R; ++i) {
    rowOf[i] = cg.add(cg.mul(warp, cg.idx(R)), cg.idx(i));
    Value qi = cg.min(cg.add(q0, rowOf[i]), cg.sub(nq, c1));
    lse2[i] = cg.fmul(
        memref::LoadOp::create(b, k.arg("lse"), ValueRange{k.atLse(bi, h, qi)}),
        cg.f32(kLog2e));
    dr[i] = memref::LoadOp::create(b, k.arg("dr_ws"),
                                   ValueRange{cg.add(rowBase, qi)});
  }

  // The key blocks any row of this query block can see (as the forward).
  Value kLo = c0, kHi = nk;
  if (s.masked)
    std::tie(kLo, kHi) = cg.visibleKeys(
        q0, qLast, off, nk, k.arg("window_left"), k.arg("window_right"));
  Value kbLo = cg.divs(kLo, bn);
  Value kbHi = cg.max(kbLo, cg.ceilDiv(kHi, bn));

  SmallVector<Value> init(R * C, cg.f32(0.0));
  auto kLoop = scf::ForOp::create(b, kbLo, kbHi, c1, init);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(kLoop.getBody());
    Value k0 = cg.mul(kLoop.getInductionVar(), bn);
    ValueRange acc = kLoop.getRegionIterArgs();

    // K^T and V^T tiles (padded rows: lane = key reads conflict-free); the
    // barrier before protects the tiles the previous iteration still reads.
    auto stageT = [&](StringRef t, Value dst, int64_t width) {
      k.loadTile(t, bi, hk, k0, nk, kBlockN, width, threads,
                 [&](Value r, Value c, Value vec) {
                   for (int64_t e = 0; e < k.vecWidth(); ++e) {
                     Value x = vector::ExtractOp::create(b, vec, e);
                     memref::StoreOp::create(
                         b, x, dst, ValueRange{cg.add(c, cg.idx(e)), r});
                   }
                 });
    };
    k.barrier();
    stageT("k", kt, D);
    stageT("v", vt, Dv);
    k.barrier();

    // rows[i] . tile[:, lane] for the R rows at once: each K^T / V^T
    // element is loaded once (and only R sums are live).
    auto dotRows = [&](Value rows, Value tile, int64_t width) {
      auto loop = scf::ForOp::create(b, c0, cg.idx(width), c1,
                                     SmallVector<Value>(R, cg.f32(0.0)));
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(loop.getBody());
      Value d = loop.getInductionVar();
      Value x = cg.load(tile, {d, lane});
      SmallVector<Value> out;
      for (int64_t i = 0; i < R; ++i)
        out.push_back(cg.fadd(loop.getRegionIterArgs()[i],
                              cg.fmul(cg.load(rows, {rowOf[i], d}), x)));
      scf::YieldOp::create(b, out);
      return SmallVector<Value>(loop.getResults());
    };
    Value kj = cg.add(k0, lane);
    SmallVector<Value> qk = dotRows(qs, kt, D), dp = dotRows(dos, vt, Dv);
    SmallVector<Value> ds(R);
    for (int64_t i = 0; i < R; ++i) {
      Value qi = cg.add(q0, rowOf[i]);
      Value th;
      Value s2 = gpuScore(k, qk[i], &th);
      Value p = cg.select(gpuVisible(k, qi, kj, off, nk),
                          cg.exp2(cg.fsub(s2, lse2[i])), cg.f32(0.0));
      ds[i] = cg.fmul(p, cg.fsub(dp[i], dr[i]));
      if (s.softcap)
        ds[i] = cg.fmul(ds[i], th);
    }

    // acc += dS K: lane owns columns lane + 32c (clamped; the extra lanes'
    // sums are never stored), K[j, col] = K^T[col, j].
    SmallVector<Value> cols;
    for (int64_t c = 0; c < C; ++c)
      cols.push_back(cg.min(cg.add(lane, cg.idx(c * kWarp)), cg.idx(D - 1)));
    auto jLoop = scf::ForOp::create(b, c0, bn, c1, acc);
    {
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPointToStart(jLoop.getBody());
      Value j = jLoop.getInductionVar();
      ValueRange a = jLoop.getRegionIterArgs();
      SmallVector<Value> kcol, out;
      for (int64_t c = 0; c < C; ++c)
        kcol.push_back(cg.load(kt, {cols[c], j}));
      for (int64_t i = 0; i < R; ++i) {
        Value dsj = k.shuffleIdx(ds[i], j);
        for (int64_t c = 0; c < C; ++c)
          out.push_back(cg.fadd(a[i * C + c], cg.fmul(dsj, kcol[c])));
      }
      scf::YieldOp::create(b, out);
    }
    scf::YieldOp::create(b, jLoop.getResults());
  }

  // dq = scale * acc, rows < Nq, columns < D. Rows that see no key: 0.
  ValueRange res = kLoop.getResults();
  for (int64_t i = 0; i < R; ++i) {
    Value qi = cg.add(q0, rowOf[i]);
    auto inRange =
        scf::IfOp::create(b, cg.cmp(arith::CmpIPredicate::slt, qi, nq), false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPoint(inRange.thenBlock()->getTerminator());
    for (int64_t c = 0; c < C; ++c) {
      Value col = cg.add(lane, cg.idx(c * kWarp));
      auto colOk = scf::IfOp::create(
          b, cg.cmp(arith::CmpIPredicate::slt, col, cg.idx(D)), false);
      OpBuilder::InsertionGuard g2(b);
      b.setInsertionPoint(colOk.thenBlock()->getTerminator());
      Value x = cg.fmul(res[i * C + c], scale);
      if (x.getType() != et)
        x = arith::TruncFOp::create(b, et, x);
      memref::StoreOp::create(b, x, k.arg("dq"),
                              ValueRange{k.at4("dq", bi, h, qi, col)});
    }
  }
}

//===----------------------------------------------------------------------===//
// Kernel construction
//===----------------------------------------------------------------------===//

static MemRefType bufferType(MLIRContext *ctx, Type et) {
  return MemRefType::get(
      {ShapedType::kDynamic}, et,
      StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {1}));
}

/// Element type of a buffer argument of the ABI.
static Type bufferElementType(StringRef name, const GpuKernelSpec &spec,
                              Builder &b) {
  if (name == "lse" || name == "dr_ws" || name == "dqacc_ws")
    return b.getF32Type();
  return spec.elementType;
}

gpu::GPUFuncOp mlir::attn::buildGpuKernel(OpBuilder &builder,
                                          gpu::GPUModuleOp module,
                                          GpuKernelKind kind,
                                          const GpuKernelSpec &spec) {
  MLIRContext *ctx = builder.getContext();
  GpuKernelInfo info = getGpuKernelInfo(kind, spec);
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();

  // The external base symbol of dynamic shared memory: keeps the NVPTX
  // layout of `gpu.dynamic_shared_memory` from overlapping anything else.
  if (!SymbolTable::lookupSymbolIn(module, "__flashmlir_dyn_smem")) {
    auto t = MemRefType::get(
        {0}, builder.getI8Type(), MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
    memref::GlobalOp::create(builder, loc, "__flashmlir_dyn_smem",
                             /*sym_visibility=*/StringAttr(), t,
                             /*initial_value=*/Attribute(), /*constant=*/false,
                             builder.getI64IntegerAttr(16));
  }

  SmallVector<Type> argTypes;
  for (const GpuKernelArg &a : info.args) {
    if (a.kind == "buffer")
      argTypes.push_back(
          bufferType(ctx, bufferElementType(a.name, spec, builder)));
    else if (a.kind == "f32")
      argTypes.push_back(builder.getF32Type());
    else
      argTypes.push_back(builder.getIndexType());
  }
  auto func = gpu::GPUFuncOp::create(builder, loc, info.entry,
                                     builder.getFunctionType(argTypes, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                builder.getUnitAttr());
  func.setKnownBlockSizeAttr(builder.getDenseI32ArrayAttr(
      {int32_t(info.block[0]), int32_t(info.block[1]),
       int32_t(info.block[2])}));

  ImplicitLocOpBuilder b(loc, builder);
  b.setInsertionPointToStart(&func.getBody().front());
  KernelGen k(b, func, info, spec);
  switch (kind) {
  case GpuKernelKind::Forward:
    if (usesWgmma(kind, spec))
      wgmma::buildForwardBody(b, func, info, spec); // Hopper variant
    else if (usesTensorCores(kind, spec))
      mma::buildForwardBody(b, func, info, spec); // tensor-core variant
    else
      buildForwardBody(k);
    break;
  case GpuKernelKind::BackwardPre:
    buildRowKernelBody(k, kind);
    break;
  case GpuKernelKind::BackwardPost:
    if (!spec.deterministic)
      buildRowKernelBody(k, kind);
    else if (usesTensorCores(kind, spec))
      mma::buildDqBody(b, func, info, spec); // tensor-core variant
    else
      buildDqBody(k);
    break;
  case GpuKernelKind::BackwardMain:
    if (usesTensorCores(kind, spec))
      mma::buildBackwardMainBody(b, func, info, spec); // tensor-core variant
    else
      buildBackwardMainBody(k);
    break;
  }
  gpu::ReturnOp::create(b);
  return func;
}
