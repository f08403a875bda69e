import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import {
  chmod,
  copyFile,
  lstat,
  mkdir,
  mkdtemp,
  open,
  readdir,
  readFile,
  readlink,
  rename,
  rm,
  stat,
  writeFile,
} from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, type TestContext, test } from "node:test";
import { type BundledPython, bundlePython } from "../../../src/install/bundled-python.js";
import { isElf, readRunpath } from "../../../src/install/elf.js";
import { type InterpreterInfo, probeInterpreter } from "../../../src/python/interpreter.js";
import { UserError } from "../../../src/util/errors.js";

const PYENV_ROOT = process.env.PYENV_ROOT || join(homedir(), ".pyenv");
const pyenvPrefix = (version: string) => join(PYENV_ROOT, "versions", version);
const pyenvPython = (version: string) => join(pyenvPrefix(version), "bin", "python3");
const PY311 = pyenvPython("3.11.7");
const PY27 = join(pyenvPrefix("2.7.18"), "bin", "python");
const DEBIAN311 = "/usr/bin/python3.11";
/** Older and newer than 3.11, on both sides of 3.11's rewrite of prefix discovery in Python. */
const OTHER_VERSIONS = ["3.6.15", "3.8.18", "3.12.1", "3.13.0"];
const isRoot = process.getuid?.() === 0;
const SCRUBBED_PATH = "PATH=/usr/bin:/bin";

function works(file: string, args: string[]): boolean {
  return spawnSync(file, args, { stdio: "ignore" }).status === 0;
}
const hasReadelf = works("readelf", ["--version"]);
const canUnshare = isRoot && works("unshare", ["-m", "true"]);

let tmp: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "pyferry-bundled-python-"));
  process.env.PYFERRY_CACHE_DIR = join(tmp, "cache");
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

function isUserError(pattern: RegExp) {
  return (err: unknown) => err instanceof UserError && pattern.test(err.message);
}

/** Bundle and report the time and size as test diagnostics. */
async function timedBundle(
  t: TestContext,
  info: InterpreterInfo,
  dest: string,
  opts: { withInclude?: boolean; withTests?: boolean } = {},
): Promise<BundledPython> {
  const start = performance.now();
  const bundled = await bundlePython(info, dest, opts);
  const seconds = ((performance.now() - start) / 1000).toFixed(2);
  const mb = (bundled.size / 1e6).toFixed(1);
  t.diagnostic(`${info.version} ${JSON.stringify(opts)}: ${mb} MB in ${seconds} s`);
  return bundled;
}

/** Prints, as JSON, where the interpreter thinks it is and whether the usual modules work. */
const CHECK = `
import json, os, sys, sysconfig
failed = {}
for name in ["ssl", "sqlite3", "ctypes", "json", "decimal", "zlib", "lzma", "bz2", "hashlib"]:
    try:
        __import__(name)
    except Exception as e:
        failed[name] = repr(e)
import hashlib, sqlite3, ssl, zlib
assert hashlib.sha256(b"x").hexdigest().startswith("2d711642")
assert sqlite3.connect(":memory:").execute("select 1").fetchone() == (1,)
ssl.create_default_context()
assert zlib.decompress(zlib.compress(b"abc")) == b"abc"
libs = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        fields = line.rstrip("\\n").split(None, 5)
        if len(fields) == 6 and "/libpython" in fields[5]:
            libs.add(fields[5])
print(json.dumps({
    "prefix": sys.prefix, "basePrefix": sys.base_prefix, "execPrefix": sys.exec_prefix,
    "executable": sys.executable, "path": sys.path, "failed": failed, "libpython": sorted(libs),
    "libdir": sysconfig.get_config_var("LIBDIR"), "purelib": sysconfig.get_paths()["purelib"],
    "scripts": sysconfig.get_paths()["scripts"], "user": os.getuid(),
    "writable": os.access(os.path.join(sys.prefix, "lib"), os.W_OK),
}))
`;

