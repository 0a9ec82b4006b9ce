"""Shared by the end-to-end scripts beside it (raise_linalg_e2e.py,
kv_cache_e2e.py): dense literals for constants, running a tool, and running
a module through fa-opt and mlir-runner to read back what it prints."""
import math
import re
import subprocess
import sys

NUMBER = r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?|nan|inf"


def dense(vals, shape):
    """The nested [..] literal of a row-major list of floats."""
    def rec(off, dims):
        if len(dims) == 1:
            return "[" + ", ".join(f"{vals[off + i]:.9e}" for i in range(dims[0])) + "]"
        step = math.prod(dims[1:])
        return "[" + ", ".join(rec(off + i * step, dims[1:]) for i in range(dims[0])) + "]"
    return rec(0, shape)


def run(cmd, inp=None):
    """stdout of cmd; on failure its stderr and exit 1."""
    p = subprocess.run(cmd, input=inp, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(f"command failed: {' '.join(cmd)}\n{p.stderr[-4000:]}\n")
        sys.exit(1)
    return p.stdout


def execute(fa_opt, runner, libdir, text, passes):
    """Lowers `text` with fa-opt `passes`, runs @main with mlir-runner and
    returns the values of each memref it printed (printMemrefF32), in order."""
    llvm = run([fa_opt] + passes, text)
    out = run([runner, "-e", "main", "-entry-point-result=void",
               f"-shared-libs={libdir}/libmlir_runner_utils.so,{libdir}/libmlir_c_runner_utils.so"],
              llvm)
    return [[float(x) for x in re.findall(NUMBER, block.split("Unranked")[0])]
            for block in out.split("data =")[1:]]
