//===- KernelSelect.cpp - capability and tile-model table -------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// The one place that decides how each kernel is built: which engine serves
// a configuration and with which tiles. Every number here was measured on
// an H100 (docs/tensor-cores.md has the runs, predictions and outcomes);
// the kernels (Kernels/) only read the schedule.
//
//===----------------------------------------------------------------------===//

#include "KernelSpec.h"

#include "Kernels/Kernels.h"
#include "Kernels/Simt.h"

#include "flashmlir/runtime/Limits.h"

using namespace mlir;
using namespace mlir::attn;

//===----------------------------------------------------------------------===//
// Capabilities
//===----------------------------------------------------------------------===//

int64_t mlir::attn::gpuSmemLimit(int64_t smVersion) {
  int n = 0;
  const flashmlir::limits::GpuTarget *t = flashmlir::limits::gpuTargets(&n);
  for (int i = 0; i < n; ++i)
    if (t[i].sm == smVersion)
      return t[i].maxDynamicSmem;
  return flashmlir::limits::maxDynamicSmem();
}

/// Element types the target's tensor cores take: f16 from sm_75 (mma.sync
/// m16n8k8), bf16 from sm_80 (an unknown target, 0, is taken as sm_80+).
/// bf16 on sm_75 runs the SIMT kernels.
static bool halfPrecision(const GpuKernelSpec &s) {
  if (!s.elementType)
    return false;
  return s.elementType.isF16() ||
         (s.elementType.isBF16() && (s.smVersion == 0 || s.smVersion >= 80));
}

/// Turing (sm_75): mma.sync m16n8k8 (two per m16n8k16 step), no cp.async
/// (synchronous tile copies), 64 KB of shared memory per block.
static bool turing(const GpuKernelSpec &s) { return s.smVersion == 75; }

static int64_t roundUp(int64_t x, int64_t m) { return (x + m - 1) / m * m; }

/// Head dims the tensor-core kernels take: multiples of 8 in [8, 256] (the
/// MMA tiles are padded inside the kernels: KernelSchedule::dk, dvk).
static bool tcHeadDims(const GpuKernelSpec &s) {
  for (int64_t d : {s.headDim, s.headDimV})
    if (d < 8 || d > 256 || d % 8 != 0)
      return false;
  return true;
}

/// The most dynamic shared memory a block of the target may have
/// (flashmlir/runtime/Limits.h): 227 KB on sm_90, 163 KB on sm_80 / sm_87,
/// 99 KB on sm_86 / sm_89; an unknown target (0) is taken as sm_90.
static int64_t smemLimit(const GpuKernelSpec &s) {
  return gpuSmemLimit(s.smVersion);
}

/// The tensor-core forward (mma.sync, and wgmma on sm_90a): every head dim
/// and softcap.
static bool tcForward(const GpuKernelSpec &s) {
  return halfPrecision(s) && tcHeadDims(s);
}

/// The tensor-core backward main kernel: every head dim and softcap, where
/// its tiles fit the target's shared memory (D = Dv = 256 takes 211 KB:
/// sm_90 only; sm_80 keeps the SIMT kernel there).
static KernelSchedule tcBackwardMain(const GpuKernelSpec &s);
static bool tcBackward(const GpuKernelSpec &s) {
  return halfPrecision(s) && tcHeadDims(s) &&
         tcBackwardMain(s).smemBytes <= smemLimit(s);
}

/// The tensor-core deterministic dQ kernel, up to head dims of 128: its
/// 16-row warps hold dQ in registers (dk / 2 per thread), and from 160 on
/// they spill 12-170 bytes (ptxas 13.0); wider heads keep the SIMT kernel.
static KernelSchedule tcDqSchedule(const GpuKernelSpec &s);
static bool tcDq(const GpuKernelSpec &s) {
  return halfPrecision(s) && tcHeadDims(s) &&
         std::max(s.headDim, s.headDimV) <= 128 &&
         tcDqSchedule(s).smemBytes <= smemLimit(s);
}

