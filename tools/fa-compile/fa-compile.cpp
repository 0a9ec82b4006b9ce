//===- fa-compile.cpp - write a FlashMLIR kernel bundle ---------*- C++ -*-===//
//
// Part of FlashMLIR.
//
// fa-compile --out DIR [--default] [--target sm_80,sm_90a] [--dtype f16,bf16]
//            [--head-dim 64,128] [--head-dim-v N] [--masked 0|1|both]
//            [--softcap 0|1|both] [--tensor-cores 0|1] [--mma-async-copy 0|1]
//            [--mma-warps 4|8] [--mma-warp-rows 16|32]
//            [--mma-block-n 32|64] [--deterministic 0|1] [--wgmma 0|1]
//            [--split-kv 0|1] [--autotune] [--ptxas PATH [--cubin]] [-v]
//
// Compiles attention kernels through FlashMLIR's GPU pipeline (no nvcc) and
// writes a bundle: one PTX file per kernel and manifest.json. --target
// defaults to sm_80,sm_90a; --default alone to the default bundle's targets
// (sm_75,sm_80,sm_90a). --autotune
// adds the forward tile candidates that fa-tune times on the GPU
// (docs/tensor-cores.md, "Autotune").
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Bundle/Bundle.h"

#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/ADT/StringRef.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdlib>
#include <string>
#include <vector>

using namespace flashmlir;

static int usage(const std::string &msg) {
  if (!msg.empty())
    llvm::errs() << "fa-compile: " << msg << "\n";
  llvm::errs()
      << "usage: fa-compile --out DIR [--default] [--target sm_80,sm_90a] "
         "[--dtype f16,bf16,f32] [--head-dim 64,128] [--head-dim-v N] "
         "[--masked 0|1|both] [--softcap 0|1|both] [--tensor-cores 0|1] "
         "[--mma-async-copy 0|1] [--mma-warps 4|8] [--mma-warp-rows 16|32] "
         "[--mma-block-n 32|64] [--deterministic 0|1] [--wgmma 0|1] [--autotune]\n"
         "       [--varlen 0|1|both] [--alibi 0|1|both] [--rotary 0|1|both]\n"
         "       [--split-kv 0|1]\n"
         "       [--ptxas PATH [--cubin]] [-v]\n"
         "  --softcap-tanh fast|precise  tensor-core softcap through\n"
         "              tanh.approx.f32 (default) or ex2 + rcp\n"
         "  --cubin     with --ptxas: also write each kernel's SASS for its\n"
         "              target (<name>.cubin, listed in the manifest); the\n"
         "              runtime loads it instead of JIT-compiling the PTX\n"
         "  --varlen 1|both: also (both) or only (1) the variable-length\n"
         "              (packed, cu_seqlens) forward kernels of the configs\n"
         "  --alibi 1|both: also (both) or only (1) the ALiBi kernels\n"
         "              (alibi_slopes) of the configs\n"
         "  --rotary 1|both: also (both) or only (1) the fused-RoPE kernels\n"
         "              (rotary_cos / rotary_sin; f16 / bf16 tensor-core\n"
         "              configurations) of the configs\n"
         "  --split-kv 0  leave out the split-KV (decode) forward kernels,\n"
         "              fwd_split + fwd_combine (default 1: f16 / bf16\n"
         "              tensor-core configurations)\n"
         "  --deterministic 1: bit-reproducible dQ (query-parallel dQ kernel\n"
         "              instead of f32 atomics in the backward)\n"
         "  --wgmma 0   on sm_90a targets, keep the mma.sync forward instead of\n"
         "              the Hopper (wgmma) one (default 1)\n"
         "  --autotune  also write, for every tensor-core forward config, the\n"
         "              tile candidates (4|8 warps x 32 rows x 64|32 keys, and\n"
         "              the other copy mode) as one candidate group whose\n"
         "              default is the tile model's kernel; with --ptxas,\n"
         "              candidates that spill more than the default are left\n"
         "              out. fa-tune BUNDLE times them on the GPU and marks\n"
         "              the winners in manifest.json.\n";
  return 2;
}

