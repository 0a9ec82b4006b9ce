/*===- embed-capi.c - FlashMLIR from plain C --------------------------------===*
 *
 * Through libflashmlir_c alone (flashmlir-c/FlashMLIR.h): lowers a module
 * with a textual pipeline, then compiles and runs attention on the CPU and
 * compares it with a naive softmax(q k^T / sqrt(D)) v written here in
 * double precision. Prints one line per check, then "N passed, M failed".
 *
 *===----------------------------------------------------------------------===*/

#include "flashmlir-c/FlashMLIR.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed, failed;
static void check(int ok, const char *what, const char *detail) {
  ok ? ++passed : ++failed;
  printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail && *detail ? ": " : "",
         detail ? detail : "");
}

static const char *kModule =
    "func.func @attn(%q: memref<1x2x8x16xf32>, %k: memref<1x2x8x16xf32>,\n"
    "                %v: memref<1x2x8x16xf32>, %o: memref<1x2x8x16xf32>) {\n"
    "  attn.attention ins(%q, %k, %v : memref<1x2x8x16xf32>, memref<1x2x8x16xf32>,\n"
    "                     memref<1x2x8x16xf32>) outs(%o : memref<1x2x8x16xf32>)\n"
    "  return\n"
    "}\n";

enum { B = 1, H = 2, N = 24, D = 16 };

int main(void) {
  char err[4096] = "";
  char *out = NULL;
  printf("%s\n", flashmlir_version());

  /* 1. A textual pipeline on a module. */
  int rc = flashmlir_run_pass_pipeline(kModule, "builtin.module(attn-to-loops)", &out, err,
                                       sizeof err);
  check(rc == 0, "attn-to-loops through flashmlir_run_pass_pipeline", rc ? err : NULL);
  check(rc == 0 && strstr(out, "attn.attention") == NULL && strstr(out, "scf.for") != NULL,
        "the attn op became loops", NULL);
  flashmlir_free(out);
  out = NULL;
  rc = flashmlir_run_pass_pipeline(kModule, "builtin.module(no-such-pass)", &out, err,
                                   sizeof err);
  check(rc != 0 && out == NULL && strstr(err, "no-such-pass") != NULL,
        "a bad pipeline is an error", NULL);
  err[0] = '\0';

  /* 2. Attention on the CPU against a naive reference. */
  flashmlir_cpu_config cfg;
  memset(&cfg, 0, sizeof cfg);
  cfg.dtype = FLASHMLIR_F32;
  cfg.head_dim = D;
  cfg.causal = 1;
  cfg.window_left = cfg.window_right = -1;
  flashmlir_cpu_kernels *kern = NULL;
  rc = flashmlir_cpu_compile(&cfg, &kern, err, sizeof err);
  check(rc == 0, "flashmlir_cpu_compile", rc ? err : NULL);
  if (rc != 0)
    goto done;
  static float q[B * H * N * D], k[B * H * N * D], v[B * H * N * D], o[B * H * N * D],
      lse[B * H * N];
  srand(7);
  for (int i = 0; i < B * H * N * D; ++i) {
    q[i] = (float)rand() / RAND_MAX - 0.5f;
    k[i] = (float)rand() / RAND_MAX - 0.5f;
    v[i] = (float)rand() / RAND_MAX - 0.5f;
  }
  flashmlir_tensor tq = {q, 4, {B, H, N, D}, {H * N * D, N * D, D, 1}};
  flashmlir_tensor tk = tq, tv = tq, to = tq;
  tk.data = k, tv.data = v, to.data = o;
  flashmlir_tensor tl = {lse, 3, {B, H, N, 1}, {H * N, N, 1, 1}};
  rc = flashmlir_cpu_forward(kern, &tq, &tk, &tv, &to, &tl, err, sizeof err);
  check(rc == 0, "flashmlir_cpu_forward", rc ? err : NULL);
  double maxErr = 0;
  for (int h = 0; h < H; ++h)
    for (int i = 0; i < N; ++i) {
      const float *qi = q + (h * N + i) * D;
      double s[N], m = -INFINITY, l = 0;
      for (int j = 0; j <= i; ++j) { /* causal, Nq == Nk */
        const float *kj = k + (h * N + j) * D;
        s[j] = 0;
        for (int d = 0; d < D; ++d)
          s[j] += (double)qi[d] * kj[d];
        s[j] /= sqrt((double)D);
        m = s[j] > m ? s[j] : m;
      }
      for (int j = 0; j <= i; ++j)
        l += exp(s[j] - m);
      for (int d = 0; d < D; ++d) {
        double acc = 0;
        for (int j = 0; j <= i; ++j)
          acc += exp(s[j] - m) / l * v[(h * N + j) * D + d];
        double e = fabs(acc - o[(h * N + i) * D + d]);
        maxErr = e > maxErr ? e : maxErr;
      }
      double e = fabs(m + log(l) - lse[h * N + i]);
      maxErr = e > maxErr ? e : maxErr;
    }
  char detail[64];
  snprintf(detail, sizeof detail, "max abs error %.2e", maxErr);
  check(rc == 0 && maxErr < 1e-5, "o and lse match the naive reference", detail);
  flashmlir_cpu_destroy(kern);
done:
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
