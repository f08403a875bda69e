/**
 * The wheelhouse store and its release log, with real wheels from the index pip is configured
 * with: add (checked whole, atomic, idempotent, --replace), list, remove, prune by PEP 440
 * order, corrupt, truncated and misnamed wheels refused with nothing added, a setuptools
 * project folder built into the wheelhouse, and mirror building a project that has only an
 * sdist.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { hostname, userInfo } from "node:os";
import { basename, join, relative } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  addSources,
  addWheels,
  listWheels,
  mirrorRequirements,
  openWheelhouse,
  pruneSelection,
  pruneWheels,
  readLog,
  removeWheels,
  type WheelEntry,
  type Wheelhouse,
  wheelhouseRoot,
  withWheelhouse,
} from "../../../src/fleet/index.js";
import { loadPipSettings, withOverrides } from "../../../src/index/pip-config.js";
import { probeInterpreter } from "../../../src/python/interpreter.js";
import { parseRequirement } from "../../../src/python/requirement.js";
import { parseWheelFilename } from "../../../src/python/tags.js";
import { targetFromInterpreter } from "../../../src/python/target.js";
import { UserError } from "../../../src/util/errors.js";
import { indexWheels } from "../../support/mirror.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-wheelhouse-");
process.env.PYFERRY_CACHE_DIR = join(root, "cache");
after(() => rmSync(root, { recursive: true, force: true }));
const PYTHON = process.env.PYFERRY_TEST_PYTHON ?? "python3";

let counter = 0;
function fresh(name: string): string {
  const dir = join(root, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

/** A copy of `wheel` under `name` in a new folder, optionally re-zipped by Python. */
function copyAs(
  wheel: string,
  name: string,
  rezip?: "stored" | "tampered" | "dropped" | "renamed",
): string {
  const out = join(fresh("copy"), name);
  if (!rezip) copyFileSync(wheel, out);
  else {
    const code = `
import sys, zipfile
src, dst, mode = sys.argv[1:4]
done = False
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as z:
    for i in zin.infolist():
        data = zin.read(i.filename)
        name = i.filename
        if mode == "tampered" and not done and name.endswith(".py"):
            data, done = data + b"\\n# changed\\n", True
        if mode == "dropped" and not done and name.endswith(".py"):
            done = True
            continue
        if mode == "renamed":
            top, _, rest = name.partition("/")
            if top.endswith(".dist-info"):
                name = top.split("-")[0] + "-9.9.dist-info/" + rest
                data = data.replace(top.encode() + b"/", (top.split("-")[0] + "-9.9.dist-info/").encode())
        z.writestr(name, data)
`;
    execFileSync(PYTHON, ["-c", code, wheel, out, rezip]);
  }
  return out;
}

