import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { chmod, mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  findInterpreter,
  listInterpreters,
  probeInterpreter,
} from "../../../src/python/interpreter.js";
import { stdlibTable } from "../../../src/python/stdlib.js";
import { UserError } from "../../../src/util/errors.js";

const PYENV_ROOT = process.env.PYENV_ROOT || join(homedir(), ".pyenv");
const pyenv = (version: string) => join(PYENV_ROOT, "versions", version, "bin", "python");
const PY311 = pyenv("3.11.7");
const PY27 = pyenv("2.7.18");
const PY38 = pyenv("3.8.18");
const DEBIAN311 = "/usr/bin/python3.11";
const have = (file: string) => existsSync(file);

let tmp: string;
let cache: string;

before(async () => {
  tmp = await mkdtemp(join(tmpdir(), "pyferry-interp-"));
  cache = join(tmp, "cache");
  // cacheDir() reads this on every call, so the tests never touch the user's cache.
  process.env.PYFERRY_CACHE_DIR = cache;
});

after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function cacheFiles(): Promise<string[]> {
  const dir = join(cache, "interpreters");
  return existsSync(dir) ? (await readdir(dir)).map((f) => join(dir, f)) : [];
}

function isUserError(pattern: RegExp) {
  return (err: unknown) => err instanceof UserError && pattern.test(err.message);
}

