/**
 * Building sdists through PEP 517 with real backends (setuptools, its legacy fallback, hatchling,
 * flit-core behind an in-tree backend) installed from the machine's package index into build
 * environments pyferry makes itself. The sdists are written here with Python's tarfile and
 * zipfile; the cache of built wheels, failing backends and hostile archives are checked, and
 * `pyferry env create` installs projects that exist only as sdists.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { unpackWheel } from "../../../src/install/cache.js";
import { createVenv } from "../../../src/install/env.js";
import {
  type BuildDeps,
  type BuiltWheel,
  buildWheelFromSdist,
  type SdistFile,
  sdistMetadata,
} from "../../../src/install/sdist.js";
import { installAll } from "../../../src/install/wheel-install.js";
import { buildDeps } from "../../../src/pipeline/build.js";
import { type InterpreterInfo, probeInterpreter } from "../../../src/python/interpreter.js";
import { formatRequirement } from "../../../src/python/requirement.js";
import { UserError } from "../../../src/util/errors.js";
import { pyferry } from "../../support/cli.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-sdist-");
const cache = join(root, "cache");
process.env.PYFERRY_CACHE_DIR = cache;
after(() => rmSync(root, { recursive: true, force: true }));
const PYTHON = execFileSync(process.env.PYFERRY_TEST_PYTHON ?? "python3", [
  "-c",
  "import sys; print(sys.executable)",
])
  .toString()
  .trim();

let info: InterpreterInfo;
before(async () => {
  info = await probeInterpreter(PYTHON);
});

let counter = 0;
function fresh(name: string): string {
  const dir = join(root, `${name}-${++counter}`);
  mkdirSync(dir, { recursive: true });
  return dir;
}

interface Member {
  name: string;
  data?: string;
  type?: "file" | "dir" | "symlink";
  linkname?: string;
}

/** Writes a .tar.gz or .zip with exactly the members given, whatever their names. */
const ARCHIVER = `
import io, json, sys, tarfile, zipfile
spec = json.load(sys.stdin)
if spec["out"].endswith(".zip"):
    with zipfile.ZipFile(spec["out"], "w") as z:
        for m in spec["members"]:
            z.writestr(m["name"], m.get("data", ""))
else:
    with tarfile.open(spec["out"], "w:gz") as t:
        for m in spec["members"]:
            info = tarfile.TarInfo(m["name"])
            kind = m.get("type", "file")
            if kind == "symlink":
                info.type, info.linkname = tarfile.SYMTYPE, m["linkname"]
                t.addfile(info)
            elif kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            else:
                data = m.get("data", "").encode()
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
`;

function archive(out: string, members: Member[]): SdistFile {
  execFileSync(PYTHON, ["-c", ARCHIVER], { input: JSON.stringify({ out, members }) });
  const sha256 = createHash("sha256").update(readFileSync(out)).digest("hex");
  return { path: out, sha256, filename: basename(out) };
}

/** An sdist in the PEP 625 layout: `name-version/` with PKG-INFO and `files`. */
function sdist(
  dir: string,
  name: string,
  files: Record<string, string>,
  opts: { zip?: boolean; requires?: string[]; metadataVersion?: string } = {},
): SdistFile {
  const top = `${name}-1.0`;
  const pkgInfo = [
    `Metadata-Version: ${opts.metadataVersion ?? "2.2"}`,
    `Name: ${name}`,
    "Version: 1.0",
    ...(opts.requires ?? []).map((r) => `Requires-Dist: ${r}`),
    "",
  ].join("\n");
  const members = Object.entries({ "PKG-INFO": pkgInfo, ...files }).map(([path, data]) => ({
    name: `${top}/${path}`,
    data,
  }));
  return archive(join(dir, `${top}.${opts.zip ? "zip" : "tar.gz"}`), members);
}

/** pyferry's own build environments, with every call's requirements recorded. */
function counted(): { deps: BuildDeps; calls: string[][] } {
  const calls: string[][] = [];
  const real = buildDeps(info);
  const deps: BuildDeps = (requirements, envDir) => {
    calls.push(requirements.map(formatRequirement));
    return real(requirements, envDir);
  };
  return { deps, calls };
}

