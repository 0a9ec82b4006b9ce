//===- RuntimeInternal.h - Internals of the GPU runtime ----------*- C++ -*-===//
//
// Part of the FlashMLIR project.
//
//===----------------------------------------------------------------------===//
//
// The pieces of libflashmlir_rt that do not need a GPU, exposed for the unit
// test (runtime/test/RuntimeTest.cpp): the JSON parser, the bundle manifest
// model and its parser, problem validation (shapes/strides -> named argument
// values), kernel selection, grid computation and kernel-parameter packing;
// plus the dlopen'ed CUDA driver table.
//
// Not installed; not part of the C API.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_RUNTIME_LIB_RUNTIMEINTERNAL_H
#define FLASHMLIR_RUNTIME_LIB_RUNTIMEINTERNAL_H

#include "flashmlir/runtime/Half.h"
#include "flashmlir/runtime/KernelAbi.h"
#include "flashmlir/runtime/fa_runtime.h"

#include <cstddef>
#include <cstdint>
#include <map>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace flashmlir::rt {

//===----------------------------------------------------------------------===//
// JSON (RuntimeJson.cpp)
//===----------------------------------------------------------------------===//

/// A parsed JSON value. Object members keep their order; duplicate keys are
/// a parse error.
struct JsonValue {
  enum class Kind { Null, Bool, Number, String, Array, Object };
  Kind kind = Kind::Null;
  bool boolean = false;
  double number = 0;
  /// For numbers written without fraction/exponent that fit an int64.
  bool isInt = false;
  int64_t integer = 0;
  std::string string;
  std::vector<JsonValue> array;
  std::vector<std::pair<std::string, JsonValue>> object;

  /// Member `key` of an object, or null (also when this is not an object).
  const JsonValue *get(const std::string &key) const;
};

/// "null", "boolean", "number", "string", "array" or "object".
const char *jsonKindName(JsonValue::Kind kind);

/// Strict RFC 8259 JSON (no comments, no trailing commas). On failure
/// returns false and sets *err to "line L, column C: <what>".
bool parseJson(const std::string &text, JsonValue *out, std::string *err);

/// JSON text of `v` (2-space indentation, members in order, a final
/// newline); parseJson reads it back to an equal value.
std::string writeJson(const JsonValue &v);

//===----------------------------------------------------------------------===//
// Bundle manifest (RuntimeManifest.cpp)
//===----------------------------------------------------------------------===//

/// The kernel kinds of the ABI (flashmlir/runtime/KernelAbi.h).
using KernelKind = abi::Kind;
/// "fwd", "bwd_pre", "bwd_main", "bwd_post".
inline const char *kernelKindName(KernelKind kind) {
  return abi::kindName(kind);
}
bool parseKernelKind(const std::string &s, KernelKind *out);

/// How one named kernel argument is passed. Buffer = five parameters, the
/// MLIR calling convention of a 1-D memref<?xT>: allocated pointer, aligned
/// pointer, offset (0), size (elements addressable), stride (1).
enum class ArgKind { Buffer, I64, I32, F32 };
/// "buffer", "i64", "i32", "f32".
const char *argKindName(ArgKind kind);
bool parseArgKind(const std::string &s, ArgKind *out);

/// The class of value the runtime provides for a known argument name (the
/// names of the ABI, abi::knownArg): Buffer, I64 (integers; "i64" or "i32"
/// in the manifest) or F32. Returns false for names the runtime does not
/// know.
bool knownArgName(const std::string &name, ArgKind *valueClass);

/// Names a grid dimension may refer to (the integer problem sizes,
/// abi::gridDimNames).
bool knownGridDimName(const std::string &name);

