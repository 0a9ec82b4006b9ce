#!/usr/bin/env bash
# FlashMLIR's one entry point for people and CI.
#
#   ./fa.sh demo    install what is missing, build everything, run the main job
#   ./fa.sh test    install what is missing, build everything, run every test
#   ./fa.sh build   install what is missing and build (no run)
#   ./fa.sh python  build, install the Python package (python/) into a venv, run its tests
#   ./fa.sh wheel   build, then a wheel of the Python package with the GPU runtime and the
#                   default bundle inside (build/dist/runtime/); FLASHMLIR_WHEEL_COMPILER=1
#                   also puts in the compiler (build/dist/compiler/)
#   ./fa.sh wheel-test  both wheels, each installed into a fresh venv and checked
#
# Environment: BUILD_DIR (default build), JOBS (default nproc);
# FA_FUZZ_EXECS (default 4000) / FA_FUZZ_SECONDS / FA_FUZZ_SEED: the fa-opt fuzzer's budget
# in `test` (test/Fuzz); FA_SANITIZERS=0 skips the ASan/UBSan builds,
# FA_SANITIZERS=runtime builds the runtime half's only.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}
LLVM=/usr/lib/llvm-22
PKGS="llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools cmake ninja-build g++ python3 python3-venv python3-pip python-is-python3"

# Installs the Debian packages that are missing (idempotent: a no-op when all
# are present).
deps() {
  local missing=""
  for p in $PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
  done
  [ -z "$missing" ] && return 0
  echo "== installing:$missing"
  local sudo=""
  [ "$(id -u)" = 0 ] || sudo=sudo
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends $missing
}

# ptxas for the offline PTX checks (register/spill reports, lit tests that
# assemble every kernel): the CUDA toolkit's when installed, else NVIDIA's
# PyPI wheel (ptxas only, ~40 MB) under the build directory. No GPU needed.
PTXAS_WHEEL="nvidia-cuda-nvcc-cu12==12.9.86"
ptxas_tool() {
  command -v ptxas >/dev/null 2>&1 && return 0
  [ -x /usr/local/cuda/bin/ptxas ] && return 0
  [ -x "$BUILD_DIR/cuda-tools/nvidia/cuda_nvcc/bin/ptxas" ] && return 0
  echo "== installing ptxas ($PTXAS_WHEEL) into $BUILD_DIR/cuda-tools"
  mkdir -p "$BUILD_DIR"
  python3 -m pip install -q --disable-pip-version-check --no-deps --target "$BUILD_DIR/cuda-tools" "$PTXAS_WHEEL" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --break-system-packages --no-deps --target "$BUILD_DIR/cuda-tools" "$PTXAS_WHEEL" ||
    echo "fa.sh: note: no ptxas; the offline PTX assembly tests will be UNSUPPORTED"
}

