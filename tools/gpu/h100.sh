#!/usr/bin/env bash
# The GPU machine's one script (the device tool runs it; that machine has
# CUDA, PyTorch and no MLIR). It builds the runtime half, takes the kernel
# bundle built elsewhere (carried as build/bundle), and runs the checks and
# the benchmark. Results go to $OUT (or ./gpu-out).
#
#   tools/gpu/h100.sh check    runtime tests, correctness matrix, sanitizers, long context
#   tools/gpu/h100.sh python   the Python package's CUDA tests and GPT example
#   tools/gpu/h100.sh bench    side-by-side benchmark
#   tools/gpu/h100.sh tc       tensor-core variants: every bundle under $TC
#                              (default .tc/NAME, built by tools/gpu/tc-bundles.sh)
#                              checked and timed against FA2 in one process
#   tools/gpu/h100.sh prof     backward kernels vs FA2: timing, Nsight Compute details
#   tools/gpu/h100.sh tune     autotune: fa-tune on the carried autotune bundle
#                              $TUNE_BUNDLE (default .tune, built here with
#                              fa-compile --autotune; extra fa-tune flags in
#                              $TUNE_ARGS), the tuned manifest.json to $OUT, then
#                              the forward check on the tuned bundle (TUNE_BENCH=1:
#                              also timed against the untuned one and FA2)
#   tools/gpu/h100.sh det      deterministic backward: DET_BUNDLE=dir (fa-compile --default
#                              --deterministic 1) through the correctness matrix and
#                              attn-mma-bwd-check.py --bench, dQ/dK/dV bit-identical over two runs
#   tools/gpu/h100.sh ab       A/B timing: every bundle under $AB (default .ab/NAME,
#                              fa-compile --target sm_90 ... --head-dim 64,128,256)
#                              timed against FA2 in one process (tools/gpu/ab.py,
#                              extra flags in $AB_ARGS); bundles without a NOCHECK
#                              file are first checked (forward and tensor-core
#                              backward, float64 reference)
#   tools/gpu/h100.sh gen      every head dim on tensor cores: the correctness matrix
#                              (with FlashAttention's 2x rule), sanitizer sample,
#                              head-dim sweep vs FA2 / cuDNN (tools/gpu/headdims.py);
#                              GEN_PRECISE, GEN_AB, GEN_F16_LENS: see gen()
#   tools/gpu/h100.sh embed    the wheel (carried as $WHEEL_DIR/*.whl, default .dist; ./fa.sh wheel)
#                              installed into a fresh venv: the package's CUDA tests from
#                              outside the tree (transformers Llama / Gemma 2 numbers printed),
#                              then tools/gpu/cold_start.py on its bundle (bar: first call < 50 ms)
#   tools/gpu/h100.sh sanitize compute-sanitizer sweep (issue 18, docs/hardening.md):
#                              memcheck, racecheck, synccheck and initcheck over a
#                              sample of every kernel family: forward/backward x
#                              wgmma ($BUNDLE on sm_90a) / mma.sync ($SAN_MMA_BUNDLE,
#                              default .san/mma: fa-compile --default --target sm_80)
#                              / SIMT (f32) x unmasked/causal/window/softcap/GQA/MLA
#                              dims/padded dims, the deterministic backward
#                              ($DET_BUNDLE, default .san/det) and the sm_75 kernels
#                              ($TURING_BUNDLE, default .s2/b75: fa-compile --default
#                              --target sm_75; FLASHMLIR_GPU_TARGET=sm_75); one line per run,
#                              "SANITIZE <tool> <family> <case> errors=N rc=R", and
#                              "sanitize: N runs, E with errors or hazards, M missing"
#                              (SAN_TOOLS, SAN_TIMEOUT, SAN_FILTER: see sanitize())
#   tools/gpu/h100.sh varlen   variable-length batches: flash_attn_varlen_func on CUDA against a
#                              float64 per-sequence reference (tools/gpu/check_varlen.py: empty and
#                              length-1 sequences, GQA, causal, window, softcap, fwd + bwd), then
#                              16k packed tokens of mixed lengths vs the dense kernel and FA2's
#                              varlen (or SDPA per sequence) (tools/gpu/varlen_bench.py)
#   tools/gpu/h100.sh decode   split-KV decode (fwd_split + fwd_combine): fa-run --check (float64
#                              reference, poisoned outputs) over split counts 0..64 x GQA / MQA /
#                              causal / window / softcap / head dims, a sanitizer sample, then
#                              tools/gpu/check_kvcache.py (flash_attn_with_kvcache, cuda + cpu), then
#                              tools/gpu/decode_bench.py (issue 14's decode table vs SDPA flash
#                              and cuDNN; paged vs contiguous) and fa-run --bench of --num-splits 1
#                              against the default. The default bundle is too large to carry
#                              (64 MiB); a decode bundle: fa-compile --target sm_80,sm_90a --dtype
#                              bf16,f16 --head-dim 64,128,256 --masked both --softcap both --ptxas P
#                              --cubin, plus --head-dim 192 --head-dim-v 128 (MLA), as BUNDLE
#   tools/gpu/h100.sh turing   the sm_75 (Turing) kernels on this GPU through the driver's PTX
#                              JIT (FLASHMLIR_GPU_TARGET=sm_75): BUNDLE = fa-compile --default
#                              --target sm_75 (no cubins: ~27 MB); the correctness matrix
#                              (float64 reference, poisoned outputs, FlashAttention's 2x rule;
#                              kernels sm_75 cannot hold are MISSING), split-KV decode checks,
#                              and the sanitize sweep's sm_75 family (four tools)
#   tools/gpu/h100.sh sinks    attention sinks (issue 15): fa-run --sinks --check (float64
#                              reference incl. d sinks) over dtypes / GQA / masks / softcap /
#                              split-KV decode, memcheck + racecheck, the Python CUDA tests
#                              (-k sinks, gpt-oss vs eager), tools/gpu/sinks_bench.py. BUNDLE:
#                              fa-compile --target sm_90a --dtype f32,f16,bf16 --head-dim
#                              40,64,128 --masked both --softcap both --ptxas P --cubin
#   tools/gpu/h100.sh rope     fused RoPE (issue 15): fa-run --rotary --check (float64
#                              reference), memcheck / racecheck, Python CUDA tests (-k rope),
#                              tools/gpu/rope_bench.py. BUNDLE: fa-compile --target sm_90a
#                              --dtype f16,bf16 --head-dim 64,128 --masked both --softcap both
#                              --alibi both --rotary both
#   tools/gpu/h100.sh alibi    ALiBi (issue 15): fa-run --alibi --check (float64 reference,
#                              slopes [B, Hq]) over dtypes / GQA / masks / softcap / sinks /
#                              split-KV decode, memcheck + racecheck, the Python CUDA tests
#                              (-k alibi), tools/gpu/alibi_bench.py (vs no ALiBi and
#                              FlexAttention's score_mod). BUNDLE: fa-compile --target sm_90a
#                              --dtype f32,f16,bf16 --head-dim 64,128 --masked both --softcap
#                              both --alibi both
#   tools/gpu/h100.sh all      (check, python, bench; and det when DET_BUNDLE is set)
set -uo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-$PWD/gpu-out}; mkdir -p "$OUT"
BUNDLE=${BUNDLE:-build/bundle}
case $BUNDLE in /*) ;; *) BUNDLE=$PWD/$BUNDLE ;; esac
export PYTHONUNBUFFERED=1
[ "${1:-all}" = tune ] || [ "${1:-all}" = ab ] || [ "${1:-all}" = embed ] || [ "${1:-all}" = sanitize ] || [ -f "$BUNDLE/manifest.json" ] || { echo "h100.sh: no bundle at $BUNDLE (carry build/bundle)"; exit 2; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/device.txt"

cmake -S . -B build-rt -G Ninja -DFLASHMLIR_ENABLE_COMPILER=OFF -DCMAKE_BUILD_TYPE=Release > "$OUT/cmake.log" 2>&1 &&
  cmake --build build-rt -j 16 >> "$OUT/cmake.log" 2>&1 || { tail -30 "$OUT/cmake.log"; exit 1; }
export FLASHMLIR_RT_LIB=$PWD/build-rt/lib/libflashmlir_rt.so
FARUN=build-rt/bin/fa-run
status=0
step() { echo "== $*"; }

check() {
  step "runtime self-test on the GPU"
  build-rt/bin/fa-runtime-test > "$OUT/runtime-test.log" 2>&1; rc=$?; tail -1 "$OUT/runtime-test.log"; status=$((status|rc))
  step "correctness matrix (float64 PyTorch reference)"
  python3 tools/gpu/check_gpu.py "$BUNDLE" --json "$OUT/check_gpu.json" > "$OUT/check_gpu.log" 2>&1; rc=$?
  grep -E "^FAIL" "$OUT/check_gpu.log" | head -20; tail -1 "$OUT/check_gpu.log"; status=$((status|rc))
  if [ -x "$FARUN" ] && $FARUN --help 2>&1 | grep -q -- --bundle; then
    step "fa-run --device cuda"
    for args in "--dtype bf16 --heads 4 --kv-heads 2 --seqlen-q 100 --seqlen-k 300 --head-dim 64 --causal" \
                "--dtype f16 --heads 2 --seqlen-q 257 --head-dim 128 --window 32,8 --layout bshd" \
                "--dtype f32 --heads 2 --seqlen-q 64 --head-dim 64 --softcap 20"; do
      $FARUN --device cuda --bundle "$BUNDLE" --batch 2 $args --backward --check --json > "$OUT/farun.log" 2>&1; rc=$?
      echo "fa-run $args -> rc=$rc $(tail -1 "$OUT/farun.log" | cut -c1-200)"; status=$((status|rc))
    done
    step "compute-sanitizer memcheck / racecheck"
    for tool in memcheck racecheck; do
      for args in "--dtype bf16 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 100 --head-dim 64 --causal" \
                  "--dtype f16 --heads 2 --seqlen-q 33 --head-dim 128 --softcap 10 --window 8,4"; do
        compute-sanitizer --tool $tool --error-exitcode 99 $FARUN --device cuda --bundle "$BUNDLE" --batch 1 $args --backward --check \
          > "$OUT/sanitizer-$tool.log" 2>&1; rc=$?
        echo "$tool $args -> rc=$rc: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.log" | head -2 | tr '\n' ' ')"
        status=$((status|rc))
      done
    done
  fi
  if [ "${LONG:-1}" = 1 ]; then
    step "long context: causal fwd+bwd, 16 heads, d=128, bf16"
    python3 tools/gpu/long_context.py "$BUNDLE" --json "$OUT/long_context.json" 2>&1 | tee "$OUT/long_context.log"; status=$((status|${PIPESTATUS[0]}))
  fi
}

python_pkg() {
  step "Python package: pytest (CUDA tests; opcheck, torch.compile, gradients) and the GPT example"
  export PYTHONPATH=$PWD/python FLASHMLIR_BUNDLE=$BUNDLE
  python3 -c "import pytest" 2>/dev/null || python3 -m pip install -q --no-index --find-links .whl pytest > /dev/null 2>&1
  python3 -m pytest python/tests -q -p no:cacheprovider > "$OUT/pytest.log" 2>&1; rc=$?
  grep -E "FAILED|Error" "$OUT/pytest.log" | head -10; tail -1 "$OUT/pytest.log"; status=$((status|rc))
  for dt in f32 bf16; do
    python3 python/examples/gpt_train.py --device cuda --dtype $dt > "$OUT/gpt_$dt.log" 2>&1; rc=$?
    echo "gpt_train $dt rc=$rc: $(tail -2 "$OUT/gpt_$dt.log" | tr '\n' ' ')"; status=$((status|rc))
  done
}

bench() {
  step "benchmark (same process): FlashMLIR vs SDPA flash / cuDNN vs FlexAttention"
  python3 tools/gpu/bench.py "$BUNDLE" ${BENCH_DIMS:+--dims $BENCH_DIMS} --json "$OUT/bench.json" --md "$OUT/bench.md" --plot "$OUT/bench.png" 2>&1 | grep -v Warning | tee "$OUT/bench.log" | tail -14
}

tc() {
  step "tensor-core variants: forward check + benchmark vs FA2"
  local args=()
  for d in "${TC:-.tc}"/*/; do args+=("$(basename "$d")=$d"); done
  python3 test/GPU/attn-mma-check.py "${args[@]}" --bench ${TC_LENS:+--lens $TC_LENS} > "$OUT/tc.log" 2>&1; rc=$?
  grep -E "^FAIL" "$OUT/tc.log" | head -20; grep -E "^(CHECK|BENCH|SUMMARY|fwd check|Traceback)" "$OUT/tc.log"; status=$((status|rc))
  if [ -f test/GPU/attn-mma-bwd-check.py ]; then
    for d in "${TC:-.tc}"/*/; do
      [ -f "$d/BWD" ] || continue
      python3 test/GPU/attn-mma-bwd-check.py "$d" ${TC_BWD_BENCH:+--bench} ${TC_BWD_ARGS:-} > "$OUT/tc-bwd-$(basename "$d").log" 2>&1; rc=$?
      grep -E "^FAIL" "$OUT/tc-bwd-$(basename "$d").log" | head -20; grep -vE "^(PASS|FAIL)" "$OUT/tc-bwd-$(basename "$d").log" | tail -40; status=$((status|rc))
    done
  fi
}

prof() {
  step "backward kernels: ours vs FA2 (timing, then Nsight Compute on the main kernels)"
  python3 tools/gpu/profile_bwd.py "$BUNDLE" --iters 20 ${PROF_ARGS:-} 2>&1 | tee "$OUT/prof-time.log"; status=$((status|${PIPESTATUS[0]}))
  if [ "${NCU:-1}" = 1 ] && command -v ncu > /dev/null; then
    for d in ${PROF_D:-64 128}; do
      # matched launches: ours (warm-up), ours, FA2 (warm-up), FA2: profile ours #2 and FA2 #1
      ncu --kernel-name regex:'attn_bwd_main|flash_bwd_dq_dk_dv' --launch-skip 1 --launch-count 2 \
        --set full --import-source no python3 tools/gpu/profile_bwd.py "$BUNDLE" --d $d --n 4096 --causal 0 --iters 1 \
        > "$OUT/ncu-bwd-d$d.txt" 2>&1; rc=$?
      echo "ncu d$d rc=$rc: $(grep -E '^  [a-z_]+.*\(|Duration|Registers Per|Achieved Occupancy|Compute \(SM\) Throughput' "$OUT/ncu-bwd-d$d.txt" | tr -s ' ' | head -12 | tr '\n' ';')"
    done
  fi
}

tune() {
  local tb=${TUNE_BUNDLE:-.tune} ub=""
  step "autotune: fa-tune $tb ${TUNE_ARGS:-}"
  [ -f "$tb/manifest.json" ] || { echo "h100.sh: no autotune bundle at $tb (build/bin/fa-compile --autotune --out $tb ...; carry $tb)"; status=2; return; }
  build-rt/bin/fa-tune "$tb" ${TUNE_ARGS:-} > "$OUT/tune.log" 2>&1; rc=$?
  cat "$OUT/tune.log"
  status=$((status|rc))
  cp "$tb/manifest.json" "$OUT/manifest.json"
  [ -f "$tb/manifest.untuned.json" ] && cp "$tb/manifest.untuned.json" "$OUT/manifest.untuned.json"
  [ "$rc" = 0 ] || return
  step "forward check of the tuned bundle (float64 PyTorch reference)"
  local args=("tuned=$tb")
  if [ "${TUNE_BENCH:-0}" = 1 ] && [ -f "$tb/manifest.untuned.json" ]; then
    # The same bundle untuned, side by side (PTX files shared through links).
    ub=$(mktemp -d) && ln -s "$(cd "$tb" && pwd)"/*.ptx "$ub/" && cp "$tb/manifest.untuned.json" "$ub/manifest.json"
    args+=("untuned=$ub" --bench ${TC_LENS:+--lens $TC_LENS})
  fi
  python3 test/GPU/attn-mma-check.py "${args[@]}" > "$OUT/tune-check.log" 2>&1; rc=$?
  grep -E "^FAIL" "$OUT/tune-check.log" | head -20; grep -E "^(CHECK|BENCH|SUMMARY|fwd check|Traceback)" "$OUT/tune-check.log"; status=$((status|rc))
  [ -z "$ub" ] || rm -rf "$ub"
}

det() {
  step "deterministic bundle ${DET_BUNDLE:-}: correctness matrix + bit-identical reruns, tensor-core bwd check + bench"
  [ -f "${DET_BUNDLE:-}/manifest.json" ] || { echo "h100.sh: set DET_BUNDLE to a bundle dir (fa-compile --default --deterministic 1)"; status=2; return; }
  python3 tools/gpu/check_gpu.py "$DET_BUNDLE" --json "$OUT/det-check_gpu.json" > "$OUT/det-check_gpu.log" 2>&1; rc=$?
  grep -E "^FAIL" "$OUT/det-check_gpu.log" | head -20; tail -1 "$OUT/det-check_gpu.log"; status=$((status|rc))
  python3 test/GPU/attn-mma-bwd-check.py "$DET_BUNDLE" ${DET_BENCH---bench} > "$OUT/det-bwd.log" 2>&1; rc=$?
  grep -E "^FAIL" "$OUT/det-bwd.log" | head -20; grep -vE "^(PASS|FAIL)" "$OUT/det-bwd.log" | tail -40; status=$((status|rc))
}

ab() {
  step "A/B: bundles under ${AB:-.ab} checked, then timed against FA2 in one process"
  local args=()
  for d in "${AB:-.ab}"/*/; do
    local n; n=$(basename "$d"); args+=("$n=$d")
    [ -f "$d/NOCHECK" ] && continue
    python3 test/GPU/attn-mma-check.py "$n=$d" --dims 64,128,256 > "$OUT/ab-fwd-$n.log" 2>&1; rc=$?
    grep -E "^FAIL" "$OUT/ab-fwd-$n.log" | head; echo "$n forward: $(grep -E "^(fwd check|Traceback)" "$OUT/ab-fwd-$n.log")"; status=$((status|rc))
    python3 test/GPU/attn-mma-bwd-check.py "$d" --d 64,128,256 > "$OUT/ab-bwd-$n.log" 2>&1; rc=$?
    grep -E "^FAIL" "$OUT/ab-bwd-$n.log" | head; echo "$n backward: $(tail -1 "$OUT/ab-bwd-$n.log")"; status=$((status|rc))
  done
  python3 tools/gpu/ab.py "${args[@]}" ${AB_ARGS:-} 2>&1 | grep -v Warning | tee "$OUT/ab.log"; status=$((status|${PIPESTATUS[0]}))
}

