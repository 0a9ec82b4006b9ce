//===- AttnBase.td - attn dialect definition ---------------*- tablegen -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_DIALECT_ATTN_IR_ATTNBASE_TD
#define FLASHMLIR_DIALECT_ATTN_IR_ATTNBASE_TD

include "mlir/IR/OpBase.td"

def Attn_Dialect : Dialect {
  let name = "attn";
  let cppNamespace = "::mlir::attn";
  let summary = "Scaled dot-product attention as first-class ops";
  let description = [{
    The `attn` dialect represents attention, forward and backward, as single
    ops in destination-passing style (like `linalg`): the same op is valid on
    ranked tensors before bufferization and on memrefs after it.

    The logical layout of every operand is `[batch, heads, seq, dim]`. Strided
    memrefs let a `[batch, seq, heads, dim]` buffer be used without a copy:
    transpose the view (for example with `memref.transpose`) and pass it.

    Passes of FlashMLIR rewrite these ops into tiled loops with online
    softmax (forward) and a recomputing backward, so that no buffer of size
    `Nq x Nk` is ever materialised, and lower them to the host CPU or to PTX.
  }];
  let hasConstantMaterializer = 0;
  let usePropertiesForAttributes = 1;
}

class Attn_Op<string mnemonic, list<Trait> traits = []>
    : Op<Attn_Dialect, mnemonic, traits>;

#endif // FLASHMLIR_DIALECT_ATTN_IR_ATTNBASE_TD
