import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import {
  findModuleFile,
  type InstalledDist,
  listInstalled,
  ownerOf,
} from "../../../src/python/installed.js";
import { probeInterpreter } from "../../../src/python/interpreter.js";

const run = promisify(execFile);

let tmp: string;
let site: string;
let extra: string;
let sysPath: string[];
let dists: InstalledDist[];

async function put(file: string, text = ""): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text);
}

/** Hand-made metadata for the cases pip does not produce from a wheel. */
async function writeExtraSite(dir: string): Promise<void> {
  await put(join(dir, "legacy_pkg", "__init__.py"));
  const egg = join(dir, "legacy_pkg-1.0-py3.11.egg-info");
  await put(join(egg, "PKG-INFO"), "Metadata-Version: 1.1\nName: legacy-pkg\nVersion: 1.0\n");
  await put(join(egg, "top_level.txt"), "legacy_pkg\n");
  await put(
    join(egg, "installed-files.txt"),
    "../legacy_pkg/__init__.py\nPKG-INFO\ntop_level.txt\n",
  );
  await put(join(dir, "onefile-2.0-py3.11.egg-info"), "Name: onefile\nVersion: 2.0\n\nbody\n");
  await put(join(dir, "orphan_mod.py"));
  const claimed = join(dir, "claimed-0.1.dist-info");
  await put(join(claimed, "METADATA"), "Name: claimed\nVersion: 0.1\n");
  await put(join(claimed, "top_level.txt"), "orphan_mod\n");
  await put(
    join(claimed, "RECORD"),
    '"odd,name.py",sha256=x,1\nclaimed-0.1.dist-info/METADATA,,\n',
  );
  const ed = join(dir, "ed_thing-3.0.dist-info");
  await put(join(ed, "METADATA"), "Name: Ed.Thing\nVersion: 3.0\n");
  await put(
    join(ed, "direct_url.json"),
    '{"url": "file:///src/ed", "dir_info": {"editable": true}}',
  );
  await put(join(ed, "INSTALLER"), "uv\n");
  await put(join(dir, "not-a-dir-1.0.dist-info"), "a file where a directory belongs\n");
  // Another portion of the google namespace, after site-packages on sys.path.
  await put(join(dir, "google", "fakeportion", "__init__.py"));
  // Same sys.path entry: package beats module; extension beats source.
  await put(join(dir, "dup", "__init__.py"));
  await put(join(dir, "dup.py"));
  await put(join(dir, "fastmod.py"));
  await put(join(dir, "fastmod.cpython-311-x86_64-linux-gnu.so"));
  await put(join(dir, "fastmod.abi3.so"));
  // Shadowed: site-packages comes first and holds the real yaml package.
  await put(join(dir, "yaml.py"));
}

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "pyferry-installed-"));
  process.env.PYFERRY_CACHE_DIR = join(tmp, "cache");
  const venv = join(tmp, "venv");
  await run("python3", ["-m", "venv", venv]);
  // --retries 0: the local index answers at once; do not wait on an unreachable default index.
  await run(join(venv, "bin", "pip"), [
    "install",
    "--quiet",
    "--retries",
    "0",
    "--no-deps",
    "protobuf",
    "google-auth",
    "googleapis-common-protos",
    "pyyaml",
  ]);
  const info = await probeInterpreter(join(venv, "bin", "python"));
  site = info.paths.purelib as string;
  extra = join(tmp, "extra");
  await writeExtraSite(extra);
  sysPath = [...info.sysPath, extra];
  dists = await listInstalled([site, extra]);
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function dist(normalized: string): InstalledDist {
  const found = dists.find((d) => d.normalized === normalized);
  assert.ok(found, `${normalized} not listed`);
  return found;
}

describe("listInstalled", () => {
  test("reads dist-info from a real venv", () => {
    const yaml = dist("pyyaml");
    assert.equal(yaml.name, "PyYAML");
    assert.equal(yaml.version, "6.0.3");
    assert.equal(yaml.location, site);
    assert.equal(yaml.metadataDir, join(site, "pyyaml-6.0.3.dist-info"));
    assert.equal(yaml.installer, "pip");
    assert.equal(yaml.editable, false);
    assert.deepEqual(yaml.topLevel, ["_yaml", "yaml"]);
    assert.ok(yaml.files.includes("yaml/__init__.py"));
    assert.ok(yaml.files.some((f) => /^yaml\/_yaml\.cpython-3\d+-.*\.so$/.test(f)));
    for (const name of ["protobuf", "google-auth", "googleapis-common-protos", "pip"]) dist(name);
  });

  test("reads egg-info directories and files, and odd RECORD rows", () => {
    const legacy = dist("legacy-pkg");
    assert.equal(legacy.version, "1.0");
    assert.deepEqual(legacy.files, [
      "legacy_pkg/__init__.py",
      "legacy_pkg-1.0-py3.11.egg-info/PKG-INFO",
      "legacy_pkg-1.0-py3.11.egg-info/top_level.txt",
    ]);
    const onefile = dist("onefile");
    assert.equal(onefile.version, "2.0");
    assert.deepEqual(onefile.files, []);
    assert.deepEqual(dist("claimed").files, ["odd,name.py", "claimed-0.1.dist-info/METADATA"]);
    const ed = dist("ed-thing");
    assert.equal(ed.name, "Ed.Thing");
    assert.equal(ed.editable, true);
    assert.equal(ed.installer, "uv");
    assert.ok(!dists.some((d) => d.metadataDir.endsWith("not-a-dir-1.0.dist-info")));
  });

  test("skips directories it cannot read", async () => {
    assert.deepEqual(await listInstalled([join(tmp, "missing")]), []);
  });
});

