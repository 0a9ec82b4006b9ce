//===- HostTensor.cpp - fa-run's host buffers -------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// HostTensor's allocation and element access, the input seeds and the host
// memory estimate.
//
//===----------------------------------------------------------------------===//

#include "HostTensor.h"

#include <cstdint>
#include <cstdlib>

#include <unistd.h>

namespace flashmlir::farun {

HostTensor HostTensor::make4(rt::DType dt, int64_t B, int64_t H, int64_t N,
                             int64_t D, bool bshd) {
  HostTensor t;
  t.dtype = dt;
  t.rank = 4;
  t.sizes[0] = B;
  t.sizes[1] = H;
  t.sizes[2] = N;
  t.sizes[3] = D;
  t.strides[3] = 1;
  if (bshd) {
    t.strides[1] = D;
    t.strides[2] = H * D;
  } else {
    t.strides[2] = D;
    t.strides[1] = N * D;
  }
  t.strides[0] = H * N * D;
  t.allocate();
  return t;
}

HostTensor HostTensor::make3(int64_t B, int64_t H, int64_t N) {
  HostTensor t;
  t.dtype = rt::DType::F32;
  t.rank = 3;
  t.sizes[0] = B;
  t.sizes[1] = H;
  t.sizes[2] = N;
  t.strides[2] = 1;
  t.strides[1] = N;
  t.strides[0] = H * N;
  t.allocate();
  return t;
}

void HostTensor::allocate() {
  numel = 1;
  size_t bytes = 0;
  for (int i = 0; i < rank; ++i)
    if (__builtin_mul_overflow(numel, static_cast<size_t>(sizes[i]), &numel))
      return;
  if (__builtin_mul_overflow(numel, rt::dtypeBytes(dtype), &bytes) ||
      bytes > SIZE_MAX - 64)
    return;
  bytes = (bytes + 63) / 64 * 64; // aligned_alloc wants a multiple
  mem.reset(std::aligned_alloc(64, bytes ? bytes : 64));
}

void HostTensor::store(const std::vector<double> &values) {
  forEach([&](size_t l, size_t s) {
    rt::storeElem(dtype, mem.get(), s, values[l]);
  });
}

std::vector<double> HostTensor::load() const {
  std::vector<double> values(numel);
  forEach([&](size_t l, size_t s) {
    values[l] = rt::loadElem(dtype, mem.get(), s);
  });
  return values;
}

#if FLASHMLIR_HAVE_COMPILER
TensorArg HostTensor::arg() const {
  TensorArg a;
  a.data = mem.get();
  a.rank = rank;
  for (int i = 0; i < 4; ++i) {
    a.sizes[i] = sizes[i];
    a.strides[i] = strides[i];
  }
  return a;
}
#endif

/// Distinct, well-mixed seeds per input from the one --seed (splitmix64).
uint64_t deriveSeed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + stream * 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

/// Host bytes fa-run needs for `o`, roughly (in double: no overflow): the
/// tensors in their dtype, the float64 inputs, and with --check the float64
/// references and loaded outputs.
double hostBytesNeeded(const Options &o) {
  const double eb = static_cast<double>(rt::dtypeBytes(o.dtype));
  const double b = static_cast<double>(o.batch);
  const double q = b * o.heads * o.seqlenQ * o.headDim;
  const double k = b * o.kvHeads * o.seqlenK * o.headDim;
  const double v = b * o.kvHeads * o.seqlenK * o.headDimV;
  const double out = b * o.heads * o.seqlenQ * o.headDimV;
  const double lse = b * o.heads * o.seqlenQ;
  double inputs = q + k + v, outputs = out, grads = 0;
  if (o.backward) {
    inputs += out; // dO
    grads = q + k + v;
  }
  double bytes = (inputs + outputs + grads) * eb + lse * 4 + inputs * 8;
  if (o.check)
    bytes += 2 * 8 * (outputs + lse + grads); // references + loaded values
  return bytes;
}

/// The machine's physical memory in bytes (0 when unknown).
double physicalMemoryBytes() {
  long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && size > 0 ? static_cast<double>(pages) * size : 0;
}

} // namespace flashmlir::farun