/// Whether the tensor-core kernels store their cp.async-staged tiles
/// XOR-swizzled (tile::swizzleCol) instead of in padded rows: sm_90, where
/// it was measured (v10); sm_80 code keeps padded rows (the swizzled
/// addresses cost it spills, up to 384 bytes, and no sm_80 GPU was at hand
/// to weigh that).
static bool swizzleTiles(const GpuKernelSpec &s) { return s.smVersion >= 90; }

/// dqacc_ws in mma fragment order: the tensor-core bwd_main adds its dQ
/// fragments so that a warp's 32 lanes hit 32 consecutive floats (4 full
/// sectors per atomic instruction instead of 8 half-used ones); bwd_pre /
/// bwd_post follow. Within every 16-row group of a (batch, head), n8 column
/// tile n holds 128 floats:
///   dqacc[(rowBase16 + 16 G) D + 128 n + 32 (2 r + e) + 4 g + t]
///     = dQ[row 16 G + 8 r + g][col 8 n + 2 t + e]
/// with rowBase16 = (b Hq + h) * roundUp(Nq, 16) (abi::dqaccRows).
static bool fragmentOrderDqAcc(const GpuKernelSpec &s) {
  return s.tensorCores && !s.deterministic && tcBackward(s);
}

flashmlir::abi::Variant mlir::attn::abiVariant(const GpuKernelSpec &s) {
  flashmlir::abi::Variant v;
  v.deterministic = s.deterministic;
  v.scaledDqAcc = fragmentOrderDqAcc(s);
  v.varlen = s.varlen;
  v.alibi = s.alibi;
  v.rotary = s.rotary;
  return v;
}

//===----------------------------------------------------------------------===//
// Tile models
//===----------------------------------------------------------------------===//

/// What every tensor-core schedule starts from: its engine, the head dims
/// rounded up to `multiple` (the MMA shape; 32 in the backward main kernel,
/// whose dQ and column-split stages halve them) and the softcap's tanh.
static KernelSchedule tensorCoreBase(const GpuKernelSpec &s, Engine engine,
                                     int64_t multiple = 16) {
  KernelSchedule k;
  k.engine = engine;
  k.dk = roundUp(s.headDim, multiple);
  k.dvk = roundUp(s.headDimV, multiple);
  k.fastTanh = s.fastTanh;
  return k;
}

