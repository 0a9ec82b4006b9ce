//===- KernelBuilder.cpp - the state every kernel body is built on -------===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#include "KernelBuilder.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/ControlFlow/IR/ControlFlowOps.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

using namespace mlir;
using namespace mlir::attn;

KernelBuilder::KernelBuilder(ImplicitLocOpBuilder &b, gpu::GPUFuncOp func,
                             const GpuKernelInfo &info,
                             const GpuKernelSpec &spec, int64_t threads)
    : b(b), cg(b), spec(spec), et(spec.elementType), threads(threads) {
  cg.nvptxApprox = true;
  for (auto [i, a] : llvm::enumerate(info.args))
    args[a.name] = func.getArgument(i);
}

Value KernelBuilder::arg(StringRef name) {
  if (seqNq && name == "seqlen_q")
    return seqNq;
  if (seqNk && name == "seqlen_k")
    return seqNk;
  auto it = args.find(name);
  assert(it != args.end() && "kernel argument not in the ABI");
  return it->second;
}

Value KernelBuilder::i32(int64_t v) {
  return arith::ConstantIntOp::create(b, b.getI32Type(), v);
}

Value KernelBuilder::rem(Value a, int64_t c) {
  return arith::RemSIOp::create(b, a, cg.idx(c));
}

Value KernelBuilder::div(Value a, int64_t c) { return cg.divs(a, cg.idx(c)); }

Value KernelBuilder::tid() {
  return gpu::ThreadIdOp::create(b, gpu::Dimension::x);
}

Value KernelBuilder::bid(gpu::Dimension d) {
  return gpu::BlockIdOp::create(b, d);
}

void KernelBuilder::barrier() { gpu::BarrierOp::create(b); }

LaneIds KernelBuilder::laneIds(Value tid) {
  LaneIds l;
  l.tid = tid;
  l.warp = div(tid, kWarp);
  l.lane = rem(tid, kWarp);
  l.g = div(l.lane, 4);
  l.t = rem(l.lane, 4);
  l.l8 = rem(l.lane, 8);
  l.l8b = rem(div(l.lane, 8), 2);
  l.l16 = div(l.lane, 16);
  return l;
}

Attribute KernelBuilder::workgroup() {
  return gpu::AddressSpaceAttr::get(b.getContext(),
                                    gpu::AddressSpace::Workgroup);
}

Value KernelBuilder::smemBase() {
  if (!dynBase) {
    auto i8 = MemRefType::get({ShapedType::kDynamic}, b.getI8Type(),
                              MemRefLayoutAttrInterface(), workgroup());
    dynBase = gpu::DynamicSharedMemoryOp::create(b, i8);
  }
  return dynBase;
}

Value KernelBuilder::smem(int64_t offset, ArrayRef<int64_t> shape,
                          Type type) {
  smemBase();
  auto t = MemRefType::get(shape, type ? type : et,
                           MemRefLayoutAttrInterface(), workgroup());
  Value at = cg.idx(offset);
  if (smemShift)
    at = cg.add(smemShift, at);
  return memref::ViewOp::create(b, t, dynBase, at, ValueRange{});
}

void KernelBuilder::beginSequence(Value bi) {
  if (!spec.varlen)
    return;
  auto at = [&](StringRef cu, Value i) {
    Value x = memref::LoadOp::create(b, arg(cu), ValueRange{i});
    return arith::IndexCastOp::create(b, b.getIndexType(), x).getResult();
  };
  Value next = cg.add(bi, cg.idx(1));
  const bool keys = args.count("cu_seqlens_k");
  seqQ0 = at("cu_seqlens_q", bi);
  if (keys)
    seqK0 = at("cu_seqlens_k", bi);
  seqNq = cg.sub(at("cu_seqlens_q", next), seqQ0);
  if (keys)
    seqNk = cg.sub(at("cu_seqlens_k", next), seqK0);
}

void KernelBuilder::exitUnless(Value cond) {
  Block *cur = b.getInsertionBlock();
  Region *region = cur->getParent();
  assert(isa<gpu::GPUFuncOp>(region->getParentOp()) &&
         "exitUnless at the kernel's top level only");
  Block *rest = new Block();
  region->push_back(rest);
  Block *exit = new Block();
  region->push_back(exit);
  b.setInsertionPointToEnd(exit);
  gpu::ReturnOp::create(b);
  b.setInsertionPointToEnd(cur);
  cf::CondBranchOp::create(b, cond, rest, exit);
  b.setInsertionPointToStart(rest);
}

void KernelBuilder::beginCache(Value bi) {
  kvMode = arg("kv_mode");
  cacheBi = bi;
  Value withLens = cg.cmp(arith::CmpIPredicate::sge, kvMode,
                          cg.idx(flashmlir::abi::kKvCacheLens));
  auto lens = scf::IfOp::create(b, TypeRange{b.getIndexType()}, withLens, true);
  {
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(lens.thenBlock());
    Value x = memref::LoadOp::create(b, arg("cache_seqlens"), ValueRange{bi});
    scf::YieldOp::create(
        b, ValueRange{arith::IndexCastOp::create(b, b.getIndexType(), x)});
    b.setInsertionPointToStart(lens.elseBlock());
    scf::YieldOp::create(b, ValueRange{arg("seqlen_k")});
  }
  args["seqlen_k"] = lens.getResult(0);
}

