"""CPython baseline for `npm run bench:analyze`: ast.parse + ast.walk import extraction.

Reads file paths on stdin (one per line), reads and parses each file and collects its
imports with test/reference/imports.py's own function, in one process. Prints one JSON line:
{"files": N, "failed": N, "imports": N, "seconds": S}, where seconds covers only the
read + parse + walk loop, so interpreter start-up is not counted against CPython.
"""
import ast
import json
import os
import sys
import time
import warnings

# The same extraction the differential tests use as their reference.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "reference"))
from imports import names  # noqa: E402


def main():
    warnings.simplefilter("ignore")
    paths = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    files = failed = imports = 0
    start = time.perf_counter()
    for path in paths:
        files += 1
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), filename=path)
            imports += len(names(tree))
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError):
            failed += 1
    seconds = time.perf_counter() - start
    out = {"files": files, "failed": failed, "imports": imports, "seconds": seconds}
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
