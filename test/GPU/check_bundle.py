#!/usr/bin/env python3
"""Checks a FlashMLIR kernel bundle with ptxas, offline (no GPU needed).

Every PTX file in the manifest must assemble with `ptxas -v` for sm_80 (when
its target is sm_80) and for its own target otherwise, with no spill stores or
loads and no serialized wgmma pipeline (ptxas's C75xx performance warnings on
sm_90a kernels: the driver's JIT would hide them). Writes the
resource report (registers, spill bytes, stack, shared memory) to
ptxas-report.json in the bundle, prints a summary, exits 1 on any failure.

usage: check_bundle.py BUNDLE_DIR --ptxas PATH [-j N] [--allow-spill REGEX:BYTES ...]

--allow-spill accepts up to BYTES of spill traffic (stores + loads) in the
kernels whose "name arch" matches REGEX; they are listed as ALLOWED, so a
documented exception stays visible and a larger spill still fails.
"""
import argparse, json, os, re, subprocess, sys
from concurrent.futures import ThreadPoolExecutor

ap = argparse.ArgumentParser()
ap.add_argument("bundle")
ap.add_argument("--ptxas", required=True)
ap.add_argument("-j", type=int, default=os.cpu_count() or 2)
ap.add_argument("--allow-spill", action="append", default=[])
a = ap.parse_args()

manifest = json.load(open(os.path.join(a.bundle, "manifest.json")))
assert manifest.get("format") == "flashmlir-bundle", "not a FlashMLIR bundle"
jobs = []
for k in manifest["kernels"]:
    target = k["config"]["target"]
    archs = ["sm_80", "sm_90"] if target == "sm_80" else [target]
    for arch in archs:
        jobs.append((k, arch))

def run(job):
    k, arch = job
    path = os.path.join(a.bundle, k["file"])
    p = subprocess.run([a.ptxas, f"-arch={arch}", "-v", path, "-o", os.devnull],
                       capture_output=True, text=True)
    out = p.stdout + p.stderr
    r = {"kernel": k["name"], "arch": arch, "ok": p.returncode == 0}
    m = re.search(r"Used (\d+) registers", out)
    r["registers"] = int(m.group(1)) if m else None
    m = re.search(r"(\d+) bytes spill stores, (\d+) bytes spill loads", out)
    r["spill_bytes"] = int(m.group(1)) + int(m.group(2)) if m else None
    m = re.search(r"(\d+) bytes stack frame", out)
    r["stack_bytes"] = int(m.group(1)) if m else None
    r["dynamic_smem"] = k["dynamic_smem"]
    m = re.search(r"\(C75\d\d\)[^\n]*", out)
    if m:  # wgmma serialized by ptxas
        r["ok"], r["log"] = False, m.group(0)
    if not r["ok"]:
        r["log"] = r.get("log") or out[-2000:]
        r["log"] = out[-2000:]
    return r

with ThreadPoolExecutor(a.j) as ex:
    report = list(ex.map(run, jobs))
json.dump(report, open(os.path.join(a.bundle, "ptxas-report.json"), "w"), indent=1)

allow = [(re.compile(x.rsplit(":", 1)[0]), int(x.rsplit(":", 1)[1])) for x in a.allow_spill]


def allowed(r):
    key = f"{r['kernel']} {r['arch']}"
    return r["ok"] and any(rx.search(key) and r["spill_bytes"] <= n for rx, n in allow)


for r in report:
    if r["ok"] and r["spill_bytes"] and allowed(r):
        print(f"ALLOWED {r['kernel']} {r['arch']}: spill_bytes={r['spill_bytes']}")
failed = [r for r in report if not r["ok"] or (r["spill_bytes"] != 0 and not allowed(r))]
for r in failed:
    print(f"FAIL {r['kernel']} {r['arch']}: ok={r['ok']} spill_bytes={r['spill_bytes']}",
          r.get("log", ""))
regs = [r["registers"] for r in report if r["registers"] is not None]
print(f"ptxas: {len(report)} assemblies of {len(manifest['kernels'])} kernels, "
      f"{len(failed)} failed or spilled; registers max {max(regs) if regs else '?'}; "
      f"dynamic shared memory max {max(k['dynamic_smem'] for k in manifest['kernels'])} bytes")
sys.exit(1 if failed else 0)
