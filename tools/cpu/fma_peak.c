// The host's f32 FMA peak: each thread runs 12 independent chains of vector
// FMAs (enough to cover the FMA latency on two pipes), registers only.
//
//   cc -O2 -mavx512f -mfma tools/cpu/fma_peak.c -o /tmp/fma_peak -lpthread
//   cc -O2 -mavx2 -mfma -DW256 tools/cpu/fma_peak.c -o /tmp/fma_peak256 -lpthread
//   /tmp/fma_peak THREADS
#include <immintrin.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#ifdef W256
typedef __m256 V;
#define FMA _mm256_fmadd_ps
#define SET _mm256_set1_ps
#define LANES 8
#else
typedef __m512 V;
#define FMA _mm512_fmadd_ps
#define SET _mm512_set1_ps
#define LANES 16
#endif
#define ITERS 50000000L

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

static void *run(void *arg) {
  V b = SET(1.0000001f), c = SET(0.999999f);
  V a0 = SET(0), a1 = SET(1), a2 = SET(2), a3 = SET(3), a4 = SET(4), a5 = SET(5),
    a6 = SET(6), a7 = SET(7), a8 = SET(8), a9 = SET(9), a10 = SET(10),
    a11 = SET(11);
  for (long it = 0; it < ITERS; it++) {
    a0 = FMA(a0, b, c); a1 = FMA(a1, b, c); a2 = FMA(a2, b, c);
    a3 = FMA(a3, b, c); a4 = FMA(a4, b, c); a5 = FMA(a5, b, c);
    a6 = FMA(a6, b, c); a7 = FMA(a7, b, c); a8 = FMA(a8, b, c);
    a9 = FMA(a9, b, c); a10 = FMA(a10, b, c); a11 = FMA(a11, b, c);
    // Keep every chain in a register and alive.
    __asm__ volatile("" : "+v"(a0), "+v"(a1), "+v"(a2), "+v"(a3), "+v"(a4),
                     "+v"(a5), "+v"(a6), "+v"(a7), "+v"(a8), "+v"(a9),
                     "+v"(a10), "+v"(a11));
  }
  V s = a0 + a1 + a2 + a3 + a4 + a5 + a6 + a7 + a8 + a9 + a10 + a11;
  *(float *)arg = s[0];
  return 0;
}

int main(int argc, char **argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 1;
  if (threads < 1 || threads > 256)
    threads = 1;
  pthread_t th[256];
  float out[256];
  double t0 = now();
  for (int i = 0; i < threads; i++)
    pthread_create(&th[i], 0, run, &out[i]);
  for (int i = 0; i < threads; i++)
    pthread_join(th[i], 0);
  double dt = now() - t0;
  double flops = (double)threads * ITERS * 12 * LANES * 2;
  printf("%d-bit FMA, %d thread(s): %.1f GFLOP/s\n", LANES * 32, threads,
         flops / dt * 1e-9);
  return 0;
}
