#!/usr/bin/env python3
"""Checks the cubins of a FlashMLIR kernel bundle (no GPU needed).

Every kernel of the manifest must name a cubin ("cubin", beside its PTX,
written by `fa-compile --ptxas --cubin`) that is a 64-bit ELF for the CUDA
machine (EM_CUDA = 190) whose SM version (ELF e_flags) is the kernel's
target; `--expect-none`: no kernel may name one and no *.cubin may lie in
the bundle. Prints one summary line; exits 1 on any failure.

usage: check_cubins.py BUNDLE_DIR [--expect-none]
"""
import argparse, json, os, re, struct, sys

ap = argparse.ArgumentParser()
ap.add_argument("bundle")
ap.add_argument("--expect-none", action="store_true")
a = ap.parse_args()

manifest = json.load(open(os.path.join(a.bundle, "manifest.json")))
assert manifest.get("format") == "flashmlir-bundle", "not a FlashMLIR bundle"
kernels = manifest["kernels"]
failures = []


def elf_sm(path):
    """The SM version (e.g. 90) an ELF cubin is for, or an error string."""
    b = open(path, "rb").read()
    if len(b) < 64 or b[:4] != b"\x7fELF":
        return "not an ELF file"
    if b[4] != 2:
        return "not a 64-bit ELF"
    machine = struct.unpack_from("<H", b, 18)[0]
    if machine != 190:
        return f"e_machine {machine}, not EM_CUDA (190)"
    flags = struct.unpack_from("<I", b, 48)[0]
    # CUDA's ELF ABI version 7 keeps the SM in the low byte of e_flags;
    # version 8 (ptxas 12.8 and later) in the second byte.
    return (flags >> 8) & 0xFF if b[8] >= 8 else flags & 0xFF


if a.expect_none:
    named = [k["name"] for k in kernels if "cubin" in k]
    files = [f for f in os.listdir(a.bundle) if f.endswith(".cubin")]
    if named or files:
        failures.append(f"cubins where none were asked for: {named[:3]} {files[:3]}")
else:
    for k in kernels:
        if "cubin" not in k:
            failures.append(f"{k['name']}: no cubin")
            continue
        path = os.path.join(a.bundle, k["cubin"])
        if os.path.splitext(k["cubin"])[0] != os.path.splitext(k["file"])[0]:
            failures.append(f"{k['name']}: cubin {k['cubin']} is not beside {k['file']}")
        if not os.path.exists(path):
            failures.append(f"{k['name']}: {k['cubin']} missing")
            continue
        sm = elf_sm(path)
        want = int(re.fullmatch(r"sm_(\d+)a?", k["config"]["target"]).group(1))
        if sm != want:
            failures.append(f"{k['name']}: {k['cubin']}: {sm} (want SM {want})")

for f in failures[:20]:
    print("FAIL", f)
if a.expect_none:
    print(f"cubins: {len(kernels)} kernels, none with a cubin" if not failures
          else f"cubins: {len(failures)} failures")
else:
    print(f"cubins: {len(kernels)} kernels, all with an EM_CUDA cubin for their target"
          if not failures else f"cubins: {len(failures)} of {len(kernels)} kernels failed")
sys.exit(1 if failures else 0)