static std::vector<std::string> splitList(llvm::StringRef s) {
  llvm::SmallVector<llvm::StringRef> parts;
  s.split(parts, ',', -1, /*KeepEmpty=*/false);
  return {parts.begin(), parts.end()};
}

static bool parseBools(llvm::StringRef s, std::vector<bool> &out) {
  if (s == "0")
    out = {false};
  else if (s == "1")
    out = {true};
  else if (s == "both")
    out = {false, true};
  else
    return false;
  return true;
}

int main(int argc, char **argv) {
  BundleOptions options;
  bool useDefault = false;
  std::vector<std::string> targets = {"sm_80", "sm_90a"}, dtypes = {"f16"};
  bool targetsGiven = false;
  std::vector<int64_t> headDims = {64};
  int64_t headDimV = 0;
  std::vector<bool> masked = {false, true}, softcap = {false};
  bool tensorCores = true, mmaAsyncCopy = true;
  int64_t mmaWarps = 0, mmaWarpRows = 0, mmaBlockN = 0; // 0: the kernel's tile model
  std::string knobFlag; // the last --mma-* flag given (--autotune sets them)
  bool deterministic = false, wgmma = true, fastTanh = true, splitKv = true;
  std::vector<bool> varlens = {false}, alibis = {false}, rotaries = {false};
  for (int i = 1; i < argc; ++i) {
    llvm::StringRef a = argv[i];
    auto value = [&](std::string &out) {
      if (i + 1 >= argc)
        return false;
      out = argv[++i];
      return true;
    };
    std::string v;
    if (a.starts_with("--mma-"))
      knobFlag = a.str();
    if (a == "--default") {
      useDefault = true;
    } else if (a == "--autotune") {
      options.autotune = true;
    } else if (a == "-v") {
      options.verbose = true;
    } else if (a == "--out") {
      if (!value(options.outDir))
        return usage("--out needs a directory");
    } else if (a == "--softcap-tanh") {
      if (!value(v) || (v != "fast" && v != "precise"))
        return usage("--softcap-tanh expects fast or precise");
      fastTanh = v == "fast";
    } else if (a == "--cubin") {
      options.cubin = true;
    } else if (a == "--ptxas") {
      if (!value(options.ptxas))
        return usage("--ptxas needs a path");
    } else if (a == "--target") {
      if (!value(v) || (targets = splitList(v)).empty())
        return usage("--target needs a list like sm_80,sm_90a");
      targetsGiven = true;
    } else if (a == "--dtype") {
      if (!value(v) || (dtypes = splitList(v)).empty())
        return usage("--dtype needs a list like f16,bf16");
    } else if (a == "--head-dim" || a == "--head-dim-v") {
      if (!value(v))
        return usage(a.str() + " needs a value");
      std::vector<int64_t> dims;
      for (const std::string &d : splitList(v)) {
        int64_t x;
        if (llvm::StringRef(d).getAsInteger(10, x) || x <= 0)
          return usage(a.str() + " expects positive integers, got '" + v + "'");
        dims.push_back(x);
      }
      if (a == "--head-dim")
        headDims = dims;
      else if (dims.size() != 1)
        return usage("--head-dim-v takes one value");
      else
        headDimV = dims[0];
    } else if (a == "--masked") {
      if (!value(v) || !parseBools(v, masked))
        return usage("--masked expects 0, 1 or both");
    } else if (a == "--softcap") {
      if (!value(v) || !parseBools(v, softcap))
        return usage("--softcap expects 0, 1 or both");
    } else if (a == "--tensor-cores") {
      std::vector<bool> tc;
      if (!value(v) || !parseBools(v, tc) || tc.size() != 1)
        return usage("--tensor-cores expects 0 or 1");
      tensorCores = tc[0];
    } else if (a == "--mma-async-copy") {
      std::vector<bool> ac;
      if (!value(v) || !parseBools(v, ac) || ac.size() != 1)
        return usage("--mma-async-copy expects 0 or 1");
      mmaAsyncCopy = ac[0];
    } else if (a == "--mma-warps") {
      if (!value(v) || (v != "4" && v != "8"))
        return usage("--mma-warps expects 4 or 8");
      mmaWarps = v == "4" ? 4 : 8;
    } else if (a == "--mma-warp-rows") {
      if (!value(v) || (v != "16" && v != "32"))
        return usage("--mma-warp-rows expects 16 or 32");
      mmaWarpRows = v == "16" ? 16 : 32;
    } else if (a == "--mma-block-n") {
      if (!value(v) || (v != "32" && v != "64"))
        return usage("--mma-block-n expects 32 or 64");
      mmaBlockN = v == "32" ? 32 : 64;
    } else if (a == "--wgmma") {
      std::vector<bool> wg;
      if (!value(v) || !parseBools(v, wg) || wg.size() != 1)
        return usage("--wgmma expects 0 or 1");
      wgmma = wg[0];
    } else if (a == "--varlen") {
      if (!value(v) || !parseBools(v, varlens))
        return usage("--varlen expects 0, 1 or both");
    } else if (a == "--alibi") {
      if (!value(v) || !parseBools(v, alibis))
        return usage("--alibi expects 0, 1 or both");
    } else if (a == "--rotary") {
      if (!value(v) || !parseBools(v, rotaries))
        return usage("--rotary expects 0, 1 or both");
    } else if (a == "--split-kv") {
      std::vector<bool> sk;
      if (!value(v) || !parseBools(v, sk) || sk.size() != 1)
        return usage("--split-kv expects 0 or 1");
      splitKv = sk[0];
    } else if (a == "--deterministic") {
      std::vector<bool> det;
      if (!value(v) || !parseBools(v, det) || det.size() != 1)
        return usage("--deterministic expects 0 or 1");
      deterministic = det[0];
    } else if (a == "--help" || a == "-h") {
      return usage("");
    } else {
      return usage("unknown flag " + a.str());
    }
  }
  if (options.outDir.empty())
    return usage("--out DIR is required");
  if (options.autotune && !knobFlag.empty())
    return usage("--autotune chooses the tile knobs itself; it cannot be "
                 "combined with " + knobFlag);
  if (options.autotune && !tensorCores)
    return usage("--autotune tunes the tensor-core forward kernel; it cannot "
                 "be combined with --tensor-cores 0");

  if (options.cubin && options.ptxas.empty())
    return usage("--cubin needs --ptxas (the cubins are ptxas output)");
  std::vector<BundleConfig> configs;
  if (useDefault) {
    configs = defaultBundleConfigs(targetsGiven ? targets
                                                : defaultBundleTargets());
  } else {
    for (const std::string &t : targets)
      for (const std::string &dt : dtypes)
        for (int64_t d : headDims)
          for (bool m : masked)
            for (bool s : softcap)
              for (bool vl : varlens)
                for (bool al : alibis)
                  for (bool ro : rotaries) {
                    configs.push_back(
                        {dt, d, headDimV ? headDimV : d, m, s, t});
                    configs.back().varlen = vl;
                    configs.back().alibi = al;
                    configs.back().rotary = ro;
                  }
  }
  for (BundleConfig &c : configs)
    c.tensorCores = tensorCores, c.mmaAsyncCopy = mmaAsyncCopy,
    c.mmaWarps = mmaWarps, c.mmaWarpRows = mmaWarpRows,
    c.mmaBlockN = mmaBlockN, c.deterministic = deterministic, c.wgmma = wgmma,
    c.fastTanh = fastTanh, c.splitKv = splitKv;
  std::string error;
  int64_t kernels = 0;
  std::vector<std::string> notes;
  if (!writeBundle(configs, options, error, &kernels, &notes)) {
    llvm::errs() << "fa-compile: " << error << "\n";
    return 1;
  }
  for (const std::string &n : notes)
    llvm::errs() << "fa-compile: note: " << n << "\n";
  llvm::outs() << "fa-compile: wrote " << kernels << " kernels to "
               << options.outDir << "\n";
  return 0;
}