/// Forward, mma.sync. Each warp owns 32 query rows (two m16 tiles), so a K
/// or V fragment read from shared memory feeds two MMAs: with 16 rows per
/// warp the kernel is bound by shared-memory reads (ldmatrix bytes per MMA
/// double) and runs 20-25% slower. Blocks of 4 warps (128 rows) by default;
/// 8 warps (256 rows) halve the global and L2 traffic of K and V per query
/// row, which pays off at d = 128 without a mask (+7-12% at N >= 4k), while
/// under a causal mask or at d = 64 the larger blocks leave fewer, more
/// uneven blocks per wave and lose up to 25% at N = 1k. D = 256: one m16
/// tile per warp (its 16 x 256 O accumulators are already 128 registers
/// per thread, as in FlashAttention-2's 128 x 64 / 8-warp d256 tile), 8
/// warps keep 128-row blocks. The --mma-* knobs override.
static KernelSchedule mmaForward(const GpuKernelSpec &s) {
  KernelSchedule k = tensorCoreBase(s, Engine::MmaSync);
  const int64_t D = k.dk, widest = std::max(k.dk, k.dvk);
  const bool sm80 = s.smVersion == 80;
  // One m16 tile per warp (8 warps) for the wide head dims; on sm_80 also
  // at 112, whose two-tile warps spill 40-100 bytes at any key tile.
  const bool big = widest > 128 || (sm80 && widest == 112);
  int64_t warps = big ? 8 : (D >= 128 && !s.masked ? 8 : 4);
  if (s.mmaWarps)
    warps = s.mmaWarps == 8 ? 8 : 4;
  k.threads = warps * kWarp;
  // Keys per tile: sm_80 code spills with 64-key tiles where it is spill-
  // free with 32 (ptxas 13.0): 4-warp kernels from D = 80 (masked D = 128:
  // ~220 bytes; D = 80 / 96: 100-240) and D = 224 (100-150); the masked
  // kernels from D = 128 keep 32 keys. On sm_90 64 keys spill nothing there
  // and measured 3-10% faster than 32 (masked D = 128).
  k.blockN = sm80 && ((warps == 4 && widest > 64) || widest == 224 ||
                      (s.masked && widest >= 128))
                 ? 32
                 : 64;
  // sm_75 (ptxas 13.0, sm_75): 64-key tiles up to D = 128 (32 made the
  // masked D = 96 kernel spill 24 bytes), 32 beyond, 16 where O is wider
  // than 128 columns (32 spilled 44-190 bytes from Dv = 192; MLA's 192 / 128
  // spills 8-36 bytes with 16).
  if (turing(s))
    k.blockN = k.dvk > 128 ? 16 : widest > 128 ? 32 : 64;
  if (s.mmaBlockN)
    k.blockN = s.mmaBlockN == 32 ? 32 : 64;
  // sm_75: one m16 tile per warp beyond D = 64 and under a mask or
  // softcap (two spill 16-190 bytes there: its synchronous K / V copies keep
  // a tile's 16-byte vectors live in registers).
  k.warpTiles =
      big || (turing(s) && (widest > 64 || s.masked || s.softcap)) ? 1 : 2;
  if (s.mmaWarpRows)
    k.warpTiles = s.mmaWarpRows == 16 ? 1 : 2;
  k.blockM = 16 * k.warpTiles * warps;
  k.gridDiv = k.blockM;
  // XOR-swizzled Q / K / V rows (the K / V copies of every key tile fill
  // aligned 128-byte segments; padded rows made them straddle two: 2.6x the
  // ideal shared-memory wavefronts) measured +2-10% over padded rows (v10).
  // Padded rows where the swizzled addresses (four per ldmatrix operand)
  // cost spills: the masked D = 64 and D = 128 kernels (20-100 bytes on
  // sm_90; the D = 128 one also measured 2% slower) and sm_80 code; and
  // rows that are not a multiple of 64 elements (the swizzle's 128 bytes).
  k.swizzle = swizzleTiles(s) && (!s.masked || big) && k.dk % 64 == 0 &&
              k.dvk % 64 == 0;
  // Q stays in registers as A fragments unless that would cost too many
  // registers (two m16 tiles per warp and D > 64); then its fragments are
  // re-read from shared memory at every k-step, as FlashAttention-2 does.
  k.qInRegisters = D <= 64 || (k.warpTiles == 1 && D <= 128);
  k.asyncCopy = s.mmaAsyncCopy && !turing(s);
  k.smemBytes = kernels::mmaForwardSmem(s, k);
  // Tiles past the target's shared memory (sm_75's 64 KB) shrink in the
  // order that costs the least reuse: 32-key tiles, one m16 tile per warp
  // (Q then fits in registers up to D = 128 and shares the K tile's bytes),
  // 4 warps, then 16-key tiles (D = 256: 64 x 256 Q + 2 x 16 x 256 K / V).
  while (k.smemBytes > smemLimit(s)) {
    if (k.blockN > 32 && !s.mmaBlockN && !turing(s))
      k.blockN = 32;
    else if (k.warpTiles > 1 && !s.mmaWarpRows)
      k.warpTiles = 1;
    else if (k.threads > 4 * kWarp && !s.mmaWarps)
      k.threads = 4 * kWarp;
    else if (k.blockN > 16)
      k.blockN = 16;
    else
      break; // the pass reports the kernel as too large for the target
    k.blockM = 16 * k.warpTiles * k.warps();
    k.gridDiv = k.blockM;
    k.qInRegisters = D <= 64 || (k.warpTiles == 1 && D <= 128);
    k.smemBytes = kernels::mmaForwardSmem(s, k);
  }
  return k;
}

