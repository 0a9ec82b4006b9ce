#===- Reference.cmake - Float64 reference library and its self-test --------===#
#
# Part of the FlashMLIR project. MLIR/LLVM-free; include() this from
# runtime/CMakeLists.txt. Defines:
#   FlashMLIRReference  static library (Half.h conversions + float64 reference)
#   fa-reference-test   standalone self-test executable (exit 0 on success)
# Registering the test (add_test) is left to the including project.
#
#===----------------------------------------------------------------------===#

add_library(FlashMLIRReference STATIC
  ${CMAKE_CURRENT_LIST_DIR}/lib/Reference.cpp
)
target_include_directories(FlashMLIRReference PUBLIC
  $<BUILD_INTERFACE:${CMAKE_CURRENT_LIST_DIR}/include>
)
target_compile_features(FlashMLIRReference PUBLIC cxx_std_17)
set_target_properties(FlashMLIRReference PROPERTIES
  CXX_STANDARD 17
  CXX_STANDARD_REQUIRED ON
  CXX_EXTENSIONS OFF
  POSITION_INDEPENDENT_CODE ON # -fPIC: linkable into shared runtimes
)

add_executable(fa-reference-test
  ${CMAKE_CURRENT_LIST_DIR}/test/ReferenceTest.cpp
)
target_link_libraries(fa-reference-test PRIVATE FlashMLIRReference)
set_target_properties(fa-reference-test PROPERTIES
  CXX_STANDARD 17
  CXX_STANDARD_REQUIRED ON
  CXX_EXTENSIONS OFF
)
