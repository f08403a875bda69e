"""CPython baseline for `npm run bench:analyze`: ast.parse + ast.walk import extraction.

Reads file paths on stdin (one per line), reads and parses each file and collects its
imports the way test/reference/imports.py does, in one process. Prints one JSON line:
{"files": N, "failed": N, "imports": N, "seconds": S}, where seconds covers only the
read + parse + walk loop, so interpreter start-up is not counted against CPython.
"""
import ast
import json
import sys
import time
import warnings


def names(tree):
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and node.args:
            f = node.func
            dynamic = (isinstance(f, ast.Name) and f.id in ("__import__", "import_module")) or (
                isinstance(f, ast.Attribute)
                and f.attr == "import_module"
                and isinstance(f.value, ast.Name)
                and f.value.id == "importlib"
            )
            arg = node.args[0]
            if dynamic and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
    return out


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
