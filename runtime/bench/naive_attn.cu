// Naive attention kernels in the FlashMLIR bundle ABI.
//
// A slow but complete reference bundle, written in CUDA C so that the runtime
// (libflashmlir_rt) and its Python wrapper can be validated on a GPU without
// the compiler. make_naive_bundle.py compiles this file to PTX and writes a
// manifest.json that lists these entries for many configs.
//
// ABI (what the compiler's kernels follow too):
//   * every buffer is a 1-D memref<?xT>: five parameters (allocated pointer,
//     aligned pointer, offset, size in elements, stride); element (b,h,n,d)
//     of a 4-d tensor t is aligned[offset + b*t_stride_b + h*t_stride_h +
//     n*t_stride_n + d];
//   * masks come in as window_left / window_right (-1 = unbounded; causal
//     arrives as window_right = 0), so one kernel serves every mask; softcap
//     is 0 when off;
//   * lse is f32 [B,Hq,Nq] (natural log, -inf for rows that see no key);
//   * backward: bwd_pre writes dr_ws[b,h,i] = sum_d dO*O (f32, contiguous),
//     bwd_main accumulates dq into dqacc_ws (f32 [B,Hq,Nq,D], contiguous,
//     zeroed by the runtime) and writes dk/dv (summing the GQA group),
//     bwd_post converts dqacc_ws to dq.
//
// One thread per query row (fwd, bwd_pre, bwd_post) or key row (bwd_main);
// per-thread accumulators live in dynamic shared memory.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define MEMREF(T, n)                                                           \
  T *n##_alloc, T *n##_aligned, int64_t n##_off, int64_t n##_size,             \
      int64_t n##_stride
#define BUF(n) (n##_aligned + n##_off)

