#!/usr/bin/python3
"""Generates ONNX's backend node test cases offline into OUT_DIR.

Debian's python3-onnx does not ship the test data but can generate it; the
generator still uses numpy aliases (np.float, np.int, np.bool, np.object)
that numpy 1.24 removed, so they are restored here first.
Usage: gen_onnx_node_tests.py OUT_DIR
"""
import os
import sys
import warnings

import numpy as np

warnings.simplefilter("ignore")
for alias, target in (("float", float), ("int", int), ("bool", bool), ("object", object),
                      ("complex", complex), ("str", str)):
    if alias not in np.__dict__:
        setattr(np, alias, target)

from onnx.backend.test import cmd_tools  # noqa: E402

out = sys.argv[1]
stamp = os.path.join(out, ".complete")
if os.path.exists(stamp):
    sys.exit(0)
sys.argv = ["cmd_tools", "generate-data", "-o", out]
cmd_tools.main()
open(stamp, "w").close()
print("generated", len(os.listdir(os.path.join(out, "node"))), "node test cases in", out)
