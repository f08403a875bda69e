/** Quoting for the remote shell, checked against a real sh: every value arrives as one word. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { test } from "node:test";
import { shCommand, shQuote, splitCommandLine } from "../../../src/transport/shell.js";

const NASTY = [
  "",
  "plain",
  "a b",
  "it's",
  "'",
  "''",
  '"double"',
  "$HOME",
  "`id`",
  "$(id)",
  "x;rm -rf /",
  "back\\slash",
  "new\nline",
  "tab\there",
  "*",
  "-n",
  "ünïcödé",
  "a'b'c\"d\"e",
];

test("shCommand: arguments reach the script exactly, through the shell ssh would use", () => {
  // ssh hands the remote shell one string; `sh -c STRING` is what a login shell does with it.
  const line = shCommand('for a in "$@"; do printf "[%s]" "$a"; done', NASTY);
  const got = execFileSync("sh", ["-c", line], { encoding: "utf8" });
  assert.equal(got, NASTY.map((a) => `[${a}]`).join(""));
  if (execFileSync("sh", ["-c", "command -v bash || true"], { encoding: "utf8" }).trim()) {
    assert.equal(execFileSync("bash", ["-c", line], { encoding: "utf8" }), got);
  }
});

test("shQuote leaves safe words bare and quotes everything else", () => {
  assert.equal(shQuote("abc-1.2/x=y"), "abc-1.2/x=y");
  assert.equal(shQuote(""), "''");
  assert.equal(shQuote("a b"), "'a b'");
  assert.equal(shQuote("it's"), "'it'\\''s'");
});

test("splitCommandLine reads PYFERRY_SSH_COMMAND like a shell would, without expansion", () => {
  assert.deepEqual(splitCommandLine("ssh -F /tmp/cfg"), ["ssh", "-F", "/tmp/cfg"]);
  assert.deepEqual(splitCommandLine(`ssh -o "ProxyJump a b" -i 'x y'`), [
    "ssh",
    "-o",
    "ProxyJump a b",
    "-i",
    "x y",
  ]);
  assert.deepEqual(splitCommandLine("ssh a\\ b $HOME"), ["ssh", "a b", "$HOME"]);
  assert.throws(() => splitCommandLine("ssh 'open"), /unbalanced/);
});
