# -*- Python -*-
# lit configuration of the FlashMLIR regression tests.

import os
import sys

import lit.formats
from lit.llvm import llvm_config

config.name = "FLASHMLIR"
config.test_format = lit.formats.ShTest(not llvm_config.use_lit_shell)
config.suffixes = [".mlir", ".test"]
config.test_source_root = os.path.dirname(__file__)
config.test_exec_root = os.path.join(config.flashmlir_obj_root, "test")
config.excludes = ["CMakeLists.txt", "README.md", "lit.cfg.py", "lit.site.cfg.py", "Inputs"]

config.substitutions.append(("%PATH%", config.environment["PATH"]))
config.substitutions.append(("%src_root", config.flashmlir_src_root))
config.substitutions.append(("%obj_root", config.flashmlir_obj_root))

llvm_config.with_system_environment(["HOME", "INCLUDE", "LIB", "TMP", "TEMP"])
llvm_config.use_default_substitutions()
# not, count, split-file come with LLVM.
llvm_config.with_environment("PATH", config.llvm_tools_dir, append_path=True)

tool_dirs = [config.flashmlir_tools_dir, config.llvm_tools_dir]
tools = ["fa-opt", "fa-run", "fa-compile", "fa-tune", "fa-reference-test", "fa-runtime-test", "fa-tune-test", "flashmlir-capi-test"]
llvm_config.add_tool_substitutions(tools, tool_dirs)

# MLIR's own JIT runner and its runtime libraries (mlir-22-tools), for tests
# that run whole modules (Execution/raise-linalg-e2e.test).
mlir_runner = os.path.join(config.llvm_tools_dir, "mlir-runner")
if os.path.exists(mlir_runner):
    config.available_features.add("mlir-runner")
    config.substitutions.append(("%mlir_runner", mlir_runner))
    config.substitutions.append(("%mlir_lib_dir", config.llvm_lib_dir))

# Tests that pin the JIT to a baseline x86-64 CPU need an x86-64 host.
import platform

if platform.machine().lower() in ("x86_64", "amd64"):
    config.available_features.add("x86_64-host")

# Python for helper scripts; ptxas (the CUDA toolkit, no GPU needed) for the
# offline PTX checks.
import shutil

config.substitutions.append(("%python", sys.executable))
# (fa.sh installs NVIDIA's ptxas wheel under the build directory when the
# CUDA toolkit is absent.)
ptxas = shutil.which("ptxas") or next(
    (p for p in ("/usr/local/cuda/bin/ptxas",
                 os.path.join(config.flashmlir_obj_root, "cuda-tools", "nvidia",
                              "cuda_nvcc", "bin", "ptxas"))
     if os.path.exists(p)), None)
if ptxas:
    config.available_features.add("ptxas")
    config.substitutions.append(("%ptxas", ptxas))

# A CUDA driver on this machine: tests that need its absence
# (Execution/cuda-no-driver.test) are UNSUPPORTED: cuda-driver. The test is
# whether libcuda.so.1 loads, as the runtime does it: ctypes.util.find_library
# ("cuda") also finds the CUDA toolkit's link-time stub (lib64/stubs/libcuda.so,
# through gcc and LIBRARY_PATH), which is no driver.
import ctypes

try:
    ctypes.CDLL("libcuda.so.1")
    config.available_features.add("cuda-driver")
except OSError:
    pass

# The fa-opt fuzzer's budget (test/Fuzz/fuzz.test): FA_FUZZ_EXECS (default
# 4000), FA_FUZZ_SECONDS (a cap, default 600) and FA_FUZZ_SEED (default 18).
config.substitutions.append(("%{fuzz_seconds}", os.environ.get("FA_FUZZ_SECONDS", "600")))
# A fixed number of executions (each one's mutation depends only on the seed
# and its index): CI runs exactly the executions run here, whatever its
# speed (4000: ~135 s on the 2-core machine); FA_FUZZ_EXECS=0 for time only.
config.substitutions.append(("%{fuzz_execs}", os.environ.get("FA_FUZZ_EXECS", "4000")))
config.substitutions.append(("%{fuzz_seed}", os.environ.get("FA_FUZZ_SEED", "18")))

# The runtime half built again under AddressSanitizer + UBSan (fa.sh test
# builds it into <build>/asan): test/Sanitizers runs its tests there.
asan_bin = os.path.join(config.flashmlir_obj_root, "asan", "bin")
if os.path.exists(os.path.join(asan_bin, "fa-runtime-test")):
    config.available_features.add("asan-build")
    config.substitutions.append(("%asan_bin", asan_bin))
# The compiler half's tools under AddressSanitizer + UBSan (fa.sh test builds
# fa-opt, fa-compile and the compiler C API test into <build>/asan-compiler;
# the MLIR / LLVM libraries they link are not instrumented).
asan_cbin = os.path.join(config.flashmlir_obj_root, "asan-compiler", "bin")
if all(os.path.exists(os.path.join(asan_cbin, t))
       for t in ("fa-opt", "fa-compile", "flashmlir-capi-test")):
    config.available_features.add("asan-compiler-build")
    config.substitutions.append(("%asan_cbin", asan_cbin))
