/** A remembered hash is used only while the file is provably the same one. */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, rmSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { memoSha256, memoSha256Sync } from "../../../src/util/hash-memo.js";
import { tempDir } from "../../support/temp.js";

const dir = tempDir("pyferry-memo-");
after(() => rmSync(dir, { recursive: true, force: true }));

test("hashed once; rehashed after a same-size edit that even restores the mtime", async () => {
  process.env.PYFERRY_CACHE_DIR = join(dir, "cache");
  const file = join(dir, "data.bin");
  writeFileSync(file, "aaaa");
  let computed = 0;
  const real = async () => {
    computed++;
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  };
  const first = await memoSha256(file, real);
  assert.equal(await memoSha256(file, real), first);
  assert.equal(
    memoSha256Sync(file, () => assert.fail("should be remembered")),
    first,
  );
  assert.equal(computed, 1);
  const before = statSync(file);
  await sleep(20);
  writeFileSync(file, "bbbb");
  utimesSync(file, before.atime, before.mtime);
  const second = await memoSha256(file, real);
  assert.equal(computed, 2);
  assert.notEqual(second, first);
  assert.equal(second, createHash("sha256").update("bbbb").digest("hex"));
});