Value KernelBuilder::at4(StringRef t, Value bi, Value h, Value n, Value d) {
  if (kvMode && (t == "k" || t == "v")) {
    // Paged: key n is row n % block_size of its block in the table.
    Value bs = arg("block_size");
    Value paged = cg.cmp(arith::CmpIPredicate::eq, kvMode,
                         cg.idx(flashmlir::abi::kKvPaged));
    auto blk = scf::IfOp::create(b, TypeRange{b.getIndexType(), b.getIndexType()},
                                 paged, true);
    {
      OpBuilder::InsertionGuard g(b);
      b.setInsertionPointToStart(blk.thenBlock());
      // n / block_size and n % block_size: shifts for a power-of-two block
      // size (block_shift >= 0, what caches use), else a division.
      Value shift = arg("block_shift");
      auto dm = scf::IfOp::create(
          b, TypeRange{b.getIndexType(), b.getIndexType()},
          cg.cmp(arith::CmpIPredicate::sge, shift, cg.idx(0)), true);
      {
        OpBuilder::InsertionGuard g2(b);
        b.setInsertionPointToStart(dm.thenBlock());
        scf::YieldOp::create(
            b, ValueRange{arith::ShRUIOp::create(b, n, shift),
                          arith::AndIOp::create(b, n, cg.sub(bs, cg.idx(1)))});
        b.setInsertionPointToStart(dm.elseBlock());
        scf::YieldOp::create(b, ValueRange{arith::DivUIOp::create(b, n, bs),
                                           arith::RemUIOp::create(b, n, bs)});
      }
      Value slot = cg.add(cg.mul(cacheBi, arg("block_table_stride")),
                          dm.getResult(0));
      Value x = memref::LoadOp::create(b, arg("block_table"), ValueRange{slot});
      scf::YieldOp::create(
          b, ValueRange{arith::IndexCastOp::create(b, b.getIndexType(), x),
                        dm.getResult(1)});
      b.setInsertionPointToStart(blk.elseBlock());
      scf::YieldOp::create(b, ValueRange{bi, n});
    }
    bi = blk.getResult(0);
    n = blk.getResult(1);
  }
  if (packGroup && t == "q") {
    // Packed rows: query n / group of head h group + n % group.
    Value sub = arith::RemUIOp::create(b, n, packGroup);
    h = cg.add(cg.mul(h, packGroup), sub);
    n = arith::DivUIOp::create(b, n, packGroup);
  }
  if (seqQ0) {
    // Packed rows: the sequence's first row plus n.
    bool qRows = t == "q" || t == "o" || t == "do" || t == "dq";
    Value row = cg.add(qRows ? seqQ0 : seqK0, n);
    Value i = cg.add(cg.mul(h, arg((t + "_stride_h").str())),
                     cg.mul(row, arg((t + "_stride_n").str())));
    return d ? cg.add(i, d) : i;
  }
  Value i = cg.add(cg.mul(bi, arg((t + "_stride_b").str())),
                   cg.mul(h, arg((t + "_stride_h").str())));
  i = cg.add(i, cg.mul(n, arg((t + "_stride_n").str())));
  return d ? cg.add(i, d) : i;
}

Value KernelBuilder::atLse(Value bi, Value h, Value n) {
  if (seqQ0) // lse [Hq, Tq]
    return cg.add(cg.mul(h, arg("lse_stride_h")), cg.add(seqQ0, n));
  return cg.add(
      cg.add(cg.mul(bi, arg("lse_stride_b")), cg.mul(h, arg("lse_stride_h"))),
      n);
}

Value KernelBuilder::drRow(Value bi, Value h, Value n) {
  if (seqQ0) // [Hq, Tq]
    return cg.add(cg.mul(h, arg("total_q")), cg.add(seqQ0, n));
  Value bh = cg.add(cg.mul(bi, arg("heads")), h);
  return cg.add(cg.mul(bh, arg("seqlen_q")), n);
}

Value KernelBuilder::dqaccRowBase(Value bi, Value h) {
  if (seqQ0) { // [Hq, Tq + 15 B]: sequence bi from row seqQ0 + 15 bi
    Value rows = cg.add(arg("total_q"), cg.mul(arg("batch"), cg.idx(15)));
    return cg.add(cg.mul(h, rows),
                  cg.add(seqQ0, cg.mul(bi, cg.idx(15))));
  }
  Value nq = arg("seqlen_q");
  Value nq16 = cg.mul(cg.ceilDiv(nq, cg.idx(16)), cg.idx(16));
  return cg.mul(cg.add(cg.mul(bi, arg("heads")), h), nq16);
}

Value mlir::attn::opaqueIndex(ImplicitLocOpBuilder &b, Value x) {
  Value i = arith::IndexCastOp::create(b, b.getI32Type(), x);
  auto mov = LLVM::InlineAsmOp::create(
      b, b.getI32Type(), ValueRange{i}, "mov.b32 $0, $1;", "=r,r",
      /*has_side_effects=*/true, /*is_align_stack=*/false,
      LLVM::tailcallkind::TailCallKind::None, LLVM::AsmDialectAttr(),
      ArrayAttr());
  return arith::IndexCastUIOp::create(b, b.getIndexType(), mov.getResult(0));
}