interface Check {
  prefix: string;
  basePrefix: string;
  execPrefix: string;
  executable: string;
  path: string[];
  failed: Record<string, string>;
  libpython: string[];
  libdir: string;
  purelib: string;
  scripts: string;
  user: number;
  writable: boolean;
}

/** Run CHECK with `command` (a prefix such as ["env", "-i", ...]) and assert it saw `root` only. */
function runCheck(command: string[], python: string, root: string): Check {
  const [file, ...args] = command;
  const out = execFileSync(file as string, [...args, python, "-c", CHECK], { encoding: "utf8" });
  const check = JSON.parse(out) as Check;
  assert.equal(check.prefix, root);
  assert.equal(check.basePrefix, root);
  assert.equal(check.execPrefix, root);
  assert.equal(check.executable, python);
  assert.deepEqual(check.failed, {});
  for (const entry of check.path.filter((p) => p !== "")) {
    assert.ok(entry.startsWith(`${root}/`), `sys.path entry outside the bundle: ${entry}`);
  }
  assert.ok(!JSON.stringify(check.path).includes(PYENV_ROOT));
  assert.ok(check.libpython.length > 0, "libpython is mapped");
  for (const lib of check.libpython) assert.ok(lib.startsWith(`${root}/lib/`), lib);
  assert.equal(check.libdir, join(root, "lib"));
  return check;
}

const scrubbed = ["env", "-i", SCRUBBED_PATH, "HOME=/nonexistent"];

/** All regular files under `dir`, relative to it. */
async function filesUnder(dir: string, rel = ""): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(join(dir, rel), { withFileTypes: true })) {
    const path = join(rel, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(dir, path)));
    else if (entry.isFile()) out.push(path);
  }
  return out;
}

function readelfRunpath(file: string): string | undefined {
  const out = execFileSync("readelf", ["-d", file], { encoding: "utf8" });
  return /\((?:RUNPATH|RPATH)\)\s+Library r(?:un)?path: \[(.*)\]/.exec(out)?.[1];
}