describe("probeInterpreter", { skip: !have(PY311) && "no pyenv 3.11.7" }, () => {
  test("describes CPython 3.11 and caches the answer", async (t) => {
    let start = performance.now();
    const info = await probeInterpreter(PY311);
    const cold = performance.now() - start;
    assert.equal(info.executable, PY311);
    assert.equal(info.version, "3.11.7");
    assert.deepEqual(info.versionInfo, [3, 11, 7, "final", 0]);
    assert.equal(info.implementation, "cpython");
    assert.equal(info.abiTag, "cp311");
    assert.equal(info.platform, "linux-x86_64");
    assert.equal(info.machine, "x86_64");
    assert.match(info.glibc ?? "", /^2\.\d+$/);
    assert.equal(info.musl, undefined);
    assert.equal(info.pointerBits, 64);
    assert.equal(info.isVirtualenv, false);
    assert.equal(info.prefix, info.basePrefix);
    assert.ok(info.paths.purelib?.endsWith("site-packages"));
    assert.ok(!info.sysPath.includes("") && !info.sysPath.includes(process.cwd()));
    assert.ok(info.sysPath.includes(info.paths.stdlib as string));
    assert.deepEqual(new Set(info.stdlibModules), stdlibTable("3.11"));
    assert.equal(info.markerEnv.python_version, "3.11");
    assert.equal(info.markerEnv.python_full_version, "3.11.7");
    assert.equal(info.markerEnv.sys_platform, "linux");
    assert.equal(info.markerEnv.implementation_name, "cpython");

    // Doctor the cached entry: if the second call reports it, no interpreter was run.
    const [file, ...rest] = await cacheFiles();
    assert.ok(file && rest.length === 0);
    const entry = JSON.parse(await readFile(file, "utf8"));
    entry.info.version = "9.9.9";
    await writeFile(file, JSON.stringify(entry));
    start = performance.now();
    const cached = await probeInterpreter(PY311);
    const warm = performance.now() - start;
    assert.equal(cached.version, "9.9.9");
    await rm(file);
    t.diagnostic(`probe of 3.11.7: cold ${cold.toFixed(1)} ms, cached ${warm.toFixed(1)} ms`);
  });

  test("gives a venv its own entry and drops it when site-packages changes", async () => {
    const venv = join(tmp, "venv");
    execFileSync(PY311, ["-m", "venv", "--without-pip", venv]);
    const python = join(venv, "bin", "python");
    await probeInterpreter(PY311);
    const info = await probeInterpreter(python);
    assert.equal(info.isVirtualenv, true);
    assert.equal(info.prefix, venv);
    assert.equal(info.basePrefix, join(PYENV_ROOT, "versions", "3.11.7"));
    const site = join(venv, "lib", "python3.11", "site-packages");
    assert.ok(info.sysPath.includes(site));

    assert.equal((await cacheFiles()).length, 2, "the venv shares its binary with 3.11.7");
    for (const f of await cacheFiles()) {
      const entry = JSON.parse(await readFile(f, "utf8"));
      if (entry.info.executable !== python) continue;
      entry.info.version = "9.9.9";
      await writeFile(f, JSON.stringify(entry));
    }
    assert.equal((await probeInterpreter(python)).version, "9.9.9");
    // A new .pth file can add sys.path entries, so the cached answer must go.
    await writeFile(join(site, "extra.pth"), `${tmp}\n`);
    const fresh = await probeInterpreter(python);
    assert.equal(fresh.version, "3.11.7");
    assert.ok(fresh.sysPath.includes(tmp));
    await rm(join(site, "extra.pth"));
  });

  test("describes Python 2.7", { skip: !have(PY27) && "no pyenv 2.7.18" }, async () => {
    const info = await probeInterpreter(PY27);
    assert.equal(info.version, "2.7.18");
    assert.equal(info.abiTag, "cp27mu");
    assert.equal(info.markerEnv.implementation_name, "");
    assert.equal(info.markerEnv.sys_platform, "linux2");
    assert.ok(!info.sysPath.includes(""));
    for (const name of ["os", "Tkinter", "_winreg", "cPickle", "sys"]) {
      assert.ok(info.stdlibModules.includes(name), name);
    }
    assert.ok(!info.stdlibModules.includes("test"));
  });

  test("derives 3.8's module list with the shipped table's rule", {
    skip: !have(PY38) && "no pyenv 3.8.18",
  }, async () => {
    const info = await probeInterpreter(PY38);
    assert.deepEqual(new Set(info.stdlibModules), stdlibTable("3.8"));
  });

  test("rejects what is not a Python interpreter, naming the path", async () => {
    await assert.rejects(probeInterpreter("/bin/false"), isUserError(/\/bin\/false/));
    const text = join(tmp, "notes.txt");
    await writeFile(text, "hello\n");
    await assert.rejects(probeInterpreter(text), isUserError(/notes\.txt/));
    await assert.rejects(probeInterpreter(join(tmp, "missing")), isUserError(/does not exist/));
    const crash = join(tmp, "crash");
    await writeFile(crash, "#!/bin/sh\necho 'boom' >&2\nexit 3\n");
    await chmod(crash, 0o755);
    await assert.rejects(probeInterpreter(crash), isUserError(/crash is not a working.*boom/));
  });
});

