/** The bundle lock when its owner could not be written: on a full disk, and left empty. */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { acquireLock } from "../../../src/bundle/lock.js";
import { tempDir } from "../../support/temp.js";

test("a lock whose owner cannot be written (disk full) is not left behind", async () => {
  const mnt = tempDir("pyferry-lock-full-");
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=64k", "tmpfs", mnt]);
  try {
    const filler = join(mnt, "filler");
    assert.throws(() => writeFileSync(filler, Buffer.alloc(1 << 20)), /ENOSPC/);
    const path = join(mnt, "bundle.lock");
    await assert.rejects(acquireLock(path), /ENOSPC/);
    assert.ok(!existsSync(path), "the empty lock was left");
    rmSync(filler);
    const lock = await acquireLock(path, { timeoutMs: 1_000 });
    assert.ok(lock);
    await lock.release();
  } finally {
    execFileSync("umount", [mnt]);
    rmSync(mnt, { recursive: true, force: true });
  }
});

test("an empty lock is broken once its owner had time to write it, not before", async () => {
  const dir = tempDir("pyferry-lock-empty-");
  const path = join(dir, "bundle.lock");
  writeFileSync(path, "");
  const old = new Date(Date.now() - 10_000);
  utimesSync(path, old, old);
  let t = performance.now();
  const lock = await acquireLock(path, { timeoutMs: 5_000 });
  assert.ok(lock);
  assert.ok(performance.now() - t < 1_000, "it waited for an owner that never writes");
  await lock.release();

  // Just created: its owner may be about to write it.
  writeFileSync(path, "");
  t = performance.now();
  const later = await acquireLock(path, { timeoutMs: 10_000 });
  assert.ok(later);
  assert.ok(performance.now() - t >= 1_500, "a lock being written was broken");
  await later.release();
  rmSync(dir, { recursive: true, force: true });
});
