#!/usr/bin/env python3
"""fa_fuzz: a mutation fuzzer for fa-opt (issue 18).

Seeds are the lit inputs (test/**/*.mlir, split at `// -----`) and
test/Fuzz/seeds/*.mlir. Each execution takes a seed, applies 1-4 mutations
(structure: delete / duplicate / swap / splice lines, swap SSA names, change
element types, ranks, memref <-> tensor, drop or add attributes, truncate;
values: integers and floats anywhere in the text, shape dims and attribute
values, replaced by boundary values such as 0, -1, 2^31, 2^63-1, 1e39, inf,
nan) and runs it through one pass or pipeline of fa-opt: every FlashMLIR pass
and pipeline from `fa-opt --help`, the pipelines of the lit RUN lines, each
with its options mutated now and then (chip, format, block sizes, ...).

A run fails the fuzzer when fa-opt
  * dies of a signal (segfault, abort) or exits with a code > 1,
  * prints "LLVM ERROR", "PLEASE submit a bug report", "Stack dump",
    "Assertion", "UNREACHABLE" or a sanitizer report,
  * runs longer than --timeout seconds (a hang),
  * exits non-zero without a message.
Exit 0, or exit 1 with a message, is a pass. Every failure is
written to --out as a reproducer (crash-<hash>.mlir, its command line in a
RUN comment); keep the fixed ones as lit tests (test/Fuzz/regressions).

    fa_fuzz.py --fa-opt build/bin/fa-opt --seconds 120 --seed 18 --out /tmp/fz

Prints one line per failure and a summary:
    fa_fuzz: N executions in S s (R/s), F failures (seed X, J jobs)
and exits 1 when F > 0.
"""

import argparse
import concurrent.futures
import hashlib
import os
import random
import re
import shlex
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

INTS = [0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 31, 32, 33, 63, 64, 65, 127, 128, 129,
        192, 255, 256, 257, 264, 512, 1000, 1023, 1024, 1025, 4096, 65535, 65536,
        100000, 2**30 - 1, 2**30, 2**30 + 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
        2**32 + 1, 2**53, 2**62, 2**63 - 1, 2**63, 2**64, 10**12, 10**30,
        -1, -2, -8, -2**31, -2**63, -2**63 - 1]
FLOATS = ["0.0", "-0.0", "1.0", "-1.0", "1.0e-45", "1.0e-38", "1.0e-18", "1.0e+18",
          "3.4e+38", "3.5e+38", "1.0e+39", "1.0e+300", "1.0e+309", "-1.0e+39",
          "0x7F800000", "0xFF800000", "0x7FC00000", "0x7F7FFFFF", "0x00000001",
          "5.0e-01", "1.25e-01", "30.0", "50.0"]
ELEMENT_TYPES = ["f32", "f16", "bf16", "f64", "i32", "i8", "f8E4M3FN", "index",
                 "complex<f32>", "vector<4xf32>"]
ATTRS = ["causal", "window = array<i64: {a}, {b}>", "softcap = {f} : f32",
         "scale = {f} : f32", "block_sizes = array<i64: {a}, {b}>",
         "window = array<i64: {a}>", "block_sizes = array<i64: {a}, {b}, {a}>",
         "softcap = {a} : i64", "scale = {f} : f64"]
OPTION_VALUES = {
    "chip": ["sm_80", "sm_86", "sm_87", "sm_89", "sm_90", "sm_90a", "sm_100a",
             "sm_70", "sm_52", "sm_1000000", "sm_", "gfx90a", "", "x86-64",
             "sm_80 ", "sm_90a,sm_80", "generic"],
    "format": ["isa", "bin", "fatbin", "llvm", "offload", "assembly", "", "ptx",
               "binary"],
    "features": ["+ptx80", "+ptx90", "+ptx60", "+ptx999", "-ptx80", "", "+sm_90",
                 "+ptx80,+ptx81", "garbage"],
    "opt-level": ["0", "1", "2", "3", "4", "-1", "100", "2147483648"],
    "toolkit": ["", "/nonexistent", "/tmp", "/"],
}


def interesting_int(rng):
    if rng.random() < 0.8:
        return rng.choice(INTS)
    return rng.randrange(-2**64, 2**64) if rng.random() < 0.3 else rng.randrange(0, 4097)


def interesting_float(rng):
    if rng.random() < 0.8:
        return rng.choice(FLOATS)
    return repr(rng.uniform(-1e6, 1e6))


# --- seeds -------------------------------------------------------------------

