/*===- fa_runtime.h - FlashMLIR GPU runtime, C API -----------------*- C -*-===*
 *
 * Part of the FlashMLIR project.
 *
 *===----------------------------------------------------------------------===*
 *
 * Loads a kernel bundle (PTX files + manifest.json written by the FlashMLIR
 * compiler) and launches attention forward / backward on a caller's CUDA
 * stream. Usable from C, C++ and Python ctypes.
 *
 * The CUDA driver (libcuda.so.1) is opened with dlopen at first use; nothing
 * here needs CUDA headers or libraries at build time, and every function
 * returns a clean error (never aborts) on machines without a driver or GPU.
 *
 * Errors: every function returns an fa_status; the message of the last
 * failure is kept in the runtime handle (fa_runtime_last_error). Asynchronous
 * kernel faults surface at the next synchronizing call (fa_synchronize).
 *
 * Contexts: each call works in the CUDA context current on the calling
 * thread; when none is current, the primary context of device 0 is retained
 * and made current (this is the context PyTorch and the CUDA runtime API
 * use). Modules and the backward workspace are cached per context.
 *
 * Threads and streams: a runtime handle may be shared between threads (calls
 * are serialized by a per-handle lock). The backward workspace is one buffer
 * per context: backward calls issued on different streams through the same
 * handle must be ordered by the caller (or use one handle per stream).
 *
 *===----------------------------------------------------------------------===*/

#ifndef FLASHMLIR_RUNTIME_FA_RUNTIME_H
#define FLASHMLIR_RUNTIME_FA_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#if defined(_WIN32)
#define FA_API
#else
#define FA_API __attribute__((visibility("default")))
#endif

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fa_runtime fa_runtime;

typedef enum {
  FA_OK = 0,
  FA_ERR_NO_DRIVER, /* libcuda missing / unusable (cuInit failed)          */
  FA_ERR_NO_DEVICE, /* driver present but no CUDA device                    */
  FA_ERR_BUNDLE,    /* manifest.json missing, malformed or inconsistent     */
  FA_ERR_NO_KERNEL, /* the bundle has no kernel for this config / device    */
  FA_ERR_PTX,       /* the driver rejected a PTX file (message has JIT log) */
  FA_ERR_LAUNCH,    /* any other driver failure (launch, copy, sync, ...)   */
  FA_ERR_OOM,       /* device (or host) allocation failed                   */
  FA_ERR_INVALID    /* bad arguments: shapes, strides, dtype, null pointers */
} fa_status;

typedef enum { FA_F32 = 0, FA_F16 = 1, FA_BF16 = 2 } fa_dtype;

/* A device tensor: `data` is a device pointer, `sizes` the logical
 * [B, H, N, D] extents and `strides` the element strides of each dim. The
 * innermost stride must be 1. lse uses sizes[0..2] / strides[0..2] only. */
typedef struct {
  void *data;
  int64_t sizes[4];
  int64_t strides[4];
} fa_tensor;

/* dtype: element type of q, k, v, o and the gradients (lse is always f32).
 * Masks are bottom-right aligned (off = Nk - Nq): query i sees key j iff
 * (!causal || j <= i + off) && (window_left < 0 || j >= i + off - window_left)
 * && (window_right < 0 || j <= i + off + window_right); -1 = unbounded side.
 * scale <= 0 means 1/sqrt(D); softcap 0 = off (S = softcap*tanh(S/softcap)). */
typedef struct {
  fa_dtype dtype;
  int causal;
  int64_t window_left, window_right;
  float scale;
  float softcap;
} fa_attn_params;

/* Parses bundle_dir/manifest.json and opens the CUDA driver. On failure *out
 * is still a handle (NULL only when even that could not be allocated) from
 * which fa_runtime_last_error reads the message; destroy it as usual.
 * bundle_dir may be NULL: a runtime without kernels (memory helpers only). */
FA_API fa_status fa_runtime_create(const char *bundle_dir, fa_runtime **out);
FA_API void fa_runtime_destroy(fa_runtime *rt);
/* The message of the last failure on this handle ("" if none). Valid until
 * the next call on the handle. Never NULL. */
