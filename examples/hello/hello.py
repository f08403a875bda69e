"""A small program pyferry can analyze and run: it reads a data file, does a bit of
numerical work, prints a table, and fetches nothing (no network needed)."""

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import yaml
from tabulate import tabulate

from greet import banner
from greet.words import farewell

try:
    import ujson as json  # faster when present, not required
except ImportError:
    import json

if sys.platform == "win32":
    import colorama

    colorama.just_fix_windows_console()

if TYPE_CHECKING:
    from collections.abc import Sequence


def stats(values: "Sequence[float]") -> dict:
    arr = np.asarray(values, dtype=float)
    return {"n": int(arr.size), "mean": float(arr.mean()), "std": float(arr.std())}


def main() -> int:
    with open(Path(__file__).with_name("config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    print(banner(config["name"]))
    rows = [[k, v] for k, v in stats(config["values"]).items()]
    print(tabulate(rows, headers=["stat", "value"]))
    print(json.dumps({"ok": True, "args": sys.argv[1:]}))
    print(farewell(config["name"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
