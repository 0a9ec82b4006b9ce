#!/usr/bin/env python3
"""Parses the last line of stdin as a JSON object and prints its fields.

Each field is printed as `key=value` (value in JSON, keys in the object's
order), so FileCheck can check them one per line. Fails when the last line is
not a JSON object.
"""
import json
import sys

lines = sys.stdin.read().splitlines()
if not lines:
    sys.exit("json-fields.py: empty input")
obj = json.loads(lines[-1])
if not isinstance(obj, dict):
    sys.exit("json-fields.py: the last line is not a JSON object")
for key, value in obj.items():
    print("%s=%s" % (key, json.dumps(value)))
