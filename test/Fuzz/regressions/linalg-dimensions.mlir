// fa_fuzz (seed 18, an attn-raise-linalg input): a linalg.broadcast whose
// `dimensions = [3.4e+38]` made MLIR 22's parser segfault (the failed list
// parse leaves a null attribute that NamedAttrList::set dereferences; any
// list that is not integers does it, also linalg.transpose's permutation
// and linalg.reduce's dimensions). fa-opt refuses it before parsing
// (flashmlir/Support/InputChecks.h).
// RUN: split-file %s %t
// RUN: not fa-opt %t/float.mlir --attn-cpu-pipeline 2>&1 | FileCheck %s --check-prefix=FLOAT
// RUN: not fa-opt %t/name.mlir 2>&1 | FileCheck %s --check-prefix=NAME
// RUN: not fa-opt %t/open.mlir 2>&1 | FileCheck %s --check-prefix=OPEN
// RUN: not fa-opt %t/big.mlir 2>&1 | FileCheck %s --check-prefix=BIG
// RUN: fa-opt %t/ok.mlir --allow-unregistered-dialect | FileCheck %s --check-prefix=OK
// FLOAT: float.mlir:2:{{[0-9]+}}: error: linalg's 'dimensions = [...]' must list integers
// FLOAT-NOT: PLEASE submit a bug report
// NAME: name.mlir:2:{{[0-9]+}}: error: linalg's 'permutation = [...]' must list integers
// OPEN: open.mlir:4:{{[0-9]+}}: error: linalg's 'dimensions = [...]' must list integers
// BIG: big.mlir:2:{{[0-9]+}}: error: linalg's 'permutation = [...]' must list integers
// The same keywords in an attribute dictionary, a comment or a string, and
// the valid custom forms, are left to the parser:
// OK: linalg.broadcast ins(%{{.*}} : tensor<4xf32>) outs(%{{.*}} : tensor<4x6xf32>) dimensions = [1]
// OK: linalg.transpose ins(%{{.*}} : tensor<4x6xf32>) outs(%{{.*}} : tensor<6x4xf32>) permutation = [1, 0]
// OK: "test.op"() {dimensions = [1.500000e+00 : f32], s = ") dimensions = [x]"}

//--- float.mlir
func.func @f(%a: tensor<4xf32>, %b: tensor<4x6xf32>) -> tensor<4x6xf32> {
  %r = linalg.broadcast ins(%a : tensor<4xf32>) outs(%b : tensor<4x6xf32>) dimensions = [3.4e+38]
  return %r : tensor<4x6xf32>
}
//--- name.mlir
func.func @f(%a: tensor<4x6xf32>, %b: tensor<6x4xf32>) -> tensor<6x4xf32> {
  %r = linalg.transpose ins(%a : tensor<4x6xf32>) outs(%b : tensor<6x4xf32>) permutation = [x, 0]
  return %r : tensor<6x4xf32>
}
//--- open.mlir
func.func @f(%a: tensor<4x6xf32>, %b: tensor<4xf32>) -> tensor<4xf32> {
  %r = linalg.reduce ins(%a : tensor<4x6xf32>)
                     outs(%b : tensor<4xf32>)
                     dimensions = [1,
    (%in: f32, %init: f32) {
      %s = arith.addf %in, %init : f32
      linalg.yield %s : f32
    }
  return %r : tensor<4xf32>
}
//--- big.mlir
func.func @f(%a: tensor<4x6xf32>, %b: tensor<6x4xf32>) -> tensor<6x4xf32> {
  %r = linalg.transpose ins(%a : tensor<4x6xf32>) outs(%b : tensor<6x4xf32>) permutation = [99999999999999999999, 0]
  return %r : tensor<6x4xf32>
}
//--- ok.mlir
func.func @f(%a: tensor<4xf32>, %b: tensor<4x6xf32>, %c: tensor<4x6xf32>, %d: tensor<6x4xf32>) -> (tensor<4x6xf32>, tensor<6x4xf32>) {
  // ) dimensions = [x]
  %r = linalg.broadcast ins(%a : tensor<4xf32>) outs(%b : tensor<4x6xf32>) dimensions = [1]
  %t = linalg.transpose ins(%c : tensor<4x6xf32>) outs(%d : tensor<6x4xf32>) permutation = [1, 0]
  "test.op"() {dimensions = [1.5 : f32], s = ") dimensions = [x]"} : () -> ()
  return %r, %t : tensor<4x6xf32>, tensor<6x4xf32>
}
