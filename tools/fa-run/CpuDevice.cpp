//===- CpuDevice.cpp - fa-run's host device ---------------------*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// --device cpu: the kernels of the configuration JIT-compiled for the host
// through the CPU pipeline (FlashMLIRCPURunner) and called on the host
// buffers themselves. Built only with the compiler
// (FLASHMLIR_HAVE_COMPILER=1).
//
//===----------------------------------------------------------------------===//

#include "Device.h"

#include "flashmlir/CPU/CpuRunner.h"

#include <cstdint>
#include <memory>
#include <string>

namespace flashmlir::farun {

namespace {

/// The host: kernels JIT-compiled through the CPU pipeline, called on the
/// host buffers themselves.
class CpuDevice final : public Device {
public:
  explicit CpuDevice(const Options &o) : o(o) {}

  bool prepare(Tensors &tensors, Results &r, std::string &err) override {
    t = &tensors;
    KernelConfig kc;
    kc.dtype = o.dtype;
    kc.D = o.headDim;
    kc.Dv = o.headDimV;
    kc.scale = o.scale;
    kc.causal = o.causal;
    kc.windowLeft = o.windowLeft;
    kc.windowRight = o.windowRight;
    kc.softcap = o.softcap;
    kc.rotaryDim = o.rotary;
    kc.rotaryInterleaved = o.rotaryInterleaved;
    kc.unfused = o.pipeline == "unfused";
    kc.blockM = o.blockM;
    kc.blockN = o.blockN;

    std::string e;
    auto t0 = Clock::now();
    kernels = CpuKernels::compile(kc, e);
    if (!kernels) {
      err = "cannot compile the kernels: " + e;
      return false;
    }
    if (o.backward && !kernels->compileBackward(e)) {
      err = "cannot compile the backward kernel: " + e;
      return false;
    }
    r.msCompile.set(msSince(t0));
    return true;
  }

  bool forward(std::string &err) override {
    std::string e;
    if (o.varlen ? kernels->varlenForward(packed(t->q), packed(t->k),
                                          packed(t->v), packed(t->out),
                                          packed(t->lse), seqs(), e)
                 : kernels->forward(t->q.arg(), t->k.arg(), t->v.arg(),
                                    t->out.arg(), t->lse.arg(), mods(), e))
      return true;
    err = "forward failed: " + e;
    return false;
  }

  bool backward(std::string &err) override {
    std::string e;
    if (o.varlen
            ? kernels->varlenBackward(packed(t->q), packed(t->k), packed(t->v),
                                      packed(t->out), packed(t->dO),
                                      packed(t->lse), packed(t->dq),
                                      packed(t->dk), packed(t->dv), seqs(), e)
            : kernels->backward(t->q.arg(), t->k.arg(), t->v.arg(),
                                t->out.arg(), t->dO.arg(), t->lse.arg(),
                                t->dq.arg(), t->dk.arg(), t->dv.arg(), mods(),
                                e))
      return true;
    err = "backward failed: " + e;
    return false;
  }

  /// --sinks as the kernels take them (none: all null).
  ScoreModArgs mods() const {
    ScoreModArgs m;
    if (!t->sinks.empty()) {
      m.sinks = t->sinks.data();
      m.gradSinks = t->dsinks.data();
    }
    if (!t->alibi.empty()) {
      m.alibiSlopes = t->alibi.data();
      m.alibiPerSequence = true;
    }
    if (!t->rotaryCos.empty()) {
      m.rotaryCos = t->rotaryCos.data();
      m.rotarySin = t->rotarySin.data();
      m.rotaryPositions = o.seqlenK;
    }
    return m;
  }

  void startMemory() override {
    CpuKernels::resetPeak();
    live0 = CpuKernels::liveBytes();
  }

  void stopMemory(Results &r) override {
    r.peakBytes = CpuKernels::peakBytes() - live0;
    r.leakedBytes = CpuKernels::liveBytes() - live0;
    r.leakMeasured = true;
  }

  bool fetch(Tensors &, std::string &) override { return true; }

private:
  /// The packed view of a batch-1 bshd buffer: [N, H, D] (lse: [H, N]).
  static TensorArg packed(const HostTensor &h) {
    TensorArg a;
    a.data = h.mem.get();
    if (h.rank == 4) {
      a.rank = 3;
      a.sizes[0] = h.sizes[2];
      a.sizes[1] = h.sizes[1];
      a.sizes[2] = h.sizes[3];
      a.strides[0] = h.strides[2];
      a.strides[1] = h.strides[1];
      a.strides[2] = h.strides[3];
    } else {
      a.rank = 2;
      a.sizes[0] = h.sizes[1];
      a.sizes[1] = h.sizes[2];
      a.strides[0] = h.strides[1];
      a.strides[1] = h.strides[2];
    }
    return a;
  }

  VarlenArgs seqs() const {
    VarlenArgs s;
    s.cuSeqlensQ = o.cuQ.data();
    s.cuSeqlensK = o.cuK.data();
    s.batch = static_cast<int64_t>(o.varlenQ.size());
    s.maxSeqlenQ = o.maxQ;
    s.maxSeqlenK = o.maxK;
    return s;
  }

  const Options &o;
  Tensors *t = nullptr;
  std::unique_ptr<CpuKernels> kernels;
  int64_t live0 = 0;
};

} // namespace

std::unique_ptr<Device> createCpuDevice(const Options &o) {
  return std::make_unique<CpuDevice>(o);
}

} // namespace flashmlir::farun
