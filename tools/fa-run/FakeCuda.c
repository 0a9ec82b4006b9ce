/*===- FakeCuda.c - A fake CUDA driver for testing fa-run without a GPU ---===*
 *
 * Part of FlashMLIR.
 *
 *===----------------------------------------------------------------------===*
 *
 * libfa-fake-cuda.so exports the driver API entry points the runtime resolves
 * (runtime/lib/RuntimeDriver.cpp) and stands in for libcuda.so.1 through
 * FLASHMLIR_LIBCUDA=<path>. "Device" memory is host memory, modules load any
 * text and kernels do nothing, so `fa-run --device cuda` runs everything but
 * the kernels: bundle loading and kernel selection, on-demand compilation,
 * buffers, copies, poisoned outputs (never overwritten here, so --check
 * fails), synchronization, timing and the error paths. Test only.
 *
 * Knobs (environment):
 *   FA_FAKE_CUDA_NO_DEVICE=1   the driver sees no device
 *   FA_FAKE_CUDA_CC=NN         compute capability (default 90)
 *   FA_FAKE_CUDA_MEM=BYTES     device memory; allocations beyond it fail
 *                              with CUDA_ERROR_OUT_OF_MEMORY
 *   FA_FAKE_CUDA_REJECT_PTX=1  cuModuleLoadDataEx fails (INVALID_PTX, log)
 *   FA_FAKE_CUDA_REJECT_CUBIN=1  cuModuleLoadDataEx fails on ELF images
 *                              (cubins) with NO_BINARY_FOR_GPU
 *   FA_FAKE_CUDA_LOG_MODULES=1 print each module load to stderr: "cubin"
 *                              (an ELF image) or "ptx <.target>"
 *   FA_FAKE_CUDA_FAULT=1       cuCtxSynchronize reports an illegal address
 *   FA_FAKE_CUDA_LOG=1         print each launch to stderr
 *
 *===----------------------------------------------------------------------===*/

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXPORT __attribute__((visibility("default")))

typedef int CUresult;
enum {
  OK = 0,
  INVALID_VALUE = 1,
  OUT_OF_MEMORY = 2,
  NO_BINARY_FOR_GPU = 209,
  INVALID_PTX = 218,
  ILLEGAL_ADDRESS = 700,
};

static long envInt(const char *name, long fallback) {
  const char *v = getenv(name);
  return v && *v ? strtol(v, NULL, 10) : fallback;
}

static void *current;        /* the current context (the primary one) */
static size_t allocatedBytes; /* live fake device memory */
static int launches;

/* Each allocation carries its size in front, for cuMemFree's bookkeeping. */
typedef struct {
  size_t bytes;
  size_t pad;
} Header;

