#!/usr/bin/env python3
"""Runs a command and succeeds iff it exits with the expected status.

usage: expect-exit.py STATUS COMMAND [ARGS...]

The command's stdout and stderr are passed through unchanged (for FileCheck).
"""
import subprocess
import sys

expected = int(sys.argv[1])
proc = subprocess.run(sys.argv[2:])
if proc.returncode != expected:
    sys.stderr.write(
        "expect-exit.py: '%s' exited with %d, expected %d\n"
        % (" ".join(sys.argv[2:]), proc.returncode, expected)
    )
    sys.exit(1)