describe("bundlePython with pyenv's CPython 3.11", {
  skip: !existsSync(PY311) && "no 3.11.7",
}, () => {
  let info: InterpreterInfo;
  let bundled: BundledPython;
  let moved: string;

  before(async () => {
    info = await probeInterpreter(PY311);
  });

  test("copies the interpreter, libpython and the stdlib into a fresh directory", async (t) => {
    const dest = join(tmp, "build", "py311");
    bundled = await timedBundle(t, info, dest);
    assert.equal(bundled.root, dest);
    assert.equal(bundled.python, join(dest, "bin", "python3"));
    assert.equal(bundled.version, "3.11.7");
    assert.equal(bundled.stdlib, join(dest, "lib", "python3.11"));
    assert.equal(bundled.sitePackages, join(dest, "lib", "python3.11", "site-packages"));
    assert.deepEqual(await readdir(bundled.sitePackages), []);
    assert.deepEqual((await readdir(dest)).sort(), ["bin", "lib"]);
    assert.deepEqual((await readdir(join(dest, "bin"))).sort(), [
      "python",
      "python3",
      "python3.11",
    ]);
    assert.equal(await readlink(join(dest, "bin", "python3")), "python3.11");
    assert.equal(await readlink(join(dest, "bin", "python")), "python3.11");
    assert.ok((await lstat(join(dest, "lib", "libpython3.11.so.1.0"))).isFile());
    const stdlib = await readdir(bundled.stdlib);
    for (const name of ["os.py", "lib-dynload", "encodings", "json", "tkinter", "ensurepip"]) {
      assert.ok(stdlib.includes(name), name);
    }
    for (const name of ["test", "idlelib", "turtledemo", "config-3.11-x86_64-linux-gnu"]) {
      assert.ok(!stdlib.includes(name), name);
    }
    const files = await filesUnder(dest);
    assert.ok(!files.some((f) => f.endsWith("pyvenv.cfg")));
    assert.ok(!files.some((f) => /\.opt-\d\.pyc$/.test(f)));
    assert.ok(!files.some((f) => /(^|\/)(tests?|idle_test)\//.test(f)));
    assert.ok(!files.some((f) => /lib-dynload\/_testcapi/.test(f)));
    // Cached bytecode stays valid only if the copy kept each source's mtime, which it records.
    const pyc = await readFile(join(bundled.stdlib, "__pycache__", "os.cpython-311.pyc"));
    const source = await stat(join(bundled.stdlib, "os.py"));
    assert.equal(pyc.readUInt32LE(8), Math.floor(source.mtimeMs / 1000));
    assert.ok(bundled.systemLibraries["libssl.so.3"]?.some((f) => f.includes("_ssl.")));
    assert.equal(bundled.systemLibraries["libc.so.6"], undefined);
    assert.equal(bundled.systemLibraries["libpython3.11.so.1.0"], undefined);
    assert.match(bundled.glibc ?? "", /^2\.\d+$/);
    assert.ok(bundled.size > 20e6 && bundled.size < 150e6, `${bundled.size} bytes`);
    assert.deepEqual(
      (await readdir(dirname(dest))).filter((n) => n.includes(".partial-")),
      [],
      "no staging directory is left behind",
    );
  });

  test("gives every ELF file an $ORIGIN-relative search path", async () => {
    const runpaths = new Map<string, string | undefined>();
    for (const file of await filesUnder(bundled.root)) {
      if (await isElf(join(bundled.root, file))) {
        runpaths.set(file, await readRunpath(join(bundled.root, file)));
      }
    }
    assert.equal(runpaths.get("bin/python3.11"), "$ORIGIN/../lib");
    assert.equal(runpaths.get("lib/libpython3.11.so.1.0"), "$ORIGIN");
    const modules = [...runpaths.keys()].filter((f) => f.includes("lib-dynload/"));
    assert.ok(modules.length > 40, `${modules.length} extension modules`);
    for (const file of modules) assert.equal(runpaths.get(file), "$ORIGIN/../..", file);
    if (hasReadelf) {
      for (const file of ["bin/python3.11", "lib/libpython3.11.so.1.0", modules[0] as string]) {
        assert.equal(readelfRunpath(join(bundled.root, file)), runpaths.get(file), file);
      }
    }
  });

  test("moved to a path with a space, runs on its own in a scrubbed environment", async () => {
    moved = join(tmp, "moved here", "py 311");
    await mkdir(dirname(moved));
    await rename(bundled.root, moved);
    const python = join(moved, "bin", "python3");
    // The copy is run by its path, so whatever python3 PATH would find does not matter; the
    // scrubbed environment also carries no PYTHONHOME, PYTHONPATH or LD_LIBRARY_PATH.
    const check = runCheck(scrubbed, python, moved);
    assert.equal(check.purelib, join(moved, "lib", "python3.11", "site-packages"));
    assert.equal(check.scripts, join(moved, "bin"));
    const ldd = execFileSync("ldd", [python], { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } });
    assert.ok(
      ldd.includes(`libpython3.11.so.1.0 => ${moved}/bin/../lib/libpython3.11.so.1.0 (`),
      ldd,
    );
    // The same through the versioned name and the python symlink.
    for (const name of ["python", "python3.11"]) {
      const out = execFileSync(
        "env",
        ["-i", SCRUBBED_PATH, join(moved, "bin", name), "-c", "import sys; print(sys.prefix)"],
        { encoding: "utf8" },
      );
      assert.equal(out.trim(), moved);
    }
  });

  test("runs with the original installation hidden", {
    skip: !canUnshare && "needs root and mount namespaces",
  }, () => {
    // In a private mount namespace, cover pyenv and Debian's Python so that nothing of the
    // source can be loaded: a copy that fell back to its compiled-in prefix would fail here.
    const script = [
      "set -e",
      'mount -t tmpfs tmpfs "$1"',
      'for d in /usr/lib/python3*; do if [ -d "$d" ]; then mount -t tmpfs tmpfs "$d"; fi; done',
      'for f in /usr/bin/python3*; do if [ -f "$f" ] && [ ! -L "$f" ]; then mount --bind /dev/null "$f"; fi; done',
      '[ ! -e "$1/versions" ]',
      'shift; exec env -i PATH=/usr/bin:/bin HOME=/nonexistent "$@"',
    ].join("\n");
    runCheck(
      ["unshare", "-m", "sh", "-c", script, "sh", PYENV_ROOT],
      join(moved, "bin", "python3"),
      moved,
    );
  });

  test("runs as another user, from a directory it cannot write", {
    skip: !isRoot && "needs root to create a user",
  }, async () => {
    const user = `pyferry${randomBytes(3).toString("hex")}`;
    execFileSync("useradd", ["--system", "--no-create-home", "--shell", "/usr/sbin/nologin", user]);
    try {
      // mkdtemp made the test directory private; the bundle's own modes come from the source.
      for (let dir = dirname(moved); dir !== dirname(tmp); dir = dirname(dir)) {
        await chmod(dir, 0o755);
      }
      const check = runCheck(
        ["runuser", "-u", user, "--", ...scrubbed],
        join(moved, "bin", "python3"),
        moved,
      );
      assert.notEqual(check.user, 0);
      assert.equal(check.writable, false);
    } finally {
      execFileSync("userdel", [user]);
    }
  });

  test("with tests and include: the test suite, headers and build configuration", async (t) => {
    const dest = join(tmp, "full", "py311");
    const full = await timedBundle(t, info, dest, { withTests: true, withInclude: true });
    assert.ok(full.size > bundled.size);
    assert.ok(existsSync(join(dest, "include", "python3.11", "Python.h")));
    assert.equal(await readlink(join(dest, "lib", "libpython3.11.so")), "libpython3.11.so.1.0");
    assert.ok(existsSync(join(dest, "lib", "libpython3.so")));
    const config = join(full.stdlib, "config-3.11-x86_64-linux-gnu");
    assert.ok(existsSync(join(config, "Makefile")));
    assert.ok(!(await readdir(config)).some((f) => f.endsWith(".a")));
    assert.ok(existsSync(join(full.stdlib, "test", "support", "__init__.py")));
    const out = execFileSync(
      "env",
      [
        "-i",
        SCRUBBED_PATH,
        full.python,
        "-c",
        "import sysconfig, test.support, _testcapi; print(sysconfig.get_config_var('INCLUDEPY'))",
      ],
      { encoding: "utf8" },
    );
    assert.equal(out.trim(), join(dest, "include", "python3.11"));
  });

  test("a venv's interpreter is bundled from its base installation", async () => {
    const venv = join(tmp, "venv");
    execFileSync(PY311, ["-m", "venv", "--without-pip", venv]);
    const venvInfo = await probeInterpreter(join(venv, "bin", "python"));
    assert.equal(venvInfo.isVirtualenv, true);
    const dest = join(tmp, "from-venv");
    const fromVenv = await bundlePython(venvInfo, dest);
    assert.ok(!existsSync(join(dest, "pyvenv.cfg")));
    const out = execFileSync(
      "env",
      [
        "-i",
        SCRUBBED_PATH,
        fromVenv.python,
        "-c",
        "import sys; print(sys.prefix == sys.base_prefix)",
      ],
      { encoding: "utf8" },
    );
    assert.equal(out.trim(), "True");
  });

  test("refuses a destination that is not empty, and accepts an empty one", async () => {
    const dest = join(tmp, "occupied");
    await mkdir(dest);
    await writeFile(join(dest, "keep.txt"), "mine");
    await assert.rejects(bundlePython(info, dest), isUserError(/not empty/));
    assert.deepEqual(await readdir(dest), ["keep.txt"]);
    const empty = join(tmp, "empty");
    await mkdir(empty);
    const ok = await bundlePython(info, empty);
    assert.ok(existsSync(ok.python));
    assert.deepEqual(
      (await readdir(tmp)).filter((n) => n.includes(".partial-")),
      [],
      "no staging directory is left behind",
    );
  });

  test("refuses an interpreter that needs libpython but has no search path", {
    skip: !hasReadelf && "no readelf",
  }, async () => {
    // A prefix like pyenv's whose python3.11 lost its DT_RUNPATH (its tag turned into DT_DEBUG),
    // as in builds that rely on LD_LIBRARY_PATH or ld.so.conf to find libpython.
    const prefix = join(tmp, "no-runpath");
    await mkdir(join(prefix, "bin"), { recursive: true });
    const exe = join(prefix, "bin", "python3.11");
    await copyFile(join(pyenvPrefix("3.11.7"), "bin", "python3.11"), exe);
    const readelf = execFileSync("readelf", ["-d", exe], { encoding: "utf8" });
    const dynamicAt = Number.parseInt(
      /Dynamic section at offset (0x[0-9a-f]+)/.exec(readelf)?.[1] ?? "",
      16,
    );
    const handle = await open(exe, "r+");
    try {
      const entry = Buffer.alloc(16);
      for (let at = dynamicAt; ; at += 16) {
        await handle.read(entry, 0, 16, at);
        const tag = entry.readBigUInt64LE(0);
        if (tag === 0n) break;
        if (tag === 29n) {
          entry.writeBigUInt64LE(21n, 0);
          await handle.write(entry, 0, 16, at);
        }
      }
    } finally {
      await handle.close();
    }
    assert.equal(await readRunpath(exe), undefined);
    const fake: InterpreterInfo = { ...info, basePrefix: prefix, prefix };
    await assert.rejects(
      bundlePython(fake, join(tmp, "never")),
      isUserError(/loads libpython3\.11\.so\.1\.0 but has no RUNPATH or RPATH/),
    );
    assert.ok(!existsSync(join(tmp, "never")));
  });
});

describe("bundlePython with other CPython versions", () => {
  for (const version of OTHER_VERSIONS) {
    const python = pyenvPython(version);
    test(`CPython ${version}: bundled, moved, runs on its own`, {
      skip: !existsSync(python) && `no pyenv ${version}`,
    }, async (t) => {
      const info = await probeInterpreter(python);
      const bundled = await timedBundle(t, info, join(tmp, "versions", version));
      const [major, minor] = info.versionInfo;
      const bin = join(bundled.root, "bin", `python${major}.${minor}`);
      assert.equal(await readRunpath(bin), "$ORIGIN/../lib");
      const moved = join(tmp, "versions moved", `python ${version}`);
      await mkdir(dirname(moved), { recursive: true });
      await rename(bundled.root, moved);
      runCheck(scrubbed, join(moved, "bin", "python3"), moved);
    });
  }
});

describe("interpreters that cannot be bundled", () => {
  test("Debian's python3.11 is refused with the reason", {
    skip: !existsSync("/usr/lib/python3/dist-packages") && "no Debian-style Python",
  }, async () => {
    const info = await probeInterpreter(DEBIAN311);
    const dest = join(tmp, "debian");
    await assert.rejects(
      bundlePython(info, dest),
      isUserError(
        /site module does not use \/usr\/lib\/python3\.11\/site-packages.*dist-packages.*Debian/,
      ),
    );
    assert.ok(!existsSync(dest));
  });

  test("Python 2 is refused", { skip: !existsSync(PY27) && "no pyenv 2.7.18" }, async () => {
    const info = await probeInterpreter(PY27);
    await assert.rejects(bundlePython(info, join(tmp, "py27")), isUserError(/3\.6 or newer/));
  });
});
