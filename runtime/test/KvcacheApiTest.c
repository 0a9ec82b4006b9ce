/*===- KvcacheApiTest.c - the split-KV / KV-cache C API, host side ---------===*
 *
 * Part of FlashMLIR.
 *
 * Calls fa_forward_splitkv and fa_forward_kvcache through the public C API
 * (plain C, as an embedder would) and prints one line per call: the status
 * name, the workspace the runtime holds afterwards, and the message. Run
 * against the fake CUDA driver (tools/fa-run/FakeCuda.c, FLASHMLIR_LIBCUDA):
 * every host step runs (validation, kernel selection, the split count,
 * workspace, argument packing, both launches), the kernels do nothing.
 * test/Execution/cuda-kvcache-api.test checks the lines; the GPU results
 * are tools/gpu/check_kvcache.py's.
 *
 * usage: fa-kvcache-api-test BUNDLE_DIR
 *===----------------------------------------------------------------------===*/

#include "flashmlir/runtime/fa_runtime.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static fa_tensor t4(void *p, int64_t a, int64_t b, int64_t c, int64_t d) {
  fa_tensor t;
  memset(&t, 0, sizeof t);
  t.data = p;
  t.sizes[0] = a, t.sizes[1] = b, t.sizes[2] = c, t.sizes[3] = d;
  t.strides[3] = 1, t.strides[2] = d, t.strides[1] = c * d;
  t.strides[0] = b * c * d;
  return t;
}

static fa_tensor t3(void *p, int64_t a, int64_t b, int64_t c) {
  fa_tensor t;
  memset(&t, 0, sizeof t);
  t.data = p;
  t.sizes[0] = a, t.sizes[1] = b, t.sizes[2] = c;
  t.strides[2] = 1, t.strides[1] = c, t.strides[0] = b * c;
  return t;
}

static fa_runtime *rt;

static void report(const char *what, fa_status st) {
  printf("%s: %s workspace=%lld %s\n", what, fa_status_name(st),
         (long long)fa_workspace_bytes(rt),
         st == FA_OK ? "" : fa_runtime_last_error(rt));
  fflush(stdout); /* in order with the fake driver's launch log (stderr) */
}

int main(int argc, char **argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: fa-kvcache-api-test BUNDLE_DIR\n");
    return 2;
  }
  fa_status st = fa_runtime_create(argv[1], &rt);
  if (st != FA_OK) {
    printf("create: %s %s\n", fa_status_name(st), fa_runtime_last_error(rt));
    fa_runtime_destroy(rt);
    return 1;
  }
  void *q, *kc, *vc, *o, *l, *lens, *bt;
  if (fa_malloc(rt, 1 << 20, &q) || fa_malloc(rt, 1 << 24, &kc) ||
      fa_malloc(rt, 1 << 24, &vc) || fa_malloc(rt, 1 << 20, &o) ||
      fa_malloc(rt, 1 << 16, &l) || fa_malloc(rt, 64, &lens) ||
      fa_malloc(rt, 4096, &bt)) {
    printf("malloc failed: %s\n", fa_runtime_last_error(rt));
    return 1;
  }
  fa_attn_params p;
  memset(&p, 0, sizeof p);
  p.dtype = FA_BF16;
  p.window_left = p.window_right = -1;
  /* Decode: B = 2, 8 query heads, 2 KV heads, one row, d = 128. */
  fa_tensor tq = t4(q, 2, 8, 1, 128), to = t4(o, 2, 8, 1, 128),
            tl = t3(l, 2, 8, 1);
  fa_tensor pk = t4(kc, 40, 2, 16, 128), pv = t4(vc, 40, 2, 16, 128);
  fa_tensor ck = t4(kc, 2, 2, 3000, 128), cv = t4(vc, 2, 2, 3000, 128);
  const int32_t *cl = (const int32_t *)lens, *cb = (const int32_t *)bt;

  report("dense auto", fa_forward(rt, &p, &tq, &ck, &cv, &to, &tl, NULL));
  report("dense 7 splits", fa_forward_splitkv(rt, &p, &tq, &ck, &cv, &to, &tl, 7, NULL));
  report("dense one-pass", fa_forward_splitkv(rt, &p, &tq, &ck, &cv, &to, &tl, 1, NULL));
  report("contiguous cache", fa_forward_kvcache(rt, &p, &tq, &ck, &cv, &to, &tl, cl, NULL, 0, 0, 0, NULL));
  report("paged 16", fa_forward_kvcache(rt, &p, &tq, &pk, &pv, &to, &tl, cl, cb, 8, 8, 0, NULL));
  p.causal = 1;
  report("paged 16 causal 64 splits", fa_forward_kvcache(rt, &p, &tq, &pk, &pv, &to, &tl, cl, cb, 8, 8, 64, NULL));
  p.causal = 0;
  /* Errors, each naming its argument. */
  report("paged without lengths", fa_forward_kvcache(rt, &p, &tq, &pk, &pv, &to, &tl, NULL, cb, 8, 8, 0, NULL));
  report("table stride < max_blocks", fa_forward_kvcache(rt, &p, &tq, &pk, &pv, &to, &tl, cl, cb, 4, 8, 0, NULL));
  report("contiguous cache of 40 sequences", fa_forward_kvcache(rt, &p, &tq, &pk, &pv, &to, &tl, cl, NULL, 0, 0, 0, NULL));
  report("num_splits 129", fa_forward_kvcache(rt, &p, &tq, &ck, &cv, &to, &tl, cl, NULL, 0, 0, 129, NULL));
  report("splitkv num_splits -1", fa_forward_splitkv(rt, &p, &tq, &ck, &cv, &to, &tl, -1, NULL));
  fa_tensor tq17 = t4(q, 2, 8, 17, 128), to17 = t4(o, 2, 8, 17, 128),
            tl17 = t3(l, 2, 8, 17);
  report("68 packed rows", fa_forward_kvcache(rt, &p, &tq17, &ck, &cv, &to17, &tl17, cl, NULL, 0, 0, 0, NULL));
  fa_tensor bad = t4(vc, 2, 2, 3000, 64);
  report("v_cache head dim", fa_forward_kvcache(rt, &p, &tq, &ck, &bad, &to, &tl, cl, NULL, 0, 0, 0, NULL));
  p.dtype = FA_F32;
  report("f32", fa_forward_kvcache(rt, &p, &tq, &ck, &cv, &to, &tl, cl, NULL, 0, 0, 0, NULL));
  report("null k_cache", fa_forward_kvcache(rt, &p, &tq, NULL, &cv, &to, &tl, cl, NULL, 0, 0, 0, NULL));
  p.dtype = FA_BF16;
  report("null lse", fa_forward_kvcache(rt, &p, &tq, &ck, &cv, &to, NULL, cl, NULL, 0, 0, 0, NULL));
  fa_free(rt, q), fa_free(rt, kc), fa_free(rt, vc), fa_free(rt, o);
  fa_free(rt, l), fa_free(rt, lens), fa_free(rt, bt);
  fa_runtime_destroy(rt);
  printf("done\n");
  return 0;
}
