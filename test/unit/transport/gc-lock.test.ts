/** The store's gc lock as the remote scripts see it (run here with sh, as on a host). */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { PRELUDE } from "../../../src/transport/scripts.js";
import { tempDir } from "../../support/temp.js";

function busy(root: string): string {
  const r = spawnSync(
    "sh",
    ["-c", `${PRELUDE}\ngc_busy && echo busy || echo free`, "pyferry", root],
    {
      encoding: "utf8",
    },
  );
  assert.equal(r.stderr, "");
  return r.stdout.trim();
}

test("a gc lock counts while its gc lives; a dead gc's, or an old one without a pid, is taken away", () => {
  const root = tempDir("pyferry-gclock-");
  assert.equal(busy(root), "free");
  const lock = join(root, "gc.lock");
  mkdirSync(lock);
  writeFileSync(join(lock, "pid"), `${process.pid}\n`);
  assert.equal(busy(root), "busy");
  const gone = spawnSync("true").pid as number;
  writeFileSync(join(lock, "pid"), `${gone}\n`);
  assert.equal(busy(root), "free");
  assert.ok(!existsSync(lock), "the dead gc's lock is gone");
  mkdirSync(lock);
  assert.equal(busy(root), "busy", "a gc that has not written its pid yet");
  const old = new Date(Date.now() - 5 * 60_000);
  utimesSync(lock, old, old);
  assert.equal(busy(root), "free");
  assert.ok(!existsSync(lock));
});
