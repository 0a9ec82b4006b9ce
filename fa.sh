#!/usr/bin/env bash
# FlashMLIR's one entry point for people and CI.
#
#   ./fa.sh demo    install what is missing, build everything, run the main job
#   ./fa.sh test    install what is missing, build everything, run every test
#   ./fa.sh build   install what is missing and build (no run)
#
# Environment: BUILD_DIR (default build), JOBS (default nproc).
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$PWD
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
JOBS=${JOBS:-$(nproc)}
LLVM=/usr/lib/llvm-22
PKGS="llvm-22-dev libmlir-22-dev mlir-22-tools llvm-22-tools cmake ninja-build g++ python3"

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

build() {
  deps
  if [ ! -f "$BUILD_DIR/build.ninja" ]; then
    cmake -G Ninja -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
      -DMLIR_DIR=$LLVM/lib/cmake/mlir -DLLVM_EXTERNAL_LIT=$LLVM/bin/lit
  fi
  cmake --build "$BUILD_DIR" -j "$JOBS"
}

run_tests() {
  build
  cmake --build "$BUILD_DIR" -j "$JOBS" --target mlir-doc >/dev/null
  local log
  log=$(mktemp)
  set +e
  "$LLVM/bin/lit" -v -j "$JOBS" "$BUILD_DIR/test" 2>&1 | tee "$log"
  local rc=${PIPESTATUS[0]}
  set -e
  # One plain summary line, read by CI as well as by people.
  local passed failed
  passed=$(sed -n 's/^ *Passed *: *\([0-9]*\).*/\1/p' "$log" | tail -1)
  failed=$(grep -E '^ *(Failed|Unresolved|Timed Out|Unexpectedly Passed) *:' "$log" |
           sed 's/.*: *\([0-9]*\).*/\1/' | paste -sd+ | bc 2>/dev/null || true)
  rm -f "$log"
  echo "${passed:-0} passed, ${failed:-0} failed"
  return "$rc"
}

demo() {
  build
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
  deps) deps ;;
  *) sed -n '2,9p' "$0"; exit 2 ;;
esac