struct KernelConfig {
  DType dtype = DType::F32;
  int64_t headDim = 0, headDimV = 0;
  bool causal = false, window = false, softcap = false;
  std::string target; ///< "sm_90", "sm_80", ...
  /// Variable-length (packed) kernel (the manifest's optional "varlen").
  bool varlen = false;
  /// ALiBi kernel (the manifest's optional "alibi"): takes alibi_slopes.
  bool alibi = false;
  /// Fused-RoPE kernel (the manifest's optional "rotary"): takes the
  /// rotary tables.
  bool rotary = false;
};

/// grid[i] = ceil(value(dim) / div), or `constant` when dim is empty.
struct GridDimSpec {
  std::string dim;
  int64_t div = 1;
  int64_t constant = 1;
};

struct KernelArg {
  std::string name;
  ArgKind kind = ArgKind::I64;
};

struct KernelDesc {
  std::string name;  ///< unique in the bundle
  std::string file;  ///< PTX file relative to the bundle directory
  /// Optional ("cubin"): the kernel's SASS for config.target, relative to
  /// the bundle directory; loaded instead of the PTX where it runs
  /// (cubinRunsOn), the PTX being the fallback.
  std::string cubin;
  std::string entry; ///< .entry name in the PTX
  KernelKind kind = KernelKind::Fwd;
  KernelConfig config;
  unsigned block[3] = {1, 1, 1};
  int64_t dynamicSmem = 0;
  std::vector<GridDimSpec> grid; ///< 1 to 3 entries (x, y, z)
  std::vector<KernelArg> args;   ///< in kernel parameter order
  /// Autotune candidates (fa-compile --autotune, docs/bundle.md): kernels of
  /// one "candidate_group" share kind and config; selectKernel launches the
  /// group's "selected" kernel (marked by fa-tune), else its "default".
  std::string group;      ///< "" = not a candidate
  std::string variant;    ///< the "variant" object as "key=value ..." text
  bool isDefault = false; ///< "default"
  bool selected = false;  ///< "selected"
};

struct Manifest {
  std::string dir; ///< the bundle directory ("" for in-memory manifests)
  std::vector<KernelDesc> kernels;
};

/// Parses and validates manifest text. `dir` is used in messages and, when
/// `checkFiles` is set, to check that every kernel's file exists. On failure
/// returns false with a message naming the kernel and field.
bool parseManifest(const std::string &text, const std::string &dir,
                   bool checkFiles, Manifest *out, std::string *err);

/// Reads `dir`/manifest.json and parses it (with checkFiles). The PTX files
/// are not read here: a kernel's signature is checked against its PTX when
/// the kernel is first loaded (checkKernelPtx), so that creating a runtime
/// over a bundle of hundreds of kernels costs no more than its manifest
/// (cold start, docs/bundle.md). checkBundleSignatures checks them all.
bool loadBundle(const std::string &dir, Manifest *out, std::string *err);

/// Checks kernel `k` of `m` against the `.entry` of its PTX text `ptx`.
/// False with *err ("bundle DIR: kernel 'NAME' (FILE): ...") on a mismatch.
bool checkKernelPtx(const Manifest &m, const KernelDesc &k,
                    const std::string &ptx, std::string *err);

/// Every `.entry` of PTX text with the sizes in bytes of its parameters.
/// False with *err on a parameter list it cannot read.
bool ptxEntries(const std::string &ptx,
                std::map<std::string, std::vector<int>> *entries,
                std::string *err);

/// The sizes in bytes of the parameters of `.entry entry(...)` in PTX text.
/// False with *err when the entry is missing or unreadable.
bool ptxEntryParams(const std::string &ptx, const std::string &entry,
                    std::vector<int> *sizes, std::string *err);

/// Compares PTX parameter sizes with `k`'s args (buffer = 5 x 8 bytes,
/// i64 = 8, i32/f32 = 4). False with *err naming the first mismatch.
bool checkKernelSignature(const KernelDesc &k, const std::vector<int> &sizes,
                          std::string *err);

/// Reads every PTX file of `m` (relative to m.dir) and checks each kernel's
/// signature against its entry. False with *err naming the kernel.
bool checkBundleSignatures(const Manifest &m, std::string *err);