FA_API const char *fa_runtime_last_error(const fa_runtime *rt);
/* "FA_OK", "FA_ERR_NO_DRIVER", ... */
FA_API const char *fa_status_name(fa_status status);

/* Forward: o [B,Hq,Nq,Dv] and lse [B,Hq,Nq] (f32, natural log) from
 * q [B,Hq,Nq,D], k [B,Hkv,Nk,D], v [B,Hkv,Nk,Dv]. Asynchronous on `stream`
 * (a CUstream / cudaStream_t; NULL = the legacy default stream). */
FA_API fa_status fa_forward(fa_runtime *rt, const fa_attn_params *params,
                            const fa_tensor *q, const fa_tensor *k,
                            const fa_tensor *v, fa_tensor *o, fa_tensor *lse,
                            void *stream);

/* fa_forward with the key range of each (sequence, KV head) split over
 * several blocks (flash-decoding), for decode and other calls with few query
 * rows. num_splits: 0 = the runtime's choice (what fa_forward does: the
 * split-KV forward where the bundle has it (fwd_split / fwd_combine: f16 /
 * bf16) and Nq x (Hq / Hkv) <= 64, with a split count from the batch, KV
 * heads, key length and SM count; the one-pass kernel when that count is 1
 * and Hq = Hkv), 1 = the one-pass forward kernel, n > 1 =
 * n key ranges (at most 128) where the split-KV forward applies. The
 * partial results live in the context's workspace (as the backward's: calls
 * on different streams of one context must not overlap). */
FA_API fa_status fa_forward_splitkv(fa_runtime *rt,
                                    const fa_attn_params *params,
                                    const fa_tensor *q, const fa_tensor *k,
                                    const fa_tensor *v, fa_tensor *o,
                                    fa_tensor *lse, int64_t num_splits,
                                    void *stream);

/* The forward over a KV cache (decode; FlashAttention-2's
 * flash_attn_with_kvcache after its append): q [B,Hq,Nq,D], o [B,Hq,Nq,Dv],
 * lse [B,Hq,Nq] as in fa_forward, through the split-KV kernels.
 *  - block_table NULL: k_cache / v_cache [B,Hkv,capacity,D / Dv]; sequence b
 *    uses its first cache_seqlens[b] rows (all `capacity` rows when
 *    cache_seqlens is NULL).
 *  - paged: k_cache / v_cache are the blocks [num_blocks,Hkv,block_size,D]
 *    (the usual [num_blocks,block_size,Hkv,D] storage is the transposed
 *    view, like the bshd layout), block_table int32 [B, max_blocks] with row
 *    stride block_table_stride (>= max_blocks), cache_seqlens int32 [B]
 *    (required, each <= max_blocks * block_size); key n of sequence b is row
 *    n % block_size of block block_table[b][n / block_size]. Any block size.
 * cache_seqlens / block_table are device pointers, not read on the host
 * (the caller checks them, as flash_attn does). Masks align bottom-right
 * to each sequence's cache length. Needs the bundle's split-KV kernels and
 * Nq x Hq / Hkv <= 64; head dims multiples of 8. num_splits as in
 * fa_forward_splitkv (1 is taken as the split-KV forward with one range). */
FA_API fa_status fa_forward_kvcache(fa_runtime *rt, const fa_attn_params *params,
                                    const fa_tensor *q, const fa_tensor *k_cache,
                                    const fa_tensor *v_cache, fa_tensor *o,
                                    fa_tensor *lse, const int32_t *cache_seqlens,
                                    const int32_t *block_table,
                                    int64_t block_table_stride,
                                    int64_t max_blocks, int64_t num_splits,
                                    void *stream);

