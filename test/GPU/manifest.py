"""A bundle's manifest.json with every kernel's "args" as a list: version 2
manifests (fa-compile) keep the argument lists once, in the top-level
"arg_lists", and each kernel's "args" is an index into it
(docs/bundle.md). For the lit tests' one-line checks:
    import sys; sys.path.insert(0, '%S'); from manifest import load; m = load('%t')
"""
import json
import os


def load(bundle):
    m = json.load(open(os.path.join(bundle, "manifest.json")))
    lists = m.get("arg_lists")
    if lists is not None:
        for k in m["kernels"]:
            if isinstance(k.get("args"), int):
                k["args"] = lists[k["args"]]
    return m
