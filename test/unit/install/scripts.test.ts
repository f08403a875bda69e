/** Entry points, launchers, `#!python` rewriting and RECORD text. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { formatRecord, parseRecord } from "../../../src/install/record.js";
import {
  launcherScript,
  ONE_LINE_HEADER,
  parseEntryPoints,
  relocatableHeader,
  rewriteScript,
} from "../../../src/install/scripts.js";
import { UserError } from "../../../src/util/errors.js";

test("entry_points.txt: sections, extras and comments", () => {
  const eps = parseEntryPoints(
    [
      "# comment",
      "[console_scripts]",
      "tool = pkg.cli:main",
      "tool-x = pkg.cli:Group.run [extra1, extra2]",
      "",
      "[gui_scripts]",
      "; also a comment",
      "gui = pkg:gui",
      "[other.group]",
      "ignored = whatever:thing",
    ].join("\n"),
    "x.whl",
  );
  assert.deepEqual(eps.console, [
    { name: "tool", module: "pkg.cli", attr: "main" },
    { name: "tool-x", module: "pkg.cli", attr: "Group.run" },
  ]);
  assert.deepEqual(eps.gui, [{ name: "gui", module: "pkg", attr: "gui" }]);
});

test("entry_points.txt: malformed script entries are refused, naming the wheel", () => {
  for (const line of ["tool = pkg.cli", "../x = pkg:main", "tool = pkg:main()", "= pkg:main"]) {
    assert.throws(
      () => parseEntryPoints(`[console_scripts]\n${line}\n`, "x-1.0-py3-none-any.whl"),
      (err: unknown) =>
        err instanceof UserError && err.message.startsWith("x-1.0-py3-none-any.whl has an invalid"),
      line,
    );
  }
});

test("the launcher is valid Python and valid sh", () => {
  const text = launcherScript({ name: "t", module: "json.tool", attr: "main" });
  execFileSync("python3", ["-c", `compile(open(0).read(), "t", "exec")`], { input: text });
  // sh reads up to the exec on line 2 only.
  execFileSync("sh", ["-n"], { input: text.split("\n").slice(0, 2).join("\n") });
  assert.ok(text.startsWith(relocatableHeader()));
});

test("#!python scripts get a header; others are left alone", () => {
  assert.equal(rewriteScript(Buffer.from("#!/bin/sh\necho\n")), undefined);
  assert.equal(rewriteScript(Buffer.from("\x7fELF...")), undefined);
  const plain = rewriteScript(Buffer.from("#!python\nimport sys\n"));
  assert.equal(plain?.toString(), `${relocatableHeader()}import sys\n`);
  const w = rewriteScript(Buffer.from("#!pythonw -E\r\nimport sys\r\n"));
  assert.equal(w?.toString(), `${relocatableHeader()}import sys\r\n`);
  // A non-UTF-8 declaration on line 2 moves into the header, on its line 2.
  const latin = rewriteScript(Buffer.from("#!python\n# -*- coding: latin-1 -*-\nx = 1\n"));
  assert.equal(latin?.toString().split("\n")[1], "# -*- coding: latin-1 -*-");
  // A docstring or __future__ import first: the one-line header keeps them first.
  for (const body of ['"""Doc."""\n', "\n# c\nfrom __future__ import annotations\n", "r'doc'\n"]) {
    assert.equal(
      rewriteScript(Buffer.from(`#!python\n${body}`))?.toString(),
      ONE_LINE_HEADER + body,
    );
  }
});

test("RECORD rows survive a round trip, quoting included", () => {
  const rows = [
    { path: "pkg/a,b.py", hash: "sha256=abc", size: "3" },
    { path: 'pkg/q"uote.py', hash: "sha256=def", size: "4" },
    { path: "pkg-1.0.dist-info/RECORD", hash: "", size: "" },
  ];
  const text = formatRecord(rows);
  assert.equal(text.split("\n")[0], '"pkg/a,b.py",sha256=abc,3');
  assert.deepEqual(parseRecord(text), rows);
  assert.deepEqual(parseRecord(text.replaceAll("\n", "\r\n")), rows);
  // Python's csv module reads it back the same way.
  const read = execFileSync(
    "python3",
    ["-c", "import csv, json, sys; print(json.dumps(list(csv.reader(sys.stdin))))"],
    { input: text },
  ).toString();
  assert.deepEqual(
    JSON.parse(read),
    rows.map((r) => [r.path, r.hash, r.size]),
  );
});