/* Backward: dq ~ q, dk ~ k, dv ~ v from the forward's inputs, its o and lse
 * and dout ~ o. Launches the bwd_pre, bwd_main and bwd_post kernels in order
 * on `stream`; the f32 workspaces they share (dr_ws [B,Hq,Nq], dqacc_ws
 * [B,Hq,Nq16,D], Nq16 = Nq rounded up to 16; in the tensor-core kernels
 * a 16-row group is in mma fragment order) are allocated by the runtime,
 * cached and grown per context.
 * dqacc_ws is zeroed on the stream first unless the bwd_pre kernel takes it
 * (then that kernel must zero it); when no kernel takes dqacc_ws (a
 * deterministic bundle, whose bwd_post kernel computes dq itself) only dr_ws
 * is allocated. dq, dk and dv are overwritten, not accumulated into. */
/* Variable-length (packed) batches, forward: q [total_q, Hq, D], k / v
 * [total_k, Hkv, D / Dv], o [total_q, Hq, Dv] (sizes[0..2], strides[0..2],
 * innermost 1) and lse [Hq, total_q] (sizes[0..1]); sequence b owns query
 * rows cu_seqlens_q[b] .. cu_seqlens_q[b+1] and key rows likewise
 * (cu_seqlens_q / _k: `batch + 1` int32 offsets in device memory, from 0,
 * non-decreasing; max_seqlen_q / _k bound the lengths: the grid). Masks
 * are aligned per sequence. Needs a bundle with varlen kernels (the
 * manifest's "varlen": true; the default bundle has f16 / bf16, head dims
 * 64 and 128, masked or not); head dims multiples of 8. The offsets are
 * not read on the host: the caller checks them (flash_attn's contract). */
FA_API fa_status fa_forward_varlen(fa_runtime *rt, const fa_attn_params *params,
                                   const fa_tensor *q, const fa_tensor *k,
                                   const fa_tensor *v, fa_tensor *o,
                                   fa_tensor *lse, const int32_t *cu_seqlens_q,
                                   const int32_t *cu_seqlens_k, int64_t batch,
                                   int64_t max_seqlen_q, int64_t max_seqlen_k,
                                   void *stream);
/* Variable-length batches, backward: the forward's packed tensors and
 * offsets plus dout [total_q, Hq, Dv] and dq / dk / dv shaped like q / k /
 * v (overwritten). Three launches as fa_backward, on workspaces packed like
 * lse (dr_ws [Hq, total_q], dqacc_ws [Hq, total_q + 15 batch, D]). Needs a
 * bundle with varlen backward kernels (the default bundle's varlen
 * configurations; a deterministic bundle has none: FA_ERR_NO_KERNEL). */
FA_API fa_status fa_backward_varlen(
    fa_runtime *rt, const fa_attn_params *params, const fa_tensor *q,
    const fa_tensor *k, const fa_tensor *v, const fa_tensor *o,
    const fa_tensor *dout, const fa_tensor *lse, fa_tensor *dq, fa_tensor *dk,
    fa_tensor *dv, const int32_t *cu_seqlens_q, const int32_t *cu_seqlens_k,
    int64_t batch, int64_t max_seqlen_q, int64_t max_seqlen_k, void *stream);

FA_API fa_status fa_backward(fa_runtime *rt, const fa_attn_params *params,
                             const fa_tensor *q, const fa_tensor *k,
                             const fa_tensor *v, const fa_tensor *o,
                             const fa_tensor *dout, const fa_tensor *lse,
                             fa_tensor *dq, fa_tensor *dk, fa_tensor *dv,
                             void *stream);

