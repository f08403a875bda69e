/**
 * The installer on small wheels built here with Python's zipfile: unpacking into the cache,
 * every rule of the wheel spec at install time, hostile archives, concurrent writers, link
 * isolation, relocation, bytecode, uninstall and cache maintenance.
 */
import assert from "node:assert/strict";
import { execFile, execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import {
  cacheInfo,
  cachePaths,
  fetchDist,
  fetchMany,
  findUnpacked,
  pruneCache,
  type UnpackedWheel,
  unpackWheel,
} from "../../../src/install/cache.js";
import { compileBytecode } from "../../../src/install/compile.js";
import { createVenv, type EnvLayout, layoutFor } from "../../../src/install/env.js";
import { parseRecord } from "../../../src/install/record.js";
import { ONE_LINE_HEADER } from "../../../src/install/scripts.js";
import { CachedTreeChanged } from "../../../src/install/tree-check.js";
import { unpackMany } from "../../../src/install/unpack-pool.js";
import { extractWheel } from "../../../src/install/wheel-archive.js";
import {
  BatchInstall,
  installAll,
  installWheel,
  uninstall,
} from "../../../src/install/wheel-install.js";
import { type InterpreterInfo, probeInterpreter } from "../../../src/python/interpreter.js";
import { UserError } from "../../../src/util/errors.js";
import { tempDir } from "../../support/temp.js";

const run = promisify(execFile);
const root = tempDir("pyferry-install-");
after(() => {
  spawnSync("chmod", ["-R", "u+w", root]);
  rmSync(root, { recursive: true, force: true });
});
const CHILD = fileURLToPath(new URL("../../support/install-child.js", import.meta.url));
const DIST_INSTALL = fileURLToPath(new URL("../../../src/install/", import.meta.url));
const PYTHON = execFileSync(process.env.PYFERRY_TEST_PYTHON ?? "python3", [
  "-c",
  "import sys; print(sys.executable)",
])
  .toString()
  .trim();
const isRoot = process.getuid?.() === 0;

let counter = 0;
function fresh(name: string): string {
  const dir = join(root, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** Point the cache at a new empty directory; returns it. */
function freshCache(): string {
  const dir = fresh("cache");
  process.env.PYFERRY_CACHE_DIR = dir;
  return dir;
}

interface Entry {
  name: string;
  data?: string | Buffer;
  /** Full st_mode for the zip's external attributes; default a regular 0644 file. */
  mode?: number;
}

interface WheelSpec {
  filename: string;
  distInfo: string;
  entries: Entry[];
  /** Leave these out of RECORD. */
  omit?: string[];
  /** Replace these RECORD rows ([path, hash, size]). */
  override?: Record<string, [string, string, string]>;
  /** Write no RECORD at all. */
  noRecord?: boolean;
  /** Entries written uncompressed (ZIP_STORED). */
  stored?: string[];
  /**
   * Entries whose local header carries a 2,000-byte extra field the central directory does not
   * (its bytes turned into the entry's comment there), as some zip writers leave them.
   */
  localExtra?: string[];
}

const BUILD = `
import base64, csv, hashlib, io, json, struct, sys, zipfile
spec = json.load(sys.stdin)
out = io.StringIO()
rec = csv.writer(out, lineterminator="\\n")
with zipfile.ZipFile(spec["path"], "w", zipfile.ZIP_DEFLATED) as z:
    for e in spec["entries"]:
        data = base64.b64decode(e["b64"])
        info = zipfile.ZipInfo(e["name"], (2024, 1, 1, 0, 0, 0))
        info.external_attr = e["mode"] << 16
        stored = e["name"] in spec["stored"]
        info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
        if e["name"] in spec["localExtra"]:
            info.extra = struct.pack("<HH", 0xCAFE, 1996) + bytes(1996)
        z.writestr(info, data)
        if e["name"].endswith("/") or e["name"] in spec["omit"]:
            continue
        if e["name"] in spec["override"]:
            rec.writerow(spec["override"][e["name"]])
            continue
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rec.writerow([e["name"], "sha256=" + digest, len(data)])
    if not spec["noRecord"]:
        rec.writerow([spec["distInfo"] + "/RECORD", "", ""])
        z.writestr(spec["distInfo"] + "/RECORD", out.getvalue())
if spec["localExtra"]:
    b = bytearray(open(spec["path"], "rb").read())
    end = b.rfind(b"PK\\x05\\x06")
    count, size, pos = struct.unpack_from("<HII", b, end + 10)
    for _ in range(count):
        n, x, c = struct.unpack_from("<HHH", b, pos + 28)
        if b[pos + 46 : pos + 46 + n].decode() in spec["localExtra"]:
            struct.pack_into("<HH", b, pos + 30, 0, c + x)
        pos += 46 + n + x + c
    open(spec["path"], "wb").write(b)
`;

function recordHash(text: string): string {
  return `sha256=${createHash("sha256").update(text).digest("base64url")}`;
}

function sha256(path: string): string {
  return createHash("sha256").update(readFileSync(path)).digest("hex");
}

/** Write the wheel into a new directory; returns its path and sha256. */
function buildWheel(spec: WheelSpec): { path: string; sha256: string } {
  const path = join(fresh("wheels"), spec.filename);
  const entries = spec.entries.map((e) => ({
    name: e.name,
    b64: Buffer.from(e.data ?? "").toString("base64"),
    mode: e.mode ?? 0o100644,
  }));
  const input = JSON.stringify({
    path,
    distInfo: spec.distInfo,
    entries,
    omit: spec.omit ?? [],
    override: spec.override ?? {},
    noRecord: spec.noRecord ?? false,
    stored: spec.stored ?? [],
    localExtra: spec.localExtra ?? [],
  });
  execFileSync(PYTHON, ["-c", BUILD], { input });
  return { path, sha256: sha256(path) };
}

/**
 * Change the wheel at `path` in place: `change` gets its bytes and the offsets of the entry
 * `name`'s central directory record and local header.
 */
function patchEntry(
  path: string,
  name: string,
  change: (bytes: Buffer, central: number, local: number) => void,
): void {
  const b = readFileSync(path);
  const end = b.lastIndexOf(Buffer.from("PK\x05\x06", "latin1"));
  let pos = b.readUInt32LE(end + 16);
  for (let i = b.readUInt16LE(end + 10); i > 0; i--) {
    const n = b.readUInt16LE(pos + 28);
    if (b.toString("utf8", pos + 46, pos + 46 + n) === name) {
      change(b, pos, b.readUInt32LE(pos + 42));
      writeFileSync(path, b);
      return;
    }
    pos += 46 + n + b.readUInt16LE(pos + 30) + b.readUInt16LE(pos + 32);
  }
  throw new Error(`${name} is not in ${path}`);
}

/** A wheel with bad/big.py, changed by `change` (see patchEntry); its path and sha256. */
function patchedWheel(
  spec: WheelSpec,
  change: (bytes: Buffer, central: number, local: number) => void,
): { path: string; sha256: string } {
  const { path } = buildWheel(spec);
  patchEntry(path, "bad/big.py", change);
  return { path, sha256: sha256(path) };
}

const DEMO_INIT = `
import sys
def main():
    print("console", sys.prefix)
def gui():
    print("gui", sys.prefix)
`;

/** A wheel that uses every part of the spec; `name` and `version` vary it. */
function demoSpec(
  opts: { name?: string; version?: string; purelib?: boolean; extra?: Entry[] } = {},
): WheelSpec {
  const name = opts.name ?? "demo";
  const version = opts.version ?? "1.0";
  const di = `${name}-${version}.dist-info`;
  const data = `${name}-${version}.data`;
  return {
    filename: `${name}-${version}-py3-none-any.whl`,
    distInfo: di,
    entries: [
      { name: `${name}/`, mode: 0o40755 },
      { name: `${name}/__init__.py`, data: DEMO_INIT },
      { name: `${name}/tool.sh`, data: "#!/bin/sh\necho tool\n", mode: 0o100755 },
      { name: `${name}/odd, name.txt`, data: "comma in the name\n" },
      { name: `${name}.pth`, data: `${name}_extra\n` },
      { name: `${data}/purelib/${name}_extra/extra_mod.py`, data: "VALUE = 42\n" },
      {
        name: `${data}/scripts/${name}-script`,
        data: "#!python\nimport sys\nprint('script', sys.prefix)\n",
        mode: 0o100755,
      },
      {
        name: `${data}/scripts/${name}-latin`,
        data: Buffer.from("#!python\n# -*- coding: latin-1 -*-\nprint('caf\xe9')\n", "latin1"),
        mode: 0o100755,
      },
      { name: `${data}/scripts/${name}-sh`, data: "#!/bin/sh\necho sh-script\n", mode: 0o100755 },
      {
        name: `${data}/scripts/${name}-doc`,
        data: '#!python\n"""The doc."""\nfrom __future__ import annotations\nimport sys\nprint(__doc__, sys.prefix)\n',
        mode: 0o100755,
      },
      // A wrapper a build tool wrote for an entry point: the generated launcher replaces it.
      { name: `${data}/scripts/${name}`, data: "#!python\nraise SystemExit('wrapper')\n" },
      { name: `${data}/data/share/${name}/readme.txt`, data: "shared data\n" },
      { name: `${data}/headers/${name}.h`, data: "#define DEMO 1\n" },
      {
        name: `${di}/METADATA`,
        data: `Metadata-Version: 2.1\nName: ${name}\nVersion: ${version}\n`,
      },
      {
        name: `${di}/WHEEL`,
        data: `Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: ${opts.purelib ?? true}\nTag: py3-none-any\n`,
      },
      {
        name: `${di}/entry_points.txt`,
        data: `[console_scripts]\n${name} = ${name}:main\n\n[gui_scripts]\n${name}-gui = ${name}:gui [extra]\n`,
      },
      ...(opts.extra ?? []),
    ],
  };
}

let info: InterpreterInfo;
before(async () => {
  info = await probeInterpreter(PYTHON);
});

function py(layout: EnvLayout, code: string): string {
  return execFileSync(layout.python, ["-c", code], { encoding: "utf8" }).trim();
}

/** Everything under `dir` except the cache marker, as path -> bytes. */
function treeFiles(dir: string, prefix = ""): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  for (const e of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory()) for (const [k, v] of treeFiles(dir, rel)) out.set(k, v);
    else if (rel !== ".pyferry-unpacked.json") out.set(rel, readFileSync(join(dir, rel)));
  }
  return out;
}

function unpackedEntries(): string[] {
  const dir = cachePaths().unpacked;
  return existsSync(dir) ? readdirSync(dir) : [];
}

describe("unpackWheel", () => {
  test("extracts the zip exactly, read-only, with its modes and a description", async () => {
    freshCache();
    const spec = demoSpec();
    const { path, sha256: sha } = buildWheel(spec);
    const w = await unpackWheel(path, sha);
    assert.equal(w.dir, join(cachePaths().unpacked, sha));
    const files = treeFiles(w.dir);
    const expected = spec.entries.filter((e) => !e.name.endsWith("/"));
    assert.deepEqual(
      [...files.keys()].sort(),
      [...expected.map((e) => e.name), `${spec.distInfo}/RECORD`].sort(),
    );
    for (const e of expected) assert.deepEqual(files.get(e.name), Buffer.from(e.data ?? ""));
    assert.equal(statSync(join(w.dir, "demo/tool.sh")).mode & 0o777, 0o555);
    assert.equal(statSync(join(w.dir, "demo/__init__.py")).mode & 0o777, 0o444);
    assert.equal(statSync(join(w.dir, "demo")).mode & 0o777, 0o555);
    assert.equal(statSync(w.dir).mode & 0o777, 0o555);
    assert.equal(w.distInfo, "demo-1.0.dist-info");
    assert.equal(w.dataDir, "demo-1.0.data");
    assert.equal(w.wheelVersion, "1.0");
    assert.equal(w.rootIsPurelib, true);
    assert.equal(w.name, "demo");
    assert.equal(w.version, "1.0");
    const tool = w.files.find((f) => f.path === "demo/tool.sh");
    assert.equal(tool?.mode, 0o755);
    assert.equal(tool?.size, 20);
    const json = JSON.parse(readFileSync(join(w.dir, ".pyferry-unpacked.json"), "utf8"));
    assert.equal(json.files.length, w.files.length);
    assert.equal(json.distInfo, "demo-1.0.dist-info");
    assert.equal(json.wheelVersion, "1.0");
    // Published trees cannot be written to by their owner (root aside).
    if (!isRoot) assert.throws(() => writeFileSync(join(w.dir, "demo/__init__.py"), "x"));
    // A second call finds the published tree.
    const again = await unpackWheel(path, sha);
    assert.deepEqual(again.files, w.files);
    assert.deepEqual(unpackedEntries(), [sha]);
  });

  test("stored entries, and local headers longer than the central directory says", async () => {
    freshCache();
    const spec = demoSpec();
    const odd = [
      // Stored entries (WHEEL, read whole before RECORD and METADATA, among them), and long
      // local headers before the data.
      { name: "demo/stored.bin", data: randomBytes(70_000) },
      { name: "demo/long_local.py", data: "LONG = 1\n".repeat(900) },
      { name: "demo/both.bin", data: randomBytes(3000) },
    ];
    const { path, sha256: sha } = buildWheel({
      ...spec,
      entries: [...spec.entries, ...odd],
      stored: ["demo/stored.bin", "demo/both.bin", `${spec.distInfo}/WHEEL`],
      localExtra: ["demo/long_local.py", "demo/both.bin", `${spec.distInfo}/WHEEL`],
    });
    const w = await unpackWheel(path, sha);
    // unpackWheel reads a wheel this small whole; larger ones are read from the file.
    const dest = join(mkdtempSync(join(root, "extract-")), "tree");
    await extractWheel(path, spec.filename, dest);
    for (const tree of [w.dir, dest]) {
      const files = treeFiles(tree);
      for (const e of [...spec.entries, ...odd].filter((e) => !e.name.endsWith("/"))) {
        assert.deepEqual(files.get(e.name), Buffer.from(e.data ?? ""), `${tree}: ${e.name}`);
      }
    }
    assert.equal(w.name, "demo");
    assert.equal(w.wheelVersion, "1.0");
  });

  test("refuses hostile or broken wheels with one clear error, leaving nothing behind", async () => {
    const di = "bad-1.0.dist-info";
    const base = (extra: Entry[], wheel = "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n") => [
      { name: "bad/__init__.py", data: "" },
      { name: `${di}/METADATA`, data: "Metadata-Version: 2.1\nName: bad\nVersion: 1.0\n" },
      { name: `${di}/WHEEL`, data: wheel },
      ...extra,
    ];
    const spec = (entries: Entry[], more: Partial<WheelSpec> = {}): WheelSpec => ({
      filename: "bad-1.0-py3-none-any.whl",
      distInfo: di,
      entries,
      ...more,
    });
    const truncated = buildWheel(
      spec(base([{ name: "bad/big.py", data: "x = 1\n".repeat(5000) }])),
    );
    truncateSync(truncated.path, Math.floor(statSync(truncated.path).size / 2));
    const big = spec(base([{ name: "bad/big.py", data: "x = 1\n".repeat(5000) }]));
    const cases: { label: string; wheel: { path: string; sha256: string }; message: RegExp }[] = [
      {
        label: "an entry that inflates to more than its declared size (a zip bomb)",
        wheel: patchedWheel(big, (b, central, local) => {
          b.writeUInt32LE(100, central + 24);
          b.writeUInt32LE(100, local + 22);
        }),
        message: /"bad\/big\.py" is corrupt \(it inflates to more than its declared size\)/,
      },
      {
        label: "an entry whose compressed data is not DEFLATE",
        wheel: patchedWheel(big, (b, central, local) => {
          const data = local + 30 + b.readUInt16LE(local + 26) + b.readUInt16LE(local + 28);
          assert.equal(b.readUInt16LE(central + 10), 8, "big.py is deflated");
          // BFINAL with block type 3, which DEFLATE reserves.
          b[data] = 0xff;
        }),
        message: /"bad\/big\.py" is corrupt \(its compressed data is invalid\)/,
      },
      {
        label: "an entry whose local header lies past the end of the file",
        wheel: patchedWheel(big, (b, central) => b.writeUInt32LE(0x7fffffff, central + 42)),
        message: /"bad\/big\.py" is corrupt \(the archive ends early\)/,
      },
      {
        label: "an entry whose local header is not where the central directory says",
        wheel: patchedWheel(big, (b, central, local) => b.writeUInt32LE(local + 1, central + 42)),
        message: /"bad\/big\.py" is corrupt \(a local file header is missing\)/,
      },
      {
        label: "../ path",
        wheel: buildWheel(spec(base([{ name: "../evil.py", data: "x" }]))),
        message: /"\.\.\/evil\.py" points outside the install directory/,
      },
      {
        label: "nested ../ path",
        wheel: buildWheel(spec(base([{ name: "bad/../../evil.py", data: "x" }]))),
        message: /points outside the install directory/,
      },
      {
        label: "absolute path",
        wheel: buildWheel(spec(base([{ name: "/etc/evil", data: "x" }]))),
        message: /absolute path "\/etc\/evil"/,
      },
      {
        label: "symlink",
        wheel: buildWheel(spec(base([{ name: "bad/link", data: "/etc/passwd", mode: 0o120777 }]))),
        message: /"bad\/link" is a symbolic link/,
      },
      {
        label: "device",
        wheel: buildWheel(spec(base([{ name: "bad/dev", data: "", mode: 0o20644 }]))),
        message: /"bad\/dev" is a special file/,
      },
      {
        label: "RECORD hash mismatch",
        wheel: buildWheel(
          spec(base([{ name: "bad/x.py", data: "x = 1\n" }]), {
            override: {
              "bad/x.py": ["bad/x.py", "sha256=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "6"],
            },
          }),
        ),
        message: /"bad\/x\.py" has hash sha256=\S+, but its RECORD says sha256=AAAA/,
      },
      {
        label: "RECORD size mismatch",
        wheel: buildWheel(
          spec(base([{ name: "bad/x.py", data: "x = 1\n" }]), {
            override: { "bad/x.py": ["bad/x.py", recordHash("x = 1\n"), "7"] },
          }),
        ),
        message: /"bad\/x\.py" is 6 bytes, but its RECORD says 7/,
      },
      {
        label: "a RECORD hash named after an Object property",
        wheel: buildWheel(
          spec(base([{ name: "bad/x.py", data: "x = 1\n" }]), {
            override: { "bad/x.py": ["bad/x.py", "constructor=AAAA", "6"] },
          }),
        ),
        message: /its RECORD uses the unsupported hash constructor/,
      },
      {
        label: "file missing from RECORD",
        wheel: buildWheel(spec(base([{ name: "bad/x.py", data: "x" }]), { omit: ["bad/x.py"] })),
        message: /"bad\/x\.py" is not listed in its RECORD/,
      },
      {
        label: "no RECORD",
        wheel: buildWheel(spec(base([]), { noRecord: true })),
        message: /bad-1\.0\.dist-info has no RECORD file/,
      },
      {
        label: "truncated zip",
        wheel: { path: truncated.path, sha256: sha256(truncated.path) },
        message: /is not a readable zip archive/,
      },
      {
        label: "Wheel-Version 2.0",
        wheel: buildWheel(spec(base([], "Wheel-Version: 2.0\nRoot-Is-Purelib: true\n"))),
        message: /Wheel-Version is 2\.0, and only 1\.x is supported/,
      },
      {
        label: "duplicate names",
        wheel: buildWheel(
          spec(
            base([
              { name: "bad/x.py", data: "a" },
              { name: "bad/x.py", data: "a" },
            ]),
          ),
        ),
        message: /holds "bad\/x\.py" twice/,
      },
      {
        label: "missing dist-info",
        wheel: buildWheel(spec([{ name: "bad/__init__.py", data: "" }], { noRecord: true })),
        message: /has no \.dist-info directory/,
      },
      {
        label: "dist-info of another project",
        wheel: buildWheel({
          filename: "bad-1.0-py3-none-any.whl",
          distInfo: "other-1.0.dist-info",
          entries: [
            { name: "other-1.0.dist-info/METADATA", data: "Name: other\nVersion: 1.0\n" },
            { name: "other-1.0.dist-info/WHEEL", data: "Wheel-Version: 1.0\n" },
          ],
        }),
        message: /other-1\.0\.dist-info does not belong to the project bad/,
      },
      {
        label: "two dist-infos",
        wheel: buildWheel(
          spec(base([{ name: "bad-2.0.dist-info/METADATA", data: "Name: bad\nVersion: 2.0\n" }])),
        ),
        message: /several \.dist-info directories/,
      },
      {
        label: "unknown .data key",
        wheel: buildWheel(spec(base([{ name: "bad-1.0.data/elsewhere/x", data: "x" }]))),
        message: /"bad-1\.0\.data\/elsewhere\/x" is not under one of/,
      },
    ];
    for (const c of cases) {
      freshCache();
      await assert.rejects(
        unpackWheel(c.wheel.path, c.wheel.sha256),
        (err: unknown) => {
          assert.ok(err instanceof UserError, `${c.label}: ${String(err)}`);
          assert.match(err.message, /^bad-1\.0-py3-none-any\.whl is not a usable wheel: /, c.label);
          assert.match(err.message, c.message, c.label);
          assert.equal(err.message.split(". ").length, 1, `${c.label}: one sentence`);
          return true;
        },
        c.label,
      );
      assert.deepEqual(unpackedEntries(), [], `${c.label}: nothing left in the cache`);
      // unpackWheel reads a wheel of this size whole; larger ones are read from the file as
      // they go, which must refuse the same things in the same words.
      const dest = join(mkdtempSync(join(root, "extract-")), "tree");
      await assert.rejects(
        extractWheel(c.wheel.path, "bad-1.0-py3-none-any.whl", dest),
        (err: unknown) => err instanceof UserError && c.message.test(err.message),
        `${c.label}: read from the file`,
      );
    }
  });

  test("a wrong sha256 for the wheel file is refused before anything is written", async () => {
    freshCache();
    const { path } = buildWheel(demoSpec());
    await assert.rejects(unpackWheel(path, "0".repeat(64)), /has sha256 [0-9a-f]{64}, but 0{64}/);
    assert.deepEqual(unpackedEntries(), []);
  });

  test("four processes unpacking the same wheel at once publish one good tree", async () => {
    const cache = freshCache();
    const spec = demoSpec({
      extra: Array.from({ length: 300 }, (_, i) => ({
        name: `demo/many/m${i}.py`,
        data: `X = ${i}\n`.repeat(50),
      })),
    });
    const { path, sha256: sha } = buildWheel(spec);
    const outputs = await Promise.all(
      Array.from({ length: 4 }, () =>
        run(process.execPath, [CHILD, "unpack", path, sha], {
          env: { ...process.env, PYFERRY_CACHE_DIR: cache },
        }),
      ),
    );
    for (const o of outputs)
      assert.equal(JSON.parse(o.stdout).dir, join(cachePaths().unpacked, sha));
    assert.deepEqual(unpackedEntries(), [sha]);
    const w = await unpackWheel(path, sha);
    for (const f of w.files) {
      const data = readFileSync(join(w.dir, f.path));
      const hash = createHash("sha256").update(data).digest("base64url");
      assert.equal(`sha256=${hash}`, f.hash, f.path);
    }
  });
});

describe("unpackMany", () => {
  test("unpacks several wheels on worker threads, results in the input order", async () => {
    freshCache();
    const wheels = ["alpha", "beta", "gamma"].map((name, i) =>
      buildWheel(
        demoSpec({
          name,
          extra: Array.from({ length: 20 * (i + 1) }, (_, k) => ({
            name: `${name}/m${k}.py`,
            data: `N = ${k}\n`,
          })),
        }),
      ),
    );
    const first = await unpackWheel(wheels[1]?.path as string, wheels[1]?.sha256 as string);
    const got = await unpackMany(wheels);
    assert.deepEqual(
      got.map((w) => w.name),
      ["alpha", "beta", "gamma"],
    );
    // The same tree, except that the first call had just unpacked it.
    const { fresh, ...found } = first;
    assert.equal(fresh, true);
    assert.deepEqual(got[1], found);
    for (const w of got) {
      for (const f of w.files) {
        const data = readFileSync(join(w.dir, f.path));
        assert.equal(`sha256=${createHash("sha256").update(data).digest("base64url")}`, f.hash);
      }
    }
    assert.deepEqual(unpackedEntries().sort(), wheels.map((w) => w.sha256).sort());
  });

  test("threads started ahead (startUnpackers) do the work, and never keep the process alive", () => {
    const cache = freshCache();
    // Two wheels of 3 MiB each (random bytes do not compress): more than one thread's share.
    const wheels = ["big1", "big2"].map((name) =>
      buildWheel(
        demoSpec({ name, extra: [{ name: `${name}/blob.bin`, data: randomBytes(3 << 20) }] }),
      ),
    );
    const pool = pathToFileURL(join(DIST_INSTALL, "unpack-pool.js")).href;
    // A file, not -e: worker threads inherit the process's flags, and --input-type is not theirs.
    const child = (body: string) => {
      const script = join(fresh("child"), "child.mjs");
      writeFileSync(script, body);
      return spawnSync(process.execPath, [script], {
        encoding: "utf8",
        env: { ...process.env, PYFERRY_CACHE_DIR: cache },
        // A thread keeping the process alive shows as this timeout.
        timeout: 30_000,
      });
    };
    // Started, never used: the process still ends on its own.
    let r = child(`
      const { startUnpackers } = await import(${JSON.stringify(pool)});
      startUnpackers(2, 6 << 20);
      await new Promise((go) => setTimeout(go, 300));
      console.log("done");
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "done\n");
    // Started, then given the work: both wheels unpacked, and the process ends.
    r = child(`
      const { startUnpackers, unpackMany } = await import(${JSON.stringify(pool)});
      startUnpackers(2, 6 << 20);
      const got = await unpackMany(${JSON.stringify(wheels)});
      console.log(got.map((w) => w.name).join(" "));
    `);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "big1 big2\n");
    assert.deepEqual(unpackedEntries().sort(), wheels.map((w) => w.sha256).sort());
  });

  test("a bad wheel in the batch is a UserError naming it, and leaves no partial tree", async () => {
    freshCache();
    const good = buildWheel(demoSpec({ name: "good" }));
    const bad = buildWheel(demoSpec({ name: "bad" }));
    truncateSync(bad.path, Math.floor(statSync(bad.path).size / 2));
    const other = buildWheel(demoSpec({ name: "other" }));
    await assert.rejects(
      unpackMany([good, { path: bad.path, sha256: sha256(bad.path) }, other]),
      (err: unknown) =>
        err instanceof UserError &&
        /bad-1\.0-py3-none-any\.whl is not a usable wheel/.test(err.message),
    );
    for (const name of readdirSync(cachePaths().unpacked)) {
      assert.ok(!name.startsWith(".tmp-"), `left behind: ${name}`);
      assert.notEqual(name, sha256(bad.path));
    }
  });
});

describe("fetchDist", () => {
  test("verifies a file: URL where it is, without copying it into the cache", async () => {
    freshCache();
    const { path, sha256: sha } = buildWheel(demoSpec());
    const url = pathToFileURL(path).href;
    const [got] = await fetchMany([{ url, filename: "demo-1.0-py3-none-any.whl", sha256: sha }]);
    assert.equal(got, path);
    const wheels = cachePaths().wheels;
    assert.deepEqual(existsSync(wheels) ? readdirSync(wheels) : [], []);
  });

  test("a hash mismatch names the file and both hashes and leaves nothing", async () => {
    freshCache();
    const { path, sha256: sha } = buildWheel(demoSpec());
    const wrong = "f".repeat(64);
    const url = pathToFileURL(path).href;
    await assert.rejects(
      fetchDist({ url, filename: "demo-1.0-py3-none-any.whl", sha256: wrong }),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(err.message, /^demo-1\.0-py3-none-any\.whl at \//);
        assert.ok(err.message.includes(sha) && err.message.includes(wrong), err.message);
        return true;
      },
    );
    const wheels = cachePaths().wheels;
    assert.deepEqual(existsSync(wheels) ? readdirSync(wheels) : [], []);
  });

  test("downloads over HTTP", async () => {
    freshCache();
    const { path, sha256: sha } = buildWheel(demoSpec());
    const { createServer } = await import("node:http");
    const server = createServer((_req, res) => res.end(readFileSync(path)));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const { port } = server.address() as { port: number };
      const url = `http://127.0.0.1:${port}/demo-1.0-py3-none-any.whl`;
      const got = await fetchDist({ url, filename: "demo-1.0-py3-none-any.whl", sha256: sha });
      assert.equal(sha256(got), sha);
    } finally {
      server.close();
    }
  });
});

async function demoInstalled(
  opts: Parameters<typeof demoSpec>[0] = {},
  linkMode: "auto" | "copy" | "hardlink" = "auto",
): Promise<{ layout: EnvLayout; wheel: UnpackedWheel; files: string[] }> {
  freshCache();
  const { path, sha256: sha } = buildWheel(demoSpec(opts));
  const wheel = await unpackWheel(path, sha);
  const layout = await createVenv(join(fresh("env"), "venv"), info);
  const { files } = await installWheel(wheel, layout, { requested: true, linkMode });
  return { layout, wheel, files };
}

describe("installWheel", () => {
  test("puts every part of the wheel where the spec says", async () => {
    const { layout, files } = await demoInstalled();
    const site = layout.purelib;
    assert.equal(readFileSync(join(site, "demo/__init__.py"), "utf8"), DEMO_INIT);
    assert.equal(readFileSync(join(site, "demo/odd, name.txt"), "utf8"), "comma in the name\n");
    assert.equal(readFileSync(join(site, "demo.pth"), "utf8"), "demo_extra\n");
    assert.equal(readFileSync(join(site, "demo_extra/extra_mod.py"), "utf8"), "VALUE = 42\n");
    assert.equal(readFileSync(join(layout.root, "share/demo/readme.txt"), "utf8"), "shared data\n");
    assert.equal(
      readFileSync(join(layout.root, "include/site/python3.11/demo/demo.h"), "utf8"),
      "#define DEMO 1\n",
    );
    // Modes: executable as the zip says, others not; scripts executable.
    assert.equal(statSync(join(site, "demo/tool.sh")).mode & 0o111, 0o111);
    assert.equal(statSync(join(site, "demo/__init__.py")).mode & 0o111, 0);
    for (const s of ["demo", "demo-gui", "demo-script", "demo-sh", "demo-latin", "demo-doc"]) {
      assert.equal(statSync(join(layout.scripts, s)).mode & 0o111, 0o111, s);
    }
    // The .pth file is processed by the interpreter like any other.
    assert.equal(py(layout, "import extra_mod; print(extra_mod.VALUE)"), "42");
    // Scripts: #!python rewritten to the environment's interpreter; others untouched.
    assert.equal(
      execFileSync(join(layout.scripts, "demo-script"), { encoding: "utf8" }).trim(),
      `script ${layout.root}`,
    );
    assert.equal(
      execFileSync(join(layout.scripts, "demo-latin"), { encoding: "utf8" }).trim(),
      "café",
    );
    // A docstring and a __future__ import stay first: only line 1 changed, as pip changes it.
    const doc = readFileSync(join(layout.scripts, "demo-doc"), "utf8");
    assert.ok(doc.startsWith(ONE_LINE_HEADER));
    assert.ok(Buffer.byteLength(ONE_LINE_HEADER) < 127);
    assert.equal(doc.split("\n").length, 6);
    assert.equal(
      execFileSync(join(layout.scripts, "demo-doc"), { encoding: "utf8" }).trim(),
      `The doc. ${layout.root}`,
    );
    assert.equal(
      readFileSync(join(layout.scripts, "demo-sh"), "utf8"),
      "#!/bin/sh\necho sh-script\n",
    );
    // Launchers for console and GUI entry points; the build tool's wrapper was replaced.
    assert.equal(
      execFileSync(join(layout.scripts, "demo"), { encoding: "utf8" }).trim(),
      `console ${layout.root}`,
    );
    assert.equal(
      execFileSync(join(layout.scripts, "demo-gui"), { encoding: "utf8" }).trim(),
      `gui ${layout.root}`,
    );
    // INSTALLER, REQUESTED and RECORD.
    const di = join(site, "demo-1.0.dist-info");
    assert.equal(readFileSync(join(di, "INSTALLER"), "utf8"), "pyferry\n");
    assert.equal(readFileSync(join(di, "REQUESTED"), "utf8"), "");
    const rows = parseRecord(readFileSync(join(di, "RECORD"), "utf8"));
    const byPath = new Map(rows.map((r) => [r.path, r]));
    assert.deepEqual(byPath.get("demo-1.0.dist-info/RECORD"), {
      path: "demo-1.0.dist-info/RECORD",
      hash: "",
      size: "",
    });
    for (const p of [
      "../../../bin/demo",
      "../../../bin/demo-gui",
      "../../../bin/demo-script",
      "../../../share/demo/readme.txt",
      "../../../include/site/python3.11/demo/demo.h",
      "demo/odd, name.txt",
      "demo-1.0.dist-info/INSTALLER",
      "demo-1.0.dist-info/REQUESTED",
      "demo-1.0.dist-info/entry_points.txt",
    ]) {
      assert.ok(byPath.has(p), p);
    }
    assert.ok(!byPath.has("demo-1.0.data/scripts/demo-script"));
    // Every row but RECORD's own matches the installed file; every installed file has a row.
    for (const r of rows) {
      if (r.path.endsWith("/RECORD")) continue;
      const data = readFileSync(join(site, r.path));
      assert.equal(
        r.hash,
        `sha256=${createHash("sha256").update(data).digest("base64url")}`,
        r.path,
      );
      assert.equal(r.size, `${data.length}`, r.path);
    }
    assert.equal(rows.length, files.length);
    // pip agrees that it is installed, with the right version.
    const list = spawnSync(
      PYTHON,
      [
        "-m",
        "pip",
        "--python",
        layout.python,
        "list",
        "--format=json",
        "--disable-pip-version-check",
      ],
      { encoding: "utf8" },
    );
    assert.equal(list.status, 0, list.stderr);
    assert.deepEqual(JSON.parse(list.stdout), [{ name: "demo", version: "1.0" }]);
  });

  test("Root-Is-Purelib: false puts the root in platlib", async () => {
    freshCache();
    const { path, sha256: sha } = buildWheel(demoSpec({ purelib: false }));
    const wheel = await unpackWheel(path, sha);
    const base = layoutFor(fresh("env"), "3.11");
    const layout = { ...base, platlib: join(base.root, "platlib") };
    await installWheel(wheel, layout, {});
    assert.ok(existsSync(join(layout.platlib, "demo/__init__.py")));
    assert.ok(existsSync(join(layout.platlib, "demo-1.0.dist-info/RECORD")));
    assert.ok(existsSync(join(layout.purelib, "demo_extra/extra_mod.py")));
    assert.ok(!existsSync(join(layout.purelib, "demo")));
    const rows = parseRecord(
      readFileSync(join(layout.platlib, "demo-1.0.dist-info/RECORD"), "utf8"),
    );
    assert.ok(
      rows.some((r) => r.path === "../lib/python3.11/site-packages/demo_extra/extra_mod.py"),
    );
    assert.ok(!existsSync(join(layout.platlib, "demo-1.0.dist-info/REQUESTED")));
  });

  test("launchers and scripts keep working after the environment moves", async () => {
    const { layout } = await demoInstalled();
    const far = join(fresh("moved"), "a dir with spaces", "x".repeat(120), "env");
    mkdirSync(join(far, ".."), { recursive: true });
    renameSync(layout.root, far);
    assert.ok(Buffer.byteLength(far) > 127);
    for (const [script, word] of [
      ["demo", "console"],
      ["demo-gui", "gui"],
      ["demo-script", "script"],
      ["demo-doc", "The doc."],
    ]) {
      const out = execFileSync(join(far, "bin", script as string), { encoding: "utf8" }).trim();
      assert.equal(out, `${word} ${far}`);
    }
    // Through PATH and through a symlink elsewhere, too.
    const out = execFileSync("demo", { encoding: "utf8", env: { PATH: join(far, "bin") } }).trim();
    assert.equal(out, `console ${far}`);
    const elsewhere = join(fresh("links"), "demo-link");
    execFileSync("ln", ["-s", join(far, "bin", "demo"), elsewhere]);
    assert.equal(execFileSync(elsewhere, { encoding: "utf8" }).trim(), `console ${far}`);
  });

  test("editing an installed file: copies keep the cache apart, links are refused or found", async () => {
    for (const mode of ["auto", "copy"] as const) {
      const { layout, wheel } = await demoInstalled({}, mode);
      const installed = join(layout.purelib, "demo/__init__.py");
      const cached = join(wheel.dir, "demo/__init__.py");
      // auto hardlinks (this file system cannot clone); the cache's files are read-only.
      assert.equal(statSync(installed).nlink, mode === "auto" ? 2 : 1, mode);
      let refused = false;
      try {
        writeFileSync(installed, "edited = True\n");
      } catch (err) {
        assert.equal((err as NodeJS.ErrnoException).code, "EACCES");
        refused = true;
      }
      if (mode === "copy" || !isRoot) {
        assert.equal(readFileSync(cached, "utf8"), DEMO_INIT, mode);
        assert.equal(refused, mode === "auto", mode);
      } else {
        // Root writes through the link into the cache; the next install (which finds the tree
        // in the cache, as another run does) finds the change.
        assert.equal(readFileSync(cached, "utf8"), "edited = True\n");
        const again = join(fresh("env"), "venv");
        const found = await findUnpacked(wheel.sha256);
        assert.ok(found && !found.fresh);
        await assert.rejects(installWheel(found, await createVenv(again, info)), (err: Error) => {
          assert.ok(err instanceof CachedTreeChanged);
          assert.equal(err.dir, wheel.dir);
          assert.equal(err.why, "demo/__init__.py changed size");
          assert.match(err.message, /unpacked copy of demo 1\.0 changed after it was unpacked/);
          return true;
        });
      }
      // Files the install writes itself are never links into the cache.
      for (const f of ["demo-1.0.dist-info/RECORD", "demo-1.0.dist-info/INSTALLER"]) {
        assert.equal(statSync(join(layout.purelib, f)).nlink, 1, f);
      }
      assert.equal(statSync(join(layout.scripts, "demo-script")).nlink, 1);
    }
  });

  test("a cached file edited in place, even keeping its size, is found before it is used", async () => {
    const { wheel } = await demoInstalled({}, "copy");
    const cached = join(wheel.dir, "demo/__init__.py");
    chmodSync(cached, 0o644);
    // Same length, and an mtime that only moves forward: only the time tells.
    writeFileSync(cached, DEMO_INIT.replace(/./, "#"));
    chmodSync(cached, 0o444);
    const found = await findUnpacked(wheel.sha256);
    assert.ok(found?.published);
    const layout = await createVenv(join(fresh("env"), "venv"), info);
    await assert.rejects(
      installWheel(found, layout, { linkMode: "copy" }),
      (err) => err instanceof CachedTreeChanged && err.why === "demo/__init__.py was written to",
    );
    chmodSync(join(wheel.dir, "demo"), 0o755);
    rmSync(cached);
    await assert.rejects(installWheel(found, layout, { linkMode: "copy" }), {
      message: /\(demo\/__init__\.py is missing\)/,
    });
  });

  test("hardlinked files are read-only to their owner, so an edit fails", async (t) => {
    if (!isRoot) {
      const { layout, wheel } = await demoInstalled({}, "hardlink");
      const installed = join(layout.purelib, "demo/__init__.py");
      assert.equal(statSync(installed).ino, statSync(join(wheel.dir, "demo/__init__.py")).ino);
      assert.throws(() => writeFileSync(installed, "x"), { code: "EACCES" });
      return;
    }
    // Root may write anything (tree-check.ts finds such edits); run this as nobody.
    if (spawnSync("setpriv", ["--version"]).status !== 0) {
      t.skip("setpriv is not available to drop root");
      return;
    }
    // The nobody user must reach the files: open up this test's directory.
    chmodSync(root, 0o755);
    const dir = fresh("nobody");
    const { path, sha256: sha } = buildWheel(demoSpec());
    cpSync(path, join(dir, "demo-1.0-py3-none-any.whl"));
    spawnSync("chown", ["-R", "65534:65534", dir]);
    chmodSync(dir, 0o755);
    const script = `
      import { writeFileSync, statSync } from "node:fs";
      const { unpackWheel } = await import(${JSON.stringify(join(DIST_INSTALL, "cache.js"))});
      const { installWheel } = await import(${JSON.stringify(join(DIST_INSTALL, "wheel-install.js"))});
      const { layoutFor } = await import(${JSON.stringify(join(DIST_INSTALL, "env.js"))});
      const w = await unpackWheel(${JSON.stringify(join(dir, "demo-1.0-py3-none-any.whl"))}, ${JSON.stringify(sha)});
      const layout = layoutFor(${JSON.stringify(join(dir, "env"))}, "3.11");
      await installWheel(w, layout, { linkMode: "hardlink" });
      const installed = layout.purelib + "/demo/__init__.py";
      let code = "written";
      try { writeFileSync(installed, "x"); } catch (e) { code = e.code; }
      console.log(JSON.stringify({ code, links: statSync(installed).nlink }));
    `;
    const r = spawnSync(
      "setpriv",
      [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        process.execPath,
        "--input-type=module",
        "-e",
        script,
      ],
      { encoding: "utf8", env: { ...process.env, PYFERRY_CACHE_DIR: join(dir, "cache") } },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), { code: "EACCES", links: 2 });
  });

  test("reinstalling replaces the old version, and uninstall removes everything", async () => {
    const { layout } = await demoInstalled();
    const { path, sha256: sha } = buildWheel(demoSpec({ version: "2.0" }));
    await installWheel(await unpackWheel(path, sha), layout, {});
    const site = readdirSync(layout.purelib).sort();
    assert.deepEqual(site, ["demo", "demo-2.0.dist-info", "demo.pth", "demo_extra"]);
    await compileBytecode(layout);
    assert.ok(existsSync(join(layout.purelib, "demo/__pycache__")));
    const { removed } = await uninstall("DEMO", layout);
    assert.ok(removed.length > 10);
    assert.deepEqual(readdirSync(layout.purelib), []);
    // What the environment itself has stays: its interpreter links and activation scripts.
    assert.deepEqual(readdirSync(layout.scripts).sort(), [
      "Activate.ps1",
      "activate",
      "activate.csh",
      "activate.fish",
      "python",
      "python3",
      "python3.11",
    ]);
    assert.ok(!existsSync(join(layout.root, "share")));
    assert.ok(!existsSync(join(layout.root, "include/site/python3.11/demo")));
  });

  test("a wheel never replaces the interpreter or pyvenv.cfg; activate it may, with a warning", async () => {
    freshCache();
    const layout = await createVenv(join(fresh("env"), "venv"), info);
    for (const [entry, own] of [
      ["demo-1.0.data/scripts/python", "bin/python"],
      ["demo-1.0.data/scripts/python3.11", "bin/python3.11"],
      ["demo-1.0.data/data/bin/python3", "bin/python3"],
      ["demo-1.0.data/data/pyvenv.cfg", "pyvenv.cfg"],
      ["demo-1.0.data/scripts/pyvenv.cfg", "bin/pyvenv.cfg"],
      ["demo-1.0.data/scripts/python3.13t", "bin/python3.13t"],
    ] as const) {
      const { path, sha256: sha } = buildWheel(
        demoSpec({ extra: [{ name: entry, data: '#!/bin/sh\nexec "$0"\n', mode: 0o100755 }] }),
      );
      await assert.rejects(
        installWheel(await unpackWheel(path, sha), layout, {}),
        (err: unknown) =>
          err instanceof UserError &&
          err.message ===
            `demo 1.0 would replace the environment's own ${own}, so pyferry does not install it.`,
      );
      assert.equal(py(layout, "import sys; print(sys.prefix)"), layout.root);
      assert.deepEqual(readdirSync(layout.purelib), []);
    }
    // A bundled interpreter's standard library is its own too (one file stands in for it);
    // beside site-packages, where a venv has nothing, a wheel may add files as pip lets it.
    const xy = layout.pythonVersion.split(".").slice(0, 2).join(".");
    const stdlibFile = `lib/python${xy}/encodings/__init__.py`;
    mkdirSync(join(layout.root, `lib/python${xy}/encodings`));
    writeFileSync(join(layout.root, stdlibFile), "# stdlib\n");
    const std = buildWheel(
      demoSpec({
        extra: [{ name: `demo-1.0.data/data/${stdlibFile}`, data: "raise SystemExit\n" }],
      }),
    );
    await assert.rejects(
      installWheel(await unpackWheel(std.path, std.sha256), layout, {}),
      new RegExp(`would replace the environment's own ${stdlibFile.replace(/\./g, "\\.")},`),
    );
    assert.equal(readFileSync(join(layout.root, stdlibFile), "utf8"), "# stdlib\n");
    const { path, sha256: sha } = buildWheel(
      demoSpec({
        extra: [
          { name: "demo-1.0.data/scripts/activate", data: "# demo's\n" },
          { name: `demo-1.0.data/data/lib/python${xy}/demo-extra.txt`, data: "beside\n" },
        ],
      }),
    );
    const warnings: string[] = [];
    await installWheel(await unpackWheel(path, sha), layout, { warn: (m) => warnings.push(m) });
    assert.deepEqual(warnings, [
      "Installing demo 1.0 replaced a file already in the environment (bin/activate).",
    ]);
    assert.ok(existsSync(join(layout.root, `lib/python${xy}/demo-extra.txt`)));
  });

  test("installAll: parallel installs; a file two wheels ship comes from the later one", async () => {
    freshCache();
    const shared = (text: string): Entry => ({ name: "shared/common.py", data: text });
    const one = buildWheel(demoSpec({ name: "one", extra: [shared("ONE = 1\n")] }));
    const two = buildWheel(demoSpec({ name: "two", extra: [shared("TWO = 2\n")] }));
    const wheels = [
      await unpackWheel(one.path, one.sha256),
      await unpackWheel(two.path, two.sha256),
    ];
    const layout = await createVenv(join(fresh("env"), "venv"), info);
    const warnings: string[] = [];
    await installAll(wheels, layout, { warn: (m) => warnings.push(m) });
    assert.equal(readFileSync(join(layout.purelib, "shared/common.py"), "utf8"), "TWO = 2\n");
    assert.equal(warnings.length, 1);
    assert.match(
      warnings[0] as string,
      /one-1\.0-py3-none-any\.whl and two-1\.0-py3-none-any\.whl both install .*shared\/common\.py/,
    );
    assert.equal(
      execFileSync(join(layout.scripts, "one"), { encoding: "utf8" }).trim(),
      `console ${layout.root}`,
    );
    assert.equal(
      execFileSync(join(layout.scripts, "two"), { encoding: "utf8" }).trim(),
      `console ${layout.root}`,
    );
    // Both RECORDs list the shared file, as pip leaves them.
    for (const n of ["one", "two"]) {
      const rows = parseRecord(
        readFileSync(join(layout.purelib, `${n}-1.0.dist-info/RECORD`), "utf8"),
      );
      assert.ok(
        rows.some((r) => r.path === "shared/common.py"),
        n,
      );
    }
    await assert.rejects(
      installAll([wheels[0] as UnpackedWheel, wheels[0] as UnpackedWheel], layout),
      /Both/,
    );
  });

  test("BatchInstall: the higher order wins a shared file, whichever wheel arrives first", async () => {
    freshCache();
    const shared = (text: string): Entry => ({ name: "shared/common.py", data: text });
    const [one, two] = await Promise.all(
      ["one", "two"].map(async (name) => {
        const b = buildWheel(demoSpec({ name, extra: [shared(`${name.toUpperCase()} = 1\n`)] }));
        return unpackWheel(b.path, b.sha256);
      }),
    );
    for (const arrival of [
      [one, two],
      [two, one],
    ] as UnpackedWheel[][]) {
      const layout = await createVenv(join(fresh("env"), "venv"), info);
      const warnings: string[] = [];
      const batch = new BatchInstall(layout, { linkMode: "copy", warn: (m) => warnings.push(m) });
      for (const w of arrival) batch.add(w, w === two ? 1 : 0);
      await batch.finish();
      assert.equal(readFileSync(join(layout.purelib, "shared/common.py"), "utf8"), "TWO = 1\n");
      // One warning, naming the kept copy; nothing about replacing a file already there.
      assert.equal(warnings.length, 1, warnings.join("\n"));
      assert.match(warnings[0] as string, /one-1\.0-py3-none-any\.whl and two-1\.0-.*kept/);
    }
  });
});

describe("compileBytecode", () => {
  test("writes unchecked hash-based .pyc files and lists them in RECORD", async () => {
    const { layout, files } = await demoInstalled({
      extra: [{ name: "demo/broken.py", data: "def (:\n" }],
    });
    const result = await compileBytecode(layout, files);
    const pyc = join(layout.purelib, "demo/__pycache__/__init__.cpython-311.pyc");
    assert.equal(result.compiled.get(join(layout.purelib, "demo/__init__.py")), pyc);
    assert.deepEqual(result.failed, [join(layout.purelib, "demo/broken.py")]);
    // PEP 552: flags word 1 = hash-based, source not checked.
    assert.equal(readFileSync(pyc).readUInt32LE(4), 1);
    const rows = parseRecord(
      readFileSync(join(layout.purelib, "demo-1.0.dist-info/RECORD"), "utf8"),
    );
    const row = rows.find((r) => r.path === "demo/__pycache__/__init__.cpython-311.pyc");
    assert.ok(row);
    const data = readFileSync(pyc);
    assert.equal(row.hash, `sha256=${createHash("sha256").update(data).digest("base64url")}`);
    // Scripts and data files are not compiled.
    assert.ok(!existsSync(join(layout.scripts, "__pycache__")));
  });
});

describe("cache maintenance", () => {
  test("cacheInfo counts entries; pruneCache removes old ones and dead writers' leftovers", async () => {
    const cache = freshCache();
    const a = buildWheel(demoSpec({ name: "aaa" }));
    const b = buildWheel(demoSpec({ name: "bbb" }));
    // Downloaded wheels land in wheels/<sha256>/ (local files are used in place): seed two.
    const download = (w: { path: string; sha256: string }, name: string) => {
      const dir = join(cachePaths().wheels, w.sha256);
      mkdirSync(dir, { recursive: true });
      copyFileSync(w.path, join(dir, name));
      return join(dir, name);
    };
    const fa = download(a, "aaa-1.0-py3-none-any.whl");
    download(b, "bbb-1.0-py3-none-any.whl");
    const wa = await unpackWheel(fa, a.sha256);
    const wb = await unpackWheel(b.path, b.sha256);
    const size = (w: UnpackedWheel) => w.files.reduce((sum, f) => sum + f.size, 0);
    const info1 = await cacheInfo();
    assert.equal(info1.root, cache);
    assert.equal(info1.wheels.count, 2);
    assert.equal(info1.unpacked.count, 2);
    assert.equal(info1.wheels.bytes, statSync(a.path).size + statSync(b.path).size);
    assert.equal(info1.unpacked.bytes, size(wa) + size(wb));
    // Leftovers: one of a dead writer, one of this (live) process.
    const old = new Date(Date.now() - 3600_000);
    const dead = join(cachePaths().unpacked, `.tmp-0123456789abcdef-999999999-aabbccddeeff`);
    const live = join(cachePaths().unpacked, `.tmp-0123456789abcdef-${process.pid}-aabbccddeeff`);
    for (const d of [dead, live]) {
      mkdirSync(d);
      utimesSync(d, old, old);
    }
    assert.equal((await cacheInfo()).partial.count, 2);
    // Make aaa's entries old; bbb stays recent.
    const days40 = new Date(Date.now() - 40 * 86_400_000);
    utimesSync(join(wa.dir, ".pyferry-unpacked.json"), days40, days40);
    utimesSync(fa, days40, days40);
    const dry = await pruneCache({ olderThanDays: 30, dryRun: true });
    assert.equal(dry.removed.length, 3);
    assert.ok(existsSync(wa.dir));
    const pruned = await pruneCache({ olderThanDays: 30 });
    assert.deepEqual(pruned.removed.map((r) => r.kind).sort(), ["partial", "unpacked", "wheel"]);
    assert.ok(!existsSync(wa.dir) && !existsSync(fa) && !existsSync(dead));
    assert.ok(existsSync(live));
    const info2 = await cacheInfo();
    assert.equal(info2.wheels.count, 1);
    assert.equal(info2.unpacked.count, 1);
    // Using an entry marks it as used: a fresh unpack of bbb survives a 1-day prune.
    await unpackWheel(b.path, b.sha256);
    assert.equal(
      (await pruneCache({ olderThanDays: 1 })).removed.filter((r) => r.kind !== "partial").length,
      0,
    );
    rmSync(live, { recursive: true });
  });
});
