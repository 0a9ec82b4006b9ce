//===- KernelInfo.cpp - kernel ABI descriptions and gpu.func builds -----===//
//
// Part of FlashMLIR.
//
// getGpuKernelInfo: what the runtime needs to launch a kernel (the ABI's
// argument list, flashmlir/runtime/KernelAbi.h, with the schedule's block,
// grid divisor and shared memory). buildGpuKernel: the gpu.func with those
// arguments and the body of the kernel the schedule names (Kernels/).
//
//===----------------------------------------------------------------------===//

#include "flashmlir/Conversion/AttnToGPU/AttnToGPU.h"

#include "KernelSpec.h"
#include "Kernels/Kernels.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/IR/SymbolTable.h"

using namespace mlir;
using namespace mlir::attn;
namespace abi = flashmlir::abi;

GpuKernelInfo mlir::attn::getGpuKernelInfo(GpuKernelKind kind,
                                           const GpuKernelSpec &spec) {
  const KernelSchedule sch = selectSchedule(kind, spec);
  const abi::Variant variant = abiVariant(spec);
  GpuKernelInfo info;
  info.entry = abi::entryName(kind, variant);
  info.kind = abi::kindName(kind);
  for (const abi::Arg &a : abi::kernelArgs(kind, variant))
    info.args.push_back({a.name, a.cls == abi::ArgClass::Buffer ? "buffer"
                                 : a.cls == abi::ArgClass::F32  ? "f32"
                                                                : "i64"});
  abi::GridNames grid = abi::gridNames(kind);
  info.block[0] = sch.threads;
  info.grid[0] = {grid.x, sch.gridDiv};
  info.grid[1] = {grid.y, 1};
  info.grid[2] = {grid.z, 1};
  info.dynamicSharedMemory = sch.smemBytes;
  info.blockM = sch.blockM;
  info.blockN = sch.blockN;
  return info;
}

static MemRefType bufferType(MLIRContext *ctx, Type et) {
  return MemRefType::get(
      {ShapedType::kDynamic}, et,
      StridedLayoutAttr::get(ctx, ShapedType::kDynamic, {1}));
}

gpu::GPUFuncOp mlir::attn::buildGpuKernel(OpBuilder &builder,
                                          gpu::GPUModuleOp module,
                                          GpuKernelKind kind,
                                          const GpuKernelSpec &spec) {
  MLIRContext *ctx = builder.getContext();
  const KernelSchedule sch = selectSchedule(kind, spec);
  GpuKernelInfo info = getGpuKernelInfo(kind, spec);
  assert(rotaryUnsupported(kind, spec).empty() &&
         "callers check rotaryUnsupported first");
  OpBuilder::InsertionGuard guard(builder);
  builder.setInsertionPointToEnd(module.getBody());
  Location loc = module.getLoc();

  // The external base symbol of dynamic shared memory: keeps the NVPTX
  // layout of `gpu.dynamic_shared_memory` from overlapping anything else.
  if (!SymbolTable::lookupSymbolIn(module, "__flashmlir_dyn_smem")) {
    auto t = MemRefType::get(
        {0}, builder.getI8Type(), MemRefLayoutAttrInterface(),
        gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup));
    memref::GlobalOp::create(builder, loc, "__flashmlir_dyn_smem",
                             /*sym_visibility=*/StringAttr(), t,
                             /*initial_value=*/Attribute(), /*constant=*/false,
                             builder.getI64IntegerAttr(16));
  }

  SmallVector<Type> argTypes;
  for (const GpuKernelArg &a : info.args) {
    if (a.kind == "buffer")
      argTypes.push_back(bufferType(
          ctx, abi::isF32Buffer(a.name)   ? builder.getF32Type()
               : abi::isI32Buffer(a.name) ? Type(builder.getI32Type())
                                          : spec.elementType));
    else if (a.kind == "f32")
      argTypes.push_back(builder.getF32Type());
    else
      argTypes.push_back(builder.getIndexType());
  }
  auto func = gpu::GPUFuncOp::create(builder, loc, info.entry,
                                     builder.getFunctionType(argTypes, {}));
  func->setAttr(gpu::GPUDialect::getKernelFuncAttrName(),
                builder.getUnitAttr());
  func.setKnownBlockSizeAttr(builder.getDenseI32ArrayAttr(
      {int32_t(info.block[0]), int32_t(info.block[1]),
       int32_t(info.block[2])}));

  ImplicitLocOpBuilder b(loc, builder);
  b.setInsertionPointToStart(&func.getBody().front());
  KernelBuilder k(b, func, info, spec, sch.threads);
  switch (kind) {
  case GpuKernelKind::Fwd:
    if (sch.engine == Engine::Wgmma)
      kernels::buildWgmmaForward(k, sch);
    else if (sch.engine == Engine::MmaSync)
      kernels::buildMmaForward(k, sch);
    else
      kernels::buildSimtForward(k);
    break;
  case GpuKernelKind::BwdPre:
    kernels::buildRowKernel(k, kind, sch);
    break;
  case GpuKernelKind::BwdPost:
    if (!spec.deterministic)
      kernels::buildRowKernel(k, kind, sch);
    else if (sch.engine == Engine::MmaSync)
      kernels::buildMmaDq(k, sch);
    else
      kernels::buildSimtDq(k);
    break;
  case GpuKernelKind::BwdMain:
    if (sch.tensorCores())
      kernels::buildMmaBackward(k, sch);
    else
      kernels::buildSimtBackward(k);
    break;
  case GpuKernelKind::FwdSplit:
    kernels::buildMmaForwardSplit(k, sch);
    break;
  case GpuKernelKind::FwdCombine:
    kernels::buildSplitCombine(k, sch);
    break;
  }
  gpu::ReturnOp::create(b);
  return func;
}
