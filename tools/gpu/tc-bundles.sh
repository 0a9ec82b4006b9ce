#!/usr/bin/env bash
# Builds the tensor-core variant bundles that `tools/gpu/h100.sh tc` checks
# and times side by side (run here, where the compiler is; carry .tc):
#   tools/gpu/tc-bundles.sh [OUTDIR=.tc] [NAME:FLAGS ...]
# Default variants: warps x rows per warp, cp.async on, plus one without.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-.tc}; shift || true
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(
  "w4r16:--mma-warps 4 --mma-warp-rows 16"
  "w8r16:--mma-warps 8 --mma-warp-rows 16"
  "w4r32:--mma-warps 4 --mma-warp-rows 32"
  "w8r32:--mma-warps 8 --mma-warp-rows 32"
  "w4r16sync:--mma-warps 4 --mma-warp-rows 16 --mma-async-copy 0")
rm -rf "$out"; mkdir -p "$out"
for v in "${variants[@]}"; do
  name=${v%%:*}; flags=${v#*:}
  build/bin/fa-compile --out "$out/$name" --tensor-cores 1 $flags --target sm_90a \
    --dtype f16,bf16 --head-dim 64,128 --masked both
done
du -sh "$out"
