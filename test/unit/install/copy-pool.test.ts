/** Copying on worker threads: contents, modes, files already there, and errors with their code. */
import assert from "node:assert/strict";
import { linkSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { copyFiles } from "../../../src/install/copy-pool.js";
import { tempDir } from "../../support/temp.js";

const work = tempDir("pyferry-copy-pool-");
after(() => rmSync(work, { recursive: true, force: true }));

test("many files are copied with their modes; a file already there is replaced, not written into", async () => {
  const src = join(work, "src");
  const dest = join(work, "dest");
  mkdirSync(src);
  mkdirSync(dest);
  const files: [string, string, number][] = [];
  for (let i = 0; i < 300; i++) {
    writeFileSync(join(src, `f${i}`), `file ${i}\n`.repeat(i + 1));
    files.push([join(src, `f${i}`), join(dest, `f${i}`), i % 3 === 0 ? 0o755 : 0o644]);
  }
  // A destination that is a hardlink to its own source (as into a cache): writing into it
  // would change the source.
  linkSync(join(src, "f7"), join(dest, "f7"));
  writeFileSync(join(src, "f7"), "new contents\n");
  const before = readFileSync(join(src, "f7"), "utf8");
  const replaced = await copyFiles(files);
  assert.deepEqual(
    replaced.flatMap((r, i) => (r ? [i] : [])),
    [7],
  );
  for (const [i, [from, to, mode]] of files.entries()) {
    assert.equal(readFileSync(to, "utf8"), readFileSync(from, "utf8"), `f${i}`);
    assert.equal(statSync(to).mode & 0o777, mode, `f${i}`);
  }
  assert.notEqual(statSync(join(dest, "f7")).ino, statSync(join(src, "f7")).ino);
  assert.equal(readFileSync(join(src, "f7"), "utf8"), before);
});

test("a failure is thrown with its code once every chunk has settled", async () => {
  const dest = join(work, "dest-missing");
  mkdirSync(dest);
  const ok = join(work, "ok");
  writeFileSync(ok, "ok\n");
  const files: [string, string, number][] = [];
  for (let i = 0; i < 400; i++) files.push([ok, join(dest, `f${i}`), 0o644]);
  files[200] = [join(work, "no-such-file"), join(dest, "f200"), 0o644];
  await assert.rejects(copyFiles(files), (err: NodeJS.ErrnoException) => {
    assert.equal(err.code, "ENOENT");
    return true;
  });
  // The chunks after the failing one still ran to the end: nothing is copying any more.
  assert.equal(readFileSync(join(dest, "f399"), "utf8"), "ok\n");
});