/// Whether SASS built for `target` ("sm_XY" or "sm_XYa") runs on a device
/// of compute capability major.minor: same major and, for an "a" target,
/// the same minor, else a minor no newer than the device's.
bool cubinRunsOn(const std::string &target, int ccMajor, int ccMinor);

/// Reads a whole file; false (with a message) if it cannot be read.
bool readFile(const std::string &path, std::string *out, std::string *err);

/// "dir/file" (file as is when absolute or dir empty).
std::string joinPath(const std::string &dir, const std::string &file);

/// params->dtype as the int the caller stored: a C caller may store any int
/// in the enum (reading an out-of-range value through the C++ enum type is
/// undefined behavior, UBSan: test/Sanitizers).
inline int rawDtype(const fa_attn_params *params) {
  int raw = 0;
  static_assert(sizeof(params->dtype) == sizeof(int), "fa_dtype is an int");
  std::memcpy(&raw, &params->dtype, sizeof(raw));
  return raw;
}

/// Checks the name of a file a manifest lists ("file", "cubin"): a
/// relative path without "." or ".." components, empty components or NUL
/// bytes. "" when it is one, else the message.
std::string checkBundleFileName(const std::string &file);

/// The path of bundle file `file` inside bundle directory `dir`, resolved
/// (symbolic links followed): false, with a message, when `file` is not a
/// valid name (checkBundleFileName), does not exist, or resolves to a
/// place outside `dir`. Every read of a bundle file goes through it.
bool resolveBundleFile(const std::string &dir, const std::string &file,
                       std::string *path, std::string *err);

//===----------------------------------------------------------------------===//
// Problems, selection, grids, packing (RuntimeLaunch.cpp)
//===----------------------------------------------------------------------===//

/// The value of one named argument.
struct ArgValue {
  ArgKind kind = ArgKind::I64; ///< Buffer, I64 or F32
  uint64_t ptr = 0;            ///< Buffer: device address
  int64_t extent = 0;          ///< Buffer: elements addressable from ptr
  int64_t i = 0;               ///< I64
  float f = 0;                 ///< F32
};

/// A validated attention call: the selection key and every argument value
/// the kernels of this pass may ask for, by name.
struct Problem {
  bool backward = false;
  DType dtype = DType::F32;
  int64_t B = 0, Hq = 0, Hkv = 0, Nq = 0, Nk = 0, D = 0, Dv = 0;
  /// Selection flags in canonical form: with causal the window's right side
  /// is implied (dropped); window = a side that is still >= 0.
  bool causal = false, window = false, softcap = false;
  /// A variable-length (packed) call: only varlen kernels serve it. B = 1
  /// and Nq / Nk = the packed rows (Tq / Tk); `seqs` sequences.
  bool varlen = false;
  int64_t seqs = 0;
  /// ALiBi slopes given (fa_score_mods): only ALiBi kernels serve the call.
  bool alibi = false;
  /// Rotary tables given (fa_score_mods): only RoPE kernels serve the call.
  bool rotary = false;
  /// Values passed to the kernels (window_right = 0 when causal).
  int64_t windowLeft = -1, windowRight = -1;
  float scale = 0, softcapValue = 0;
  std::map<std::string, ArgValue> args;

  /// args[name] = an i64 / f32 / buffer value.
  void setI64(const std::string &name, int64_t v) {
    ArgValue a;
    a.kind = ArgKind::I64;
    a.i = v;
    args[name] = a;
  }
  void setF32(const std::string &name, float v) {
    ArgValue a;
    a.kind = ArgKind::F32;
    a.f = v;
    args[name] = a;
  }
  void setBuffer(const std::string &name, uint64_t ptr, int64_t extent) {
    ArgValue a;
    a.kind = ArgKind::Buffer;
    a.ptr = ptr;
    a.extent = extent;
    args[name] = a;
  }
};