build() {
  deps
  ptxas_tool
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR=$LLVM/lib/cmake/mlir -DLLVM_EXTERNAL_LIT=$LLVM/bin/lit
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

# Python package (python/): copies the native libraries (and the kernel
# bundle) into the package, installs it into a venv in the build directory.
py_setup() {
  local lib="$ROOT/python/flashmlir/_lib" venv="$BUILD_DIR/pyenv"
  rm -rf "$lib" && mkdir -p "$lib" || return 1
  # pip builds in the source tree: a build/ left by an interrupted install
  # makes the next one fail ("File exists: ...dist-info").
  rm -rf "$ROOT/python/build" "$ROOT/python/flashmlir.egg-info"
  cp "$BUILD_DIR/lib/libflashmlir_c.so" "$BUILD_DIR/lib/libflashmlir_rt.so" "$lib/" || return 1
  if [ -f "$BUILD_DIR/bundle/manifest.json" ]; then
    cp -r "$BUILD_DIR/bundle" "$lib/bundle" || return 1
  fi
  if [ -f "$BUILD_DIR/bundle-deterministic/manifest.json" ]; then
    cp -r "$BUILD_DIR/bundle-deterministic" "$lib/bundle-deterministic" || return 1
  fi
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || return 1
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check numpy ml_dtypes pytest || return 1
  "$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$ROOT/python" || return 1
  # Also for the user's own python3 (`python3 -c "import flashmlir"` works
  # without numpy or torch); Debian's pip wants --break-system-packages.
  python3 -m pip install -q --disable-pip-version-check --user --force-reinstall --no-deps "$ROOT/python" 2>/dev/null ||
    python3 -m pip install -q --disable-pip-version-check --user --break-system-packages --force-reinstall --no-deps "$ROOT/python" ||
    echo "fa.sh: note: could not install flashmlir for $(command -v python3); use $venv/bin/python"
}

# python/tests against the installed package (run from outside the source
# tree, so the installed copy is the one imported). Ends with pytest's line.
py_test() {
  py_setup || { echo "py_setup failed"; return 1; }
  (cd "$BUILD_DIR" && "$BUILD_DIR/pyenv/bin/python" -m pytest "$ROOT/python/tests" -q -p no:cacheprovider)
}

# A wheel of python/ with the native libraries and the default bundle inside,
# from a `cmake --install` of the build (libraries with $ORIGIN run paths):
# build/dist/runtime/ (libflashmlir_rt + bundle: GPU attention, no MLIR at
# run time) or, with FLASHMLIR_WHEEL_COMPILER=1, build/dist/compiler/ (also
# libflashmlir_c and the libMLIR / libLLVM it links: the CPU path and
# flashmlir.compile; needs the system libraries libLLVM needs, as on Debian 12).
wheel() {
  local variant=runtime
  [ "${FLASHMLIR_WHEEL_COMPILER:-0}" = 1 ] && variant=compiler
  local stage="$BUILD_DIR/wheel-$variant" venv="$BUILD_DIR/wheelenv"
  local prefix="$BUILD_DIR/wheel-prefix" out="$BUILD_DIR/dist/$variant"
  rm -rf "$stage" "$prefix" "$out" && mkdir -p "$stage" "$out" || return 1
  cmake --install "$BUILD_DIR" --prefix "$prefix" > /dev/null || return 1
  cp -r python/flashmlir python/pyproject.toml python/README.md "$stage/" || return 1
  rm -rf "$stage/flashmlir/_lib" && find "$stage" -name __pycache__ -prune -exec rm -rf {} +
  mkdir -p "$stage/flashmlir/_lib"
  cp "$prefix/lib/libflashmlir_rt.so" "$stage/flashmlir/_lib/" || return 1
  cp -r "$prefix/share/flashmlir/bundle" "$stage/flashmlir/_lib/bundle" || return 1
  cp -r "$prefix/share/flashmlir/bundle-deterministic" "$stage/flashmlir/_lib/bundle-deterministic" || return 1
  if [ "$variant" = compiler ]; then
    cp "$prefix/lib/libflashmlir_c.so" "$stage/flashmlir/_lib/" || return 1
    cp -L "$LLVM/lib/libMLIR.so.22.1" "$LLVM/lib/libLLVM.so.22.1" "$stage/flashmlir/_lib/" || return 1
  fi
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" || return 1
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check setuptools wheel || return 1
  "$venv/bin/pip" wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
    -w "$out" "$stage" || return 1
  # Native libraries inside: a platform wheel, not py3-none-any.
  "$venv/bin/python" -m wheel tags --remove --platform-tag "linux_$(uname -m)" "$out"/*.whl > /dev/null || return 1
  rm -rf "$stage" "$prefix"
  ls "$out"/*.whl
}

# Installs a wheel from `wheel` into a fresh venv and checks it from outside
# the source tree (python/tests/check_wheel.py).
wheel_check() {
  local variant="$1" venv="$BUILD_DIR/wheel-venv-$1"
  rm -rf "$venv" && python3 -m venv "$venv" || return 1
  if [ "$variant" = compiler ]; then
    "$venv/bin/pip" install -q --disable-pip-version-check numpy || return 1
  fi
  "$venv/bin/pip" install -q --disable-pip-version-check --no-deps "$BUILD_DIR/dist/$variant"/*.whl || return 1
  (cd / && env -u FLASHMLIR_LIB_DIR -u FLASHMLIR_BUNDLE -u PYTHONPATH \
     "$venv/bin/python" "$ROOT/python/tests/check_wheel.py" "$variant") || return 1
  rm -rf "$venv"
}

# The runtime half (C++17: bundle loader, launcher, C API, reference, fa-run,
# fa-tune and their C++ tests) again with AddressSanitizer + UBSan in
# $BUILD_DIR/asan (about 2.5 minutes on 2 cores the first time, incremental
# after); test/Sanitizers runs its tests and a sample of fa-run there.
# FA_SANITIZERS=0 skips it (those tests are then UNSUPPORTED).
sanitizer_build() {
  [ "${FA_SANITIZERS:-1}" = 0 ] && return 0
  local dir="$BUILD_DIR/asan"
  local san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g -O1"
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -G Ninja -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=None -DFLASHMLIR_ENABLE_COMPILER=OFF \
      -DCMAKE_CXX_FLAGS="$san" -DCMAKE_C_FLAGS="$san" \
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
      -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  fi
  cmake --build "$dir" -j "$JOBS"
  # The compiler half's tools too (fa-opt, fa-compile, the compiler C API
  # test; line tables only, to keep the build short): test/Sanitizers/
  # compiler-asan.test. FA_SANITIZERS=runtime skips them.
  [ "${FA_SANITIZERS:-1}" = runtime ] && return 0
  dir="$BUILD_DIR/asan-compiler"
  san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g1 -O1"
  if [ ! -f "$dir/build.ninja" ]; then
    cmake -G Ninja -S "$ROOT" -B "$dir" -DCMAKE_BUILD_TYPE=None \
      -DMLIR_DIR=$LLVM/lib/cmake/mlir -DLLVM_EXTERNAL_LIT=$LLVM/bin/lit \
      -DCMAKE_CXX_FLAGS="$san" -DCMAKE_C_FLAGS="$san" \
      -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" \
      -DCMAKE_SHARED_LINKER_FLAGS="-fsanitize=address,undefined" >/dev/null
  fi
  cmake --build "$dir" -j "$JOBS" --target fa-opt fa-compile flashmlir-capi-test
}

run_tests() {
  build
  sanitizer_build
  cmake --build "$BUILD_DIR" -j "$JOBS" --target mlir-doc >/dev/null
  local log
  log=$(mktemp)
  set +e
  "$LLVM/bin/lit" -v -j "$JOBS" "$BUILD_DIR/test" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  local pylog
  pylog=$(mktemp)
  py_test 2>&1 | tee "$pylog"
  local pyrc=${PIPESTATUS[0]}
  # The runtime wheel, installed into a fresh venv and checked.
  local whlog
  whlog=$(mktemp)
  { wheel && wheel_check runtime; } 2>&1 | tee "$whlog"
  local whrc=${PIPESTATUS[0]}
  set -e
  # One plain summary line, read by CI as well as by people.
  local passed failed
  passed=$(sed -n 's/^ *Passed *: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  # (grep finds nothing when all pass: `|| true` keeps set -e and pipefail
  # from ending the script there.)
  failed=$({ grep -E '^ *(Failed|Unresolved|Timed Out|Unexpectedly Passed) *:' "$log" || true; } |
           sed 's/.*: *\([0-9]*\).*/\1/' | awk '{s += $1} END {print s + 0}')
  local pypassed pyfailed
  pypassed=$(tail -1 "$pylog" | grep -oE '[0-9]+ passed' | grep -oE '[0-9]+' || true)
  pyfailed=$(tail -1 "$pylog" | { grep -oE '[0-9]+ (failed|errors?)' || true; } |
             { grep -oE '[0-9]+' || true; } | awk '{s += $1} END {print s + 0}')
  if [ "$pyrc" != 0 ] && [ "${pyfailed:-0}" = 0 ]; then pyfailed=1; fi  # setup failed
  local whpassed whfailed
  whpassed=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\1/p' "$whlog" | tail -1)
  whfailed=$(sed -n 's/^\([0-9]*\) passed, \([0-9]*\) failed$/\2/p' "$whlog" | tail -1)
  if [ "$whrc" != 0 ] && [ "${whfailed:-0}" = 0 ]; then whfailed=1; fi  # wheel not built
  rm -f "$log" "$pylog" "$whlog"
  echo "$(( ${passed:-0} + ${pypassed:-0} + ${whpassed:-0} )) passed, $(( ${failed:-0} + ${pyfailed:-0} + ${whfailed:-0} )) failed"
  [ "$rc" = 0 ] && rc=$pyrc
  [ "$rc" = 0 ] && rc=$whrc
  return "$rc"
}

demo() {
  build
  py_setup > /dev/null || echo "fa.sh: note: the Python package was not installed"
  echo "== fa-opt verifies docs/examples/attention.mlir and lowers it to tiled loops"
  "$BUILD_DIR/bin/fa-opt" docs/examples/attention.mlir \
    --one-shot-bufferize="bufferize-function-boundaries" --attn-to-loops > /dev/null
  echo "ok"
  python3 tools/demo/demo.py --fa-run "$BUILD_DIR/bin/fa-run"
}

case "${1:-}" in
  demo) demo ;;
  test) run_tests ;;
  build) build ;;
  python) build; py_test ;;
  wheel) build; wheel ;;
  wheel-test) build; wheel && wheel_check runtime &&
              FLASHMLIR_WHEEL_COMPILER=1 wheel && wheel_check compiler ;;
  deps) deps ;;
  *) sed -n '2,13p' "$0"; exit 2 ;;
esac
