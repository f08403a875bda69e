/**
 * Export and import of a wheelhouse with real wheels: one deterministic tar, a round trip into
 * a new folder with identical wheels and a merged log, idempotent re-imports, name clashes
 * refused, and hostile archives (written by Python's tarfile: "..", absolute paths, symbolic
 * and hard links, other members, truncation, a corrupt wheel) refused with nothing added.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  addWheels,
  exportWheelhouse,
  importWheelhouse,
  openWheelhouse,
  readLog,
  removeWheels,
  type Wheelhouse,
} from "../../../src/fleet/index.js";
import { parseWheelFilename } from "../../../src/python/tags.js";
import { UserError } from "../../../src/util/errors.js";
import { indexWheel } from "../../support/mirror.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-wh-transfer-");
process.env.PYFERRY_CACHE_DIR = join(root, "cache");
after(() => rmSync(root, { recursive: true, force: true }));
const PYTHON = process.env.PYFERRY_TEST_PYTHON ?? "python3";

let counter = 0;
const fresh = (name: string) => join(root, `${name}-${++counter}`);

const digest = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

function wheelsOf(wh: Wheelhouse): Record<string, string> {
  return Object.fromEntries(
    readdirSync(wh.wheels)
      .sort()
      .map((f) => [f, digest(join(wh.wheels, f))]),
  );
}

interface Member {
  name: string;
  /** A file to put in, text, or a link. */
  path?: string;
  text?: string;
  symlink?: string;
  hardlink?: string;
}

/** Write a tar with exactly these members, whatever their names (Python's tarfile). */
function hostileTar(members: Member[]): string {
  const out = `${fresh("hostile")}.tar`;
  const code = `
import io, json, sys, tarfile
spec = json.load(sys.stdin)
with tarfile.open(spec["out"], "w", format=tarfile.GNU_FORMAT) as t:
    for m in spec["members"]:
        info = tarfile.TarInfo(m["name"])
        if "symlink" in m:
            info.type, info.linkname = tarfile.SYMTYPE, m["symlink"]
            t.addfile(info)
        elif "hardlink" in m:
            info.type, info.linkname = tarfile.LNKTYPE, m["hardlink"]
            t.addfile(info)
        else:
            data = open(m["path"], "rb").read() if "path" in m else m["text"].encode()
            info.size, info.mode = len(data), 0o644
            t.addfile(info, io.BytesIO(data))
`;
  execFileSync(PYTHON, ["-c", code], { input: JSON.stringify({ out, members }) });
  return out;
}

