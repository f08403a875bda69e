"""Reference import extractor for differential tests: CPython's own ast.

Reads file paths on stdin (one per line) and prints one JSON object per line:
{"path": ..., "imports": [...sorted unique names...]} or {"path": ..., "error": "..."}.
Relative imports are written with their leading dots; dynamic imports are calls to
__import__ / importlib.import_module / import_module (or a name bound to importlib or to
import_module with `as`) whose first argument is a str literal.
"""
import ast
import json
import sys
import warnings


def aliases(tree):
    """Names bound to importlib and to import_module by `as` anywhere in the file."""
    modules, functions = {"importlib"}, {"__import__", "import_module"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(a.asname for a in node.names if a.name == "importlib" and a.asname)
        elif isinstance(node, ast.ImportFrom) and node.module == "importlib":
            functions.update(a.asname for a in node.names if a.name == "import_module" and a.asname)
    return modules, functions


def names(tree):
    out = set()
    modules, functions = aliases(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            out.add("." * node.level + (node.module or ""))
        elif isinstance(node, ast.Call) and node.args:
            f = node.func
            dynamic = (isinstance(f, ast.Name) and f.id in functions) or (
                isinstance(f, ast.Attribute)
                and f.attr == "import_module"
                and isinstance(f.value, ast.Name)
                and f.value.id in modules
            )
            arg = node.args[0]
            if dynamic and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                out.add(arg.value)
    return sorted(out)


def main():
    warnings.simplefilter("ignore")
    for line in sys.stdin:
        path = line.rstrip("\n")
        if not path:
            continue
        try:
            with open(path, "rb") as f:
                tree = ast.parse(f.read(), filename=path)
            result = {"path": path, "imports": names(tree)}
        except (SyntaxError, ValueError, UnicodeDecodeError, RecursionError, MemoryError) as e:
            result = {"path": path, "error": type(e).__name__ + ": " + str(e)}
        sys.stdout.write(json.dumps(result) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