/// Forward, wgmma (sm_90a). Warpgroups per block (64 query rows each; v9):
/// D >= 128 takes two (164 KB of shared memory and ~255 registers per
/// thread allow one block per SM, the two warpgroups overlap each other's
/// softmax and MMAs); D = 64 one (64-row blocks of ~200 registers x 128
/// threads and 74 KB: two blocks per SM, +5-13% over two warpgroups at N <=
/// 4k), two with RoPE (below). --mma-warps 4 / 8 force one / two. Keys per tile: 128; 64 at D =
/// 256, where O alone takes 128 registers per thread (the masked kernel
/// still spills 24 bytes: allowed and listed in test/GPU/bundle-ptxas.test;
/// measured 1.23-1.59x FA2 against 0.91-1.17x for the mma.sync kernel, v10).
static KernelSchedule wgmmaForward(const GpuKernelSpec &s) {
  KernelSchedule k = tensorCoreBase(s, Engine::Wgmma);
  // RoPE: two warpgroups at D <= 64 too: each K tile's rotation is shared
  // by 128 query rows instead of 64.
  int64_t groups = k.dk <= 64 && k.dvk <= 64 && !s.rotary ? 1 : 2;
  if (s.mmaWarps)
    groups = s.mmaWarps == 4 ? 1 : 2;
  k.threads = groups * 128;
  k.blockM = 64 * groups;
  k.blockN = k.dvk > 128 ? 64 : 128;
  if (s.mmaBlockN) // --mma-block-n: 32 / 64 / 128 keys
    k.blockN = s.mmaBlockN == 32 ? 32 : s.mmaBlockN == 64 ? 64 : 128;
  k.gridDiv = k.blockM;
  k.smemBytes = kernels::wgmmaForwardSmem(s, k);
  if (k.smemBytes > smemLimit(s) && k.blockN > 64) { // e.g. D 256 / Dv 128
    k.blockN = 64;
    k.smemBytes = kernels::wgmmaForwardSmem(s, k);
  }
  // RoPE: the K tiles' table rows staged in shared memory at D <= 64 (two
  // warpgroups with them: 0.437 / 0.440 ms against one warpgroup reading
  // the tables, 0.458 / 0.474, B8 H16 N2048 causal bf16, H100 2026-12-08).
  // At D = 128 the staged form measured 1.157 / 1.168 ms against 1.047 /
  // 1.070 (B4 H16 N4096 causal; not causal equal): the rotation reads the
  // tables there.
  // (The two were measured together; --mma-warps 4 keeps the unstaged
  // form.)
  if (s.rotary && k.dk <= 64 && groups == 2) {
    k.stagedRotary = true;
    k.smemBytes = kernels::wgmmaForwardSmem(s, k);
    if (k.smemBytes > smemLimit(s)) {
      k.stagedRotary = false;
      k.smemBytes = kernels::wgmmaForwardSmem(s, k);
    }
  }
  return k;
}