/* Score modifications of the GPU kernels (device pointers; NULL = absent):
 *  - sinks: f32 [Hq], attention sinks (gpt-oss): one logit per query head
 *    that joins every row's softmax with a zero value row. It takes
 *    probability mass, never adds to o, and is counted in lse (a row that
 *    sees no key gets o = 0, lse = sinks[h]).
 *  - dsinks (fa_backward_mods only): f32 [Hq], overwritten with d loss /
 *    d sinks = -sum over (b, i) of exp(sinks[h] - lse[b,h,i]) *
 *    rowsum(dout * o)[b,h,i]; needs sinks and the forward's lse (which
 *    counts the sink). dq, dk, dv need nothing more than that lse.
 *  - alibi_slopes: f32, ALiBi as FlashAttention-2's `alibi_slopes`: score
 *    (i, j) of sequence b, query head h gains -slope |i + Nk - Nq - j|
 *    (after softcap, before the masks), slope = alibi_slopes[b *
 *    alibi_batch_stride + h]; alibi_batch_stride 0: [Hq], one slope per
 *    head; else >= Hq ([B, Hq] has Hq). The forward, the split-KV decode
 *    and the backward take it (the backward needs the forward's slopes).
 *    Needs a bundle with ALiBi kernels (the manifest's "alibi": true; the
 *    default bundle has f16 / bf16 head dims 64 and 128 and f32 64, masked
 *    or not): FA_ERR_NO_KERNEL names the configuration otherwise.
 *  - rotary_cos / rotary_sin: f32 [rotary_positions, rotary_dim / 2] tables
 *    (FlashAttention-2's; row p at p * rotary_stride, 0 = rotary_dim / 2),
 *    fused RoPE: the first rotary_dim dims (a multiple of 16, <= head_dim)
 *    of query i are rotated at position i + Nk - Nq and of key j at j
 *    before the scores, pairs (d, d + rotary_dim / 2) (GPT-NeoX) or, with
 *    rotary_interleaved, (2m, 2m + 1) (GPT-J); the backward returns dq and
 *    dk of the unrotated q and k. Needs Nq <= Nk <= rotary_positions, the
 *    tables 16-byte aligned and rotary_stride a multiple of 4, dense
 *    (not varlen) calls and a bundle with RoPE kernels (the manifest's
 *    "rotary": true; f16 / bf16, no deterministic backward).
 * Bundles built before sinks existed have no kernel that takes them: the
 * call fails with FA_ERR_NO_KERNEL. The backward's dsinks is summed in a
 * fixed order. Fields added at the end over time: zero-initialise the
 * struct ({0} / memset) so that a field a caller does not know is absent. */
typedef struct {
  const float *sinks;
  float *dsinks;
  const float *alibi_slopes;
  int64_t alibi_batch_stride;
  const float *rotary_cos;
  const float *rotary_sin;
  int64_t rotary_positions;
  int64_t rotary_dim;
  int64_t rotary_stride;
  int rotary_interleaved;
} fa_score_mods;

/* fa_forward_splitkv with score modifications (mods may be NULL). */
FA_API fa_status fa_forward_mods(fa_runtime *rt, const fa_attn_params *params,
                                 const fa_score_mods *mods, const fa_tensor *q,
                                 const fa_tensor *k, const fa_tensor *v,
                                 fa_tensor *o, fa_tensor *lse,
                                 int64_t num_splits, void *stream);
/* fa_backward with score modifications (mods may be NULL). */
FA_API fa_status fa_backward_mods(fa_runtime *rt, const fa_attn_params *params,
                                  const fa_score_mods *mods, const fa_tensor *q,
                                  const fa_tensor *k, const fa_tensor *v,
                                  const fa_tensor *o, const fa_tensor *dout,
                                  const fa_tensor *lse, fa_tensor *dq,
                                  fa_tensor *dk, fa_tensor *dv, void *stream);

/* The device of the current (or default) context. Any out pointer may be
 * NULL. */
FA_API fa_status fa_device_info(fa_runtime *rt, int *cc_major, int *cc_minor,
                                int *num_sms);

/* Helpers for tests and tools built without CUDA headers. The copies are
 * synchronous (cuMemcpyHtoD / cuMemcpyDtoH). */
FA_API fa_status fa_malloc(fa_runtime *rt, size_t bytes, void **dptr);
FA_API fa_status fa_free(fa_runtime *rt, void *dptr);
FA_API fa_status fa_memcpy_htod(fa_runtime *rt, void *dst, const void *src,
                                size_t bytes);
FA_API fa_status fa_memcpy_dtoh(fa_runtime *rt, void *dst, const void *src,
                                size_t bytes);
/* cuCtxSynchronize on the current (or default) context. */
FA_API fa_status fa_synchronize(fa_runtime *rt);
/* Bytes of backward workspace currently held (all contexts). */
FA_API int64_t fa_workspace_bytes(const fa_runtime *rt);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* FLASHMLIR_RUNTIME_FA_RUNTIME_H */