async function refused(wh: Wheelhouse, archive: string, pattern: RegExp): Promise<void> {
  const before = { wheels: wheelsOf(wh), log: readFileSync(wh.log, "utf8") };
  let caught: unknown;
  await importWheelhouse(wh, archive).catch((err: unknown) => {
    caught = err;
  });
  assert.ok(caught instanceof UserError, `expected a UserError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  assert.match(caught.message, /cannot be imported: .*\.$/);
  assert.deepEqual({ wheels: wheelsOf(wh), log: readFileSync(wh.log, "utf8") }, before);
  assert.deepEqual(readdirSync(wh.scratch), [], "nothing is left in the scratch folder");
  assert.ok(!existsSync(join(root, "evil.txt")) && !existsSync("/tmp/pyferry-evil.txt"));
}

let six: string;
let idna: string;
let source: Wheelhouse;
before(async () => {
  six = await indexWheel("six");
  idna = await indexWheel("idna");
  source = await openWheelhouse(fresh("source"), { create: true });
  await addWheels(source, [six, idna]);
  await removeWheels(source, [basename(idna)]);
  await addWheels(source, [idna]);
});

describe("export and import", () => {
  test("export writes one deterministic tar of release.log and wheels/*.whl", async () => {
    const a = `${fresh("a")}.tar`;
    const b = `${fresh("b")}.tar`;
    assert.deepEqual(await exportWheelhouse(source, a), {
      wheels: 2,
      bytes: readFileSync(six).length + readFileSync(idna).length,
    });
    await exportWheelhouse(source, b);
    assert.equal(digest(a), digest(b), "the same wheelhouse gives the same bytes");
    const names = execFileSync("tar", ["tf", a]).toString().trim().split("\n");
    assert.deepEqual(names, [
      "release.log",
      "wheels/",
      `wheels/${basename(idna)}`,
      `wheels/${basename(six)}`,
    ]);
  });

  test("a round trip into a new folder gives identical wheels and a merged log", async () => {
    const archive = `${fresh("trip")}.tar`;
    await exportWheelhouse(source, archive);
    const target = await openWheelhouse(fresh("target"), { create: true });
    const result = await importWheelhouse(target, archive);
    assert.deepEqual(wheelsOf(target), wheelsOf(source));
    const from = (await readLog(source.log)).records;
    assert.equal(result.merged, from.length);
    const merged = (await readLog(target.log)).records;
    assert.deepEqual(merged.slice(0, from.length), from, "the other log's records, as they were");
    assert.deepEqual(
      merged.slice(from.length).map((r) => [r.action, r.file, r.via]),
      [
        ["add", basename(idna), "import"],
        ["add", basename(six), "import"],
      ],
    );

    const again = await importWheelhouse(target, archive);
    assert.deepEqual(again.merged, 0);
    assert.ok(again.outcomes.every((o) => o.status === "unchanged"));
    assert.equal((await readLog(target.log)).records.length, merged.length, "nothing is repeated");
  });

  test("into a wheelhouse with history of its own, only the missing records are appended", async () => {
    const archive = `${fresh("hist")}.tar`;
    await exportWheelhouse(source, archive);
    const target = await openWheelhouse(fresh("own"), { create: true });
    await addWheels(target, [six]);
    const own = (await readLog(target.log)).records;
    const result = await importWheelhouse(target, archive);
    assert.deepEqual(
      result.outcomes.map((o) => [o.file, o.status]),
      [
        [basename(idna), "added"],
        [basename(six), "unchanged"],
      ],
    );
    const merged = (await readLog(target.log)).records;
    assert.deepEqual(merged.slice(0, own.length), own);
  });

  test("a remove in the archive's log of a wheel still held here is not merged: the log stays true", async () => {
    const a = await openWheelhouse(fresh("a"), { create: true });
    await addWheels(a, [six, idna]);
    const b = await openWheelhouse(fresh("b"), { create: true });
    const first = `${fresh("first")}.tar`;
    await exportWheelhouse(a, first);
    assert.deepEqual((await importWheelhouse(b, first)).skipped, []);
    await removeWheels(a, [basename(idna)]);
    const second = `${fresh("second")}.tar`;
    await exportWheelhouse(a, second);
    const result = await importWheelhouse(b, second);
    assert.deepEqual(
      result.skipped.map((r) => [r.action, r.file]),
      [["remove", basename(idna)]],
    );
    assert.equal(result.merged, 0);
    assert.ok(existsSync(join(b.wheels, basename(idna))), "an import never removes");
    // Replayed, the log gives exactly what the wheelhouse holds.
    const present = new Map<string, string>();
    for (const r of (await readLog(b.log)).records) {
      if (r.action === "add") present.set(r.file, r.sha256);
      else if (present.get(r.file) === r.sha256) present.delete(r.file);
    }
    assert.deepEqual(Object.fromEntries(present), wheelsOf(b));
    // Removed here too, the same record then merges: it is true of this wheelhouse as well.
    await removeWheels(b, [basename(idna)]);
    const again = await importWheelhouse(b, second);
    assert.deepEqual(again.skipped, []);
    assert.equal(again.merged, 1);
  });

  test("a folder given as the archive is one sentence, nothing imported", async () => {
    const target = await openWheelhouse(fresh("folder"), { create: true });
    await addWheels(target, [six]);
    const dir = fresh("not-a-tar");
    mkdirSync(dir);
    await refused(
      target,
      dir,
      /it is a folder, not a tar \(pyferry wheelhouse export writes one\)/,
    );
  });

  test("a wheel of the same name with other content is refused", async () => {
    const target = await openWheelhouse(fresh("clash"), { create: true });
    const other = join(fresh("other"), basename(six));
    mkdirSync(join(other, ".."), { recursive: true });
    execFileSync(PYTHON, [
      "-c",
      "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1]) as a, zipfile.ZipFile(sys.argv[2], 'w') as b:\n    [b.writestr(i.filename, a.read(i.filename)) for i in a.infolist()]",
      six,
      other,
    ]);
    await addWheels(target, [other]);
    const archive = `${fresh("clash")}.tar`;
    await exportWheelhouse(source, archive);
    await refused(target, archive, /already holds a different six-/);
  });
});

describe("hostile archives are refused and add nothing", () => {
  let target: Wheelhouse;
  before(async () => {
    target = await openWheelhouse(fresh("guarded"), { create: true });
    await addWheels(target, [idna]);
  });
  const wheel = (): Member => ({ name: `wheels/${basename(six)}`, path: six });

  test("a member that climbs out with ..", async () => {
    await refused(
      target,
      hostileTar([wheel(), { name: "../evil.txt", text: "x" }]),
      /member "\.\.\/evil\.txt" points outside the wheelhouse/,
    );
    await refused(
      target,
      hostileTar([{ name: "wheels/../../evil-1.0-py3-none-any.whl", path: six }]),
      /points outside the wheelhouse/,
    );
  });
  test("an absolute path", async () => {
    await refused(
      target,
      hostileTar([{ name: "/tmp/pyferry-evil.txt", text: "x" }]),
      /holds the absolute path "\/tmp\/pyferry-evil\.txt"/,
    );
  });
  test("symbolic and hard links", async () => {
    await refused(
      target,
      hostileTar([{ name: `wheels/${basename(six)}`, symlink: "/etc/passwd" }]),
      /is a symbolic link/,
    );
    await refused(
      target,
      hostileTar([
        { name: "release.log", text: "" },
        { name: `wheels/${basename(six)}`, hardlink: "release.log" },
      ]),
      /is a hard link/,
    );
  });
  test("members other than release.log and wheels/*.whl, and repeated ones", async () => {
    await refused(
      target,
      hostileTar([{ name: "wheels/notes.txt", text: "x" }]),
      /neither release\.log nor a wheel/,
    );
    await refused(
      target,
      hostileTar([{ name: "run.sh", text: "x" }]),
      /neither release\.log nor a wheel/,
    );
    await refused(target, hostileTar([wheel(), wheel()]), /appears twice/);
  });
  test("a truncated archive, and a corrupt wheel inside a good one", async () => {
    const whole = `${fresh("whole")}.tar`;
    await exportWheelhouse(source, whole);
    const cut = `${fresh("cut")}.tar`;
    writeFileSync(cut, readFileSync(whole).subarray(0, 5000));
    await refused(target, cut, /it is truncated/);
    const garbage = `${fresh("garbage")}.tar`;
    writeFileSync(garbage, "garbage\n");
    await refused(target, garbage, /it is not a wheelhouse export/);
    const broken = join(fresh("broken"), basename(six));
    mkdirSync(join(broken, ".."), { recursive: true });
    writeFileSync(broken, readFileSync(six).subarray(0, 3000));
    await assert.rejects(
      importWheelhouse(target, hostileTar([{ name: `wheels/${basename(six)}`, path: broken }])),
      /is not a usable wheel/,
    );
    assert.deepEqual(Object.keys(wheelsOf(target)), [basename(idna)]);
  });

  test("a release log that is not true of the archive's wheels", async () => {
    const record = (over: Record<string, string>) =>
      JSON.stringify({
        time: "2020-01-01T00:00:00Z",
        action: "add",
        file: basename(six),
        name: "six",
        version: parseWheelFilename(basename(six)).version,
        sha256: digest(six),
        user: "x",
        host: "y",
        ...over,
      });
    const withLog = (...lines: string[]) =>
      hostileTar([{ name: "release.log", text: `${lines.join("\n")}\n` }, wheel()]);
    await refused(
      target,
      withLog(record({ sha256: "00" })),
      /has a record that is not one of a wheel/,
    );
    await refused(
      target,
      withLog(record({ name: "other" })),
      /has a record that is not one of a wheel/,
    );
    await refused(
      target,
      withLog(record({ file: "ghost-1.0-py3-none-any.whl", name: "ghost", version: "1.0" })),
      /says ghost-1\.0-py3-none-any\.whl .* is in it, and the archive does not hold that file/,
    );
    // Added and removed again: history, not a claim about the archive.
    const ghost = { file: "ghost-1.0-py3-none-any.whl", name: "ghost", version: "1.0" };
    const fine = withLog(record(ghost), record({ ...ghost, action: "remove" }), record({}));
    assert.ok((await importWheelhouse(target, fine)).merged >= 2);
  });
});
