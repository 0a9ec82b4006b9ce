// Toy kernels for fa-runtime-test: NOT attention. They exercise the bundle
// ABI end to end (memref<?xT> buffers as 5 parameters, i64/i32/f32 scalars,
// strides, grids, dynamic shared memory, the backward workspace) with
// results that are trivial to check on the host.
//
// Regenerate toy.ptx (needs nvcc; the test only reads the .ptx). The PTX ISA
// version is lowered to 7.0 so that drivers from CUDA 11 on accept it (the
// code uses nothing newer):
//   nvcc -ptx -arch=compute_80 -o toy.ptx toy.cu
//   sed -i 's/^\.version .*/.version 7.0/' toy.ptx
//
//   fwd:      o[b,h,i,:] = scale * q[b,h,i,:] + v[b,h/g,i,:]; lse[b,h,i] = i + h/2
//   bwd_pre:  dr[b,h,i] = sum_d do[b,h,i,d] * o[b,h,i,d]
//   bwd_main: dk = scale * k; dv = v + 1; dqacc[b,h,j,:] += q[b,h,j,:] + dr[b,h,j]
//   bwd_post: dq = dqacc
// Every kernel checks its indices against the memref sizes and marks an
// out-of-range access (lse = -1000, or dr = -1000, or dk = -1000).
#include <stdint.h>

#define MEMREF(T, n) T *n##_alloc, T *n, int64_t n##_off, int64_t n##_size, int64_t n##_stride

extern "C" __global__ void toy_fwd(MEMREF(float, q), MEMREF(float, v),
                                   MEMREF(float, o), MEMREF(float, lse),
                                   int64_t batch, int32_t heads,
                                   int64_t kv_heads, int64_t seqlen_q,
                                   int64_t head_dim, int64_t q_sb, int64_t q_sh,
                                   int64_t q_sn, int64_t v_sb, int64_t v_sh,
                                   int64_t v_sn, int64_t o_sb, int64_t o_sh,
                                   int64_t o_sn, int64_t lse_sb, int64_t lse_sh,
                                   float scale) {
  extern __shared__ float stage[];
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t h = blockIdx.y, b = blockIdx.z;
  if (i >= seqlen_q || h >= heads || b >= batch)
    return;
  int64_t hk = h / (heads / kv_heads);
  bool bad = q_off != 0 || q_stride != 1 || q != q_alloc;
  float *row = stage + threadIdx.x * head_dim;
  for (int64_t d = 0; d < head_dim; ++d) {
    int64_t qi = b * q_sb + h * q_sh + i * q_sn + d;
    int64_t vi = b * v_sb + hk * v_sh + i * v_sn + d;
    bad |= qi >= q_size || vi >= v_size;
    row[d] = scale * q[qi < q_size ? qi : 0] + v[vi < v_size ? vi : 0];
  }
  for (int64_t d = 0; d < head_dim; ++d) {
    int64_t oi = b * o_sb + h * o_sh + i * o_sn + d;
    bad |= oi >= o_size;
    if (oi < o_size)
      o[oi] = row[d];
  }
  int64_t li = b * lse_sb + h * lse_sh + i;
  if (li < lse_size)
    lse[li] = bad ? -1000.0f : (float)i + 0.5f * (float)h;
}

extern "C" __global__ void toy_bwd_pre(MEMREF(float, dr), MEMREF(float, dout),
                                       MEMREF(float, o), int64_t batch,
                                       int64_t heads, int64_t seqlen_q,
                                       int64_t head_dim_v, int64_t do_sb,
                                       int64_t do_sh, int64_t do_sn,
                                       int64_t o_sb, int64_t o_sh,
                                       int64_t o_sn) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t h = blockIdx.y, b = blockIdx.z;
  if (i >= seqlen_q)
    return;
  bool bad = false;
  float acc = 0;
  for (int64_t d = 0; d < head_dim_v; ++d) {
    int64_t di = b * do_sb + h * do_sh + i * do_sn + d;
    int64_t oi = b * o_sb + h * o_sh + i * o_sn + d;
    bad |= di >= dout_size || oi >= o_size;
    if (!bad)
      acc += dout[di] * o[oi];
  }
  int64_t ri = (b * heads + h) * seqlen_q + i;
  if (ri < dr_size)
    dr[ri] = bad ? -1000.0f : acc;
}

extern "C" __global__ void toy_bwd_main(
    MEMREF(float, q), MEMREF(float, k), MEMREF(float, v), MEMREF(float, dk),
    MEMREF(float, dv), MEMREF(float, dqacc), MEMREF(float, dr), int64_t batch,
    int64_t heads, int64_t kv_heads, int64_t seqlen_q, int64_t seqlen_k,
    int64_t head_dim, int64_t head_dim_v, int64_t q_sb, int64_t q_sh,
    int64_t q_sn, int64_t k_sb, int64_t k_sh, int64_t k_sn, int64_t v_sb,
    int64_t v_sh, int64_t v_sn, int64_t dk_sb, int64_t dk_sh, int64_t dk_sn,
    int64_t dv_sb, int64_t dv_sh, int64_t dv_sn, float scale) {
  int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t hk = blockIdx.y, b = blockIdx.z;
  if (j >= seqlen_k)
    return;
  bool bad = false;
  for (int64_t d = 0; d < head_dim; ++d) {
    int64_t ki = b * k_sb + hk * k_sh + j * k_sn + d;
    int64_t oi = b * dk_sb + hk * dk_sh + j * dk_sn + d;
    bad |= ki >= k_size || oi >= dk_size;
    if (ki < k_size && oi < dk_size)
      dk[oi] = scale * k[ki];
  }
  for (int64_t d = 0; d < head_dim_v; ++d) {
    int64_t vi = b * v_sb + hk * v_sh + j * v_sn + d;
    int64_t oi = b * dv_sb + hk * dv_sh + j * dv_sn + d;
    if (vi < v_size && oi < dv_size)
      dv[oi] = v[vi] + 1.0f;
    else
      bad = true;
  }
  int64_t group = heads / kv_heads;
  if (j < seqlen_q) {
    for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
      int64_t ri = (b * heads + h) * seqlen_q + j;
      bad |= ri >= dr_size;
      for (int64_t d = 0; d < head_dim; ++d) {
        int64_t qi = b * q_sb + h * q_sh + j * q_sn + d;
        int64_t ai = ri * head_dim + d;
        bad |= qi >= q_size || ai >= dqacc_size;
        if (!bad)
          dqacc[ai] += q[qi] + dr[ri];
      }
    }
  }
  if (bad)
    dk[b * dk_sb + hk * dk_sh + j * dk_sn] = -1000.0f;
}

extern "C" __global__ void toy_bwd_post(MEMREF(float, dq), MEMREF(float, dqacc),
                                        int64_t batch, int64_t heads,
                                        int64_t seqlen_q, int64_t head_dim,
                                        int64_t dq_sb, int64_t dq_sh,
                                        int64_t dq_sn) {
  int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
  int64_t h = blockIdx.y, b = blockIdx.z;
  if (i >= seqlen_q)
    return;
  for (int64_t d = 0; d < head_dim; ++d) {
    int64_t ai = ((b * heads + h) * seqlen_q + i) * head_dim + d;
    int64_t oi = b * dq_sb + h * dq_sh + i * dq_sn + d;
    if (ai < dqacc_size && oi < dq_size)
      dq[oi] = dqacc[ai];
  }
}
