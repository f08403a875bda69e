#!/usr/bin/env python3
"""Regenerate data/stdlib/<X.Y>.json: the top-level standard-library module names per version.

Each table is a sorted JSON array of names, private "_xxx" ones included, covering every platform
(msvcrt and winreg count even in a table built on Linux). Sources, per version:

* 3.10 and later: sys.stdlib_module_names of a real interpreter of that version, verbatim.

* 3.8 and 3.9 have no sys.stdlib_module_names, so the table is derived from a real interpreter
  with the rule the interpreter probe (data/python/probe.py) applies at run time:
    1. start from sys.builtin_module_names;
    2. add every top-level module found in the sys.path entries that lie inside the stdlib
       directories (sysconfig "stdlib"/"platstdlib", i.e. Lib and lib-dynload) but not in a
       site-packages or dist-packages directory: NAME.py, NAME.pyc, NAME + an extension-module
       suffix (".cpython-38-x86_64-linux-gnu.so", ".abi3.so", ".so"), and NAME/ holding __init__.py;
    3. add the names CPython has but a given build may lack: the frozen _frozen_importlib pair,
       modules of other platforms (nt, msvcrt, winreg, winsound, _winapi, _overlapped, _msi,
       msilib, _scproxy), extension modules needing optional libraries (_dbm, _gdbm, _tkinter),
       and packages distributions split out (tkinter, idlelib, turtledemo, distutils, lib2to3,
       ensurepip);
    4. drop names that are not identifiers, and the test and demo modules that
       sys.stdlib_module_names leaves out as well: test, _test*, __hello__*, __phello__*,
       _ctypes_test, xx* and _xx* (xxlimited, xxsubtype, _xxtestfuzz, ...), plus the site hooks
       sitecustomize/usercustomize and __main__.
  Run on a 3.10 interpreter this rule reproduces its sys.stdlib_module_names exactly; the script
  prints that comparison for every 3.10+ interpreter it finds, as a check on the rule.

* 3.14, when no 3.14 interpreter is available: the 3.13 table plus the changes below, taken from
  "What's New In Python 3.14" and CPython's Python/stdlib_module_names.h on the 3.14 branch.

Usage: python3 scripts/gen-stdlib-tables.py [X.Y=/path/to/python ...]
Interpreters not named on the command line are looked up as $PYENV_ROOT/versions/X.Y*/bin/python
(PYENV_ROOT defaults to ~/.pyenv), then as pythonX.Y on PATH.
"""

import glob
import json
import os
import shutil
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "data", "stdlib")
INTERPRETER_VERSIONS = ["3.8", "3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]

CHANGES_3_14 = {
    "added": [
        "_apple_support",  # stdout/stderr to the Apple system log (gh-126925)
        "_ast_unparse",  # ast.unparse moved out of ast.py (gh-118761)
        "_hmac",  # HACL* HMAC (gh-99108)
        "_py_warnings",  # pure-Python warnings, for context-aware warnings (gh-128384)
        "_remote_debugging",  # PEP 768 and asyncio introspection
        "_types",  # C home of the types module's core types (gh-109599, gh-118761)
        "_zstd",  # PEP 784
        "annotationlib",  # PEP 649/749
        "compression",  # PEP 784
    ],
    # PEP 784 moved _compression to compression._common._streams.
    "removed": ["_compression"],
}

# The rule itself is the probe's: data/python/probe.py --stdlib-derived prints it.
PROBE = os.path.join(ROOT, "data", "python", "probe.py")

REAL_SOURCE = "import json, sys; print(json.dumps(sorted(sys.stdlib_module_names)))"


def find_interpreter(version, given):
    if version in given:
        return given[version]
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    for candidate in sorted(glob.glob(os.path.join(root, "versions", version + ".*", "bin", "python"))):
        if run(candidate, "import sys; print(sys.version_info[:2])").strip() == "(%s, %s)" % tuple(
            version.split(".")
        ):
            return candidate
    return shutil.which("python" + version)


def run(python, source):
    return subprocess.check_output([python, "-I", "-c", source], universal_newlines=True)


def write_table(version, names):
    path = os.path.join(OUT_DIR, version + ".json")
    with open(path, "w") as handle:
        json.dump(sorted(set(names)), handle, indent=2)
        handle.write("\n")
    print("wrote %s (%d names)" % (os.path.relpath(path, ROOT), len(set(names))))


def read_table(version):
    with open(os.path.join(OUT_DIR, version + ".json")) as handle:
        return json.load(handle)


def main(argv):
    given = dict(arg.split("=", 1) for arg in argv)
    os.makedirs(OUT_DIR, exist_ok=True)
    for version in INTERPRETER_VERSIONS:
        python = find_interpreter(version, given)
        if python is None:
            if version == "3.14":
                table = set(read_table("3.13"))
                table.update(CHANGES_3_14["added"])
                table.difference_update(CHANGES_3_14["removed"])
                write_table(version, table)
            else:
                print("no %s interpreter found; kept the existing table" % version, file=sys.stderr)
            continue
        derived = json.loads(subprocess.check_output([python, "-I", PROBE, "--stdlib-derived"], universal_newlines=True))
        if version in ("3.8", "3.9"):
            write_table(version, derived)
            continue
        real = json.loads(run(python, REAL_SOURCE))
        write_table(version, real)
        extra = sorted(set(derived) - set(real))
        missing = sorted(set(real) - set(derived))
        print(
            "  rule check on %s: rule adds %s, rule misses %s" % (python, extra, missing),
            file=sys.stderr,
        )


if __name__ == "__main__":
    main(sys.argv[1:])