/// Validates the forward call (shapes, strides, params) and fills *out.
/// `lse` may be null (then kernels that take lse cannot run). Returns
/// FA_OK or FA_ERR_INVALID with a message naming the tensor.
fa_status buildForwardProblem(const fa_attn_params *params, const fa_tensor *q,
                              const fa_tensor *k, const fa_tensor *v,
                              const fa_tensor *o, const fa_tensor *lse,
                              Problem *out, std::string *err);

/// The KV cache tensors of fa_forward_kvcache (after buildForwardProblem
/// on views of them): k / v [blocks, Hkv, block_size, D / Dv] with p's
/// heads and head dims; replaces p->args' k / v and their strides.
fa_status addCacheTensors(Problem *p, const fa_tensor *kc, const fa_tensor *vc,
                          std::string *err);

/// Same for the backward call (no workspace values yet; see
/// addWorkspaceArgs).
fa_status buildBackwardProblem(const fa_attn_params *params,
                               const fa_tensor *q, const fa_tensor *k,
                               const fa_tensor *v, const fa_tensor *o,
                               const fa_tensor *dout, const fa_tensor *lse,
                               const fa_tensor *dq, const fa_tensor *dk,
                               const fa_tensor *dv, Problem *out,
                               std::string *err);

/// Workspace layout of a backward problem: dr_ws f32 [B,Hq,Nq] at offset 0,
/// dqacc_ws f32 [B,Hq,Nq16,D] at `dqaccOffset` (256-byte aligned); varlen:
/// [Hq,Tq] and [Hq,abi::varlenDqaccRows(Tq, seqs),D].
struct WorkspaceLayout {
  int64_t drElems = 0, dqaccElems = 0;
  size_t dqaccOffset = 0, totalBytes = 0;
};
WorkspaceLayout workspaceLayout(const Problem &p);
/// Adds dr_ws / dqacc_ws (contiguous) at `base` to p->args.
void addWorkspaceArgs(Problem *p, uint64_t base);

/// The split-KV forward's key ranges for `p` on a device of `numSms` SMs: 1
/// when its blocks (batch x KV heads) already fill ~80% of two waves (as
/// FlashAttention-2); otherwise the count of at most one wave of blocks,
/// kMaxSplits and one range per 128-key tile that fills the wave best (the
/// fewest on a tie; a count that does not shorten the longest range does
/// not count).
int64_t splitKvHeuristic(const Problem &p, int numSms);
/// Bytes of the split-KV workspaces of `p` with `splits` ranges, and their
/// arguments (oacc_ws, then lseacc_ws at a 256-byte boundary, at `base`;
/// num_splits) added to p->args.
size_t splitWorkspaceBytes(const Problem &p, int64_t splits);
void addSplitArgs(Problem *p, int64_t splits, uint64_t base);
/// fwd_split's K / V row arguments (abi::kKvDense / kKvCacheLens /
/// kKvPaged): kv_mode, block_size and its log2 (block_shift, -1 when not a
/// power of two), the block table with its row stride and the per-sequence
/// lengths (device pointers, null where the mode has none; their extents
/// `B` and `B * tableStride`).
void addKvArgs(Problem *p, int64_t mode, int64_t blockSize,
               const int32_t *cacheSeqlens, const int32_t *blockTable,
               int64_t tableStride);

/// Targets tried on a device of compute capability major.minor, best first:
/// 9.x: sm_9Xa, sm_9X, sm_90, sm_80; 8.x: sm_8X, sm_80; >= 10: sm_XY, sm_80;
/// 7.5: sm_75; older: none. With FLASHMLIR_GPU_TARGET: that target alone.
std::vector<std::string> targetsForDevice(int ccMajor, int ccMinor);
/// $FLASHMLIR_GPU_TARGET (null when unset or empty): the one bundle target
/// the runtime takes kernels from, where the device can run its PTX (e.g.
/// sm_75 on an H100, through the driver's JIT: how the Turing kernels are
/// checked without a Turing GPU). Unset: the device's own targets.
const char *forcedGpuTarget();