def load_seeds(dirs):
    """Chunks of every .mlir file under `dirs` (split at `// -----`),
    without comment lines."""
    seeds = []
    for d in dirs:
        for base, _, files in os.walk(d):
            for f in sorted(files):
                if not f.endswith(".mlir"):
                    continue
                path = os.path.join(base, f)
                with open(path, errors="replace") as fh:
                    text = fh.read()
                for chunk in re.split(r"^// -----.*$", text, flags=re.M):
                    lines = [l for l in chunk.splitlines()
                             if not l.lstrip().startswith("//")]
                    body = "\n".join(lines).strip()
                    if body:
                        seeds.append((os.path.relpath(path, ROOT), body + "\n"))
    return seeds


def run_line_pipelines(dirs):
    """The fa-opt arguments of the lit RUN lines (without %s, output
    plumbing, --verify-diagnostics and --split-input-file)."""
    out = set()
    for d in dirs:
        for base, _, files in os.walk(d):
            for f in files:
                if not f.endswith((".mlir", ".test")):
                    continue
                with open(os.path.join(base, f), errors="replace") as fh:
                    for line in fh:
                        m = re.search(r"RUN:.*?\bfa-opt\b(.*)", line)
                        if not m:
                            continue
                        cmd = m.group(1).split("|")[0]
                        try:
                            args = shlex.split(cmd)
                        except ValueError:
                            continue
                        args = [a for a in args if a.startswith("--") and a not in (
                            "--verify-diagnostics", "--split-input-file")]
                        if args:
                            out.add(tuple(args))
    return sorted(out)


def help_pipelines(fa_opt):
    """Every FlashMLIR pass and pipeline fa-opt lists (--attn-*,
    --convert-attn-*, --test-attn-*)."""
    text = subprocess.run([fa_opt, "--help"], capture_output=True, text=True).stdout
    names = sorted(set(re.findall(r"^\s+--((?:attn|convert-attn|test-attn)[\w-]*)", text,
                                  flags=re.M)))
    return [(f"--{n}",) for n in names]


BUFFERIZE = "--one-shot-bufferize=bufferize-function-boundaries"


# --- mutations ---------------------------------------------------------------

NUM_RE = re.compile(r"(?<![%#@\w.^])-?(?:0x[0-9A-Fa-f]+|\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)(?![\w.])")
DIM_RE = re.compile(r"(?<=[<x])(\d+|\?)(?=x)")
SSA_RE = re.compile(r"%[\w.$-]+")


def mut_number(text, rng):
    ms = list(NUM_RE.finditer(text))
    if not ms:
        return text
    m = rng.choice(ms)
    tok = m.group(0)
    isfloat = "." in tok or "e" in tok.lower() and not tok.lower().startswith("0x")
    rep = interesting_float(rng) if isfloat or rng.random() < 0.15 else str(interesting_int(rng))
    return text[:m.start()] + rep + text[m.end():]


def mut_dim(text, rng):
    ms = list(DIM_RE.finditer(text))
    if not ms:
        return mut_number(text, rng)
    m = rng.choice(ms)
    r = rng.random()
    if r < 0.1:
        rep = "?"
    elif r < 0.2:
        rep = ""  # drops a dim: "4x8x?" -> rank change
    else:
        rep = str(abs(interesting_int(rng)))
    if rep == "":
        return text[:m.start()] + text[m.end() + 1:]
    return text[:m.start()] + rep + text[m.end():]


def mut_type(text, rng):
    ms = list(re.finditer(r"\b(f32|f16|bf16|f64|i1|i32|i64|index)\b", text))
    if not ms:
        return text
    m = rng.choice(ms)
    return text[:m.start()] + rng.choice(ELEMENT_TYPES) + text[m.end():]


def mut_shaped(text, rng):
    ms = list(re.finditer(r"\b(memref|tensor|vector)<", text))
    if not ms:
        return text
    m = rng.choice(ms)
    rep = rng.choice(["memref<", "tensor<", "vector<", "memref<*x" if rng.random() < 0.2 else "tensor<"])
    return text[:m.start()] + rep + text[m.end():]


def mut_ssa(text, rng):
    names = SSA_RE.findall(text)
    ms = list(SSA_RE.finditer(text))
    if len(names) < 2:
        return text
    m = rng.choice(ms)
    return text[:m.start()] + rng.choice(names) + text[m.end():]