async function rejects(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  let caught: unknown;
  await p.catch((err: unknown) => {
    caught = err;
  });
  assert.ok(caught instanceof UserError, `expected a UserError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  assert.doesNotMatch(caught.message, /\n/, "one sentence, one line");
}

/** What a failed change must leave as it was. */
function snapshot(wh: Wheelhouse) {
  return {
    wheels: readdirSync(wh.wheels).sort(),
    log: existsSync(wh.log) ? readFileSync(wh.log, "utf8") : "",
    scratch: existsSync(wh.scratch) ? readdirSync(wh.scratch) : [],
  };
}

let six: string;
let idna: string;
let fsspec: string[];
before(async () => {
  [six] = (await indexWheels("six")) as [string];
  [idna] = (await indexWheels("idna")) as [string];
  fsspec = await indexWheels("fsspec");
  assert.ok(fsspec.length >= 3, "the index has three fsspec versions");
});

describe("wheelhouseRoot", () => {
  test("--wheelhouse, else $PYFERRY_WHEELHOUSE, else ./wheelhouse", () => {
    assert.equal(wheelhouseRoot("/x/y", { PYFERRY_WHEELHOUSE: "/env" }), "/x/y");
    assert.equal(wheelhouseRoot(undefined, { PYFERRY_WHEELHOUSE: "/env" }), "/env");
    assert.equal(wheelhouseRoot(undefined, {}), join(process.cwd(), "wheelhouse"));
  });
  test("reading a wheelhouse that does not exist is one sentence", async () => {
    await rejects(openWheelhouse(join(root, "nowhere")), /There is no wheelhouse at .*nowhere/);
  });
});

describe("add, list, remove and the release log", () => {
  let wh: Wheelhouse;
  before(async () => {
    wh = await openWheelhouse(fresh("house"), { create: true });
  });

  test("add copies wheels in, checked, and logs each with who, where and what", async () => {
    const outcomes = await addWheels(wh, [six, idna]);
    assert.deepEqual(
      outcomes.map((o) => [o.file, o.status]),
      [
        [basename(six), "added"],
        [basename(idna), "added"],
      ],
    );
    assert.deepEqual(readdirSync(wh.wheels).sort(), [basename(idna), basename(six)].sort());
    assert.equal(sha256(join(wh.wheels, basename(six))), sha256(six));
    assert.deepEqual(readdirSync(wh.scratch), [], "no temporary file is left");
    const lines = readFileSync(wh.log, "utf8").trimEnd().split("\n");
    assert.equal(lines.length, 2);
    const first = JSON.parse(lines[0] as string);
    assert.deepEqual(Object.keys(first), [
      "time",
      "action",
      "file",
      "name",
      "version",
      "sha256",
      "user",
      "host",
    ]);
    assert.match(first.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.equal(first.action, "add");
    assert.equal(first.file, basename(six));
    assert.equal(first.name, "six");
    assert.equal(first.version, parseWheelFilename(basename(six)).version);
    assert.equal(first.sha256, sha256(six));
    assert.equal(first.user, userInfo().username);
    assert.equal(first.host, hostname());
  });

  test("adding the same file again changes nothing", async () => {
    const before = snapshot(wh);
    const [o] = await addWheels(wh, [six]);
    assert.equal(o?.status, "unchanged");
    assert.deepEqual(snapshot(wh), before);
  });

  test("a different file of the same name is refused, and taken with replace", async () => {
    const other = copyAs(six, basename(six), "stored");
    assert.notEqual(sha256(other), sha256(six));
    const before = snapshot(wh);
    await rejects(
      addWheels(wh, [other]),
      /already holds a different six-.*; pass --replace to replace it\.$/,
    );
    assert.deepEqual(snapshot(wh), before);
    const [o] = await addWheels(wh, [other], { replace: true });
    assert.equal(o?.status, "replaced");
    assert.equal(sha256(join(wh.wheels, basename(six))), sha256(other));
    const { records } = await readLog(wh.log);
    const [removed, added] = records.slice(-2);
    assert.deepEqual(
      [removed?.action, removed?.sha256, removed?.via],
      ["remove", sha256(six), "replace"],
    );
    assert.deepEqual([added?.action, added?.sha256], ["add", sha256(other)]);
    await addWheels(wh, [six], { replace: true });
  });

  test("the same wheel spelt another way is the same name: refused, or replaced whole", async () => {
    const spelt = basename(six).replace(/^six-/, "Six-");
    const same = copyAs(six, spelt);
    const before = snapshot(wh);
    const [o] = await addWheels(wh, [same]);
    assert.equal(o?.status, "unchanged", "the same bytes under another spelling are there");
    assert.deepEqual(snapshot(wh), before);
    const other = copyAs(six, spelt, "stored");
    await rejects(
      addWheels(wh, [other]),
      new RegExp(`already holds a different ${basename(six).replace(/\./g, "\\.")} .*--replace`),
    );
    await rejects(addWheels(wh, [six, other]), /are the same wheel .* spelt two ways/);
    assert.deepEqual(snapshot(wh), before);
    await addWheels(wh, [other], { replace: true });
    assert.ok(readdirSync(wh.wheels).includes(spelt));
    assert.ok(!readdirSync(wh.wheels).includes(basename(six)), "one file per wheel");
    await addWheels(wh, [six], { replace: true });
    assert.deepEqual(readdirSync(wh.wheels).sort(), [basename(idna), basename(six)].sort());
  });

  test("list gives name, version, file, sha256 and the time it was added", async () => {
    const entries = await listWheels(wh);
    assert.deepEqual(
      entries.map((e) => [e.name, e.file, e.sha256]),
      [
        ["idna", basename(idna), sha256(idna)],
        ["six", basename(six), sha256(six)],
      ],
    );
    const { records } = await readLog(wh.log);
    assert.equal(entries[1]?.added, records.at(-1)?.time);
  });

  test("remove by NAME==VERSION (PEP 440 equality) or file name, logged", async () => {
    const version = parseWheelFilename(basename(six)).version;
    await rejects(removeWheels(wh, ["six==0.0.1"]), /has no wheel six==0\.0\.1\.$/);
    const [gone] = await removeWheels(wh, [`SIX==${version}.0`]);
    assert.equal(gone?.file, basename(six));
    assert.ok(!existsSync(join(wh.wheels, basename(six))));
    // Another spelling of the file's name names the same wheel, as for add.
    const spelt = basename(idna).replace(/^idna-/, "IDNA-");
    await removeWheels(wh, [join("anywhere", spelt)]);
    assert.deepEqual(readdirSync(wh.wheels), []);
    const { records } = await readLog(wh.log);
    assert.deepEqual(
      records.slice(-2).map((r) => [r.action, r.file, r.sha256]),
      [
        ["remove", basename(six), sha256(six)],
        ["remove", basename(idna), sha256(idna)],
      ],
    );
  });
});

describe("prune", () => {
  const entry = (name: string, version: string, tag = "py3-none-any"): WheelEntry => ({
    file: `${name}-${version}-${tag}.whl`,
    name,
    version,
    sha256: "0".repeat(64),
    path: "",
    size: 0,
  });

  test("keeps the N newest versions of each project in PEP 440 order, every file of them", () => {
    const entries = [
      entry("a", "1.9"),
      entry("a", "1.10"),
      entry("a", "1.10", "cp311-cp311-linux_x86_64"),
      entry("a", "2.0rc1"),
      entry("a", "1.10.post1"),
      entry("B_b", "0.1"),
    ];
    const { kept, removed } = pruneSelection(entries, 2);
    // 2.0rc1 > 1.10.post1 > 1.10 > 1.9: not the order of the strings.
    assert.deepEqual(
      kept.map((e) => e.file),
      ["a-2.0rc1-py3-none-any.whl", "a-1.10.post1-py3-none-any.whl", "B_b-0.1-py3-none-any.whl"],
    );
    assert.deepEqual(
      removed.map((e) => e.file),
      ["a-1.9-py3-none-any.whl", "a-1.10-py3-none-any.whl", "a-1.10-cp311-cp311-linux_x86_64.whl"],
    );
  });

  test("real fsspec versions: --dry-run removes nothing, then the oldest go, logged", async () => {
    const wh = await openWheelhouse(fresh("prune"), { create: true });
    await addWheels(wh, [...fsspec, six]);
    const before = snapshot(wh);
    const dry = await pruneWheels(wh, 1, { dryRun: true });
    assert.equal(dry.removed.length, fsspec.length - 1);
    assert.deepEqual(snapshot(wh), before);
    const { kept, removed } = await pruneWheels(wh, 2);
    const versions = fsspec.map((f) => parseWheelFilename(basename(f)).version);
    const newest = [...versions].sort((a, b) => (a < b ? 1 : -1)).slice(0, 2);
    assert.deepEqual(
      kept
        .filter((e) => e.name === "fsspec")
        .map((e) => e.version)
        .sort(),
      [...newest].sort(),
    );
    assert.equal(removed.length, fsspec.length - 2);
    const { records } = await readLog(wh.log);
    const removes = records.filter((r) => r.action === "remove");
    assert.deepEqual(
      removes.map((r) => [r.file, r.via]),
      removed.map((e) => [e.file, "prune"]),
    );
    await rejects(pruneWheels(wh, 0), /--keep takes a whole number/);
  });
});

describe("bad wheels are refused with one sentence and nothing is added", () => {
  let wh: Wheelhouse;
  before(async () => {
    wh = await openWheelhouse(fresh("bad"), { create: true });
    await addWheels(wh, [idna]);
  });
  const refused = async (paths: string[], pattern: RegExp) => {
    const before = snapshot(wh);
    await rejects(addWheels(wh, paths), pattern);
    assert.deepEqual(snapshot(wh), before);
  };

  test("a truncated wheel", async () => {
    const cut = join(fresh("cut"), basename(six));
    writeFileSync(cut, readFileSync(six).subarray(0, 4000));
    await refused([cut], /is not a usable wheel: it is not a readable zip archive/);
  });
  test("a wheel whose file does not match its RECORD", async () => {
    await refused([copyAs(six, basename(six), "tampered")], /has hash .*, but its RECORD says/);
  });
  test("a wheel without a file its RECORD lists, or whose .dist-info folder has another version", async () => {
    await refused(
      [copyAs(six, basename(six), "dropped")],
      /its RECORD lists "six\.py", which it lacks/,
    );
    await refused(
      [copyAs(six, basename(six), "renamed")],
      /its folder six-9\.9\.dist-info does not carry its version 1\.\d+\.\d+/,
    );
  });
  test("a wheel named for another project or version", async () => {
    await refused(
      [copyAs(six, "idna-9.0-py3-none-any.whl")],
      /does not belong to the project idna/,
    );
    await refused(
      [copyAs(six, "six-99.0-py2.py3-none-any.whl")],
      /its METADATA gives version 1\.\d+\.\d+, but its file name says 99\.0\.$/,
    );
  });
  test("a file that is not a wheel, or not there", async () => {
    const text = join(fresh("text"), "notes.txt");
    writeFileSync(text, "hello\n");
    await refused([text], /"notes\.txt" is not a valid wheel file name/);
    const fake = join(fresh("fake"), "fake-1.0-py3-none-any.whl");
    writeFileSync(fake, "not a zip\n");
    await refused([fake], /fake-1\.0-py3-none-any\.whl is not a usable wheel/);
    await refused([join(root, "missing-1.0-py3-none-any.whl")], /does not exist\.$/);
  });
  test("one bad wheel among good ones: none of them is added", async () => {
    const cut = join(fresh("cut"), basename(six));
    writeFileSync(cut, readFileSync(six).subarray(0, 100));
    await refused([fsspec[0] as string, cut], /is not a usable wheel/);
  });
  test("a refused first add into a new folder leaves no folder behind", async () => {
    const dir = join(root, "never-made");
    await assert.rejects(
      withWheelhouse(dir, (w) => addWheels(w, [copyAs(six, "idna-9.0-py3-none-any.whl")])),
      UserError,
    );
    assert.ok(!existsSync(dir));
  });
});

/** A setuptools project (src layout) that needs six. */
function project(dir: string, name: string, version: string): void {
  const pkg = name.replace(/-/g, "_");
  mkdirSync(join(dir, "src", pkg), { recursive: true });
  writeFileSync(
    join(dir, "pyproject.toml"),
    [
      "[build-system]",
      'requires = ["setuptools>=61"]',
      'build-backend = "setuptools.build_meta"',
      "",
      "[project]",
      `name = "${name}"`,
      `version = "${version}"`,
      'requires-python = ">=3.8"',
      'dependencies = ["six"]',
      "",
    ].join("\n"),
  );
  writeFileSync(join(dir, "src", pkg, "__init__.py"), 'GREETING = "hello"\n');
}

function tree(dir: string): string[] {
  return (readdirSync(dir, { recursive: true }) as string[])
    .map((p) => relative(dir, join(dir, p)))
    .sort();
}

describe("project folders", () => {
  test("a setuptools project is built by its backend into the wheelhouse; its folder is untouched", async () => {
    const dir = fresh("proj");
    project(dir, "wh-demo", "0.3.1");
    mkdirSync(join(dir, ".git"));
    writeFileSync(join(dir, ".git", "HEAD"), "ref: refs/heads/main\n");
    // The wheelhouse inside the project (the default ./wheelhouse when run from it) is not copied.
    const wh = await openWheelhouse(join(dir, "wheelhouse"), { create: true });
    const before = tree(dir).filter((p) => !p.startsWith("wheelhouse"));
    const outcomes = await addSources(wh, [dir], { settings: loadPipSettings() });
    assert.deepEqual(
      outcomes.map((o) => [o.file, o.name, o.version, o.status]),
      [["wh_demo-0.3.1-py3-none-any.whl", "wh-demo", "0.3.1", "added"]],
    );
    assert.deepEqual(
      tree(dir).filter((p) => !p.startsWith("wheelhouse")),
      before,
      "the build wrote nothing into the project",
    );
    const { records } = await readLog(wh.log);
    assert.deepEqual(
      records.map((r) => [r.action, r.file, r.via]),
      [["add", "wh_demo-0.3.1-py3-none-any.whl", "build"]],
    );
    const listing = execFileSync(PYTHON, [
      "-c",
      "import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))",
      join(wh.wheels, "wh_demo-0.3.1-py3-none-any.whl"),
    ]).toString();
    assert.match(listing, /^wh_demo\/__init__\.py$/m);
    assert.doesNotMatch(listing, /\.git|wheelhouse/);
  });

  test("a folder that is not a project is one sentence", async () => {
    const wh = await openWheelhouse(fresh("np"), { create: true });
    await rejects(
      addSources(wh, [fresh("empty")], { settings: loadPipSettings() }),
      /is a folder without pyproject\.toml or setup\.py, not a project\.$/,
    );
  });
});

describe("mirror", () => {
  /** A find-links folder holding only an sdist of a project that needs six. */
  function sdistOnly(): string {
    const links = fresh("links");
    const code = `
import io, sys, tarfile
out, top = sys.argv[1], "wh_sdist_only-0.1"
files = {
    "PKG-INFO": "Metadata-Version: 2.2\\nName: wh-sdist-only\\nVersion: 0.1\\nRequires-Dist: six\\n",
    "pyproject.toml": '[build-system]\\nrequires = ["setuptools>=61"]\\nbuild-backend = "setuptools.build_meta"\\n[project]\\nname = "wh-sdist-only"\\nversion = "0.1"\\ndependencies = ["six"]\\n',
    "src/wh_sdist_only/__init__.py": "X = 1\\n",
}
with tarfile.open(out, "w:gz") as t:
    for name, text in files.items():
        data = text.encode()
        info = tarfile.TarInfo(f"{top}/{name}")
        info.size, info.mode = len(data), 0o644
        t.addfile(info, io.BytesIO(data))
`;
    execFileSync(PYTHON, ["-c", code, join(links, "wh_sdist_only-0.1.tar.gz")]);
    return links;
  }

  test("a project with only an sdist is built for the interpreter; with --platform it is refused", async () => {
    const links = sdistOnly();
    const settings = withOverrides(loadPipSettings(), { findLinks: [links] });
    const wh = await openWheelhouse(fresh("mirror"), { create: true });
    const outcomes = await mirrorRequirements(wh, [parseRequirement("wh-sdist-only")], {
      settings,
    });
    assert.deepEqual(outcomes.map((o) => o.name).sort(), ["six", "wh-sdist-only"]);
    assert.ok(existsSync(join(wh.wheels, "wh_sdist_only-0.1-py3-none-any.whl")));
    const { records } = await readLog(wh.log);
    assert.ok(records.every((r) => r.action === "add" && r.via === "mirror"));

    const python = execFileSync(PYTHON, ["-c", "import sys; print(sys.executable)"])
      .toString()
      .trim();
    const target = join(fresh("target"), "target.json");
    writeFileSync(target, JSON.stringify(targetFromInterpreter(await probeInterpreter(python))));
    const other = await openWheelhouse(fresh("mirror"), { create: true });
    await rejects(
      mirrorRequirements(other, [parseRequirement("wh-sdist-only")], {
        settings,
        platform: target,
      }),
      /wh-sdist-only 0\.1 has only an sdist, which pyferry builds only for a local interpreter/,
    );
    assert.deepEqual(readdirSync(other.wheels), []);
  });
});