/// Backward main, tensor cores: 8 warps, 128 keys per block, warp w owns
/// keys 16w.. and all dK / dV columns in registers; query tiles of 64.
/// D = 256: "column split", warps w and w + 4 share the 16 keys of a
/// 64-key block and own 128 columns each (64 + 64 accumulator registers
/// instead of 128 + 128). S^T / dP^T in passes of 32 queries at D = 128 (16
/// x 32 live next to dK / dV), 64 at D = 64, where the warp's K / V A
/// fragments also stay in registers. On sm_90a (wgmma requested, atomic
/// dQ, no column split) every product runs on wgmma (v12).
static KernelSchedule tcBackwardMain(const GpuKernelSpec &s) {
  // (Engine set below: wgmma or mma.sync by the head dims.)
  KernelSchedule k = tensorCoreBase(s, Engine::MmaSync, 32);
  // dK / dV accumulators per thread: (dk + dvk) / 2 registers, 128 at most.
  k.colSplit = k.dk + k.dvk > 256 ? 2 : 1;
  k.engine = s.wgmma && k.colSplit == 1 && !s.deterministic ? Engine::Wgmma
                                                             : Engine::MmaSync;
  k.threads = 8 * kWarp;
  k.blockM = 64;
  k.blockN = 16 * (8 / k.colSplit);
  k.gridDiv = k.blockN;
  k.passQueries = k.dk + k.dvk > 128 ? 32 : 64;
  k.residentKV =
      k.dk <= 64 && k.dvk <= 64 && k.engine != Engine::Wgmma;
  k.swizzle = swizzleTiles(s) && k.dk % 64 == 0 && k.dvk % 64 == 0;
  k.fragmentOrderDqAcc = s.tensorCores && !s.deterministic;
  k.smemBytes = kernels::mmaBackwardSmem(s, k);
  if (turing(s)) {
    // sm_75 (64 KB, no cp.async): one Q / dO buffer, 4 warps (64 keys per
    // block; 32 with the column split), then 32-query tiles where 64 do
    // not fit (D = 128: 34 KB of K / V + 17 KB of Q / dO + dS^T), 16 where
    // the pass still has 16 queries per warp of the column split, then one
    // key group (D = 256: 2 warps x 16 keys x 32 queries, 52 KB; 4 warps
    // took 71 KB).
    k.stages = 1;
    k.threads = 4 * kWarp;
    k.blockN = 16 * (4 / k.colSplit);
    k.gridDiv = k.blockN;
    k.smemBytes = kernels::mmaBackwardSmem(s, k);
    for (int64_t bm : {32, 16}) {
      if (k.smemBytes <= smemLimit(s) || bm < 16 * k.colSplit)
        break;
      k.blockM = bm;
      k.passQueries = std::min<int64_t>(k.passQueries, bm);
      k.smemBytes = kernels::mmaBackwardSmem(s, k);
    }
    if (k.smemBytes > smemLimit(s)) {
      k.threads = k.colSplit * kWarp;
      k.blockN = 16;
      k.gridDiv = k.blockN;
      k.smemBytes = kernels::mmaBackwardSmem(s, k);
    }
    // Masked D = 96..128: 16-query passes (32 spilled 8-12 bytes; with
    // softcap at D = 128, 16 spills 52-76 and 32 none).
    if (k.colSplit == 1 && s.masked && k.dk >= 96 &&
        !(s.softcap && k.dk >= 128))
      k.passQueries = 16;
  }
  // RoPE: the Q tiles' table rows staged with them where they fit, on the
  // wgmma kernel: its backward (fwd+bwd less fwd) went from ~3.3 to ~3.0 ms
  // (B4 H16 N4096 d128 causal bf16) and ~5.4 to ~4.85 (not causal), H100
  // 2026-12-08. Not on mma.sync: it spilled up to 56 bytes with them (d64
  // masked softcap, ptxas 13.0 sm_80; the mma.sync forward 250 at d128).
  if (s.rotary && k.engine == Engine::Wgmma) {
    k.stagedRotary = true;
    k.smemBytes = kernels::mmaBackwardSmem(s, k);
    if (k.smemBytes > smemLimit(s)) {
      k.stagedRotary = false;
      k.smemBytes = kernels::mmaBackwardSmem(s, k);
    }
  }
  return k;
}