describe("findInterpreter", { skip: !have(PY311) && "no pyenv 3.11.7" }, () => {
  let bin: string;
  before(async () => {
    bin = join(tmp, "bin");
    await mkdir(bin, { recursive: true });
    await symlink(
      join(PYENV_ROOT, "versions", "3.11.7", "bin", "python3.11"),
      join(bin, "python3"),
    );
  });

  test("picks VIRTUAL_ENV, then python3 on PATH", async () => {
    const env = { PATH: bin, PYENV_ROOT: join(tmp, "no-pyenv") };
    assert.equal(await findInterpreter(undefined, env), join(bin, "python3"));
    const venv = join(tmp, "active");
    execFileSync(PY311, ["-m", "venv", "--without-pip", venv]);
    assert.equal(
      await findInterpreter(undefined, { ...env, VIRTUAL_ENV: venv }),
      join(venv, "bin", "python"),
    );
    await assert.rejects(
      findInterpreter(undefined, { PATH: join(tmp, "empty") }),
      isUserError(/No Python interpreter found/),
    );
  });

  test("resolves a pyenv shim to the interpreter behind it", async () => {
    const found = await findInterpreter(undefined, process.env);
    assert.ok(!found.includes(`${join(PYENV_ROOT, "shims")}/`), found);
    assert.ok((await probeInterpreter(found)).version.startsWith("3."));
  });

  test("picks the highest interpreter matching a version request", async () => {
    const env = { PATH: `${bin}:/usr/bin`, PYENV_ROOT };
    assert.equal(await findInterpreter("3.11", env), join(bin, "python3"));
    assert.equal(await findInterpreter("python3.11.7", env), join(bin, "python3"));
    if (have(DEBIAN311)) {
      const debian = await findInterpreter("3.11.2", env);
      assert.equal((await probeInterpreter(debian)).version, "3.11.2");
    }
    if (have(pyenv("3.12.1"))) {
      assert.equal(await findInterpreter("cpython3.12", env), pyenv("3.12.1"));
    }
    if (have(pyenv("3.13.0"))) {
      assert.equal(await findInterpreter("3", env), pyenv("3.13.0"));
      // A command name is what the shell would run, even with a higher 3.x in pyenv.
      assert.equal(await findInterpreter("python3", env), join(bin, "python3"));
    }
    if (have(PY27)) assert.equal(await findInterpreter("2", env), PY27);
    await assert.rejects(
      findInterpreter("3.15", env),
      (err: unknown) =>
        err instanceof UserError &&
        err.message ===
          "No Python 3.15 interpreter found on PATH or in pyenv; install one or pass --python PATH.",
    );
    await assert.rejects(findInterpreter("pypy3.10", env), isUserError(/No PyPy 3\.10 /));
  });

  test("takes a path as is, if it is an executable file", async () => {
    assert.equal(await findInterpreter(PY311), PY311);
    await assert.rejects(
      findInterpreter(join(tmp, "nope", "python")),
      isUserError(/does not exist/),
    );
    await assert.rejects(findInterpreter(tmp), isUserError(/not an executable file/));
  });
});

describe("listInterpreters", { skip: !have(PY311) && "no pyenv 3.11.7" }, () => {
  test("lists each interpreter once, highest version first", async () => {
    const list = await listInterpreters({ PATH: "/usr/bin:/bin", PYENV_ROOT });
    const versions = list.map((i) => i.version);
    assert.ok(versions.includes("3.11.7"));
    if (have(DEBIAN311)) assert.ok(versions.includes("3.11.2"));
    assert.equal(new Set(list.map((i) => i.executable)).size, list.length);
    assert.equal(versions.filter((v) => v === "3.11.2").length <= 1, true);
    const numeric = versions.map((v) => v.split(".").map(Number));
    for (let i = 1; i < numeric.length; i++) {
      const [a, b] = [numeric[i - 1] as number[], numeric[i] as number[]];
      const cmp = (a[0] as number) - (b[0] as number) || (a[1] as number) - (b[1] as number);
      assert.ok(cmp >= 0, `${versions[i - 1]} before ${versions[i]}`);
    }
  });
});

describe("choosing among interpreters", { skip: !have(PY311) && "no pyenv 3.11.7" }, () => {
  test("asks each for its version only: what it finds is what a probe finds", async () => {
    const saved = process.env.PYFERRY_CACHE_DIR;
    const own = join(tmp, "sketch-cache");
    process.env.PYFERRY_CACHE_DIR = own;
    try {
      const env = { PATH: "/usr/bin:/bin", PYENV_ROOT };
      const list = await listInterpreters(env);
      const picked = await findInterpreter("3.11", env);
      // Nothing was probed (probes are cached): choosing ran the cheap query alone.
      assert.equal(existsSync(join(own, "interpreters")), false);
      assert.ok(list.length >= 2, JSON.stringify(list));
      for (const { executable, version } of list)
        assert.equal((await probeInterpreter(executable)).version, version, executable);
      assert.equal((await probeInterpreter(picked)).versionInfo.slice(0, 2).join("."), "3.11");
      // With the probes cached, choosing reads them instead, and agrees.
      assert.deepEqual(await listInterpreters(env), list);
    } finally {
      process.env.PYFERRY_CACHE_DIR = saved;
    }
  });
});