/// Picks the kernel of `kind` for `p` on a cc major.minor device. Exact mask
/// flags first; else a kernel with a more general mask (a window kernel
/// serves causal and unmasked calls through window_left/right = -1 / 0).
/// Among the candidates of an autotune group: the selected one, else the
/// default (never another candidate).
/// Returns the index into m.kernels, or -1 with *err = "no kernel for ...".
int selectKernel(const Manifest &m, KernelKind kind, const Problem &p,
                 int ccMajor, int ccMinor, std::string *err);

/// Grid of kernel `k` for `p`. Sets *empty when a dimension is 0 (nothing to
/// launch). False with *err on a missing value or a grid over the limits.
bool computeGrid(const KernelDesc &k, const Problem &p, unsigned grid[3],
                 bool *empty, std::string *err);

/// The kernel parameters of one launch: `params` holds one pointer per PTX
/// parameter (into `storage`), as cuLaunchKernel expects.
struct PackedArgs {
  std::vector<uint64_t> storage; ///< one 8-byte slot per parameter
  std::vector<void *> params;
  size_t size() const { return params.size(); }
  /// Slot i reinterpreted (tests).
  int64_t asI64(size_t i) const { return static_cast<int64_t>(storage[i]); }
  int32_t asI32(size_t i) const;
  float asF32(size_t i) const;
};

/// Packs `k`'s args from p.args. False with *err naming the argument when a
/// value is missing (e.g. 'dq' in a forward kernel) or of the wrong class.
bool packArgs(const KernelDesc &k, const Problem &p, PackedArgs *out,
              std::string *err);

//===----------------------------------------------------------------------===//
// CUDA driver (RuntimeDriver.cpp)
//===----------------------------------------------------------------------===//

namespace cu {
// The few driver API types we need, declared here (no CUDA headers).
using Result = int;
using Device = int;
using DevicePtr = unsigned long long;
using Context = struct CUctx_st *;
using Module = struct CUmod_st *;
using Function = struct CUfunc_st *;
using Stream = struct CUstream_st *;

enum : int {
  SUCCESS = 0,
  ERROR_INVALID_VALUE = 1,
  ERROR_OUT_OF_MEMORY = 2,
  ERROR_NOT_INITIALIZED = 3,
  ERROR_DEINITIALIZED = 4,
  ERROR_STUB_LIBRARY = 34,
  ERROR_NO_DEVICE = 100,
  ERROR_INVALID_DEVICE = 101,
  ERROR_NO_BINARY_FOR_GPU = 209,
  ERROR_INVALID_PTX = 218,
  ERROR_JIT_COMPILER_NOT_FOUND = 221,
  ERROR_UNSUPPORTED_PTX_VERSION = 222,
  ERROR_NOT_FOUND = 500,
};
enum : int { // CUjit_option
  JIT_INFO_LOG_BUFFER = 3,
  JIT_INFO_LOG_BUFFER_SIZE_BYTES = 4,
  JIT_ERROR_LOG_BUFFER = 5,
  JIT_ERROR_LOG_BUFFER_SIZE_BYTES = 6,
};
enum : int { // CUdevice_attribute
  DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT = 16,
  DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR = 75,
  DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR = 76,
  DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN = 97,
};
/// CUDA_MEMCPY2D (cuMemcpy2DAsync_v2), device to device only.
enum : int { MEMORYTYPE_DEVICE = 2 };
struct Memcpy2D {
  size_t srcXInBytes = 0, srcY = 0;
  int srcMemoryType = MEMORYTYPE_DEVICE;
  const void *srcHost = nullptr;
  DevicePtr srcDevice = 0;
  void *srcArray = nullptr;
  size_t srcPitch = 0;
  size_t dstXInBytes = 0, dstY = 0;
  int dstMemoryType = MEMORYTYPE_DEVICE;
  void *dstHost = nullptr;
  DevicePtr dstDevice = 0;
  void *dstArray = nullptr;
  size_t dstPitch = 0;
  size_t WidthInBytes = 0, Height = 0;
};
enum : int { // CUfunction_attribute
  FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES = 8,
};
} // namespace cu