describe("findModuleFile", () => {
  test("finds packages, modules, extensions and namespace portions", async () => {
    assert.deepEqual(await findModuleFile("yaml", sysPath), {
      path: join(site, "yaml", "__init__.py"),
      kind: "package",
    });
    const ext = await findModuleFile("yaml._yaml", sysPath);
    assert.equal(ext?.kind, "extension");
    assert.match(ext?.path ?? "", /yaml\/_yaml\.cpython-3\d+-.*\.so$/);
    assert.deepEqual(await findModuleFile("google", sysPath), {
      path: join(site, "google"),
      kind: "namespace",
      portions: [join(site, "google"), join(extra, "google")],
    });
    assert.deepEqual(await findModuleFile("google.fakeportion", sysPath), {
      path: join(extra, "google", "fakeportion", "__init__.py"),
      kind: "package",
    });
    assert.deepEqual(await findModuleFile("google._upb._message", sysPath), {
      path: join(site, "google", "_upb", "_message.abi3.so"),
      kind: "extension",
    });
    assert.equal((await findModuleFile("json", sysPath))?.kind, "package");
    assert.equal((await findModuleFile("textwrap", sysPath))?.kind, "module");
    assert.equal(await findModuleFile("no_such_module", sysPath), undefined);
    assert.equal(await findModuleFile("textwrap.inner", sysPath), undefined);
  });

  test("applies PathFinder's precedence", async () => {
    assert.equal((await findModuleFile("dup", sysPath))?.kind, "package");
    assert.equal(
      (await findModuleFile("fastmod", sysPath))?.path,
      join(extra, "fastmod.cpython-311-x86_64-linux-gnu.so"),
    );
    assert.equal((await findModuleFile("yaml", sysPath))?.path, join(site, "yaml", "__init__.py"));
  });
});

describe("ownerOf", () => {
  async function owner(dotted: string): Promise<[string, string] | undefined> {
    const found = await ownerOf(dotted, sysPath, dists);
    return found && [found.module, found.dist.normalized];
  }

  test("maps imports to the distribution whose RECORD lists the file", async () => {
    assert.deepEqual(await owner("yaml"), ["yaml", "pyyaml"]);
    assert.deepEqual(await owner("yaml._yaml"), ["yaml._yaml", "pyyaml"]);
    assert.deepEqual(await owner("yaml.Loader"), ["yaml", "pyyaml"]);
    assert.deepEqual(await owner("google.protobuf"), ["google.protobuf", "protobuf"]);
    assert.deepEqual(await owner("google.protobuf.json_format.MessageToJson"), [
      "google.protobuf.json_format",
      "protobuf",
    ]);
    assert.deepEqual(await owner("google._upb._message"), ["google._upb._message", "protobuf"]);
    assert.deepEqual(await owner("google.auth.transport.requests"), [
      "google.auth.transport.requests",
      "google-auth",
    ]);
    assert.deepEqual(await owner("google.rpc.status_pb2"), [
      "google.rpc.status_pb2",
      "googleapis-common-protos",
    ]);
    assert.deepEqual(await owner("legacy_pkg"), ["legacy_pkg", "legacy-pkg"]);
    const found = await ownerOf("yaml", sysPath, dists);
    assert.equal(found?.file, join(site, "yaml", "__init__.py"));
  });

  test("falls back to an unambiguous top_level.txt claim", async () => {
    assert.deepEqual(await owner("orphan_mod"), ["orphan_mod", "claimed"]);
  });

  test("leaves the stdlib, shared namespaces and unknown code unowned", async () => {
    assert.equal(await owner("json"), undefined);
    assert.equal(await owner("os.path"), undefined);
    assert.equal(await owner("google"), undefined);
    assert.equal(await owner("google.fakeportion"), undefined);
    assert.equal(await owner("dup"), undefined);
    assert.equal(await owner("no_such_module"), undefined);
  });

  test("answers quickly once the index is built", async (t) => {
    const names = ["yaml", "google.protobuf.message", "google.auth", "json", "google.rpc"];
    const start = performance.now();
    for (let i = 0; i < 40; i++) for (const name of names) await ownerOf(name, sysPath, dists);
    t.diagnostic(`200 ownerOf lookups: ${(performance.now() - start).toFixed(1)} ms`);
  });
});