def mut_lines(text, rng, corpus):
    lines = text.splitlines()
    if not lines:
        return text
    i = rng.randrange(len(lines))
    r = rng.random()
    if r < 0.3:
        del lines[i]
    elif r < 0.5:
        lines.insert(i, lines[i])
    elif r < 0.7 and len(lines) > 1:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    else:
        other = rng.choice(corpus)[1].splitlines()
        if other:
            lines.insert(i, rng.choice(other))
    return "\n".join(lines) + "\n"


def mut_attr(text, rng):
    ops = list(re.finditer(r"attn\.attention(?:_backward)?\b[^\n]*?\)\s*(\{[^{}\n]*\})?", text))
    if not ops:
        return text
    m = rng.choice(ops)
    a = rng.choice(ATTRS).format(a=interesting_int(rng), b=interesting_int(rng),
                                 f=interesting_float(rng))
    if m.group(1):  # replace / extend / drop the attribute dict
        r = rng.random()
        if r < 0.3:
            new = ""
        elif r < 0.7:
            new = "{" + a + "}"
        else:
            new = m.group(1)[:-1] + (", " if m.group(1) != "{}" else "") + a + "}"
        return text[:m.start(1)] + new + text[m.end(1):]
    return text[:m.end()] + " {" + a + "}" + text[m.end():]


def mut_truncate(text, rng):
    if len(text) < 2:
        return text
    return text[:rng.randrange(len(text))]


def mut_bytes(text, rng):
    i = rng.randrange(max(1, len(text)))
    return text[:i] + rng.choice(["{", "}", "(", ")", "<", ">", ",", ":", "x", "?", "%", "\"",
                                  "\x00", "\xff", " ", "\n", "-", "0"]) + text[i + 1:]


MUTATORS = [(mut_number, 6), (mut_dim, 6), (mut_attr, 4), (mut_type, 3),
            (mut_shaped, 2), (mut_ssa, 3), (mut_lines, 4), (mut_truncate, 1),
            (mut_bytes, 1)]


def mutate(text, rng, corpus):
    funcs = [f for f, w in MUTATORS for _ in range(w)]
    for _ in range(rng.choice([1, 1, 1, 2, 2, 3, 4])):
        f = rng.choice(funcs)
        text = f(text, rng, corpus) if f is mut_lines else f(text, rng)
    return text


def mutate_args(args, rng):
    """Mutates one option value inside the pipeline arguments."""
    args = list(args)
    i = rng.randrange(len(args))
    a = args[i]
    # key=value pairs in "--flag=k=v k2=v2" or "...pass{k=v k2=v2}".
    start = a.index("=") + 1 if a.startswith("--") and "=" in a and "{" not in a else 0
    kv = [m for m in re.finditer(r"(?:(?<=[\s{])|^)([\w-]+)=([^\s{},\"]*)", a[start:])
          if start or "{" in a]
    kv = [(m, start) for m in kv]
    if kv:
        m, off = rng.choice(kv)
        key = m.group(1)
        if key in OPTION_VALUES:
            val = rng.choice(OPTION_VALUES[key])
        elif rng.random() < 0.8:
            val = str(interesting_int(rng))
        else:
            val = rng.choice(["", "true", "x", "1.5", "0x10", "-0"])
        args[i] = a[:off + m.start(2)] + val + a[off + m.end(2):]
    else:
        # Add an option to a flag that has none.
        key = rng.choice(["block-m", "block-n", "vector-width", "chip", "format",
                          "features", "opt-level", "tensor-cores", "wgmma",
                          "deterministic", "unfused", "parallel"])
        val = rng.choice(OPTION_VALUES.get(key, [str(interesting_int(rng))]))
        if a.startswith(("--attn", "--convert-attn")) and "=" not in a:
            args[i] = f"{a}={key}={val}"
    return tuple(args)


# --- running -----------------------------------------------------------------

BAD = ("LLVM ERROR", "PLEASE submit a bug report", "Stack dump", "Assertion",
       "UNREACHABLE", "AddressSanitizer", "UndefinedBehaviorSanitizer",
       "runtime error:", "terminate called", "Segmentation fault")


