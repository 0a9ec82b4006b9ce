/*===- FlashMLIR.h - C API of the FlashMLIR compiler --------------*- C -*-===*
 *
 * Part of FlashMLIR.
 *
 * Two parts:
 *  1. Embedding in other MLIR-based compilers: the attn dialect handle and the
 *     registration of every FlashMLIR pass and pipeline (MLIR C API style).
 *  2. A self-contained kernel API with plain C types (no MLIR types), used by
 *     the Python package through ctypes: compile attention for the host CPU
 *     and run it on host memory, or write a GPU kernel bundle.
 *
 * Every function that can fail returns 0 on success and non-zero on failure,
 * with a message in `err` (NUL-terminated, truncated to errlen).
 *
 *===----------------------------------------------------------------------===*/

#ifndef FLASHMLIR_C_FLASHMLIR_H
#define FLASHMLIR_C_FLASHMLIR_H

#include "mlir-c/IR.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- 1. Embedding ------------------------------------------------------- */

MLIR_DECLARE_CAPI_DIALECT_REGISTRATION(Attn, attn);

/* Registers FlashMLIR's passes and named pipelines (and the upstream passes
 * they are built from) with MLIR's global pass registry. */
MLIR_CAPI_EXPORTED void flashmlirRegisterAllPasses(void);

/* Inserts the attn dialect and every dialect and interface FlashMLIR's
 * pipelines use into `registry`. */
MLIR_CAPI_EXPORTED void flashmlirRegisterAllDialects(MlirDialectRegistry registry);

/* Parses `ir` (MLIR assembly: a module holding attn ops), runs the textual
 * pass pipeline `pipeline`, anchored on the module, on it (e.g.
 * "builtin.module(attn-cpu-pipeline)" or "builtin.module(attn-to-loops)",
 * "builtin.module(func.func(cse))"; every FlashMLIR and upstream pass that
 * flashmlirRegisterAllPasses registers, which this registers when they are
 * not yet) and returns the result as text in *out (free it with
 * flashmlir_free). Needs no MLIR C API: the whole compiler from plain C. */
MLIR_CAPI_EXPORTED int flashmlir_run_pass_pipeline(const char *ir,
                                                   const char *pipeline,
                                                   char **out, char *err,
                                                   size_t errlen);

/* Frees memory returned by this API (flashmlir_run_pass_pipeline's text). */
MLIR_CAPI_EXPORTED void flashmlir_free(void *p);

/* --- 2. Kernels ----------------------------------------------------------- */

typedef enum { FLASHMLIR_F32 = 0, FLASHMLIR_F16 = 1, FLASHMLIR_BF16 = 2 } flashmlir_dtype;

/* A host tensor: logical [B, H, N, D] (lse: [B, H, N], rank 3), element
 * strides, innermost stride 1. f16/bf16 elements are 16-bit patterns. */
typedef struct {
  void *data;
  int64_t rank;
  int64_t sizes[4];
  int64_t strides[4];
} flashmlir_tensor;

typedef struct {
  flashmlir_dtype dtype;
  int64_t head_dim, head_dim_v;
  double scale;          /* <= 0: 1/sqrt(head_dim) */
  int causal;
  int64_t window_left, window_right; /* -1 = unbounded */
  double softcap;        /* 0 = off */
  int unfused;           /* 1: the unfused reference lowering */
  int64_t block_m, block_n; /* 0: defaults (64) */
} flashmlir_cpu_config;

typedef struct flashmlir_cpu_kernels flashmlir_cpu_kernels;

/* Compiles attention for the host (attn-cpu-pipeline + JIT). */
MLIR_CAPI_EXPORTED int flashmlir_cpu_compile(const flashmlir_cpu_config *config,
                                             flashmlir_cpu_kernels **out,
                                             char *err, size_t errlen);
MLIR_CAPI_EXPORTED void flashmlir_cpu_destroy(flashmlir_cpu_kernels *kernels);

/* o, lse = attention(q, k, v). Runs synchronously on the calling thread. */
MLIR_CAPI_EXPORTED int flashmlir_cpu_forward(flashmlir_cpu_kernels *kernels,
                                             const flashmlir_tensor *q,
                                             const flashmlir_tensor *k,
                                             const flashmlir_tensor *v,
                                             flashmlir_tensor *o,
                                             flashmlir_tensor *lse, char *err,
                                             size_t errlen);