__device__ __forceinline__ float ld(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ld(const __half *p, int64_t i) {
  return __half2float(p[i]);
}
__device__ __forceinline__ float ld(const __nv_bfloat16 *p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void st(float *p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void st(__half *p, int64_t i, float v) {
  p[i] = __float2half_rn(v);
}
__device__ __forceinline__ void st(__nv_bfloat16 *p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

/// Keys [*lo, *hi] visible from query row i (bottom-right aligned masks).
__device__ __forceinline__ void keyRange(int64_t i, int64_t nq, int64_t nk,
                                         int64_t wl, int64_t wr, int64_t *lo,
                                         int64_t *hi) {
  int64_t off = nk - nq;
  *lo = wl >= 0 ? i + off - wl : 0;
  *hi = wr >= 0 ? i + off + wr : nk - 1;
  if (*lo < 0)
    *lo = 0;
  if (*hi > nk - 1)
    *hi = nk - 1;
}

template <typename T>
__device__ void fwd(const T *q, const T *k, const T *v, T *o, float *lse,
                    int64_t heads, int64_t kv_heads, int64_t nq, int64_t nk,
                    int64_t D, int64_t Dv, int64_t qsb, int64_t qsh,
                    int64_t qsn, int64_t ksb, int64_t ksh, int64_t ksn,
                    int64_t vsb, int64_t vsh, int64_t vsn, int64_t osb,
                    int64_t osh, int64_t osn, int64_t lsb, int64_t lsh,
                    int64_t wl, int64_t wr, float scale, float softcap) {
  extern __shared__ float smem[];
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t h = blockIdx.y, b = blockIdx.z;
  if (i >= nq)
    return;
  int64_t hk = h / (heads / kv_heads);
  float *acc = smem + threadIdx.x * Dv;
  for (int64_t d = 0; d < Dv; ++d)
    acc[d] = 0;
  const T *qr = q + b * qsb + h * qsh + i * qsn;
  int64_t lo, hi;
  keyRange(i, nq, nk, wl, wr, &lo, &hi);
  float m = -INFINITY, l = 0;
  for (int64_t j = lo; j <= hi; ++j) {
    const T *kr = k + b * ksb + hk * ksh + j * ksn;
    const T *vr = v + b * vsb + hk * vsh + j * vsn;
    float s = 0;
    for (int64_t d = 0; d < D; ++d)
      s += ld(qr, d) * ld(kr, d);
    s *= scale;
    if (softcap > 0)
      s = softcap * tanhf(s / softcap);
    float mNew = fmaxf(m, s);
    float corr = expf(m - mNew); // 0 when m = -inf
    float p = expf(s - mNew);
    l = l * corr + p;
    for (int64_t d = 0; d < Dv; ++d)
      acc[d] = acc[d] * corr + p * ld(vr, d);
    m = mNew;
  }
  T *orow = o + b * osb + h * osh + i * osn;
  float inv = l > 0 ? 1.0f / l : 0.0f;
  for (int64_t d = 0; d < Dv; ++d)
    st(orow, d, acc[d] * inv);
  lse[b * lsb + h * lsh + i] = l > 0 ? m + logf(l) : -INFINITY;
}

template <typename T>
__device__ void bwdPre(float *dr, const T *dout, const T *o, int64_t heads,
                       int64_t nq, int64_t Dv, int64_t dsb, int64_t dsh,
                       int64_t dsn, int64_t osb, int64_t osh, int64_t osn) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t h = blockIdx.y, b = blockIdx.z;
  if (i >= nq)
    return;
  const T *dr_ = dout + b * dsb + h * dsh + i * dsn;
  const T *or_ = o + b * osb + h * osh + i * osn;
  float acc = 0;
  for (int64_t d = 0; d < Dv; ++d)
    acc += ld(dr_, d) * ld(or_, d);
  dr[(b * heads + h) * nq + i] = acc;
}

template <typename T>
__device__ void bwdMain(const T *q, const T *k, const T *v, const T *dout,
                        const float *lse, const float *dr, float *dqacc, T *dk,
                        T *dv, int64_t heads, int64_t kv_heads, int64_t nq,
                        int64_t nk, int64_t D, int64_t Dv, int64_t qsb,
                        int64_t qsh, int64_t qsn, int64_t ksb, int64_t ksh,
                        int64_t ksn, int64_t vsb, int64_t vsh, int64_t vsn,
                        int64_t dsb, int64_t dsh, int64_t dsn, int64_t dksb,
                        int64_t dksh, int64_t dksn, int64_t dvsb, int64_t dvsh,
                        int64_t dvsn, int64_t lsb, int64_t lsh, int64_t wl,
                        int64_t wr, float scale, float softcap) {
  extern __shared__ float smem[];
  int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t hk = blockIdx.y, b = blockIdx.z;
  if (j >= nk)
    return;
  float *dkAcc = smem + threadIdx.x * (D + Dv);
  float *dvAcc = dkAcc + D;
  for (int64_t d = 0; d < D + Dv; ++d)
    dkAcc[d] = 0;
  const T *kr = k + b * ksb + hk * ksh + j * ksn;
  const T *vr = v + b * vsb + hk * vsh + j * vsn;
  int64_t off = nk - nq, group = heads / kv_heads;
  // Rows i that see key j: j <= i + off + wr and j >= i + off - wl.
  int64_t iLo = wr >= 0 ? j - off - wr : 0;
  int64_t iHi = wl >= 0 ? j - off + wl : nq - 1;
  if (iLo < 0)
    iLo = 0;
  if (iHi > nq - 1)
    iHi = nq - 1;
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    for (int64_t i = iLo; i <= iHi; ++i) {
      const T *qr = q + b * qsb + h * qsh + i * qsn;
      const T *dor = dout + b * dsb + h * dsh + i * dsn;
      float s = 0;
      for (int64_t d = 0; d < D; ++d)
        s += ld(qr, d) * ld(kr, d);
      s *= scale;
      float t = 0;
      if (softcap > 0) {
        t = tanhf(s / softcap);
        s = softcap * t;
      }
      float p = expf(s - lse[b * lsb + h * lsh + i]);
      float dp = 0;
      for (int64_t d = 0; d < Dv; ++d) {
        float g = ld(dor, d);
        dvAcc[d] += p * g;
        dp += g * ld(vr, d);
      }
      float ds = p * (dp - dr[(b * heads + h) * nq + i]);
      if (softcap > 0)
        ds *= 1.0f - t * t;
      ds *= scale;
      float *dqr = dqacc + ((b * heads + h) * nq + i) * D;
      for (int64_t d = 0; d < D; ++d) {
        dkAcc[d] += ds * ld(qr, d);
        atomicAdd(dqr + d, ds * ld(kr, d));
      }
    }
  }
  T *dkr = dk + b * dksb + hk * dksh + j * dksn;
  T *dvr = dv + b * dvsb + hk * dvsh + j * dvsn;
  for (int64_t d = 0; d < D; ++d)
    st(dkr, d, dkAcc[d]);
  for (int64_t d = 0; d < Dv; ++d)
    st(dvr, d, dvAcc[d]);
}

template <typename T>
__device__ void bwdPost(T *dq, const float *dqacc, int64_t heads, int64_t nq,
                        int64_t D, int64_t qsb, int64_t qsh, int64_t qsn) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t h = blockIdx.y, b = blockIdx.z;
  if (i >= nq)
    return;
  const float *a = dqacc + ((b * heads + h) * nq + i) * D;
  T *r = dq + b * qsb + h * qsh + i * qsn;
  for (int64_t d = 0; d < D; ++d)
    st(r, d, a[d]);
}

// Parameter lists: make_naive_bundle.py writes the same order into the
// manifest (FWD_ARGS etc. there).
#define DEFINE_KERNELS(T, SUFFIX)                                              \
  extern "C" __global__ void naive_fwd_##SUFFIX(                               \
      MEMREF(T, q), MEMREF(T, k), MEMREF(T, v), MEMREF(T, o),                  \
      MEMREF(float, lse), int64_t batch, int64_t heads, int64_t kv_heads,      \
      int64_t seqlen_q, int64_t seqlen_k, int64_t head_dim,                    \
      int64_t head_dim_v, int64_t qsb, int64_t qsh, int64_t qsn, int64_t ksb,  \
      int64_t ksh, int64_t ksn, int64_t vsb, int64_t vsh, int64_t vsn,         \
      int64_t osb, int64_t osh, int64_t osn, int64_t lsb, int64_t lsh,         \
      int64_t wl, int64_t wr, float scale, float softcap) {                    \
    fwd<T>(BUF(q), BUF(k), BUF(v), BUF(o), BUF(lse), heads, kv_heads,          \
           seqlen_q, seqlen_k, head_dim, head_dim_v, qsb, qsh, qsn, ksb, ksh,  \
           ksn, vsb, vsh, vsn, osb, osh, osn, lsb, lsh, wl, wr, scale,         \
           softcap);                                                           \
  }                                                                            \
  extern "C" __global__ void naive_bwd_pre_##SUFFIX(                           \
      MEMREF(float, dr), MEMREF(T, dout), MEMREF(T, o), int64_t batch,         \
      int64_t heads, int64_t seqlen_q, int64_t head_dim_v, int64_t dsb,        \
      int64_t dsh, int64_t dsn, int64_t osb, int64_t osh, int64_t osn) {       \
    bwdPre<T>(BUF(dr), BUF(dout), BUF(o), heads, seqlen_q, head_dim_v, dsb,    \
              dsh, dsn, osb, osh, osn);                                        \
  }                                                                            \
  extern "C" __global__ void naive_bwd_main_##SUFFIX(                          \
      MEMREF(T, q), MEMREF(T, k), MEMREF(T, v), MEMREF(T, dout),               \
      MEMREF(float, lse), MEMREF(float, dr), MEMREF(float, dqacc),             \
      MEMREF(T, dk), MEMREF(T, dv), int64_t batch, int64_t heads,              \
      int64_t kv_heads, int64_t seqlen_q, int64_t seqlen_k, int64_t head_dim,  \
      int64_t head_dim_v, int64_t qsb, int64_t qsh, int64_t qsn, int64_t ksb,  \
      int64_t ksh, int64_t ksn, int64_t vsb, int64_t vsh, int64_t vsn,         \
      int64_t dsb, int64_t dsh, int64_t dsn, int64_t dksb, int64_t dksh,       \
      int64_t dksn, int64_t dvsb, int64_t dvsh, int64_t dvsn, int64_t lsb,     \
      int64_t lsh, int64_t wl, int64_t wr, float scale, float softcap) {       \
    bwdMain<T>(BUF(q), BUF(k), BUF(v), BUF(dout), BUF(lse), BUF(dr),           \
               BUF(dqacc), BUF(dk), BUF(dv), heads, kv_heads, seqlen_q,        \
               seqlen_k, head_dim, head_dim_v, qsb, qsh, qsn, ksb, ksh, ksn,   \
               vsb, vsh, vsn, dsb, dsh, dsn, dksb, dksh, dksn, dvsb, dvsh,     \
               dvsn, lsb, lsh, wl, wr, scale, softcap);                        \
  }                                                                            \
  extern "C" __global__ void naive_bwd_post_##SUFFIX(                          \
      MEMREF(T, dq), MEMREF(float, dqacc), int64_t batch, int64_t heads,       \
      int64_t seqlen_q, int64_t head_dim, int64_t qsb, int64_t qsh,            \
      int64_t qsn) {                                                           \
    bwdPost<T>(BUF(dq), BUF(dqacc), heads, seqlen_q, head_dim, qsb, qsh,       \
               qsn);                                                           \
  }

DEFINE_KERNELS(float, f32)
DEFINE_KERNELS(__half, f16)
DEFINE_KERNELS(__nv_bfloat16, bf16)