gen() {
  # Each step's time limit is also cut to what is left of GEN_DEADLINE
  # seconds (the device tool's one call); a step with no time left is
  # skipped.
  t() { local left=$(( ${GEN_DEADLINE:-100000} - SECONDS - 15 )); [ $left -lt $1 ] && echo $left || echo $1; }
  # The code-generator issue's run: every head dim on tensor cores.
  # GEN_PRECISE: a bundle of the softcap kernels with the precise tanh
  # (fa-compile --softcap-tanh precise); GEN_AB: NAME=DIR bundles timed
  # against $BUNDLE at GEN_AB_DIMS; GEN_F16_LENS: f16 sweep lengths.
  step "runtime self-test on the GPU"
  build-rt/bin/fa-runtime-test > "$OUT/runtime-test.log" 2>&1; rc=$?; tail -1 "$OUT/runtime-test.log"; status=$((status|rc))
  step "correctness matrix (float64 PyTorch reference, every head dim, FlashAttention's 2x rule)"
  timeout $(t 300) python3 tools/gpu/check_gpu.py "$BUNDLE" ${GEN_QUICK:+--quick} --json "$OUT/check_gpu.json" > "$OUT/check_gpu.log" 2>&1; rc=$?
  grep -E "^FAIL" "$OUT/check_gpu.log" | cut -c1-300 | head -30; tail -1 "$OUT/check_gpu.log"; status=$((status|rc))
  if [ -n "${GEN_PRECISE:-}" ]; then
    step "softcap with the precise tanh ($GEN_PRECISE)"
    timeout $(t 120) python3 tools/gpu/check_gpu.py "$GEN_PRECISE" --quick --filter '^(?=.*softcap)(?=.*D=(64|128|256) )' > "$OUT/check_precise.log" 2>&1
    grep -E "softcap" "$OUT/check_precise.log" | sed -E 's/^(PASS|FAIL) .*D=([0-9]+) Dv=[0-9]+ dtype=([a-z0-9]+).*: (fwd=.*)/\1 d\2 \3 \4/' | cut -c1-200; tail -1 "$OUT/check_precise.log"
    grep -E "softcap" "$OUT/check_gpu.log" | grep -E "D=(64|128|256) " | sed -E 's/^(PASS|FAIL) .*D=([0-9]+) Dv=[0-9]+ dtype=([a-z0-9]+).*: (fwd=.*)/fast \1 d\2 \3 \4/' | cut -c1-200
  fi
  [ -n "${GEN_NOSWEEP:-}" ] && return
  step "head-dim sweep (bf16, B=4, H=16): FlashMLIR vs SDPA flash (FA2) / cuDNN, one process"
  timeout $(t 420) python3 tools/gpu/headdims.py "$BUNDLE" --lens "${GEN_LENS:-4096,16384}" --json "$OUT/headdims.json" --md "$OUT/headdims.md" --plot "$OUT/headdims.png" 2>&1 | grep -v Warning > "$OUT/headdims.log"
  grep -E "^ROW|^softcap|^A/B" "$OUT/headdims.log" | tail -80
  if [ -n "${GEN_F16_LENS:-}" ]; then
    step "head-dim sweep, f16"
    timeout $(t 300) python3 tools/gpu/headdims.py "$BUNDLE" --dtypes f16 --softcap "" --lens "$GEN_F16_LENS" --json "$OUT/headdims-f16.json" 2>&1 | grep -v Warning > "$OUT/headdims-f16.log"
    grep -E "^\| " "$OUT/headdims-f16.log" | tail -30
  fi
  if [ -n "${GEN_AB:-}" ]; then
    step "A/B: $GEN_AB against $BUNDLE at ${GEN_AB_DIMS:-224,256}"
    timeout $(t 200) python3 tools/gpu/headdims.py "base=$BUNDLE" $GEN_AB --dims "${GEN_AB_DIMS:-224,256}" --softcap "" --no-peers --lens "${GEN_LENS:-4096,16384}" 2>&1 | grep -v Warning > "$OUT/headdims-ab.log"
    grep -E "^A/B|^\{" "$OUT/headdims-ab.log" | cut -c1-220 | tail -20
  fi
  step "compute-sanitizer (${GEN_SANITIZERS:-memcheck racecheck synccheck initcheck}) on a sample of the new kernels (every family: tools/gpu/h100.sh sanitize)"
  for tool in ${GEN_SANITIZERS:-memcheck racecheck synccheck initcheck}; do
    for args in "--dtype bf16 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 130 --head-dim 80 --causal" \
                "--dtype f16 --heads 2 --seqlen-q 65 --head-dim 40 --softcap 20 --window 16,4" \
                "--dtype bf16 --heads 2 --seqlen-q 70 --head-dim 192 --head-dim-v 128 --causal" \
                "--dtype f16 --heads 2 --seqlen-q 90 --head-dim 96 --softcap 30"; do
      timeout $(t ${GEN_SAN_TIMEOUT:-60}) compute-sanitizer --tool $tool --error-exitcode 99 $FARUN --device cuda --bundle "$BUNDLE" --batch 1 $args --backward --check \
        > "$OUT/sanitizer-$tool.log" 2>&1; rc=$?
      echo "$tool $args -> rc=$rc: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer-$tool.log" | head -2 | tr '\n' ' ')"
      status=$((status|rc))
    done
  done
}

