# -*- Python -*-
# lit configuration of the FlashMLIR regression tests.

import os

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

tool_dirs = [config.flashmlir_tools_dir, config.llvm_tools_dir]
tools = ["fa-opt", "fa-run", "fa-reference-test"]
llvm_config.add_tool_substitutions(tools, tool_dirs)