/// Deterministic dQ, mma.sync (ptxas 13.0 -v; not yet measured on a GPU): 4
/// warps x 16 query rows. D = 64: 64-key tiles, 210-224 registers, 54 KB of
/// shared memory (2 blocks per SM); 32-key tiles would take ~160 registers.
/// D = 128: 32-key tiles, 168 registers, 68 KB (3 blocks per SM on an
/// H100); 64-key tiles take 249-252 registers and 102 KB. Q / dO fragments
/// in registers at D = 64, re-read per k-step at D = 128.
static KernelSchedule tcDqSchedule(const GpuKernelSpec &s) {
  KernelSchedule k = tensorCoreBase(s, Engine::MmaSync);
  const int64_t widest = std::max(k.dk, k.dvk);
  k.threads = 4 * kWarp;
  k.blockM = 16 * 4;
  k.blockN = widest > 64 ? 32 : 64;
  k.gridDiv = k.blockM;
  k.qInRegisters = widest <= 64;
  k.swizzle = swizzleTiles(s) && k.dk % 64 == 0 && k.dvk % 64 == 0;
  k.smemBytes = kernels::mmaDqSmem(s, k);
  return k;
}

/// Split-KV forward (decode), mma.sync: 4 warps x one m16 tile = 64 packed
/// rows (the GQA group's query heads x the query rows: decode has few), so
/// one block per (key range, KV head, sequence) loads each K / V tile once
/// for the whole group. Keys per tile: 128 (FlashAttention-2's split-KV
/// tile at d <= 128: decode is bound by the K / V bytes in flight, and 64-key
/// tiles moved 1.6 TB/s at batch 1 x 128k keys on the H100, v1); 32 where a
/// head dim exceeds 128 (the 16 x 256 O accumulators are 128 registers per
/// thread). Q stays in registers at D <= 32; wider, it is re-read from
/// shared memory at every k-step (in registers, 128-key tiles spill under a
/// mask: 12 bytes at D = 48, 20-40 at D = 128 with softcap; ptxas 13.0).
static KernelSchedule mmaForwardSplit(const GpuKernelSpec &s) {
  KernelSchedule k = tensorCoreBase(s, Engine::MmaSync);
  const int64_t widest = std::max(k.dk, k.dvk);
  k.threads = 4 * kWarp;
  k.warpTiles = 1;
  k.blockM = flashmlir::abi::kSplitRows; // 4 warps x 16
  k.blockN = widest > 128 ? 32 : 128;
  // sm_75 (ptxas 13.0 over every head dim x mask x softcap, key tiles of
  // 16 / 32 / 64 with Q in registers or not): Q re-read from shared memory,
  // 32 keys up to D = 48, 16 from Dv = 224, else 64 (each other choice
  // spilled 4-164 bytes somewhere; MLA's masked 192 / 128 spills 8 with all).
  if (turing(s))
    k.blockN = k.dk <= 48 ? 32 : k.dvk > 192 ? 16 : 64;
  k.gridDiv = 1; // grid x = num_splits
  k.swizzle = swizzleTiles(s) && k.dk % 64 == 0 && k.dvk % 64 == 0;
  k.qInRegisters = k.dk <= 32 || (k.blockN < 128 && k.dk <= 128);
  if (turing(s))
    k.qInRegisters = k.dk <= 16;
  k.asyncCopy = !turing(s);
  k.smemBytes = kernels::mmaForwardSmem(s, k);
  // sm_75: halve the key tile until it fits 64 KB.
  while (k.smemBytes > smemLimit(s) && k.blockN > 16) {
    k.blockN /= 2;
    k.smemBytes = kernels::mmaForwardSmem(s, k);
  }
  return k;
}

/// fwd_combine: one warp per query row, 4 rows per block.
static KernelSchedule splitCombine(const GpuKernelSpec &) {
  KernelSchedule k;
  k.threads = 4 * kWarp;
  k.gridDiv = 4;
  return k;
}

