import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { UserError } from "../../../src/util/errors.js";
import { planOutput, writeOutputFile } from "../../../src/util/output-file.js";
import { tempDir } from "../../support/temp.js";

const tmp = () => tempDir("pyferry-out-");

test("a symlink is written through: the link stays and its target gets the content", async () => {
  const d = tmp();
  mkdirSync(join(d, "real"));
  writeFileSync(join(d, "real", "t.json"), "old");
  symlinkSync("real/t.json", join(d, "link.json"));
  await writeOutputFile(join(d, "link.json"), "new");
  assert.ok(lstatSync(join(d, "link.json")).isSymbolicLink());
  assert.equal(readFileSync(join(d, "real", "t.json"), "utf8"), "new");
  // A link to nothing yet makes its target.
  symlinkSync("real/later.json", join(d, "dangling.json"));
  await writeOutputFile(join(d, "dangling.json"), "made");
  assert.equal(readlinkSync(join(d, "dangling.json")), "real/later.json");
  assert.equal(readFileSync(join(d, "real", "later.json"), "utf8"), "made");
  assert.deepEqual(
    readdirSync(join(d, "real")).sort(),
    ["later.json", "t.json"],
    "no temporary left",
  );
});

test("a replaced file keeps its permissions, beyond what the umask allows", async () => {
  const d = tmp();
  const f = join(d, "tool.py");
  writeFileSync(f, "old");
  chmodSync(f, 0o775);
  await writeOutputFile(f, "new");
  assert.equal(statSync(f).mode & 0o7777, 0o775);
  assert.equal(readFileSync(f, "utf8"), "new");
});

test("a device or FIFO is written to as it is, never replaced by a file", async () => {
  assert.equal((await planOutput("/dev/null")).direct, true);
  await writeOutputFile("/dev/null", "nothing");
  assert.ok(statSync("/dev/null").isCharacterDevice());
  const d = tmp();
  const fifo = join(d, "pipe");
  assert.equal(spawnSync("mkfifo", [fifo]).status, 0);
  const reader = spawn("cat", [fifo]);
  let got = "";
  reader.stdout.on("data", (b: Buffer) => {
    got += b.toString();
  });
  // Listened for before the write: cat may end, and close, before the write returns.
  const closed = new Promise((r) => reader.once("close", r));
  await writeOutputFile(fifo, "through the pipe");
  await closed;
  assert.equal(got, "through the pipe");
  assert.ok(lstatSync(fifo).isFIFO());
});

test("a regular file under /dev (a tmpfs such as /dev/shm) is replaced as any file is", async (t) => {
  if (!existsSync("/dev/shm")) return t.skip("no /dev/shm here");
  const d = tempDir("pyferry-out-", "/dev/shm");
  try {
    const f = join(d, "x.txt");
    await writeOutputFile(f, "first");
    assert.equal((await planOutput(f)).direct, false);
    await writeOutputFile(f, "second");
    assert.equal(readFileSync(f, "utf8"), "second");
  } finally {
    rmSync(d, { recursive: true, force: true });
  }
});

test("a folder, or a file where a folder should be, is refused before any work", async () => {
  const d = tmp();
  await assert.rejects(planOutput(d), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(e.message, `${d} is a folder; name a file to write.`);
    return true;
  });
  writeFileSync(join(d, "f"), "");
  await assert.rejects(planOutput(join(d, "f", "sub", "x.tar.gz")), (e: unknown) => {
    assert.ok(e instanceof UserError);
    assert.equal(
      e.message,
      `${join(d, "f", "sub", "x.tar.gz")} cannot be written: ${join(d, "f")} is a file, not a folder.`,
    );
    return true;
  });
});

test("a missing folder is refused before any work, not made", async () => {
  const d = tmp();
  const out = join(d, "none", "x.tar");
  await assert.rejects(planOutput(out), (e: unknown) => {
    assert.ok(e instanceof UserError);
    // Bad usage, as a folder or a file in the way is.
    assert.equal(e.exitCode, 2);
    assert.equal(
      e.message,
      `${out} cannot be written: the folder ${join(d, "none")} does not exist.`,
    );
    return true;
  });
  await assert.rejects(writeOutputFile(out, "x"), /the folder \S+ does not exist\.$/);
  // A link to a file in a missing folder too.
  symlinkSync(join(d, "gone", "t.json"), join(d, "link.json"));
  await assert.rejects(planOutput(join(d, "link.json")), /the folder \S+gone does not exist\.$/);
  assert.deepEqual(readdirSync(d), ["link.json"]);
});

test("a failed write names the output, never the file written beside it", async (t) => {
  // procfs takes no new files: creating one fails whoever asks.
  if (!existsSync("/proc/self")) return t.skip("no /proc");
  await assert.rejects(
    writeOutputFile("/proc/pyferry-out.json", "{}"),
    (err: unknown) =>
      err instanceof UserError &&
      err.message ===
        "/proc/pyferry-out.json cannot be written: no such file or directory (ENOENT).",
  );
});
