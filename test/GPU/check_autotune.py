#!/usr/bin/env python3
"""Checks the candidate groups of an autotune bundle (fa-compile --autotune).

usage: check_autotune.py BUNDLE [--ref PLAIN_BUNDLE] [--spills] [--left-out LOG]

Prints one line per group (its default, the default's variant and the
candidates' name suffixes), then "OK" or one "ERROR ..." line per problem
(exit 1). Checked: every group has exactly one default, named like the group;
every member is a forward kernel with the default's config (the mma_* keys
aside) and a distinct variant; the untuned bundle selects nothing and has no
"autotune" records; kernels outside the groups are the ordinary ones.
--ref: every kernel of the ordinary bundle PLAIN_BUNDLE (fa-compile with the
same selections, no --autotune) is in BUNDLE with the same manifest entry
(the candidate fields aside) and a byte-identical PTX file: an untuned
autotune bundle runs exactly the ordinary kernels. --spills: no candidate
spills more than its default (the resource report of --ptxas). --left-out
LOG: every candidate of the documented list (4|8 warps x 32 rows x 64|32
keys, the default's tile with synchronous copies) that is not in the
manifest is reported as left out in fa-compile's output LOG.
"""
import argparse, json, os, re, sys

ap = argparse.ArgumentParser()
ap.add_argument("bundle")
ap.add_argument("--ref")
ap.add_argument("--spills", action="store_true")
ap.add_argument("--left-out")
a = ap.parse_args()

CAND_KEYS = ("candidate_group", "variant", "default", "selected")
errors = []


def load(d):
    return json.load(open(os.path.join(d, "manifest.json")))


def strip(k, keys=CAND_KEYS):
    return {x: y for x, y in k.items() if x not in keys}


def plain_config(k):
    return {x: y for x, y in k["config"].items() if not x.startswith("mma_")}


def spill(k):
    r = k.get("resources", {})
    return r.get("spill_store_bytes", 0) + r.get("spill_load_bytes", 0)


m = load(a.bundle)
groups = {}
for k in m["kernels"]:
    if "candidate_group" in k:
        groups.setdefault(k["candidate_group"], []).append(k)
    elif k["kind"] == "fwd" and k["config"].get("tensor_cores"):
        errors.append(f"tensor-core forward kernel {k['name']} is in no group")
if "autotune" in m:
    errors.append("an untuned bundle has autotune records")

for g, members in groups.items():
    defaults = [k for k in members if k.get("default")]
    if len(defaults) != 1:
        errors.append(f"group {g}: {len(defaults)} defaults")
        continue
    d = defaults[0]
    if d["name"] != g:
        errors.append(f"group {g}: default is named {d['name']}")
    variants = set()
    for k in members:
        v = tuple(sorted(k["variant"].items()))
        if v in variants:
            errors.append(f"group {g}: {k['name']} repeats a variant")
        variants.add(v)
        if k["kind"] != "fwd" or plain_config(k) != plain_config(d):
            errors.append(f"group {g}: {k['name']} differs in kind or config")
        if "selected" in k:
            errors.append(f"group {g}: {k['name']} is selected before tuning")
        if a.spills and spill(k) > spill(d):
            errors.append(f"group {g}: {k['name']} spills {spill(k)} bytes, the default {spill(d)}")
    var = " ".join(f"{x}={int(y)}" for x, y in d["variant"].items())
    cands = " ".join(k["name"][len(g):] for k in members if k is not d)
    print(f"group {g}: default ({var}); candidates {cands}")

if a.left_out:
    log = open(a.left_out).read()
    reported = set(re.findall(r"left out (\S+) \(spills \d+ bytes; the default \d+\)", log))
    names = {k["name"] for k in m["kernels"]}
    missing = set()
    for g, members in groups.items():
        v = next(k for k in members if k.get("default"))["variant"]
        tile = f"_w{v['mma_warps']}r{v['mma_warp_rows']}n{v['mma_block_n']}"
        expected = {f"_w{w}r32n{n}" for w in (4, 8) for n in (64, 32)} - {tile}
        expected.add(tile + "_sync")
        missing |= {g + s for s in expected} - names
    for name in sorted(missing - reported):
        errors.append(f"candidate {name} is missing but was not reported")
    for name in sorted(reported & names):
        errors.append(f"candidate {name} was reported as left out but is there")
    print(f"left out: {len(missing)} candidates, all reported" if missing <= reported else "left out: unreported")

if a.ref:
    ref = load(a.ref)
    mine = {k["name"]: k for k in m["kernels"]}
    for r in ref["kernels"]:
        k = mine.get(r["name"])
        if k is None:
            errors.append(f"ordinary kernel {r['name']} is missing")
            continue
        if strip(k) != r:
            errors.append(f"{r['name']}: manifest entry differs from the ordinary bundle's")
        same = open(os.path.join(a.bundle, k["file"]), "rb").read() == \
            open(os.path.join(a.ref, r["file"]), "rb").read()
        if not same:
            errors.append(f"{r['name']}: PTX differs from the ordinary bundle's")
    print(f"ref: {len(ref['kernels'])} ordinary kernels compared")

for e in errors:
    print("ERROR", e)
print("OK" if not errors else f"{len(errors)} errors")
sys.exit(1 if errors else 0)
