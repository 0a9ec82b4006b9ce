// The parser-hazard check (InputChecks.h) leaves alone what only looks like
// an index array: in a comment (array<index: 1>), in a string, or in a longer
// name.
// RUN: fa-opt %s --allow-unregistered-dialect | FileCheck %s
// CHECK: "test.op"() {a = "array<index: 1>", b = array<i64: 1>}
"test.op"() {a = "array<index: 1>", b = array<i64: 1>} : () -> ()