/// bwd_pre / bwd_post: 128 threads, rowLanes lanes per row.
static KernelSchedule rowKernel(GpuKernelKind kind, const GpuKernelSpec &s) {
  KernelSchedule k;
  k.threads = simt::kRowThreads;
  k.rowLanes = simt::rowLanes(kind, s);
  k.gridDiv = simt::kRowThreads / k.rowLanes;
  k.fragmentOrderDqAcc = fragmentOrderDqAcc(s);
  if (kind == GpuKernelKind::BwdPre) // the warps' d sinks (buildSinkGrad)
    k.smemBytes = 4 * k.warps();
  return k;
}

KernelSchedule mlir::attn::selectSchedule(GpuKernelKind kind,
                                          const GpuKernelSpec &s) {
  KernelSchedule k;
  switch (kind) {
  case GpuKernelKind::Fwd:
    if (s.tensorCores && tcForward(s))
      return s.wgmma ? wgmmaForward(s) : mmaForward(s);
    k.threads = simt::kFwdWarps * kWarp;
    k.blockM = simt::kFwdBlockM;
    k.blockN = simt::kBlockN;
    k.gridDiv = simt::kFwdBlockM;
    k.smemBytes = simt::forwardSmem(s).total;
    return k;
  case GpuKernelKind::BwdPre:
    return rowKernel(kind, s);
  case GpuKernelKind::BwdMain:
    if (s.tensorCores && tcBackward(s))
      return tcBackwardMain(s);
    k.threads = kWarp;
    k.blockN = simt::kBlockN;
    k.gridDiv = simt::kBlockN;
    k.smemBytes = simt::backwardSmem(s).total;
    return k;
  case GpuKernelKind::BwdPost:
    if (!s.deterministic)
      return rowKernel(kind, s);
    if (s.tensorCores && tcDq(s))
      return tcDqSchedule(s);
    k.threads = simt::kFwdWarps * kWarp;
    k.blockM = simt::kFwdBlockM;
    k.blockN = simt::kBlockN;
    k.gridDiv = simt::kFwdBlockM;
    k.smemBytes = simt::dqSmem(s).total;
    return k;
  case GpuKernelKind::FwdSplit:
    return mmaForwardSplit(s);
  case GpuKernelKind::FwdCombine:
    return splitCombine(s);
  }
  return k;
}

bool mlir::attn::hasSplitForward(const GpuKernelSpec &spec) {
  return spec.tensorCores && !spec.varlen && tcForward(spec); // f16 / bf16
}

bool mlir::attn::usesTensorCores(GpuKernelKind kind,
                                 const GpuKernelSpec &spec) {
  return selectSchedule(kind, spec).tensorCores();
}

bool mlir::attn::usesWgmma(GpuKernelKind kind, const GpuKernelSpec &spec) {
  return selectSchedule(kind, spec).engine == Engine::Wgmma;
}

std::string mlir::attn::rotaryUnsupported(GpuKernelKind kind,
                                          const GpuKernelSpec &spec) {
  if (!spec.rotary)
    return "";
  if (spec.varlen)
    return "RoPE with variable-length batches has no GPU kernels yet";
  switch (kind) {
  case GpuKernelKind::Fwd:
  case GpuKernelKind::BwdMain:
    if (!usesTensorCores(kind, spec))
      return "RoPE on the GPU is in the tensor-core kernels only (f16 / "
             "bf16; this configuration's " +
             std::string(kind == GpuKernelKind::Fwd ? "forward" : "backward") +
             " is a SIMT kernel)";
    return "";
  case GpuKernelKind::BwdPost:
    if (spec.deterministic)
      return "RoPE has no deterministic backward on the GPU yet";
    return usesTensorCores(GpuKernelKind::BwdMain, spec)
               ? ""
               : rotaryUnsupported(GpuKernelKind::BwdMain, spec);
  default: // bwd_pre, the split-KV pair (tensor-core only), combine
    return "";
  }
}