embed() {
  local whl venv=/tmp/flashmlir-wheel-venv repo=$PWD
  whl=$(ls "${WHEEL_DIR:-.dist}"/*.whl 2>/dev/null | head -1)
  [ -n "$whl" ] || { echo "h100.sh: no wheel in ${WHEEL_DIR:-.dist} (./fa.sh wheel; copy build/dist/runtime/*.whl)"; status=2; return; }
  step "wheel $(basename "$whl"): fresh venv (system torch / transformers / pytest visible), pip install"
  rm -rf "$venv" && python3 -m venv "$venv" &&
    # torch, transformers and pytest of the machine's python3 (which may
    # itself be a venv, so --system-site-packages would not see them) after
    # the venv's own site-packages: flashmlir comes from the wheel only.
    python3 -c "import torch, os; print(os.path.dirname(os.path.dirname(torch.__file__)))" \
      > "$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/machine-packages.pth" &&
    "$venv/bin/pip" install -q --no-deps --no-index --disable-pip-version-check "$whl" > "$OUT/wheel-install.log" 2>&1; rc=$?
  echo "pip install rc=$rc"; status=$((status|rc)); [ "$rc" = 0 ] || { tail -5 "$OUT/wheel-install.log"; return; }
  # Nothing from the source tree or the build: only what the wheel installed.
  local clean=(env -u PYTHONPATH -u FLASHMLIR_BUNDLE -u FLASHMLIR_RT_LIB -u FLASHMLIR_LIB_DIR -u FLASHMLIR_BUNDLE_DETERMINISTIC)
  step "installed package checks (python/tests/check_wheel.py runtime)"
  (cd /tmp && "${clean[@]}" "$venv/bin/python" "$repo/python/tests/check_wheel.py" runtime) 2>&1 | tee "$OUT/check_wheel.log" | tail -9; status=$((status|${PIPESTATUS[0]}))
  step "the package's tests (CUDA included) against the installed wheel"
  (cd /tmp && "${clean[@]}" "$venv/bin/python" -m pytest "$repo/python/tests" -q -s -p no:cacheprovider) > "$OUT/wheel-pytest.log" 2>&1; rc=$?
  grep -E "FAILED|^(llama|gemma2) " "$OUT/wheel-pytest.log" | head -20; tail -1 "$OUT/wheel-pytest.log"; status=$((status|rc))
  step "cold start from the wheel's bundle (fresh processes)"
  (cd /tmp && "${clean[@]}" "$venv/bin/python" "$repo/tools/gpu/cold_start.py" --json "$OUT/cold_start.json") 2>&1 | tee "$OUT/cold_start.log" | tail -16; status=$((status|${PIPESTATUS[0]}))
}

# The compute-sanitizer sweep (issue 18; rerun whenever kernels change; the
# expected output is in docs/hardening.md). Every tool over a sample of every
# kernel family, forward and backward (fa-run --backward --check: fwd, bwd
# pre, main and post kernels). Families come from three bundles built on the
# compiler machine and carried:
#   $BUNDLE          fa-compile --default (sm_90a: wgmma forward for f16/bf16,
#                    SIMT for f32)
#   $SAN_MMA_BUNDLE  fa-compile --default --target sm_80 --out .san/mma
#                    (mma.sync forward and backward; sm_80 PTX runs on the H100)
#   $DET_BUNDLE      fa-compile --default --deterministic 1 --out .san/det
#                    (the deterministic backward's query-parallel dQ kernel)
# A missing bundle is reported as "missing" and counts against the status.
# SAN_TOOLS (default "memcheck racecheck synccheck initcheck"), SAN_TIMEOUT
# (seconds per run, default 300), SAN_FILTER (a grep -E on "<family> <case>").
sanitize() {
  local mma=${SAN_MMA_BUNDLE:-.san/mma} det=${DET_BUNDLE:-.san/det} turing=${TURING_BUNDLE:-.s2/b75}
  local runs=0 bad=0 missing=0
  # family|bundle|fa-run arguments (B=1; small lengths that are not multiples
  # of the tiles, so every boundary path runs)
  local cases=(
    "wgmma|$BUNDLE|--dtype bf16 --heads 2 --seqlen-q 70 --head-dim 64"
    "wgmma|$BUNDLE|--dtype f16 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 130 --head-dim 128 --causal"
    "wgmma|$BUNDLE|--dtype bf16 --heads 2 --seqlen-q 65 --head-dim 40 --window 16,4 --softcap 20"
    "wgmma|$BUNDLE|--dtype bf16 --heads 2 --seqlen-q 70 --head-dim 192 --head-dim-v 128 --causal"
    "wgmma|$BUNDLE|--dtype f16 --heads 2 --seqlen-q 33 --head-dim 256 --softcap 30 --layout bshd"
    "wgmma|$BUNDLE|--dtype f16 --heads 2 --seqlen-q 40 --head-dim 36"
    "mma.sync|$mma|--dtype bf16 --heads 2 --seqlen-q 70 --head-dim 64"
    "mma.sync|$mma|--dtype f16 --heads 4 --kv-heads 1 --seqlen-q 70 --seqlen-k 130 --head-dim 128 --causal"
    "mma.sync|$mma|--dtype f16 --heads 2 --seqlen-q 65 --head-dim 96 --window 16,4 --softcap 20"
    "mma.sync|$mma|--dtype bf16 --heads 2 --seqlen-q 70 --head-dim 192 --head-dim-v 128 --causal"
    "mma.sync|$mma|--dtype bf16 --heads 2 --seqlen-q 33 --head-dim 256 --layout bshd"
    "simt|$BUNDLE|--dtype f32 --heads 2 --seqlen-q 70 --head-dim 64"
    "simt|$BUNDLE|--dtype f32 --heads 4 --kv-heads 2 --seqlen-q 65 --seqlen-k 100 --head-dim 128 --causal --softcap 10"
    "simt|$BUNDLE|--dtype f32 --heads 2 --seqlen-q 33 --head-dim 32 --window 8,2"
    "deterministic|$det|--dtype bf16 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 130 --head-dim 128 --causal"
    "deterministic|$det|--dtype f16 --heads 2 --seqlen-q 65 --head-dim 64 --window 16,4 --softcap 20"
    "deterministic|$det|--dtype f32 --heads 2 --seqlen-q 33 --head-dim 64"
    "varlen|$BUNDLE|--dtype bf16 --heads 4 --kv-heads 2 --head-dim 128 --varlen 70,0,1,33 --varlen-k 70,5,1,100 --causal"
    "varlen|$BUNDLE|--dtype f16 --heads 2 --head-dim 64 --varlen 65,3 --window 16,4"
    "sm_75|$turing|--dtype f16 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 130 --head-dim 128 --causal"
    "sm_75|$turing|--dtype f16 --heads 2 --seqlen-q 65 --head-dim 40 --window 16,4 --softcap 20"
    "sm_75|$turing|--dtype bf16 --heads 2 --seqlen-q 33 --head-dim 96"
  )
  step "compute-sanitizer sweep: ${SAN_TOOLS:-memcheck racecheck synccheck initcheck} x ${#cases[@]} cases (fwd+bwd each)"
  local tool c family b args log n rc
  for tool in ${SAN_TOOLS:-memcheck racecheck synccheck initcheck}; do
    for c in "${cases[@]}"; do
      family=${c%%|*}; b=${c#*|}; args=${b#*|}; b=${b%%|*}
      if [ -n "${SAN_FILTER:-}" ] && ! echo "$family $args" | grep -qE "$SAN_FILTER"; then continue; fi
      if [ ! -f "$b/manifest.json" ]; then
        echo "SANITIZE $tool $family $args missing (no bundle at $b)"; missing=$((missing+1)); continue
      fi
      log="$OUT/sanitize-$tool-$runs.log"
      # racecheck: every shared-memory hazard report (hazards and analysis).
      local extra="" bw="--batch 1 --backward"
      [ "$family" = varlen ] && bw="--backward" # --varlen replaces --batch
      [ "$tool" = racecheck ] && extra="--racecheck-report all"
      # sm_75: its kernels on this GPU through the PTX JIT.
      local target=""; [ "$family" = sm_75 ] && target=sm_75
      FLASHMLIR_GPU_TARGET=$target timeout "${SAN_TIMEOUT:-300}" compute-sanitizer --tool "$tool" $extra --error-exitcode 99 --print-limit 20 \
        $FARUN --device cuda --bundle "$b" $bw $args --check > "$log" 2>&1; rc=$?
      # "ERROR SUMMARY: N errors" (memcheck, synccheck, initcheck) or
      # "RACECHECK SUMMARY: N hazards displayed (E errors, W warnings)".
      n=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$log" | grep -oE "[0-9]+ (errors?|hazards?)" | grep -oE "^[0-9]+" | awk '{s+=$1} END {print s+0}')
      echo "SANITIZE $tool $family $args errors=$n rc=$rc"
      runs=$((runs+1))
      if [ "$rc" != 0 ] || [ "$n" != 0 ]; then bad=$((bad+1)); grep -E "^=+ +(Invalid|Race|Barrier|Uninitialized|Error)" "$log" | head -5; fi
    done
  done
  echo "sanitize: $runs runs, $bad with errors or hazards, $missing missing"
  [ "$bad" = 0 ] && [ "$missing" = 0 ] || status=1
}

decode() {
  export PYTHONPATH=$PWD/python FLASHMLIR_BUNDLE=$BUNDLE
  step "decode: fa-run --device cuda --num-splits N --check (float64 reference)"
  local n=0 bad=0 args s
  for args in "--dtype bf16 --heads 32 --kv-heads 8 --seqlen-q 1 --seqlen-k 8191 --head-dim 128" \
              "--dtype f16 --heads 8 --kv-heads 1 --seqlen-q 1 --seqlen-k 3000 --head-dim 64" \
              "--dtype bf16 --heads 16 --kv-heads 4 --seqlen-q 4 --seqlen-k 1000 --head-dim 128 --causal" \
              "--dtype bf16 --heads 4 --kv-heads 4 --seqlen-q 7 --seqlen-k 777 --head-dim 64 --window 100,0" \
              "--dtype f16 --heads 8 --kv-heads 2 --seqlen-q 2 --seqlen-k 2049 --head-dim 256 --softcap 30" \
              "--dtype bf16 --heads 16 --kv-heads 16 --seqlen-q 1 --seqlen-k 513 --head-dim 192 --head-dim-v 128 --causal" \
              "--dtype bf16 --heads 64 --kv-heads 1 --seqlen-q 1 --seqlen-k 100 --head-dim 128" \
              "--dtype f16 --heads 4 --kv-heads 2 --seqlen-q 16 --seqlen-k 16 --head-dim 64 --causal --layout bshd"; do
    for s in 0 1 2 3 7 16 64; do
      $FARUN --device cuda --bundle "$BUNDLE" --batch 3 $args --num-splits $s --check --seed $n > "$OUT/decode-check.log" 2>&1; rc=$?
      n=$((n+1)); [ "$rc" = 0 ] || { bad=$((bad+1)); echo "FAIL rc=$rc: $args --num-splits $s"; tail -3 "$OUT/decode-check.log"; }
    done
  done
  echo "decode check: $n runs, $bad failed"; [ "$bad" = 0 ] || status=1
  step "decode: compute-sanitizer sample (fwd_split + fwd_combine)"
  for tool in memcheck racecheck initcheck synccheck; do
    timeout 120 compute-sanitizer --tool $tool --error-exitcode 99 $FARUN --device cuda --bundle "$BUNDLE" --batch 2 \
      --dtype bf16 --heads 8 --kv-heads 2 --seqlen-q 3 --seqlen-k 300 --head-dim 128 --causal --num-splits 5 --check > "$OUT/decode-san-$tool.log" 2>&1; rc=$?
    echo "SANITIZE $tool decode errors=$(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/decode-san-$tool.log" | grep -oE "[0-9]+ (errors?|hazards?)" | head -1) rc=$rc"
    [ "$rc" = 0 ] || status=1
  done
  step "decode: flash_attn_with_kvcache (contiguous / paged 16, 64, 256; append; split counts) vs float64, cuda and cpu"
  for dev in cuda cpu; do
    timeout 240 python3 tools/gpu/check_kvcache.py --device $dev --json "$OUT/check_kvcache-$dev.json" > "$OUT/check_kvcache-$dev.log" 2>&1; rc=$?
    grep -E "^FAIL|Traceback|Error" "$OUT/check_kvcache-$dev.log" | head -12; echo "$dev: $(tail -1 "$OUT/check_kvcache-$dev.log") rc=$rc"; status=$((status|rc))
  done
  step "decode: issue 14's table vs SDPA flash / cuDNN"
  python3 tools/gpu/decode_bench.py --json "$OUT/decode_bench.json" 2>&1 | grep -v Warning | tee "$OUT/decode_bench.log" | tail -20
  status=$((status|${PIPESTATUS[0]}))
  step "decode: fa-run --bench, one-pass kernel (--num-splits 1) vs the default"
  for bn in "1 8192" "8 8192" "1 131072" "64 4096"; do
    set -- $bn
    for s in 1 0; do
      $FARUN --device cuda --bundle "$BUNDLE" --dtype bf16 --batch $1 --heads 32 --kv-heads 8 --seqlen-q 1 --seqlen-k $2 \
        --head-dim 128 --layout bshd --num-splits $s --bench --reps 20 --json 2>&1 | tail -1 | python3 -c "import json,sys; d=json.loads(sys.stdin.read()); print('B=$1 Nk=$2 num_splits=$s', {k: v for k, v in d.items() if 'ms' in k or 'time' in k})"
    done
  done
}

turing() {
  export FLASHMLIR_GPU_TARGET=sm_75
  step "sm_75 kernels through the PTX JIT: the correctness matrix (check_gpu.py --allow-missing)"
  timeout ${TURING_TIMEOUT:-420} python3 tools/gpu/check_gpu.py "$BUNDLE" --allow-missing ${TURING_QUICK:+--quick} \
    --json "$OUT/check_turing.json" > "$OUT/check_turing.log" 2>&1; rc=$?
  grep -E "^FAIL|^MISSING" "$OUT/check_turing.log" | cut -c1-220 | head -40; tail -1 "$OUT/check_turing.log"; status=$((status|rc))
  step "sm_75 split-KV decode: fa-run --num-splits N --check"
  local n=0 bad=0 args s
  for args in "--dtype f16 --heads 32 --kv-heads 8 --seqlen-q 1 --seqlen-k 4099 --head-dim 128" \
              "--dtype f16 --heads 8 --kv-heads 2 --seqlen-q 3 --seqlen-k 1000 --head-dim 64 --causal" \
              "--dtype f16 --heads 8 --kv-heads 1 --seqlen-q 2 --seqlen-k 700 --head-dim 256 --softcap 30" \
              "--dtype f16 --heads 16 --kv-heads 16 --seqlen-q 1 --seqlen-k 513 --head-dim 192 --head-dim-v 128 --window 100,0"; do
    for s in 0 1 5 64; do
      $FARUN --device cuda --bundle "$BUNDLE" --batch 2 $args --num-splits $s --check --seed $n > "$OUT/turing-decode.log" 2>&1; rc=$?
      n=$((n+1)); [ "$rc" = 0 ] || { bad=$((bad+1)); echo "FAIL rc=$rc: $args --num-splits $s"; tail -2 "$OUT/turing-decode.log"; }
    done
  done
  echo "sm_75 decode: $n runs, $bad failed"; [ "$bad" = 0 ] || status=1
  # The sweep's sm_75 family (sanitize(): synchronous copies, one-buffer backward).
  TURING_BUNDLE=$BUNDLE SAN_FILTER='^sm_75 ' sanitize
  unset FLASHMLIR_GPU_TARGET
}
# fa-run --check with one score-modification flag ($1: --sinks, --alibi) over
# the argument sets after $3 (logs named after $2), then memcheck and
# racecheck on the set $3; modBad = the failed fa-run sets.
mod_checks() {
  local flag=$1 tag=$2 san=$3 n=0 a rc tool; shift 3
  modBad=0
  for a in "$@"; do
    $FARUN --device cuda --bundle "$BUNDLE" --check $flag $a > "$OUT/farun-$tag.log" 2>&1; rc=$?; n=$((n+1))
    [ "$rc" = 0 ] || { modBad=$((modBad+1)); echo "FAIL rc=$rc: $a"; grep -E "err|error" "$OUT/farun-$tag.log" | head -8; }
  done
  echo "fa-run $flag: $n runs, $modBad failed"; [ "$modBad" = 0 ] || status=1
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --error-exitcode 99 $FARUN --device cuda --bundle "$BUNDLE" --check $flag $san \
      > "$OUT/sanitizer-$tag-$tool.log" 2>&1; rc=$?
    echo "$tool rc=$rc: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer-$tag-$tool.log" | head -1)"; status=$((status|rc))
  done
}
sinks() {
  step "attention sinks: fa-run --device cuda --sinks --check"
  mod_checks --sinks sinks "--dtype bf16 --batch 1 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 100 --head-dim 64 --causal --backward" \
    "--dtype bf16 --batch 2 --heads 8 --kv-heads 2 --seqlen-q 300 --seqlen-k 400 --head-dim 128 --causal --backward" \
    "--dtype f16 --batch 1 --heads 4 --seqlen-q 257 --head-dim 64 --window 32,8 --softcap 20 --backward --layout bshd" \
    "--dtype f32 --batch 2 --heads 2 --seqlen-q 65 --seqlen-k 90 --head-dim 64 --backward" \
    "--dtype bf16 --batch 1 --heads 2 --seqlen-q 100 --seqlen-k 30 --head-dim 64 --causal --backward" \
    "--dtype bf16 --batch 3 --heads 8 --kv-heads 2 --seqlen-q 1 --seqlen-k 3000 --head-dim 128 --num-splits 0" \
    "--dtype bf16 --batch 3 --heads 8 --kv-heads 2 --seqlen-q 1 --seqlen-k 3000 --head-dim 128 --num-splits 1" \
    "--dtype f16 --batch 2 --heads 4 --kv-heads 1 --seqlen-q 3 --seqlen-k 1000 --head-dim 64 --causal --num-splits 7"
  step "attention sinks: Python CUDA tests and gpt-oss vs eager"
  export PYTHONPATH=$PWD/python FLASHMLIR_BUNDLE=$BUNDLE
  python3 -m pytest -q -p no:cacheprovider python/tests/test_cuda.py python/tests/test_transformers.py \
    -k "sinks or score_mods or gpt_oss" > "$OUT/pytest-sinks.log" 2>&1; rc=$?
  grep -E "FAILED|Error" "$OUT/pytest-sinks.log" | head -10; tail -1 "$OUT/pytest-sinks.log"; status=$((status|rc))
  step "attention sinks: cost (tools/gpu/sinks_bench.py)"
  python3 tools/gpu/sinks_bench.py --json "$OUT/sinks_bench.json" 2>&1 | grep -v Warn | tee "$OUT/sinks_bench.log" | tail -6
}
alibi() {
  step "ALiBi: fa-run --device cuda --alibi --check"
  mod_checks --alibi alibi "--dtype bf16 --batch 2 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 100 --head-dim 64 --causal --backward" \
    "--dtype bf16 --batch 2 --heads 8 --kv-heads 2 --seqlen-q 300 --seqlen-k 400 --head-dim 128 --causal --backward" \
    "--dtype f16 --batch 1 --heads 4 --seqlen-q 257 --head-dim 64 --window 32,8 --softcap 20 --backward --layout bshd" \
    "--dtype f32 --batch 2 --heads 2 --seqlen-q 65 --seqlen-k 90 --head-dim 64 --backward" \
    "--dtype f32 --batch 1 --heads 2 --seqlen-q 70 --head-dim 128 --causal --backward" \
    "--dtype bf16 --batch 1 --heads 2 --seqlen-q 100 --seqlen-k 30 --head-dim 64 --causal --backward" \
    "--dtype f16 --batch 2 --heads 4 --seqlen-q 1000 --head-dim 128 --backward --sinks" \
    "--dtype bf16 --batch 3 --heads 8 --kv-heads 2 --seqlen-q 1 --seqlen-k 3000 --head-dim 128 --num-splits 0" \
    "--dtype bf16 --batch 3 --heads 8 --kv-heads 2 --seqlen-q 1 --seqlen-k 3000 --head-dim 128 --num-splits 1" \
    "--dtype f16 --batch 2 --heads 4 --kv-heads 1 --seqlen-q 3 --seqlen-k 1000 --head-dim 64 --causal --num-splits 7"
  step "ALiBi: Python CUDA tests"
  export PYTHONPATH=$PWD/python FLASHMLIR_BUNDLE=$BUNDLE
  python3 -m pytest -q -p no:cacheprovider python/tests/test_cuda.py -k "alibi or score_mods or sinks" \
    > "$OUT/pytest-alibi.log" 2>&1; rc=$?
  grep -E "FAILED|Error" "$OUT/pytest-alibi.log" | head -10; tail -1 "$OUT/pytest-alibi.log"; status=$((status|rc))
  [ "$modBad" = 0 ] || { echo "ALiBi: fa-run failed, no benchmark"; return; }
  [ "${ALIBI_BENCH:-1}" = 1 ] || return 0
  step "ALiBi: cost and FlexAttention (tools/gpu/alibi_bench.py)"
  python3 tools/gpu/alibi_bench.py --json "$OUT/alibi_bench.json" 2>&1 | grep -v Warn | tee "$OUT/alibi_bench.log" | tail -14
}
rope() {
  step "RoPE: fa-run --device cuda --rotary --check"
  mod_checks "--rotary 64" rope "--dtype bf16 --batch 1 --heads 2 --seqlen-q 70 --seqlen-k 100 --head-dim 64 --causal --backward" \
    "--dtype bf16 --batch 2 --heads 4 --kv-heads 2 --seqlen-q 70 --seqlen-k 100 --head-dim 64 --causal --backward" \
    "--dtype f16 --batch 2 --heads 8 --kv-heads 2 --seqlen-q 300 --seqlen-k 400 --head-dim 128 --causal --backward --rotary-interleaved" \
    "--dtype bf16 --batch 1 --heads 4 --seqlen-q 257 --head-dim 128 --window 32,8 --softcap 20 --backward --layout bshd" \
    "--dtype bf16 --batch 2 --heads 4 --seqlen-q 1000 --head-dim 128 --backward --sinks --alibi" \
    "--dtype bf16 --batch 3 --heads 8 --kv-heads 2 --seqlen-q 1 --seqlen-k 3000 --head-dim 128 --num-splits 0" \
    "--dtype f16 --batch 2 --heads 4 --kv-heads 1 --seqlen-q 3 --seqlen-k 1000 --head-dim 64 --causal --num-splits 7 --rotary-interleaved"
  step "RoPE: Python CUDA tests"
  export PYTHONPATH=$PWD/python FLASHMLIR_BUNDLE=$BUNDLE
  python3 -m pytest -q -p no:cacheprovider python/tests/test_cuda.py -k "rope or score_mods or kvcache_rotary" \
    > "$OUT/pytest-rope.log" 2>&1; rc=$?
  grep -E "FAILED|Error" "$OUT/pytest-rope.log" | head -10; tail -1 "$OUT/pytest-rope.log"; status=$((status|rc))
  [ "$modBad" = 0 ] || { echo "RoPE: fa-run failed, no benchmark"; return; }
  [ "${ROPE_BENCH:-1}" = 1 ] || return 0
  step "RoPE: cost and the unfused rotary (tools/gpu/rope_bench.py)"
  python3 tools/gpu/rope_bench.py --json "$OUT/rope_bench.json" 2>&1 | grep -v Warn | tee "$OUT/rope_bench.log" | tail -9
}
varlen() {
  export PYTHONPATH=$PWD/python FLASHMLIR_BUNDLE=$BUNDLE
  step "varlen: fa-run --device cuda --varlen --backward (fa_forward_varlen, fa_backward_varlen, poisoned outputs, float64 reference)"
  for args in "--dtype bf16 --heads 8 --kv-heads 2 --head-dim 128 --varlen 1,0,300,77,1024 --varlen-k 1,5,300,90,1024 --causal" \
              "--dtype f16 --heads 4 --head-dim 64 --varlen 65,0,1,400 --varlen-k 20,9,1,420 --window 32,8" \
              "--dtype bf16 --heads 4 --kv-heads 1 --head-dim 64 --varlen 4096,64,2000,3"; do
    $FARUN --device cuda --bundle "$BUNDLE" $args --backward --check --json > "$OUT/farun-varlen.log" 2>&1; rc=$?
    echo "fa-run $args -> rc=$rc $(tail -1 "$OUT/farun-varlen.log" | cut -c1-200)"; status=$((status|rc))
  done
  step "varlen: flash_attn_varlen_func on CUDA vs a float64 per-sequence reference"
  python3 tools/gpu/check_varlen.py --json "$OUT/check_varlen.json" > "$OUT/check_varlen.log" 2>&1; rc=$?
  grep -E "^FAIL|Traceback|Error" "$OUT/check_varlen.log" | head -20; tail -1 "$OUT/check_varlen.log"; status=$((status|rc))
  step "varlen backward kernels: compute-sanitizer memcheck / racecheck (fa_backward_varlen)"
  local small='import torch, flashmlir
for causal, w in ((True, (-1, -1)), (False, (16, 4))):
    cq = torch.tensor([0, 70, 70, 71, 171], dtype=torch.int32, device="cuda")
    ck = torch.tensor([0, 90, 95, 96, 150], dtype=torch.int32, device="cuda")
    q = torch.randn(171, 4, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    k = torch.randn(150, 2, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    v = torch.randn(150, 2, 128, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    flashmlir.flash_attn_varlen_func(q, k, v, cq, ck, 100, 90, causal=causal, window_size=w).sum().backward()
torch.cuda.synchronize(); print("ok")'
  for tool in memcheck racecheck; do
    compute-sanitizer --tool $tool --kernel-name kns=attn_ --error-exitcode 99 python3 -c "$small" \
      > "$OUT/sanitizer-varlen-$tool.log" 2>&1; rc=$?
    echo "$tool rc=$rc: $(grep -E "ERROR SUMMARY|RACECHECK SUMMARY" "$OUT/sanitizer-varlen-$tool.log" | head -1)"; status=$((status|rc))
  done
  step "varlen: 16k packed tokens (64..4096) vs the dense kernel and FA2 varlen / SDPA per sequence"
  python3 tools/gpu/varlen_bench.py --json "$OUT/varlen_bench.json" 2>&1 | grep -v Warning | tee "$OUT/varlen_bench.log" | tail -6
  status=$((status|${PIPESTATUS[0]}))
  step "varlen: the same, per-sequence dense path (FLASHMLIR_VARLEN_KERNELS=0: before the varlen backward kernels)"
  FLASHMLIR_VARLEN_KERNELS=0 python3 tools/gpu/varlen_bench.py 2>&1 | grep -v Warning | tail -6
}

case "${1:-all}" in
  check) check ;;
  varlen) varlen ;;
  sinks) sinks ;;
  alibi) alibi ;;
  rope) rope ;;
  decode) decode ;;
  turing) turing ;;
  python) python_pkg ;;
  bench) bench ;;
  tc) tc ;;
  prof) prof ;;
  tune) tune ;;
  det) det ;;
  ab) ab ;;
  gen) gen ;;
  embed) embed ;;
  sanitize) sanitize ;;
  all) check; python_pkg; bench; [ -n "${DET_BUNDLE:-}" ] && det ;;
esac
echo "h100.sh: status $status"
exit $status
