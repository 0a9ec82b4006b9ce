#===- cmake/FlashMLIRInstall.cmake - the installed FlashMLIR package ------===#
#
# Part of FlashMLIR. `cmake --install BUILD --prefix P` puts under P:
#   include/flashmlir, include/flashmlir-c   headers, ODS (.td) and the
#                                            generated .inc files; the
#                                            runtime's flashmlir/runtime
#   lib/libFlashMLIR*.a                      dialect, passes, pipelines,
#                                            registration, bundle writer,
#                                            CPU JIT runner (static; they
#                                            link libMLIR.so)
#   lib/libflashmlir_c.so                    the C API
#   lib/libflashmlir_rt.so                   the GPU runtime (C API, no MLIR)
#   lib/cmake/flashmlir/                     FlashMLIRConfig.cmake, version
#                                            file, FlashMLIRTargets.cmake
#   bin/fa-opt fa-compile fa-run fa-tune     the tools
#   share/flashmlir/bundle                   the default kernel bundle
#
# A consumer writes `find_package(FlashMLIR REQUIRED CONFIG)` (with
# -DFlashMLIR_DIR=P/lib/cmake/flashmlir or P in CMAKE_PREFIX_PATH) and links
# the exported targets (same names as here, like MLIR's own: no namespace),
# e.g. FlashMLIRInitAll, flashmlir_c, flashmlir_rt. The config finds the
# MLIR 22 the package was built with (find_dependency) so that MLIR's and
# LLVM's targets resolve. examples/embed is such a consumer; the lit test
# test/Examples/out-of-tree.test installs this build into a temporary prefix
# and builds and runs it. With FLASHMLIR_ENABLE_COMPILER=OFF only the
# runtime half is installed (FLASHMLIR_HAS_COMPILER is then OFF).
#
#===----------------------------------------------------------------------===#

include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(FLASHMLIR_VERSION 0.1.0)
set(FLASHMLIR_INSTALL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/flashmlir)

set(_flashmlir_exported flashmlir_rt FlashMLIRReference)
if(FLASHMLIR_ENABLE_COMPILER)
  list(APPEND _flashmlir_exported
    FlashMLIRAttnDialect FlashMLIRAttnTransforms FlashMLIRAttnToGPU
    FlashMLIRPipelines FlashMLIRInitAll FlashMLIRBundle FlashMLIRCPURunner
    flashmlir_c)
endif()
foreach(t ${_flashmlir_exported})
  target_include_directories(${t} INTERFACE
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
endforeach()
if(FLASHMLIR_ENABLE_COMPILER)
  # flashmlir-c/FlashMLIR.h includes mlir-c/IR.h.
  target_include_directories(flashmlir_c INTERFACE
    $<INSTALL_INTERFACE:${MLIR_INCLUDE_DIRS}>)
endif()

# Installed shared libraries and tools find each other through $ORIGIN and
# libMLIR/libLLVM where they were linked from.
set(_flashmlir_tools fa-run fa-tune)
if(FLASHMLIR_ENABLE_COMPILER)
  list(APPEND _flashmlir_tools fa-opt fa-compile)
endif()
foreach(t ${_flashmlir_exported} ${_flashmlir_tools})
  set_target_properties(${t} PROPERTIES
    INSTALL_RPATH "$ORIGIN/../${CMAKE_INSTALL_LIBDIR}"
    INSTALL_RPATH_USE_LINK_PATH ON)
endforeach()

install(TARGETS ${_flashmlir_exported}
  EXPORT FlashMLIRTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS ${_flashmlir_tools} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(EXPORT FlashMLIRTargets DESTINATION ${FLASHMLIR_INSTALL_CMAKE_DIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/runtime/include/flashmlir
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR} FILES_MATCHING PATTERN "*.h")
if(FLASHMLIR_ENABLE_COMPILER)
  install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/flashmlir
                    ${PROJECT_SOURCE_DIR}/include/flashmlir-c
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.h" PATTERN "*.td")
  install(DIRECTORY ${PROJECT_BINARY_DIR}/include/flashmlir
    DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
    FILES_MATCHING PATTERN "*.inc" PATTERN "CMakeFiles" EXCLUDE)
  install(DIRECTORY ${FLASHMLIR_BUNDLE_DIR}/
    DESTINATION ${CMAKE_INSTALL_DATADIR}/flashmlir/bundle
    PATTERN "ptxas-report.json" EXCLUDE)
endif()

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/FlashMLIRConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/FlashMLIRConfig.cmake
  INSTALL_DESTINATION ${FLASHMLIR_INSTALL_CMAKE_DIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR CMAKE_INSTALL_BINDIR CMAKE_INSTALL_DATADIR)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/FlashMLIRConfigVersion.cmake
  VERSION ${FLASHMLIR_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/cmake/FlashMLIRConfig.cmake
              ${PROJECT_BINARY_DIR}/cmake/FlashMLIRConfigVersion.cmake
  DESTINATION ${FLASHMLIR_INSTALL_CMAKE_DIR})