/// Function table of a dlopen'ed libcuda.
struct CudaDriver {
  void *handle = nullptr;
  cu::Result (*cuInit)(unsigned) = nullptr;
  cu::Result (*cuDeviceGetCount)(int *) = nullptr;
  cu::Result (*cuDeviceGet)(cu::Device *, int) = nullptr;
  cu::Result (*cuDeviceGetAttribute)(int *, int, cu::Device) = nullptr;
  cu::Result (*cuCtxGetCurrent)(cu::Context *) = nullptr;
  cu::Result (*cuCtxSetCurrent)(cu::Context) = nullptr;
  cu::Result (*cuCtxGetDevice)(cu::Device *) = nullptr;
  cu::Result (*cuCtxSynchronize)() = nullptr;
  cu::Result (*cuDevicePrimaryCtxRetain)(cu::Context *, cu::Device) = nullptr;
  cu::Result (*cuDevicePrimaryCtxRelease)(cu::Device) = nullptr;
  cu::Result (*cuModuleLoadDataEx)(cu::Module *, const void *, unsigned,
                                   int *, void **) = nullptr;
  cu::Result (*cuModuleUnload)(cu::Module) = nullptr;
  cu::Result (*cuModuleGetFunction)(cu::Function *, cu::Module,
                                    const char *) = nullptr;
  cu::Result (*cuFuncSetAttribute)(cu::Function, int, int) = nullptr;
  cu::Result (*cuLaunchKernel)(cu::Function, unsigned, unsigned, unsigned,
                               unsigned, unsigned, unsigned, unsigned,
                               cu::Stream, void **, void **) = nullptr;
  cu::Result (*cuMemAlloc)(cu::DevicePtr *, size_t) = nullptr;
  cu::Result (*cuMemFree)(cu::DevicePtr) = nullptr;
  cu::Result (*cuMemcpyHtoD)(cu::DevicePtr, const void *, size_t) = nullptr;
  cu::Result (*cuMemcpyDtoH)(void *, cu::DevicePtr, size_t) = nullptr;
  cu::Result (*cuMemsetD32Async)(cu::DevicePtr, unsigned, size_t,
                                 cu::Stream) = nullptr;
  cu::Result (*cuMemcpy2DAsync)(const cu::Memcpy2D *, cu::Stream) = nullptr;
  cu::Result (*cuStreamSynchronize)(cu::Stream) = nullptr;
  cu::Result (*cuGetErrorString)(cu::Result, const char **) = nullptr;
  cu::Result (*cuGetErrorName)(cu::Result, const char **) = nullptr;

  /// "CUDA_ERROR_X (description)" for a driver result.
  std::string describe(cu::Result r) const;
};

/// The library name dlopen'ed: $FLASHMLIR_LIBCUDA if set, else
/// "libcuda.so.1".
std::string cudaLibraryName();

/// dlopens `path` and resolves every symbol (no cuInit). Never caches. On
/// failure returns false with a message and leaves *out without a handle.
bool loadCudaDriver(const std::string &path, CudaDriver *out,
                    std::string *err);

/// The process-wide driver for cudaLibraryName(): loaded and cuInit'ed once
/// per library name. Returns null with *status (FA_ERR_NO_DRIVER or
/// FA_ERR_NO_DEVICE) and *err on failure.
const CudaDriver *getCudaDriver(fa_status *status, std::string *err);

} // namespace flashmlir::rt

#endif // FLASHMLIR_RUNTIME_LIB_RUNTIMEINTERNAL_H
