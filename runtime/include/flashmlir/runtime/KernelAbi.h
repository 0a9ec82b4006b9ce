//===- KernelAbi.h - the attention kernels' ABI, one definition -*- C++ -*-===//
//
// Part of FlashMLIR.
//
// What the compiler (convert-attn-to-gpu, lib/Conversion/AttnToGPU), the
// bundle writer (lib/Bundle) and the runtime (runtime/lib) must agree on,
// written once: the kernel kinds and entry names, every kernel's argument
// list (names, classes, order), the grid dimensions, the element type of
// each buffer and the f32 workspaces of the backward. C++17, header-only, no
// MLIR or LLVM: the runtime half builds without them.
//
// A buffer argument is a 1-D `memref<?xT>` (five PTX parameters: allocated
// and aligned pointer, offset, size, stride); an i64 is an `index`, an f32 a
// float. Tensors are addressed with element strides passed by name
// (`q_stride_b`, `q_stride_h`, `q_stride_n`; `lse` has no `_stride_n`), so
// one kernel serves every length, batch, head count and both [B,H,N,D] and
// [B,N,H,D] layouts.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_KERNELABI_H
#define FLASHMLIR_RUNTIME_KERNELABI_H

#include <cstdint>
#include <string>
#include <vector>

namespace flashmlir {
namespace abi {

/// The kernels of a configuration, in launch order for the backward:
/// BwdPre (dr = rowsum(dO O), dqacc = 0), BwdMain (dK, dV; dQ atomics into
/// dqacc), BwdPost (dq from dqacc, or, deterministic, dQ itself). The
/// split-KV (flash-decoding) forward is FwdSplit then FwdCombine: FwdSplit
/// takes the query rows of one (sequence, KV head) — every query head of
/// the GQA group, packed as rows — against one of `num_splits` key ranges
/// and writes normalized partials (O / l in f32 and the range's lse)
/// to oacc_ws / lseacc_ws; FwdCombine merges the partials of each row by
/// their lse into o and lse.
enum class Kind { Fwd, BwdPre, BwdMain, BwdPost, FwdSplit, FwdCombine };

/// "fwd", "bwd_pre", "bwd_main", "bwd_post" (the manifest's `kind`).
inline const char *kindName(Kind k) {
  switch (k) {
  case Kind::Fwd:
    return "fwd";
  case Kind::BwdPre:
    return "bwd_pre";
  case Kind::BwdMain:
    return "bwd_main";
  case Kind::BwdPost:
    return "bwd_post";
  case Kind::FwdSplit:
    return "fwd_split";
  case Kind::FwdCombine:
    return "fwd_combine";
  }
  return "?";
}

/// How an argument is passed: a buffer (five parameters), an i64 or an f32.
enum class ArgClass { Buffer, I64, F32 };

struct Arg {
  std::string name;
  ArgClass cls;
};

/// The switches that change a configuration's argument lists.
struct Variant {
  /// Deterministic dQ: no dqacc_ws anywhere; BwdPost is `attn_bwd_dq`,
  /// which computes dQ from q, k, v, do, lse and dr_ws.
  bool deterministic = false;
  /// BwdMain accumulates dQ unscaled (the tensor-core kernels' fragment
  /// order): BwdPost multiplies by `scale` and takes it.
  bool scaledDqAcc = false;
  /// Variable-length (packed) batches: the kernels also take the int32
  /// offsets `cu_seqlens_q` / `cu_seqlens_k` ([batch + 1]); `batch` is the
  /// number of sequences, `seqlen_q` / `seqlen_k` their maximum lengths (the
  /// grid), the tensors packed [T, H, D] (their `_stride_b` unused; lse
  /// [Hq, Tq], `lse_stride_b` unused). The backward kernels also take
  /// `total_q` (Tq): their workspaces are packed too (varlenDqaccRows).
  /// The deterministic backward has no varlen form.
  bool varlen = false;
  /// ALiBi (FlashAttention-2's `alibi_slopes`): the kernels that compute
  /// scores (Fwd, BwdMain, the deterministic BwdPost, FwdSplit) also take
  /// `alibi_slopes`, f32 [B, Hq] read at (b * alibi_stride_b + h)
  /// (`alibi_stride_b` 0: one slope per head, [Hq]), and score (i, j) of
  /// sequence b, query head h gains -slope |i + Nk - Nq - j| (after
  /// softcap, before the masks).
  bool alibi = false;
  /// Fused RoPE (FlashAttention-2's `rotary_cos` / `rotary_sin`): the
  /// kernels that compute scores also take the f32 tables `rotary_cos`,
  /// `rotary_sin` ([P, R/2], row p at p * rotary_stride; 16-byte aligned,
  /// rotary_stride a multiple of 4), `rotary_dim` (R: a multiple of 16, <=
  /// D) and `rotary_interleaved` (0: GPT-NeoX pairs (d, d + R/2); 1: GPT-J
  /// pairs (2m, 2m + 1)); query i is rotated at position i + Nk - Nq, key j
  /// at j. BwdPost (not deterministic) also takes them and `seqlen_k`: it
  /// rotates dQ back (R^T); BwdMain rotates dK back. Dense batches only.
  bool rotary = false;
};

/// The tensors with `<name>_stride_{b,h,n}` arguments ([B, H, N, D]).
inline const std::vector<std::string> &stridedTensors() {
  static const std::vector<std::string> t = {"q",  "k",  "v",  "o",
                                             "do", "dq", "dk", "dv"};
  return t;
}

/// Buffers whose elements are f32 whatever the configuration's dtype; the
/// others hold the element type.
inline bool isF32Buffer(const std::string &name) {
  return name == "lse" || name == "dr_ws" || name == "dqacc_ws" ||
         name == "oacc_ws" || name == "lseacc_ws" || name == "sinks" ||
         name == "dsinks" || name == "alibi_slopes" ||
         name == "rotary_cos" || name == "rotary_sin";
}

/// Buffers of int32 elements (the varlen offsets).
inline bool isI32Buffer(const std::string &name) {
  return name == "cu_seqlens_q" || name == "cu_seqlens_k" ||
         name == "cache_seqlens" || name == "block_table";
}

/// Attention sinks (gpt-oss): `sinks` is an f32 [Hq] buffer of one logit
/// per query head that joins every row's softmax with a zero value row, or
/// empty (size 0, null) for none; the kernels test its size. attn_fwd and
/// attn_fwd_combine start each row's softmax from it (lse counts the sink;
/// a row that sees no key gets O = 0, lse = sinks[h]); the backward needs
/// nothing more for dQ / dK / dV (P is recomputed from that lse). d sinks
/// is a second launch of attn_bwd_pre with `sinks_pass` = 1 (after the
/// first, `sinks_pass` = 0, has written dr_ws): it writes dsinks[h] = -sum
/// over (b, i) of exp(sinks[h] - lse[b, h, i]) dr[b, h, i] (f32 [Hq],
/// overwritten, in a fixed order; `dsinks` empty: nothing).

/// How fwd_split addresses K / V rows (its `kv_mode`):
///  * kKvDense: k / v [B, Hkv, Nk, D] (strided), seqlen_k keys each;
///  * kKvCacheLens: the same tensors as a KV cache of capacity seqlen_k,
///    sequence b using its first cache_seqlens[b] rows;
///  * kKvPaged: k / v are the cache's blocks [num_blocks, Hkv, block_size,
///    D] (their `_stride_b` the block stride); key n of sequence b is row
///    n % block_size of block block_table[b * block_table_stride + n /
///    block_size], n < cache_seqlens[b].
/// Buffers a mode does not use may be null.
inline constexpr int64_t kKvDense = 0, kKvCacheLens = 1, kKvPaged = 2;

/// The `.entry` name of a kernel.
inline const char *entryName(Kind k, const Variant &v) {
  switch (k) {
  case Kind::Fwd:
    return "attn_fwd";
  case Kind::BwdPre:
    return "attn_bwd_pre";
  case Kind::BwdMain:
    return "attn_bwd_main";
  case Kind::BwdPost:
    return v.deterministic ? "attn_bwd_dq" : "attn_bwd_post";
  case Kind::FwdSplit:
    return "attn_fwd_split";
  case Kind::FwdCombine:
    return "attn_fwd_combine";
  }
  return "?";
}

/// The argument list of kernel `k`, in parameter order.
inline std::vector<Arg> kernelArgs(Kind k, const Variant &v) {
  std::vector<Arg> a;
  auto buf = [&](const char *n) { a.push_back({n, ArgClass::Buffer}); };
  auto i64 = [&](const std::string &n) { a.push_back({n, ArgClass::I64}); };
  auto f32 = [&](const char *n) { a.push_back({n, ArgClass::F32}); };
  auto strides = [&](const std::string &t, bool rank3 = false) {
    i64(t + "_stride_b");
    i64(t + "_stride_h");
    if (!rank3)
      i64(t + "_stride_n");
  };
  auto rotaryParams = [&] {
    if (!v.rotary)
      return;
    buf("rotary_cos");
    buf("rotary_sin");
    for (const char *n : {"rotary_stride", "rotary_dim", "rotary_interleaved"})
      i64(n);
  };
  // The attention-wide scalars: sizes before the strides, score parameters
  // after them.
  auto sizes = [&] {
    for (const char *n : {"batch", "heads", "kv_heads", "seqlen_q", "seqlen_k"})
      i64(n);
  };
  auto scoreParams = [&] {
    f32("scale");
    f32("softcap");
    i64("window_left");
    i64("window_right");
    if (v.alibi) {
      buf("alibi_slopes");
      i64("alibi_stride_b");
    }
    rotaryParams();
  };
  auto rowSizes = [&] {
    for (const char *n : {"batch", "heads", "seqlen_q"})
      i64(n);
  };
  // Varlen backward kernels: the sequences' offsets and the packed rows.
  auto varlenRows = [&](bool keys = false) {
    if (!v.varlen)
      return;
    buf("cu_seqlens_q");
    if (keys)
      buf("cu_seqlens_k");
    i64("total_q");
  };
  switch (k) {
  case Kind::Fwd:
    for (const char *n : {"q", "k", "v", "o", "lse", "sinks"})
      buf(n);
    if (v.varlen) {
      buf("cu_seqlens_q");
      buf("cu_seqlens_k");
    }
    sizes();
    for (const char *t : {"q", "k", "v", "o"})
      strides(t);
    strides("lse", /*rank3=*/true);
    scoreParams();
    break;
  case Kind::BwdPre:
    for (const char *n : {"o", "do", "dr_ws", "dqacc_ws"})
      if (!v.deterministic || std::string(n) != "dqacc_ws")
        buf(n);
    for (const char *n : {"lse", "sinks", "dsinks"})
      buf(n);
    varlenRows();
    rowSizes();
    i64("sinks_pass");
    strides("o");
    strides("do");
    strides("lse", /*rank3=*/true);
    break;
  case Kind::BwdMain:
    for (const char *n :
         {"q", "k", "v", "do", "lse", "dr_ws", "dqacc_ws", "dk", "dv"})
      if (!v.deterministic || std::string(n) != "dqacc_ws")
        buf(n);
    varlenRows(/*keys=*/true);
    sizes();
    for (const char *t : {"q", "k", "v", "do", "dk", "dv"})
      strides(t);
    strides("lse", /*rank3=*/true);
    scoreParams();
    break;
  case Kind::BwdPost:
    if (v.deterministic) { // dQ itself, query-parallel
      for (const char *n : {"q", "k", "v", "do", "lse", "dr_ws", "dq"})
        buf(n);
      sizes();
      for (const char *t : {"q", "k", "v", "do", "dq"})
        strides(t);
      strides("lse", /*rank3=*/true);
      scoreParams();
      break;
    }
    for (const char *n : {"dqacc_ws", "dq"})
      buf(n);
    varlenRows();
    rowSizes();
    strides("dq");
    if (v.scaledDqAcc)
      f32("scale");
    if (v.rotary) {
      i64("seqlen_k");
      rotaryParams();
    }
    break;
  case Kind::FwdSplit:
    // K / V rows through kv_mode (kKvDense, kKvCacheLens, kKvPaged): a
    // KV cache's per-sequence lengths and block table.
    for (const char *n : {"q", "k", "v", "oacc_ws", "lseacc_ws",
                          "cache_seqlens", "block_table"})
      buf(n);
    sizes();
    i64("num_splits");
    i64("kv_mode");
    i64("block_size");
    i64("block_shift"); // log2(block_size) when a power of two, else -1
    i64("block_table_stride");
    for (const char *t : {"q", "k", "v"})
      strides(t);
    scoreParams();
    break;
  case Kind::FwdCombine:
    for (const char *n : {"oacc_ws", "lseacc_ws", "o", "lse", "sinks"})
      buf(n);
    rowSizes();
    i64("num_splits");
    strides("o");
    strides("lse", /*rank3=*/true);
    break;
  }
  return a;
}

/// The problem sizes a grid dimension may be derived from
/// (grid = ceil(size / div)).
inline const std::vector<std::string> &gridDimNames() {
  static const std::vector<std::string> n = {
      "batch", "heads", "kv_heads", "seqlen_q", "seqlen_k", "head_dim",
      "head_dim_v", "num_splits"};
  return n;
}

/// The sizes of the grid's x, y, z dimensions of kernel `k` (the divisor of
/// x is the kernel's tile: query rows, keys, or rows per block).
struct GridNames {
  const char *x, *y, *z;
};
inline GridNames gridNames(Kind k) {
  if (k == Kind::BwdMain) // key blocks x kv heads x batch
    return {"seqlen_k", "kv_heads", "batch"};
  if (k == Kind::FwdSplit) // key ranges x kv heads x batch
    return {"num_splits", "kv_heads", "batch"};
  return {"seqlen_q", "heads", "batch"}; // query blocks / rows x heads x batch
}

/// Every argument name any kernel may take, with its class (what the
/// runtime provides), plus the sizes manifests may name (head_dim,
/// head_dim_v). False for names outside the ABI.
inline bool knownArg(const std::string &name, ArgClass *cls) {
  struct Table {
    std::vector<Arg> args;
    Table() {
      auto add = [&](const Arg &a) {
        for (const Arg &b : args)
          if (b.name == a.name)
            return;
        args.push_back(a);
      };
      for (Kind k : {Kind::Fwd, Kind::BwdPre, Kind::BwdMain, Kind::BwdPost,
                     Kind::FwdSplit, Kind::FwdCombine})
        for (bool det : {false, true})
          for (const Arg &a :
               kernelArgs(k, {det, /*scaledDqAcc=*/true, /*varlen=*/true,
                                  /*alibi=*/true, /*rotary=*/true}))
            add(a);
      add({"head_dim", ArgClass::I64});
      add({"head_dim_v", ArgClass::I64});
      for (const std::string &t : stridedTensors())
        for (const char *d : {"_stride_b", "_stride_h", "_stride_n"})
          add({t + d, ArgClass::I64});
    }
  };
  static const Table table;
  for (const Arg &a : table.args)
    if (a.name == name) {
      if (cls)
        *cls = a.cls;
      return true;
    }
  return false;
}

/// The backward's f32 workspaces: dr_ws [B, Hq, Nq] and dqacc_ws [B, Hq,
/// dqaccRows(Nq), D] (rows rounded up to 16 per head: the tensor-core
/// kernels keep 16-row groups in mma fragment order).
inline int64_t dqaccRows(int64_t nq) { return (nq + 15) / 16 * 16; }

/// The varlen backward's workspaces, packed like lse: dr_ws [Hq, Tq], row
/// (h, cu_seqlens_q[b] + n); dqacc_ws [Hq, varlenDqaccRows(Tq, B), D], row
/// (h, cu_seqlens_q[b] + 15 b + n): each sequence's rows start 15 rows
/// further than the last one's, so its 16-row groups (the tensor-core
/// kernels' fragment order) never reach into the next sequence's.
inline int64_t varlenDqaccRows(int64_t tq, int64_t batch) {
  return tq + 15 * batch;
}

/// The split-KV forward's f32 workspaces: oacc_ws [S, B, Hq, Nq, Dv] (row
/// (s, b, h, n) holds O / l of key range s) and lseacc_ws [S, B, Hq, Nq]
/// (its lse; -inf for a range the row sees no key of), S = num_splits.
inline int64_t splitOaccElems(int64_t s, int64_t b, int64_t hq, int64_t nq,
                              int64_t dv) {
  return s * b * hq * nq * dv;
}
inline int64_t splitLseElems(int64_t s, int64_t b, int64_t hq, int64_t nq) {
  return s * b * hq * nq;
}
/// The most key ranges a split-KV forward takes.
inline constexpr int64_t kMaxSplits = 128;
/// The packed rows of a fwd_split block: a call takes the split-KV forward
/// only where (query rows) x (query heads per KV head) fit.
inline constexpr int64_t kSplitRows = 64;

} // namespace abi
} // namespace flashmlir

#endif // FLASHMLIR_RUNTIME_KERNELABI_H
