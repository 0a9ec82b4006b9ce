//===- MmaBackward.h - tensor-core backward main kernel ---------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// Private to Kernels/: the state of the tensor-core backward main kernel
// (design: MmaBackward.cpp), shared by its three parts:
//   MmaBackward.cpp      set-up, K / V staging, the (head, query tile) loop,
//                        Q / dO / lse / dr double-buffering, epilogue;
//   MmaBackwardPass.cpp  one pass of S^T, P^T, dP^T, dS^T, dV, dK;
//   MmaBackwardDq.cpp    dQ = dS K and its fragment-order atomics.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_MMABACKWARD_H
#define FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_MMABACKWARD_H

#include "Kernels.h"

#include "../Primitives/Wgmma.h"

#include <functional>
#include <optional>

namespace mlir {
namespace attn {
namespace kernels {
namespace bwd {

/// Elements of padding per padded smem row.
inline constexpr int64_t kPad = 8;

/// Byte offsets of the shared-memory tiles (all element type unless noted).
struct Layout {
  int64_t k = 0;  ///< K   [BN keys][D + tilePad]
  int64_t v = 0;  ///< V   [BN keys][Dv + tilePad]
  int64_t q = 0;  ///< Q   [2 buffers][64 rows][D + tilePad]
  int64_t dO = 0; ///< dO  [2][64 rows][Dv + tilePad]
  int64_t qBytes = 0, dOBytes = 0; ///< one buffer
  int64_t dS = 0;                  ///< dS^T [BN keys][64 rows + 8]
  int64_t p = 0;   ///< P^T [BN keys][64 rows + 8] (column split only)
  int64_t lse = 0; ///< f32 [2][64]: lse of the tile's rows
  int64_t dr = 0;  ///< f32 [2][64]: dr of the tile's rows
  int64_t rot = 0; ///< RoPE, stagedRotary: f32 [2][64][dk / 2] table rows
  int64_t total = 0;
};
Layout layoutOf(const GpuKernelSpec &s, const KernelSchedule &sch);

/// The lane values (LaneIds) plus kg: the warp's key group (= warp; column
/// split: w % 4), qw, qc: its dQ row group and column half.
struct Lanes : LaneIds {
  Value kg, qw, qc;
  Value cs; ///< column split: the warp's dK / dV column half (w / 4)
};

/// Iteration (hI, tI) = (query head hI of the kv head's group, tile tI):
/// query head, first row, dr_ws / dqacc row bases, lse base.
struct Iter {
  Value h, q0, rowBase, rowBase16, lseBase;
};

/// The values of one iteration of the query loop.
struct Step {
  Lanes ln; ///< from an opaque copy of the thread id
  std::optional<wgmma::Descriptors> ld; ///< from an opaque copy of the base
  Value keyRow[2];        ///< the lane's two keys
  Iter cur;
  Value buf;              ///< the Q / dO / lse / dr buffer (it % 2)
  Value qs, dos;          ///< views of that buffer
  Value rowOff;           ///< buf * 64: into lseS / drS
  Value full;             ///< the tile needs no element mask
};

/// The kernel: its sizes, arguments, views and the steps it emits.
struct Kernel {
  Kernel(KernelBuilder &k, const KernelSchedule &sch);
  void build();

  // MmaBackward.cpp
  Lanes lanesOf(Value tid);
  Value qView(Value buf);
  Value dOView(Value buf);
  Iter iterOf(Value hI32, Value tI32);
  Value stage(Value hI, Value tI, Value buf, Value tid);
  /// RoPE: table row of each row of the query tile from q0.
  std::function<Value(Value)> queryPos(Value q0);
  void fenceAsync();
  /// RoPE: the dK epilogue through shared memory, rotated back.
  void storeRotatedDk(ValueRange res);
  SmallVector<int64_t> tileShape(int64_t rows, int64_t cols) const;
  SmallVector<Value> aFrag(const Lanes &l, Value mem, int64_t kk);
  Value keyRowOf(const Lanes &l, int64_t r);
  /// wgmma: the dQ columns per warpgroup and the K tile's width
  /// (MmaBackwardDq.cpp).
  int64_t wgmmaDqCols() const;
  int64_t kTileCols() const;
  Value fullTile(Value q0);
  // MmaBackwardPass.cpp: pass `pass` of the tile's queries; updates dk, dv.
  void pass(Step &st, int64_t pass, SmallVector<Value> &dk,
            SmallVector<Value> &dv);
  // MmaBackwardDq.cpp
  void dqStage(Step &st);

  KernelBuilder &k;
  const KernelSchedule &sch;
  const GpuKernelSpec &s;
  ImplicitLocOpBuilder &b;
  detail::Codegen &cg;

  int64_t kBM, kNW;
  /// The padded head dims the MMAs use (schedule dk / dvk: columns >= the
  /// real realD / realDv are zero in the tiles and never written out).
  int64_t D, Dv, realD, realDv;
  int64_t CS; ///< warps sharing a key group
  int64_t KG; ///< key groups of 16
  int64_t BN; ///< keys per block: 16 per key group
  /// Queries per pass of S^T / dP^T; column split: the warp's half of the
  /// tile in one pass (queries cs * QS..).
  int64_t QS;
  int64_t NP; ///< passes
  int64_t ST; ///< n8 tiles of S^T / dP^T (queries)
  int64_t KW; ///< dK columns per warp
  int64_t VW; ///< dV columns per warp
  int64_t KT; ///< n8 tiles of dK
  int64_t VT; ///< n8 tiles of dV
  int64_t NK; ///< k16 steps over the block's keys
  int64_t QW; ///< dQ columns per warp (4 row groups x 2)
  int64_t tp; ///< padding of the staged tiles' rows
  bool wg;    ///< wgmma (sm_90a)
  bool resident;
  Type f32, et;
  Layout L;

  Value kb, hk, bi;
  Lanes top;
  Value nq, nk, heads, group, off, c0, c1, k0, kLast, wl, wr, scale, scale2;
  Value capMul; ///< softcap: scale / c (scale2 is then c log2(e))
  std::optional<wgmma::Descriptors> desc;
  std::optional<wgmma::WgmmaEmitter> wge;
  Value ks, vs, dss, pss, lseS, drS;
  Value rotS; ///< RoPE, stagedRotary: the Q tile's table rows (one buffer)
  Value qtLo, nT, total, nq16;
  SmallVector<SmallVector<Value>> kf, vf;
};

} // namespace bwd
} // namespace kernels
} // namespace attn
} // namespace mlir

#endif // FLASHMLIR_LIB_CONVERSION_ATTNTOGPU_KERNELS_MMABACKWARD_H
