//===- HostTensor.h - fa-run's host buffers ---------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// The host side of a run: dense tensors of one dtype in the bhsd or bshd
// layout (with the strides the kernels see), the buffers of one run, the
// seeds of the random inputs, and how much host memory a configuration
// needs.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_TOOLS_FA_RUN_HOSTTENSOR_H
#define FLASHMLIR_TOOLS_FA_RUN_HOSTTENSOR_H

#include "Options.h"

#include "flashmlir/runtime/Half.h"

#if FLASHMLIR_HAVE_COMPILER
#include "flashmlir/CPU/CpuRunner.h"
#endif

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

namespace flashmlir::farun {

struct FreeDeleter {
  void operator()(void *p) const { std::free(p); }
};

/// A [B, H, N, D] tensor (or a [B, H, N] f32 lse) of one dtype. With the
/// bshd layout the memory is [B, N, H, D] and the view's strides swap H and
/// N, so the kernel sees [B, H, N, D] without a copy. The storage is dense
/// (numel elements) in both layouts; a device copy mirrors it byte for byte
/// and uses the same strides.
struct HostTensor {
  rt::DType dtype = rt::DType::F32;
  int rank = 0;
  int64_t sizes[4] = {1, 1, 1, 1};
  int64_t strides[4] = {0, 0, 0, 0};
  size_t numel = 0;
  std::unique_ptr<void, FreeDeleter> mem;

  static HostTensor make4(rt::DType dt, int64_t B, int64_t H, int64_t N,
                          int64_t D, bool bshd);
  static HostTensor make3(int64_t B, int64_t H, int64_t N);

  /// Leaves `mem` null (reported as out of memory) when the size
  /// overflows.
  void allocate();

  bool ok() const { return mem != nullptr; }

  /// Bytes of the (dense) storage.
  size_t bytes() const { return numel * rt::dtypeBytes(dtype); }

  /// Calls fn(logical index, storage index) for every element, in logical
  /// row-major [B, H, N, D] order.
  template <typename Fn> void forEach(Fn fn) const {
    const int64_t s3 = rank == 4 ? sizes[3] : 1;
    const int64_t st3 = rank == 4 ? strides[3] : 0;
    size_t logical = 0;
    for (int64_t a = 0; a < sizes[0]; ++a)
      for (int64_t b = 0; b < sizes[1]; ++b)
        for (int64_t c = 0; c < sizes[2]; ++c)
          for (int64_t d = 0; d < s3; ++d)
            fn(logical++, static_cast<size_t>(a * strides[0] + b * strides[1] +
                                              c * strides[2] + d * st3));
  }

  void store(const std::vector<double> &values);
  std::vector<double> load() const;

  /// All-ones bytes: a NaN in f32, f16 and bf16 alike, so any element the
  /// kernel does not write shows up as NaN (and fails --check).
  void poison() { std::memset(mem.get(), 0xff, bytes()); }

#if FLASHMLIR_HAVE_COMPILER
  TensorArg arg() const;
#endif
};

/// The buffers of one run. The inputs (q, k, v, dO) hold random values, the
/// outputs (out, lse, dq, dk, dv) are poisoned; dO and the gradients exist
/// with --backward only.
struct Tensors {
  HostTensor q, k, v, out, lse, dO, dq, dk, dv;
  bool backward = false;
  /// --sinks: the logits [Hq] and d sinks [Hq] (poisoned; f32 whatever the
  /// dtype), empty without.
  std::vector<float> sinks, dsinks;
  /// --alibi: the slopes [B, Hq] (f32), empty without.
  std::vector<float> alibi;
  /// --rotary: the tables [Nk, R / 2] (f32), empty without.
  std::vector<float> rotaryCos, rotarySin;

  std::vector<HostTensor *> all() {
    std::vector<HostTensor *> v_ = {&q, &k, &v, &out, &lse};
    if (backward)
      v_.insert(v_.end(), {&dO, &dq, &dk, &dv});
    return v_;
  }
  std::vector<HostTensor *> outputs() {
    std::vector<HostTensor *> v_ = {&out, &lse};
    if (backward)
      v_.insert(v_.end(), {&dq, &dk, &dv});
    return v_;
  }
};

/// Distinct, well-mixed seeds per input from the one --seed (splitmix64).
uint64_t deriveSeed(uint64_t seed, uint64_t stream);

/// Host bytes fa-run needs for `o`, roughly (in double: no overflow): the
/// tensors in their dtype, the float64 inputs, and with --check the float64
/// references and loaded outputs.
double hostBytesNeeded(const Options &o);

/// The machine's physical memory in bytes (0 when unknown).
double physicalMemoryBytes();

} // namespace flashmlir::farun

#endif // FLASHMLIR_TOOLS_FA_RUN_HOSTTENSOR_H