/* dq, dk, dv of attention given the forward's o and lse and dO. */
MLIR_CAPI_EXPORTED int flashmlir_cpu_backward(
    flashmlir_cpu_kernels *kernels, const flashmlir_tensor *q,
    const flashmlir_tensor *k, const flashmlir_tensor *v,
    const flashmlir_tensor *o, const flashmlir_tensor *dout,
    const flashmlir_tensor *lse, flashmlir_tensor *dq, flashmlir_tensor *dk,
    flashmlir_tensor *dv, char *err, size_t errlen);

/* Variable-length (packed) batches: q, k, v, o (dout, dq, dk, dv) are rank 3
 * [total, heads, dim], lse rank 2 [heads, total_q]; cu_seqlens_q/k are
 * `batch + 1` int32 offsets in host memory (start at 0, non-decreasing,
 * within the packed rows) and max_seqlen_q/k bound the sequences' lengths.
 * Masks are aligned per sequence. Bad offsets or lengths are errors. */
MLIR_CAPI_EXPORTED int flashmlir_cpu_forward_varlen(
    flashmlir_cpu_kernels *kernels, const flashmlir_tensor *q,
    const flashmlir_tensor *k, const flashmlir_tensor *v, flashmlir_tensor *o,
    flashmlir_tensor *lse, const int32_t *cu_seqlens_q,
    const int32_t *cu_seqlens_k, int64_t batch, int64_t max_seqlen_q,
    int64_t max_seqlen_k, char *err, size_t errlen);
MLIR_CAPI_EXPORTED int flashmlir_cpu_backward_varlen(
    flashmlir_cpu_kernels *kernels, const flashmlir_tensor *q,
    const flashmlir_tensor *k, const flashmlir_tensor *v,
    const flashmlir_tensor *o, const flashmlir_tensor *dout,
    const flashmlir_tensor *lse, flashmlir_tensor *dq, flashmlir_tensor *dk,
    flashmlir_tensor *dv, const int32_t *cu_seqlens_q,
    const int32_t *cu_seqlens_k, int64_t batch, int64_t max_seqlen_q,
    int64_t max_seqlen_k, char *err, size_t errlen);

/* The optional parts of a call: a variable-length batch (the arguments of
 * flashmlir_cpu_forward_varlen) and score modifications (attn ops'
 * alibi_slopes / sinks operands; host memory, f32, NULL = off). */
typedef struct {
  const int32_t *cu_seqlens_q, *cu_seqlens_k;
  int64_t batch, max_seqlen_q, max_seqlen_k;
} flashmlir_varlen;

typedef struct {
  /* ALiBi (FlashAttention-2's alibi_slopes): bias -slope |i + Nk - Nq - j|
   * added to the scores; [heads], or [batch, heads] when
   * alibi_per_sequence (batch: the sequences of a varlen call). */
  const float *alibi_slopes;
  int alibi_per_sequence;
  /* Attention sinks: one logit per query head [heads] joining every row's
   * softmax with a zero value row (counted in lse). */
  const float *sinks;
  /* Backward with sinks: receives d sinks [heads] (NULL: not wanted). */
  float *grad_sinks;
  /* The buffers a kernel's score_mod / mask_mod regions read as %cap0 ..
   * %cap3 (memref<?xf32>: contiguous f32, capture_sizes[i] elements). */
  const float *captures[4];
  int64_t capture_sizes[4];
  /* With a rotary kernel (flashmlir_cpu_extras.rotary_dim): the f32 tables
   * [rotary_positions, rotary_dim / 2], row-major (FlashAttention-2's
   * rotary_cos / rotary_sin); query i sits at position i + Nk - Nq, key j
   * at j, both < rotary_positions. */
  const float *rotary_cos, *rotary_sin;
  int64_t rotary_positions;
} flashmlir_score_mods;

/* What flashmlir_cpu_compile_ex compiles in beyond the config. */
typedef struct {
  /* The bodies of the attn ops' score_mod and mask_mod regions as MLIR text
   * (from `^bb0(...)` to `attn.yield`; NULL or "": none); they may read
   * flashmlir_score_mods' captures as %cap0 .. %cap3 (memref<?xf32>). */
  const char *score_mod, *mask_mod;
  /* Fused rotary embedding of the first rotary_dim (even, <= head_dim; 0:
   * off) dims of q and k: pairs (d, d + rotary_dim / 2), or (2m, 2m + 1)
   * with rotary_interleaved. */
  int64_t rotary_dim;
  int rotary_interleaved;
} flashmlir_cpu_extras;

