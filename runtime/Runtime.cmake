#===- Runtime.cmake - The GPU runtime (kernel bundles, CUDA driver) --------===#
#
# Part of the FlashMLIR project. MLIR/LLVM-free and CUDA-free at build time:
# libcuda is dlopen'ed at run time. include() this from runtime/CMakeLists.txt
# (after Reference.cmake). Defines:
#   flashmlir_rt             shared library libflashmlir_rt.so (C API in
#                            flashmlir/runtime/fa_runtime.h; for ctypes)
#   FlashMLIRRuntimeStatic   the same code as a static library (for fa-run)
#   fa-runtime-test          self-test, needs no GPU (exit 0 on success)
#   fa-tune-test             self-test of autotune bundles and fa-tune's
#                            GPU-free half, needs no GPU
# Registering the tests (add_test) is left to the including project.
#
#===----------------------------------------------------------------------===#

find_package(Threads REQUIRED)

set(FLASHMLIR_RUNTIME_SOURCES
  ${CMAKE_CURRENT_LIST_DIR}/lib/Runtime.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimeAttention.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimeVarlen.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimeDriver.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimeJson.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimeLaunch.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimeManifest.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimePtx.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lib/RuntimeTune.cpp
)

# One set of PIC objects for both libraries.
add_library(FlashMLIRRuntimeObjects OBJECT ${FLASHMLIR_RUNTIME_SOURCES})
target_include_directories(FlashMLIRRuntimeObjects PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_LIST_DIR}/include>
)
set_target_properties(FlashMLIRRuntimeObjects PROPERTIES
  CXX_STANDARD 17
  CXX_STANDARD_REQUIRED ON
  CXX_EXTENSIONS OFF
  POSITION_INDEPENDENT_CODE ON
  CXX_VISIBILITY_PRESET hidden      # only the FA_API (fa_*) symbols export
  VISIBILITY_INLINES_HIDDEN ON
)

add_library(flashmlir_rt SHARED $<TARGET_OBJECTS:FlashMLIRRuntimeObjects>)
target_include_directories(flashmlir_rt PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_LIST_DIR}/include>
)
target_link_libraries(flashmlir_rt PRIVATE ${CMAKE_DL_LIBS} Threads::Threads)
if(NOT APPLE)
  target_link_options(flashmlir_rt PRIVATE -Wl,--no-undefined)
endif()

add_library(FlashMLIRRuntimeStatic STATIC
  $<TARGET_OBJECTS:FlashMLIRRuntimeObjects>)
target_include_directories(FlashMLIRRuntimeStatic PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_LIST_DIR}/include>
)
target_link_libraries(FlashMLIRRuntimeStatic PUBLIC
  ${CMAKE_DL_LIBS} Threads::Threads)
set_target_properties(FlashMLIRRuntimeStatic PROPERTIES
  POSITION_INDEPENDENT_CODE ON
)

# The unit test links the static library and reaches the internals through
# lib/RuntimeInternal.h.
add_executable(fa-runtime-test ${CMAKE_CURRENT_LIST_DIR}/test/RuntimeTest.cpp)
target_include_directories(fa-runtime-test PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/lib)
target_link_libraries(fa-runtime-test PRIVATE FlashMLIRRuntimeStatic)
target_compile_definitions(fa-runtime-test PRIVATE
  FLASHMLIR_RUNTIME_TEST_INPUTS="${CMAKE_CURRENT_LIST_DIR}/test/Inputs")
set_target_properties(fa-runtime-test PROPERTIES
  CXX_STANDARD 17
  CXX_STANDARD_REQUIRED ON
  CXX_EXTENSIONS OFF
)

# The split-KV / KV-cache entry points through the public C API, in C
# (run against the fake CUDA driver: test/Execution/cuda-kvcache-api.test).
add_executable(fa-kvcache-api-test ${CMAKE_CURRENT_LIST_DIR}/test/KvcacheApiTest.c)
target_link_libraries(fa-kvcache-api-test PRIVATE FlashMLIRRuntimeStatic)
set_target_properties(fa-kvcache-api-test PROPERTIES LINKER_LANGUAGE CXX)

add_executable(fa-tune-test ${CMAKE_CURRENT_LIST_DIR}/test/TuneTest.cpp)
target_include_directories(fa-tune-test PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/lib)
target_link_libraries(fa-tune-test PRIVATE FlashMLIRRuntimeStatic)
set_target_properties(fa-tune-test PROPERTIES
  CXX_STANDARD 17
  CXX_STANDARD_REQUIRED ON
  CXX_EXTENSIONS OFF
)