EXPORT CUresult cuInit(unsigned flags) { return flags ? INVALID_VALUE : OK; }
EXPORT CUresult cuDeviceGetCount(int *count) {
  *count = envInt("FA_FAKE_CUDA_NO_DEVICE", 0) ? 0 : 1;
  return OK;
}
EXPORT CUresult cuDeviceGet(int *dev, int ordinal) {
  *dev = ordinal;
  return ordinal == 0 ? OK : 101;
}
EXPORT CUresult cuDeviceGetAttribute(int *value, int attr, int dev) {
  long cc = envInt("FA_FAKE_CUDA_CC", 90);
  switch (attr) {
  case 16: /* multiprocessors */
    *value = 132;
    break;
  case 75: /* cc major */
    *value = (int)(cc / 10);
    break;
  case 76: /* cc minor */
    *value = (int)(cc % 10);
    break;
  case 97: /* opt-in shared memory per block */
    *value = 227 * 1024;
    break;
  default:
    *value = 0;
  }
  return OK;
}
EXPORT CUresult cuCtxGetCurrent(void **ctx) {
  *ctx = current;
  return OK;
}
EXPORT CUresult cuCtxSetCurrent(void *ctx) {
  current = ctx;
  return OK;
}
EXPORT CUresult cuCtxGetDevice(int *dev) {
  *dev = 0;
  return OK;
}
EXPORT CUresult cuCtxSynchronize(void) {
  return envInt("FA_FAKE_CUDA_FAULT", 0) ? ILLEGAL_ADDRESS : OK;
}
EXPORT CUresult cuDevicePrimaryCtxRetain(void **ctx, int dev) {
  static int primary;
  *ctx = &primary;
  return OK;
}
EXPORT CUresult cuDevicePrimaryCtxRelease_v2(int dev) { return OK; }
EXPORT CUresult cuModuleLoadDataEx(void **mod, const void *image,
                                   unsigned n, int *options, void **values) {
  static int module;
  int elf = memcmp(image, "\x7f" "ELF", 4) == 0;
  if (envInt("FA_FAKE_CUDA_LOG_MODULES", 0)) {
    if (elf) {
      fprintf(stderr, "fake-cuda: load cubin\n");
    } else {
      /* The PTX's ".target sm_XY" line names what the JIT would build for. */
      const char *t = strstr((const char *)image, ".target ");
      int len = 0;
      if (t)
        while (t[8 + len] && t[8 + len] != '\n' && t[8 + len] != ',' && len < 16)
          ++len;
      fprintf(stderr, "fake-cuda: load ptx %.*s\n", len, t ? t + 8 : "?");
    }
  }
  if (elf && envInt("FA_FAKE_CUDA_REJECT_CUBIN", 0))
    return NO_BINARY_FOR_GPU;
  if (elf) {
    *mod = &module;
    return OK;
  }
  if (envInt("FA_FAKE_CUDA_REJECT_PTX", 0)) {
    for (unsigned i = 0; i < n; ++i)
      if (options[i] == 5) /* CU_JIT_ERROR_LOG_BUFFER */
        strcpy((char *)values[i], "ptxas fatal   : fake rejection");
    return INVALID_PTX;
  }
  *mod = &module;
  return OK;
}
EXPORT CUresult cuModuleUnload(void *mod) { return OK; }
EXPORT CUresult cuModuleGetFunction(void **fn, void *mod, const char *name) {
  static int function;
  *fn = &function;
  return OK;
}
EXPORT CUresult cuFuncSetAttribute(void *fn, int attr, int value) {
  return OK;
}
EXPORT CUresult cuLaunchKernel(void *fn, unsigned gx, unsigned gy,
                               unsigned gz, unsigned bx, unsigned by,
                               unsigned bz, unsigned smem, void *stream,
                               void **params, void **extra) {
  ++launches;
  if (envInt("FA_FAKE_CUDA_LOG", 0))
    fprintf(stderr, "fake-cuda: launch %d: grid %ux%ux%u block %ux%ux%u\n",
            launches, gx, gy, gz, bx, by, bz);
  return OK;
}
EXPORT CUresult cuMemAlloc_v2(unsigned long long *dptr, size_t bytes) {
  long limit = envInt("FA_FAKE_CUDA_MEM", 0);
  if (limit > 0 && allocatedBytes + bytes > (size_t)limit)
    return OUT_OF_MEMORY;
  Header *h = (Header *)malloc(sizeof(Header) + bytes);
  if (!h)
    return OUT_OF_MEMORY;
  h->bytes = bytes;
  allocatedBytes += bytes;
  *dptr = (unsigned long long)(uintptr_t)(h + 1);
  return OK;
}
EXPORT CUresult cuMemFree_v2(unsigned long long dptr) {
  if (!dptr)
    return OK;
  Header *h = (Header *)(uintptr_t)dptr - 1;
  allocatedBytes -= h->bytes;
  free(h);
  return OK;
}
EXPORT CUresult cuMemcpyHtoD_v2(unsigned long long dst, const void *src,
                                size_t bytes) {
  memcpy((void *)(uintptr_t)dst, src, bytes);
  return OK;
}
EXPORT CUresult cuMemcpyDtoH_v2(void *dst, unsigned long long src,
                                size_t bytes) {
  memcpy(dst, (const void *)(uintptr_t)src, bytes);
  return OK;
}
typedef struct {
  size_t srcXInBytes, srcY;
  int srcMemoryType;
  const void *srcHost;
  unsigned long long srcDevice;
  void *srcArray;
  size_t srcPitch;
  size_t dstXInBytes, dstY;
  int dstMemoryType;
  void *dstHost;
  unsigned long long dstDevice;
  void *dstArray;
  size_t dstPitch;
  size_t WidthInBytes, Height;
} Memcpy2D;

/* Device-to-device 2-D copies (fake device memory is host memory). */
EXPORT CUresult cuMemcpy2DAsync_v2(const Memcpy2D *c, void *stream) {
  (void)stream;
  if (!c || c->srcMemoryType != 2 || c->dstMemoryType != 2 ||
      (c->Height > 1 && (c->srcPitch < c->WidthInBytes ||
                         c->dstPitch < c->WidthInBytes)))
    return INVALID_VALUE;
  for (size_t y = 0; y < c->Height; ++y)
    memmove((char *)(uintptr_t)c->dstDevice + (c->dstY + y) * c->dstPitch +
                c->dstXInBytes,
            (const char *)(uintptr_t)c->srcDevice + (c->srcY + y) * c->srcPitch +
                c->srcXInBytes,
            c->WidthInBytes);
  return OK;
}

EXPORT CUresult cuMemsetD32Async(unsigned long long dst, unsigned value,
                                 size_t n, void *stream) {
  unsigned *p = (unsigned *)(uintptr_t)dst;
  for (size_t i = 0; i < n; ++i)
    p[i] = value;
  return OK;
}
EXPORT CUresult cuStreamSynchronize(void *stream) { return cuCtxSynchronize(); }

static const char *errorName(CUresult r) {
  switch (r) {
  case OK:
    return "CUDA_SUCCESS";
  case INVALID_VALUE:
    return "CUDA_ERROR_INVALID_VALUE";
  case OUT_OF_MEMORY:
    return "CUDA_ERROR_OUT_OF_MEMORY";
  case INVALID_PTX:
    return "CUDA_ERROR_INVALID_PTX";
  case ILLEGAL_ADDRESS:
    return "CUDA_ERROR_ILLEGAL_ADDRESS";
  }
  return NULL;
}
EXPORT CUresult cuGetErrorName(CUresult r, const char **s) {
  *s = errorName(r);
  return *s ? OK : INVALID_VALUE;
}
EXPORT CUresult cuGetErrorString(CUresult r, const char **s) {
  switch (r) {
  case OUT_OF_MEMORY:
    *s = "out of memory";
    return OK;
  case INVALID_PTX:
    *s = "a PTX JIT compilation failed";
    return OK;
  case ILLEGAL_ADDRESS:
    *s = "an illegal memory access was encountered";
    return OK;
  }
  *s = errorName(r);
  return *s ? OK : INVALID_VALUE;
}