/* flashmlir_cpu_compile with user regions and / or fused rotary embeddings
 * (extras may be NULL). Calls then go through flashmlir_cpu_forward_ex /
 * _backward_ex. */
MLIR_CAPI_EXPORTED int flashmlir_cpu_compile_ex(
    const flashmlir_cpu_config *config, const flashmlir_cpu_extras *extras,
    flashmlir_cpu_kernels **out, char *err, size_t errlen);

/* flashmlir_cpu_forward / _backward (varlen == NULL) or their _varlen forms,
 * with score modifications (mods == NULL: none). Each combination of
 * modifications is its own kernel, compiled on first use. */
MLIR_CAPI_EXPORTED int flashmlir_cpu_forward_ex(
    flashmlir_cpu_kernels *kernels, const flashmlir_tensor *q,
    const flashmlir_tensor *k, const flashmlir_tensor *v, flashmlir_tensor *o,
    flashmlir_tensor *lse, const flashmlir_varlen *varlen,
    const flashmlir_score_mods *mods, char *err, size_t errlen);
MLIR_CAPI_EXPORTED int flashmlir_cpu_backward_ex(
    flashmlir_cpu_kernels *kernels, const flashmlir_tensor *q,
    const flashmlir_tensor *k, const flashmlir_tensor *v,
    const flashmlir_tensor *o, const flashmlir_tensor *dout,
    const flashmlir_tensor *lse, flashmlir_tensor *dq, flashmlir_tensor *dk,
    flashmlir_tensor *dv, const flashmlir_varlen *varlen,
    const flashmlir_score_mods *mods, char *err, size_t errlen);

/* Peak bytes of workspace the CPU kernels allocated since the last reset. */
MLIR_CAPI_EXPORTED int64_t flashmlir_cpu_peak_bytes(void);
MLIR_CAPI_EXPORTED void flashmlir_cpu_reset_peak(void);

/* Writes a GPU kernel bundle (PTX + manifest.json) for the cross product of
 * the comma-separated `dtypes` (f16,bf16,f32), `head_dims`, masked in
 * {0, 1} (`masked` = 0, 1 or 2 for both), softcap likewise, and `targets`
 * (sm_80,sm_90a). head_dim_v = 0 means equal to the head dim. */
MLIR_CAPI_EXPORTED int flashmlir_compile_bundle(
    const char *out_dir, const char *dtypes, const char *head_dims,
    int64_t head_dim_v, int masked, int softcap, const char *targets,
    char *err, size_t errlen);

/* Options of flashmlir_compile_bundle_with_options (zero-initialise for the
 * defaults of flashmlir_compile_bundle). */
typedef struct {
  int deterministic;  /* 1: bit-reproducible dQ kernels (fa-compile
                         --deterministic 1) */
  const char *ptxas;  /* NULL or "": none; else a ptxas path: each kernel is
                         assembled for its target and its resource report
                         recorded in the manifest */
  int cubin;          /* with ptxas: also keep each kernel's SASS
                         (<name>.cubin), loaded instead of the PTX */
  int alibi;          /* 1: the ALiBi kernels (alibi_slopes) of the configs
                         instead of the plain ones (fa-compile --alibi 1) */
  int rotary;         /* 1: the fused-RoPE kernels (rotary tables) of the
                         configs instead of the plain ones (fa-compile
                         --rotary 1; f16 / bf16 tensor-core configurations) */
} flashmlir_bundle_options;

/* flashmlir_compile_bundle with options (NULL = the defaults). */
MLIR_CAPI_EXPORTED int flashmlir_compile_bundle_with_options(
    const char *out_dir, const char *dtypes, const char *head_dims,
    int64_t head_dim_v, int masked, int softcap, const char *targets,
    const flashmlir_bundle_options *options, char *err, size_t errlen);

/* "FlashMLIR <version>" */
MLIR_CAPI_EXPORTED const char *flashmlir_version(void);

#ifdef __cplusplus
}
#endif

#endif /* FLASHMLIR_C_FLASHMLIR_H */