def run_one(fa_opt, text, args, timeout):
    """(verdict, detail): verdict None for a pass, else the failure class."""
    cmd = [fa_opt, "-", "-o", os.devnull] + list(args)
    t0 = time.time()
    try:
        p = subprocess.run(cmd, input=text.encode("utf-8", "surrogateescape"),
                           capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return "hang", f"no exit after {timeout} s", time.time() - t0
    err = p.stderr.decode("utf-8", "replace")
    dt = time.time() - t0
    if p.returncode < 0:
        return f"signal {-p.returncode}", err[-2000:], dt
    for b in BAD:
        if b in err:
            return b, err[-2000:], dt
    if p.returncode > 1:
        return f"exit {p.returncode}", err[-2000:], dt
    if p.returncode != 0 and not err.strip():
        return "silent failure", "non-zero exit without a message", dt
    return None, "", dt


def reproducer(out, verdict, detail, text, args):
    h = hashlib.sha1((text + "\0" + " ".join(args)).encode("utf-8", "surrogateescape")).hexdigest()[:12]
    path = os.path.join(out, f"crash-{h}.mlir")
    with open(path, "w", encoding="utf-8", errors="surrogateescape") as f:
        f.write(f"// fa_fuzz: {verdict}\n")
        f.write(f"// RUN: not fa-opt %s {' '.join(shlex.quote(a) for a in args)}\n")
        for line in detail.strip().splitlines()[:20]:
            f.write(f"// {line}\n")
        f.write(text)
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fa-opt", default=os.path.join(ROOT, "build", "bin", "fa-opt"))
    ap.add_argument("--corpus", action="append",
                    help="directories of seed .mlir files (default: test/)")
    ap.add_argument("--seconds", type=float, default=120.0, help="time budget")
    ap.add_argument("--max-execs", type=int, default=0, help="stop after N runs (0: none)")
    ap.add_argument("--timeout", type=float, default=30.0, help="per run (a hang)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--out", default="fuzz-out", help="where reproducers go")
    ap.add_argument("--replay", nargs="*", help="run these files through their RUN line only")
    ap.add_argument("-v", "--verbose", action="store_true")
    a = ap.parse_args()

    dirs = a.corpus or [os.path.join(ROOT, "test")]
    seed = a.seed if a.seed is not None else int(time.time())
    rng = random.Random(seed)
    corpus = load_seeds(dirs)
    pipelines = run_line_pipelines(dirs) + help_pipelines(a.fa_opt)
    if not corpus or not pipelines:
        print("fa_fuzz: no seeds or no pipelines", file=sys.stderr)
        return 2
    os.makedirs(a.out, exist_ok=True)
    by_file = {}
    for name, text in corpus:
        by_file.setdefault(name, []).append(text)
    files = sorted(by_file)

    def job(i):
        r = random.Random(seed * 1000003 + i)
        name = r.choice(files)
        text = r.choice(by_file[name])
        args = r.choice(pipelines)
        if r.random() < 0.25:
            args = mutate_args(args, r)
        if r.random() < 0.3 and "tensor<" in text and BUFFERIZE not in args:
            args = (BUFFERIZE,) + tuple(args)
        if r.random() < 0.9:
            text = mutate(text, r, corpus)
        verdict, detail, dt = run_one(a.fa_opt, text, args, a.timeout)
        return i, name, text, args, verdict, detail, dt

    t0 = time.time()
    execs = failures = 0
    seen = set()
    slowest = 0.0
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
        pending = set()
        i = 0
        while True:
            out_of_time = time.time() - t0 >= a.seconds or (a.max_execs and i >= a.max_execs)
            while not out_of_time and len(pending) < a.jobs:
                pending.add(pool.submit(job, i))
                i += 1
            if not pending:
                break
            done, pending = concurrent.futures.wait(
                pending, return_when=concurrent.futures.FIRST_COMPLETED)
            for fut in done:
                _, name, text, args, verdict, detail, dt = fut.result()
                execs += 1
                slowest = max(slowest, dt)
                if a.verbose:
                    print(f"{verdict or 'ok'} {dt:.2f}s {name} {' '.join(args)}", flush=True)
                if verdict:
                    failures += 1
                    path = reproducer(a.out, verdict, detail, text, args)
                    first = detail.strip().splitlines()[:1]
                    key = (verdict, first[0] if first else "")
                    if key not in seen or a.verbose:
                        seen.add(key)
                        print(f"FAIL {verdict}: {path} (seed {name}; {' '.join(args)}): "
                              f"{first[0] if first else ''}", flush=True)
    dt = time.time() - t0
    print(f"fa_fuzz: {execs} executions in {dt:.0f} s ({execs / max(dt, 1e-9):.1f}/s), "
          f"{failures} failures (seed {seed}, {a.jobs} jobs, {len(corpus)} seeds, "
          f"{len(pipelines)} pipelines, slowest run {slowest:.1f} s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
