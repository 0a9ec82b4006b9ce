//===- HostAsyncRuntime.h - the async runtime of the CPU kernels -*- C++ -*-===//
//
// Part of FlashMLIR.
//
//===----------------------------------------------------------------------===//
//
// attn-cpu-pipeline{parallel=1} lowers scf.parallel through MLIR's async
// dialect to calls of the async runtime API (mlir/ExecutionEngine/
// AsyncRuntime.h: tokens, groups, coroutine resumption). This is FlashMLIR's
// implementation of that API for its JIT-compiled kernels, on a thread pool
// of its own:
//
//  * FLASHMLIR_NUM_THREADS threads in all (default: the CPUs this process
//    may run on), the thread that calls a kernel included: the pool has one
//    thread less, and a caller that waits for a group of tasks runs queued
//    tasks itself meanwhile, so a kernel never has more threads working than
//    that number;
//  * idle workers sleep on a condition variable (no spinning), so the pool
//    costs nothing between calls and does not compete with another library's
//    threads (PyTorch's OpenMP, NumPy's BLAS) in the same process.
//
//===----------------------------------------------------------------------===//

#ifndef FLASHMLIR_LIB_CPU_HOSTASYNCRUNTIME_H
#define FLASHMLIR_LIB_CPU_HOSTASYNCRUNTIME_H

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace flashmlir {
namespace cpu {

/// The runtime's threads (the caller included).
int64_t asyncRuntimeThreads();

/// "" when FLASHMLIR_NUM_THREADS is unset or an integer in [1,
/// limits::kMaxThreads], else the message (the pool then uses every CPU).
std::string threadsEnvError();

/// Blocks until no task is queued or running. A task may still be running
/// JIT-compiled code (the end of a coroutine: dropping references, freeing
/// its frame) after the kernel call that waited for it has returned; the
/// code of a kernel must not be freed before this returns.
void waitForAsyncTasks();

/// (name, address) of every mlirAsyncRuntime* function, for the JIT.
std::vector<std::pair<const char *, void *>> asyncRuntimeSymbols();

} // namespace cpu
} // namespace flashmlir

#endif // FLASHMLIR_LIB_CPU_HOSTASYNCRUNTIME_H