/** Install the built wheel into a new environment and run `code` there; returns its stdout. */
async function installAndRun(built: BuiltWheel, code: string): Promise<string> {
  const layout = await createVenv(fresh("env"), info);
  await installAll([await unpackWheel(built.wheel, built.sha256)], layout);
  const r = spawnSync(layout.python, ["-c", code], { encoding: "utf8" });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

function pyproject(
  backend: string,
  requires: string[],
  opts: { backendPath?: string; extra?: string } = {},
): string {
  const list = requires.map((r) => JSON.stringify(r)).join(", ");
  const path = opts.backendPath ? `backend-path = ["${opts.backendPath}"]\n` : "";
  return `[build-system]\nrequires = [${list}]\n${path}build-backend = "${backend}"\n${opts.extra ?? ""}`;
}

/** A pure-Python wheel's name (py3, or py2.py3 from backends that see no requires-python). */
const PURE = (name: string) => new RegExp(`^${name}-1\\.0-(py2\\.)?py3-none-any\\.whl$`);

const PROJECT = (name: string) => `\n[project]\nname = "${name}"\nversion = "1.0"\n`;

async function rejectsWith(p: Promise<unknown>, pattern: RegExp): Promise<UserError> {
  let caught: unknown;
  await p.catch((err: unknown) => {
    caught = err;
  });
  assert.ok(caught instanceof UserError, `expected a UserError, got ${String(caught)}`);
  assert.match(caught.message, pattern);
  return caught;
}

/** An in-tree backend that asks for flit-core, then hands build_wheel (only) to it. */
const FLIT_INTREE = [
  "def get_requires_for_build_wheel(config_settings=None):",
  "    return ['flit_core>=3.2']",
  "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):",
  "    from flit_core import buildapi",
  "    return buildapi.build_wheel(wheel_directory, config_settings, metadata_directory)",
  "",
].join("\n");

function flitSdist(name: string): SdistFile {
  const extra = `${PROJECT(name)}description = "flit demo"\n`;
  return sdist(fresh(name), name, {
    "pyproject.toml": pyproject("intree", [], { backendPath: "_build", extra }),
    "_build/intree.py": FLIT_INTREE,
    [`${name}/__init__.py`]: "'''Flit demo.'''\nNAME = 'flit'\n",
  });
}

describe("buildWheelFromSdist", () => {
  test("a setuptools sdist builds once; the second call is a cache hit", async () => {
    const s = sdist(fresh("sd"), "sdemo", {
      "pyproject.toml": pyproject("setuptools.build_meta", ["setuptools>=61"], {
        extra: PROJECT("sdemo"),
      }),
      "sdemo/__init__.py": "VALUE = 42\n",
    });
    const { deps, calls } = counted();
    const t0 = performance.now();
    const built = await buildWheelFromSdist(s, info, deps);
    const first = performance.now() - t0;
    assert.deepEqual(calls, [["setuptools>=61"]]);
    assert.equal(built.wheel, join(cache, "built", s.sha256, "sdemo-1.0-py3-none-any.whl"));
    assert.equal(
      built.sha256,
      createHash("sha256").update(readFileSync(built.wheel)).digest("hex"),
    );
    assert.equal(await installAndRun(built, "import sdemo; print(sdemo.VALUE)"), "42");

    const t1 = performance.now();
    const again = await buildWheelFromSdist(s, info, deps);
    const second = performance.now() - t1;
    assert.deepEqual(again, built);
    assert.equal(calls.length, 1, "no build environment, so no backend run, the second time");
    assert.ok(second < first / 5, `cache hit took ${second} ms, the build ${first} ms`);
  });

  test("a build environment meets a changed cached wheel: it is unpacked again, the build goes on", async () => {
    const first = sdist(fresh("mend1"), "mendone", {
      "pyproject.toml": pyproject("setuptools.build_meta", ["setuptools>=61"], {
        extra: PROJECT("mendone"),
      }),
      "mendone/__init__.py": "VALUE = 1\n",
    });
    await buildWheelFromSdist(first, info, counted().deps);
    // setuptools' tree in the cache, edited in place as root could through an environment's link.
    const trees = join(cache, "unpacked");
    const tree = readdirSync(trees)
      .map((n) => join(trees, n))
      .find((d) => existsSync(join(d, "setuptools", "__init__.py"))) as string;
    const file = join(tree, "setuptools", "__init__.py");
    const original = readFileSync(file, "utf8");
    chmodSync(file, 0o644);
    writeFileSync(file, `${original}\nraise SystemExit('edited')\n`);
    const second = sdist(fresh("mend2"), "mendtwo", {
      "pyproject.toml": pyproject("setuptools.build_meta", ["setuptools>=61"], {
        extra: PROJECT("mendtwo"),
      }),
      "mendtwo/__init__.py": "VALUE = 2\n",
    });
    const built = await buildWheelFromSdist(second, info, counted().deps);
    assert.equal(await installAndRun(built, "import mendtwo; print(mendtwo.VALUE)"), "2");
    assert.equal(readFileSync(file, "utf8"), original, "setuptools was unpacked anew");
  });

  test("a .zip sdist without pyproject.toml builds through setuptools' legacy backend", async () => {
    const s = sdist(
      fresh("legacy"),
      "legacydemo",
      {
        "setup.py":
          "from setuptools import setup\nsetup(name='legacydemo', version='1.0', py_modules=['legacydemo'])\n",
        "legacydemo.py": "WHO = 'legacy'\n",
      },
      { zip: true },
    );
    const { deps, calls } = counted();
    const built = await buildWheelFromSdist(s, info, deps);
    assert.deepEqual(calls[0], ["setuptools>=40.8.0"]);
    assert.equal(basename(built.wheel), "legacydemo-1.0-py3-none-any.whl");
    assert.equal(await installAndRun(built, "import legacydemo; print(legacydemo.WHO)"), "legacy");
  });

  test("a hatchling sdist builds into a wheel that installs and imports", async () => {
    const s = sdist(fresh("hd"), "hdemo", {
      "pyproject.toml": pyproject("hatchling.build", ["hatchling"], { extra: PROJECT("hdemo") }),
      "hdemo/__init__.py": "def hello():\n    return 'hatched'\n",
    });
    const { deps, calls } = counted();
    const built = await buildWheelFromSdist(s, info, deps);
    assert.deepEqual(calls, [["hatchling"]]);
    assert.match(basename(built.wheel), PURE("hdemo"));
    assert.equal(await installAndRun(built, "import hdemo; print(hdemo.hello())"), "hatched");
  });

  test("an in-tree backend (backend-path) gets what get_requires_for_build_wheel adds", async () => {
    const s = flitSdist("fdemo");
    const { deps, calls } = counted();
    const built = await buildWheelFromSdist(s, info, deps);
    assert.deepEqual(calls, [[], ["flit_core>=3.2"]]);
    assert.match(basename(built.wheel), PURE("fdemo"));
    assert.equal(await installAndRun(built, "import fdemo; print(fdemo.NAME)"), "flit");
  });

  test("a failing backend gives one sentence and the tail of its output; nothing is cached", async () => {
    const backend = [
      "import sys",
      "def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):",
      "    for i in range(1, 41):",
      "        print(f'compiling step {i}', file=sys.stderr)",
      "    raise RuntimeError('the compiler is missing')",
      "",
    ].join("\n");
    const s = sdist(fresh("fail"), "faildemo", {
      "pyproject.toml": pyproject("failing", [], { backendPath: "." }),
      "failing.py": backend,
    });
    const { deps } = counted();
    const err = await rejectsWith(
      buildWheelFromSdist(s, info, deps),
      /^Building faildemo-1\.0\.tar\.gz failed: its build backend failing stopped with status 1 in build_wheel; its last output was:\n/,
    );
    const lines = err.message.split("\n");
    assert.equal(lines.length, 21, err.message);
    assert.match(err.message, /RuntimeError: the compiler is missing$/);
    assert.match(err.message, /compiling step 40$/m);
    assert.doesNotMatch(err.message, /compiling step 1$/m, "only the tail is kept");
    assert.equal(existsSync(join(cache, "built", s.sha256)), false);
  });

  test("a backend that cannot be imported is reported the same way", async () => {
    const s = sdist(fresh("nobackend"), "nobackend", {
      "pyproject.toml": pyproject("no_such_backend.api", []),
    });
    await rejectsWith(
      buildWheelFromSdist(s, info, counted().deps),
      /stopped with status 1 in get_requires_for_build_wheel;[\s\S]*No module named 'no_such_backend'/,
    );
  });

  test("a malformed [build-system] is refused before anything runs", async () => {
    const s = sdist(fresh("badtoml"), "badtoml", {
      "pyproject.toml": "[build-system]\nbuild-backend = 'x'\n",
    });
    const { deps, calls } = counted();
    await rejectsWith(buildWheelFromSdist(s, info, deps), /has no \[build-system\] requires list/);
    assert.equal(calls.length, 0);
  });
});

describe("hostile sdists are refused", () => {
  const cases: [string, Member[], RegExp][] = [
    ["a ../ member", [{ name: "evil-1.0/../../evil.txt", data: "x" }], /points outside/],
    ["an absolute path", [{ name: "/tmp/pyferry-evil.txt", data: "x" }], /absolute path/],
    [
      "a symlink out of the tree",
      [
        { name: "evil-1.0/PKG-INFO", data: "" },
        { name: "evil-1.0/link", type: "symlink", linkname: "../../../etc" },
      ],
      /symbolic link "evil-1\.0\/link" points outside the archive/,
    ],
    [
      // Lexically inside, but d -> "." makes each "d/" a level that ".." climbs for real.
      "a symlink that escapes through another one",
      [
        { name: "evil-1.0/PKG-INFO", data: "" },
        { name: "evil-1.0/d", type: "symlink", linkname: "." },
        { name: "evil-1.0/e", type: "symlink", linkname: "d/d/../../.." },
      ],
      /symbolic link "evil-1\.0\/e" points outside the archive/,
    ],
    [
      "a member inside a symlink",
      [
        { name: "evil-1.0/d", type: "symlink", linkname: "sub" },
        { name: "evil-1.0/d/x", type: "symlink", linkname: "." },
      ],
      /lies inside the symbolic link/,
    ],
    ["two top-level folders", [{ name: "a/x" }, { name: "b/y" }], /exactly one top-level folder/],
  ];
  for (const [what, members, pattern] of cases) {
    test(what, async () => {
      const s = archive(join(fresh("evil"), "evil-1.0.tar.gz"), members);
      const { deps, calls } = counted();
      await rejectsWith(
        buildWheelFromSdist(s, info, deps),
        new RegExp(`^The sdist evil-1\\.0\\.tar\\.gz cannot be built: .*${pattern.source}`),
      );
      assert.equal(calls.length, 0, "no build environment is made for it");
      assert.equal(existsSync("/tmp/pyferry-evil.txt"), false);
    });
  }
});

describe("sdistMetadata", () => {
  test("asks prepare_metadata_for_build_wheel without building a wheel", async () => {
    const extra = `${PROJECT("mdemo")}dependencies = ["packaging>=20", "tomli; python_version < '3.11'"]\n`;
    const s = sdist(fresh("md"), "mdemo", {
      "pyproject.toml": pyproject("setuptools.build_meta", ["setuptools>=61"], { extra }),
      "mdemo/__init__.py": "",
    });
    const meta = await sdistMetadata(s, info, counted().deps);
    assert.equal(meta.name, "mdemo");
    assert.equal(meta.version, "1.0");
    assert.deepEqual(meta.requiresDist, ["packaging>=20", 'tomli; python_version < "3.11"']);
    assert.equal(existsSync(join(cache, "built", s.sha256)), false, "no wheel was built");
  });

  test("builds and caches the wheel when the backend has no prepare_metadata hook", async () => {
    const s = flitSdist("fmeta");
    const { deps, calls } = counted();
    const meta = await sdistMetadata(s, info, deps);
    assert.equal(meta.name, "fmeta");
    assert.equal(meta.summary, "flit demo");
    const built = await buildWheelFromSdist(s, info, deps);
    assert.match(basename(built.wheel), PURE("fmeta"));
    assert.equal((await sdistMetadata(s, info, deps)).name, "fmeta");
    assert.equal(calls.length, 2, "one build environment (two deps calls), then the cached wheel");
  });
});

describe("pyferry env create with projects that exist only as sdists", () => {
  test("an sdist whose PKG-INFO cannot be trusted is resolved from its backend's metadata", () => {
    const links = fresh("links");
    // Metadata-Version 2.1 and no Requires-Dist: only the backend knows it needs ldep (PEP 643).
    sdist(
      links,
      "lmeta",
      {
        "pyproject.toml": pyproject("setuptools.build_meta", ["setuptools>=61"], {
          extra: `${PROJECT("lmeta")}dependencies = ["ldep"]\n`,
        }),
        "lmeta/__init__.py": "from ldep import PART\nVALUE = 'meta-' + PART\n",
      },
      { metadataVersion: "2.1" },
    );
    sdist(links, "ldep", {
      "pyproject.toml": pyproject("hatchling.build", ["hatchling"], { extra: PROJECT("ldep") }),
      "ldep/__init__.py": "PART = 'dep'\n",
    });
    const lockFile = join(fresh("lock"), "pylock.toml");
    const cliCache = fresh("cli-cache");
    const r = pyferry(
      ["lock", "lmeta", "--find-links", links, "--python", PYTHON, "-o", lockFile],
      {
        env: { PYFERRY_CACHE_DIR: cliCache },
      },
    );
    assert.equal(r.status, 0, r.stderr);
    const text = readFileSync(lockFile, "utf8");
    assert.match(text, /name = "ldep"/, "the dependency only the backend declares is locked");
    const env = join(fresh("menv"), "env");
    const c = pyferry(["env", "create", env, "--lock", lockFile, "--python", PYTHON], {
      env: { PYFERRY_CACHE_DIR: cliCache },
    });
    assert.equal(c.status, 0, c.stderr);
    const py = spawnSync(join(env, "bin", "python"), ["-c", "import lmeta; print(lmeta.VALUE)"], {
      encoding: "utf8",
    });
    assert.equal(py.stdout.trim(), "meta-dep", py.stderr);
  });

  test("builds both (setuptools and hatchling), installs them, and reuses the builds", () => {
    const links = fresh("links");
    sdist(
      links,
      "edemo",
      {
        "pyproject.toml": pyproject("setuptools.build_meta", ["setuptools>=61"], {
          extra: `${PROJECT("edemo")}dependencies = ["edep"]\n`,
        }),
        "edemo/__init__.py": "from edep import PART\nVALUE = 'e2e-' + PART\n",
      },
      { requires: ["edep"] },
    );
    sdist(links, "edep", {
      "pyproject.toml": pyproject("hatchling.build", ["hatchling"], { extra: PROJECT("edep") }),
      "edep/__init__.py": "PART = 'dep'\n",
    });
    const cliCache = fresh("cli-cache");
    const create = (env: string) =>
      pyferry(["env", "create", env, "edemo", "--find-links", links, "--python", PYTHON], {
        env: { PYFERRY_CACHE_DIR: cliCache },
      });
    const env = join(fresh("cli"), "env");
    const r = create(env);
    assert.equal(r.status, 0, r.stderr);
    const py = spawnSync(join(env, "bin", "python"), ["-c", "import edemo; print(edemo.VALUE)"], {
      encoding: "utf8",
    });
    assert.equal(py.status, 0, py.stderr);
    assert.equal(py.stdout.trim(), "e2e-dep");

    const built = join(cliCache, "built");
    const wheels = () =>
      readdirSync(built, { recursive: true, encoding: "utf8" })
        .filter((f) => f.endsWith(".whl"))
        .map((f) => join(built, f))
        .sort();
    const before = wheels();
    const [edemo, edep] = before.map((w) => basename(w)).sort();
    assert.match(edemo as string, PURE("edemo"));
    assert.match(edep as string, PURE("edep"));
    // The same files (a rebuild publishes a new one by rename); reuse touches their mtime.
    const stamps = before.map((w) => statSync(w).ino);
    const second = create(join(dirname(env), "env2"));
    assert.equal(second.status, 0, second.stderr);
    assert.deepEqual(wheels(), before);
    assert.deepEqual(
      before.map((w) => statSync(w).ino),
      stamps,
      "the second environment reused the built wheels",
    );
  });
});
