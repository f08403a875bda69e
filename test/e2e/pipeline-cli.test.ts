/**
 * The build pipeline end to end through the CLI: lock, env create, run, pack/exec, and the
 * seed's python_package_analyze -> python_package_create -> python_package_run, with real
 * wheels from the configured index and real interpreters.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { CACHE, pyferry, REPO, runBin } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const tmp = () => tempDir("pyferry-pipe-");

/** A lock of tabulate in `d`, with `pattern` replaced in its text. */
function tabulateLock(d: string, pattern: RegExp, replacement: string): string {
  const lock = join(d, "pylock.toml");
  assert.equal(pyferry(["lock", "tabulate", "-o", lock]).status, 0);
  writeFileSync(lock, readFileSync(lock, "utf8").replace(pattern, replacement));
  return lock;
}

describe("lock and env create", () => {
  const dir = tmp();
  const lock = join(dir, "pylock.toml");
  test("pyferry lock writes a deterministic PEP 751 lock", () => {
    const r = pyferry(["lock", "requests", "tabulate", "-o", lock]);
    assert.equal(r.status, 0, r.stderr);
    const text = readFileSync(lock, "utf8");
    assert.match(text, /^lock-version = "1\.0"$/m);
    for (const n of ["requests", "certifi", "idna", "urllib3", "charset-normalizer", "tabulate"]) {
      assert.match(text, new RegExp(`^name = "${n}"$`, "m"));
    }
    assert.match(text, /sha256 = "[0-9a-f]{64}"/);
    assert.equal(pyferry(["lock", "requests", "tabulate", "-o", lock]).status, 0);
    assert.equal(readFileSync(lock, "utf8"), text, "the same inputs give the same bytes");
  });
  test("env create --lock installs exactly the lock; console scripts and imports work", () => {
    const env = join(dir, "env");
    const r = pyferry(["env", "create", env, "--lock", lock]);
    assert.equal(r.status, 0, r.stderr);
    const py = spawnSync(
      join(env, "bin", "python"),
      ["-c", "import requests, tabulate, sys; print(sys.prefix)"],
      { encoding: "utf8" },
    );
    assert.equal(py.status, 0, py.stderr);
    assert.equal(py.stdout.trim(), env);
    const cli = spawnSync(join(env, "bin", "tabulate"), ["--help"], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
    assert.match(cli.stdout, /Usage/);
    const again = pyferry(["env", "create", env, "--lock", lock]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /already exists/);
  });
  test("a package whose marker excludes this interpreter is neither installed nor counted", () => {
    const d = tmp();
    const text = readFileSync(lock, "utf8").replace(
      /(\[\[packages\]\]\nname = "idna"\n)/,
      `$1marker = "sys_platform == 'win32'"\n`,
    );
    assert.match(text, /name = "idna"\nmarker = /);
    writeFileSync(join(d, "pylock.toml"), text);
    const r = pyferry(["env", "create", join(d, "env"), "--lock", join(d, "pylock.toml")]);
    assert.equal(r.status, 0, r.stderr);
    const all = (text.match(/^\[\[packages\]\]$/gm) ?? []).length;
    assert.match(r.stderr, new RegExp(`with ${all - 1} packages`), r.stderr);
    assert.ok(
      !readdirSync(join(d, "env", "lib", "python3.11", "site-packages")).some((f) =>
        f.startsWith("idna"),
      ),
    );
  });
  test("--link-mode hardlink where the cache is on another file system: copied, with a warning", (t) => {
    if (!existsSync("/dev/shm") || statSync("/dev/shm").dev === statSync(tmp()).dev)
      return t.skip("needs /dev/shm on another file system than the cache");
    const env = tempDir("pyferry-link-", "/dev/shm");
    try {
      const r = pyferry([
        "env",
        "create",
        join(env, "e"),
        "--lock",
        lock,
        "--link-mode",
        "hardlink",
      ]);
      assert.equal(r.status, 0, r.stderr);
      assert.match(
        r.stderr,
        /warning: Files could not be hardlinked here \(EXDEV\); they are copied instead\./,
      );
      assert.equal(r.stderr.match(/could not be hardlinked/g)?.length, 1, "said once");
    } finally {
      rmSync(env, { recursive: true, force: true });
    }
  });
  test("a moved environment still runs its console scripts", () => {
    const env = join(dir, "env2");
    assert.equal(pyferry(["env", "create", env, "-r", writeReqs(dir, "tabulate\n")]).status, 0);
    const moved = join(dir, "moved here");
    renameSync(env, moved);
    const cli = spawnSync(join(moved, "bin", "tabulate"), ["--help"], { encoding: "utf8" });
    assert.equal(cli.status, 0, cli.stderr);
  });
});

describe("on a terminal", () => {
  const clear = "\r\x1b[2K";
  /** pyferry ARGS on a pty (util-linux script), with an empty cache of its own in `dir`. */
  const onTerminal = (dir: string, args: string[]) => {
    const command = [process.execPath, join(REPO, "bin", "pyferry.js"), ...args]
      .map((w) => `'${w}'`)
      .join(" ");
    const r = spawnSync("script", ["-qfec", command, "/dev/null"], {
      encoding: "utf8",
      // Status lines at once, and an empty cache: each stage is drawn, however fast the machine.
      env: {
        ...process.env,
        PYFERRY_CACHE_DIR: join(dir, "cache"),
        PYFERRY_STATUS_DELAY_MS: "0",
        NO_COLOR: "1",
      },
      timeout: 120_000,
    });
    assert.equal(r.status, 0, r.stdout);
    return {
      drawn: r.stdout.split(clear),
      /** The lines the terminal shows in the end: each from its last status line's clearing. */
      shown: r.stdout
        .split("\n")
        .map((l) => (l.split(clear).pop() ?? "").replace(/\r$/, ""))
        .filter((l) => l.trim() !== ""),
      raw: JSON.stringify(r.stdout),
    };
  };

  test("env create counts the packages installed on a status line, then clears it", () => {
    const dir = tmp();
    const lock = join(dir, "pylock.toml");
    assert.equal(pyferry(["lock", "pandas", "-o", lock]).status, 0);
    const t = onTerminal(dir, ["env", "create", join(dir, "env"), "--lock", lock]);
    assert.ok(
      t.drawn.some((d) => /^Installing \d+\/\d+$/.test(d)),
      t.raw,
    );
    assert.equal(t.shown.length, 1, t.raw);
    assert.match(t.shown[0] ?? "", /^Created .* with \d+ packages/);
  });

  test("a warning while a status line shows is a line of its own, and the status line comes back", () => {
    const dir = tmp();
    const lock = join(dir, "pylock.toml");
    const t = onTerminal(dir, ["lock", "pandas[bogus]", "scikit-learn", "matplotlib", "-o", lock]);
    assert.ok(
      t.drawn.some((d) => d.startsWith("Resolving")),
      t.raw,
    );
    assert.ok(!t.drawn.some((d) => /Resolving.*warning/.test(d)), t.raw);
    assert.match(t.shown[0] ?? "", /^warning: pandas \S+ has no extra 'bogus'; it adds nothing\.$/);
    assert.match(t.shown[1] ?? "", /^Locked \d+ packages/);
    assert.equal(t.shown.length, 2, t.raw);
  });

  test("a first pyferry run shows its stages, and only the program's output stays", () => {
    const dir = tmp();
    const script = join(REPO, "examples", "hello", "hello.py");
    const t = onTerminal(dir, ["run", script]);
    assert.ok(
      t.drawn.some((d) => /^Installing \d+\/\d+$/.test(d)),
      t.raw,
    );
    const direct = pyferry(["run", script], { env: { PYFERRY_CACHE_DIR: join(dir, "cache") } });
    assert.equal(direct.status, 0, direct.stderr);
    assert.deepEqual(
      t.shown,
      direct.stdout.split("\n").filter((l) => l.trim() !== ""),
      t.raw,
    );
  });

  test("with -v a first run's stages are lines of their own, with no status line", () => {
    const dir = tmp();
    const script = join(REPO, "examples", "hello", "hello.py");
    const t = onTerminal(dir, ["run", "-v", script]);
    assert.equal(t.drawn.length, 1, t.raw);
    for (const stage of ["Analyzing hello.py", "Resolving", "Installing"]) {
      assert.ok(t.shown.includes(stage), `${stage}: ${t.raw}`);
    }
  });

  test("analyze --json draws no status line; without it, reading the index shows one", () => {
    const dir = tmp();
    const script = join(dir, "uses.py");
    writeFileSync(script, "import tabulate\n");
    const plain = onTerminal(dir, ["analyze", script]);
    assert.ok(
      plain.drawn.some((d) => d.startsWith("Reading the package index")),
      plain.raw,
    );
    rmSync(join(dir, "cache"), { recursive: true, force: true });
    const json = onTerminal(dir, ["analyze", script, "--json"]);
    assert.equal(json.drawn.length, 1, json.raw);
    assert.match(json.raw, /tabulate/);
  });
});

function writeReqs(dir: string, text: string): string {
  const p = join(dir, "requirements.txt");
  writeFileSync(p, text);
  return p;
}

describe("bad input is one sentence and a non-zero exit", () => {
  const bad = (args: string[], pattern: RegExp) => {
    const r = pyferry(args);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, pattern);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  };
  test("an unknown package", () =>
    bad(["lock", "zz-no-such-project-zz", "-o", join(tmp(), "l.toml")], /zz-no-such-project-zz/));
  test("an unsatisfiable requirement", () =>
    bad(["lock", "requests==0.0.1", "-o", join(tmp(), "l.toml")], /requests/));
  test("a lock that is not TOML", () => {
    const d = tmp();
    writeFileSync(join(d, "bad.toml"), "lock-version = \n");
    bad(["env", "create", join(d, "e"), "--lock", join(d, "bad.toml")], /bad\.toml/);
    assert.equal(existsSync(join(d, "e")), false, "nothing half-built");
  });
  test("a lock whose hash does not match the file", () => {
    const d = tmp();
    const lock = tabulateLock(d, /sha256 = "[0-9a-f]{64}"/, `sha256 = "${"0".repeat(64)}"`);
    bad(
      ["env", "create", join(d, "e"), "--lock", lock],
      /tabulate-\S+\.whl at \S+ has sha256 [0-9a-f]{64}, but 0{64} was expected\./,
    );
    assert.equal(existsSync(join(d, "e")), false, "nothing half-built");
  });
  test("a lock entry with the hash of another wheel in the cache: refused, not that wheel installed", () => {
    const d = tmp();
    assert.equal(pyferry(["lock", "six", "-o", join(d, "six.toml")]).status, 0);
    const six = /sha256 = "([0-9a-f]{64})"/.exec(readFileSync(join(d, "six.toml"), "utf8"))?.[1];
    // six's tree is now in the cache, found by its hash alone.
    const warm = pyferry(["env", "create", join(d, "six-env"), "--lock", join(d, "six.toml")]);
    assert.equal(warm.status, 0, warm.stderr);
    const lock = tabulateLock(d, /sha256 = "[0-9a-f]{64}"/, `sha256 = "${six}"`);
    bad(
      ["env", "create", join(d, "e"), "--lock", lock],
      new RegExp(
        `^error: The lock's file for tabulate \\S+ \\(tabulate-\\S+\\.whl\\) has sha256 ${six}, that of six 1\\.17\\.0's wheel six-1\\.17\\.0-\\S+\\.whl; the lock is wrong\\.$`,
        "m",
      ),
    );
    assert.equal(existsSync(join(d, "e")), false, "nothing half-built");
    // Within one lock on a cold cache: six given tabulate's hash finds tabulate's tree, unpacked
    // first (the larger file), when its own turn comes.
    const both = join(d, "both.toml");
    assert.equal(pyferry(["lock", "six", "tabulate", "-o", both]).status, 0);
    const text = readFileSync(both, "utf8");
    const tab = /tabulate-[^"]+\.whl".*sha256 = "([0-9a-f]{64})"/.exec(text)?.[1] as string;
    writeFileSync(both, text.replace(six as string, tab));
    const r = pyferry(["env", "create", join(d, "e"), "--lock", both], {
      env: { PYFERRY_CACHE_DIR: tmp() },
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^error: The sha256 given for six-1\\.17\\.0-\\S+\\.whl, ${tab}, is that of tabulate `,
      ),
    );
  });
  test("a lock whose size does not match the file: refused before hashing", () => {
    const d = tmp();
    const lock = tabulateLock(d, /size = \d+/, "size = 1");
    const r = pyferry(["env", "create", join(d, "e"), "--lock", lock], {
      env: { PYFERRY_CACHE_DIR: tmp() },
    });
    assert.equal(r.status, 1, r.stderr);
    assert.match(
      r.stderr,
      /^error: tabulate-\S+\.whl at \S+ is \d+ bytes, but 1 were expected\.\n$/,
    );
    assert.equal(existsSync(join(d, "e")), false, "nothing half-built");
  });
  test("a bad link mode is a usage error (2), from --link-mode or PYFERRY_LINK_MODE", () => {
    const d = tmp();
    const lock = join(d, "six.toml");
    assert.equal(pyferry(["lock", "six", "-o", lock]).status, 0);
    const flag = pyferry(["env", "create", join(d, "e"), "--lock", lock, "--link-mode", "bogus"]);
    assert.equal(flag.status, 2, flag.stderr);
    const env = pyferry(["env", "create", join(d, "e"), "--lock", lock], {
      env: { PYFERRY_LINK_MODE: "bogus" },
    });
    assert.equal(env.status, 2, env.stderr);
    assert.equal(
      env.stderr,
      'error: PYFERRY_LINK_MODE is "bogus", but it can only be auto, clone, hardlink or copy.\n',
    );
    assert.deepEqual(readdirSync(d), ["six.toml"], "nothing made");
  });
  test("pack -o naming the script or a local module: refused before any work", () => {
    const d = tmp();
    writeFileSync(join(d, "m.py"), "import six\nimport helper\n");
    writeFileSync(join(d, "helper.py"), "X = 1\n");
    for (const target of ["m.py", "helper.py"])
      bad(
        ["pack", join(d, "m.py"), "-o", join(d, target)],
        /is a file being packed; write the bundle elsewhere/,
      );
    assert.equal(readFileSync(join(d, "helper.py"), "utf8"), "X = 1\n");
  });
  test("a word naming both a folder here and a project is read as the folder, with a warning saying how to mean the project", () => {
    const d = tmp();
    mkdirSync(join(d, "tabulate"));
    writeFileSync(join(d, "tabulate", "x.py"), "import six\n");
    const folder = pyferry(["lock", "tabulate", "-o", "a.toml"], { cwd: d });
    assert.equal(folder.status, 0, folder.stderr);
    assert.match(
      folder.stderr,
      /^warning: tabulate is read as the folder \.\/tabulate; for the project of that name, write "tabulate>=0"\.$/m,
    );
    assert.match(readFileSync(join(d, "a.toml"), "utf8"), /name = "six"/);
    const project = pyferry(["lock", "tabulate>=0", "-o", "b.toml"], { cwd: d });
    assert.equal(project.status, 0, project.stderr);
    assert.match(readFileSync(join(d, "b.toml"), "utf8"), /name = "tabulate"/);
    // A project folder of its own is plainly meant.
    writeFileSync(
      join(d, "tabulate", "pyproject.toml"),
      '[project]\nname = "mine"\nversion = "1"\n',
    );
    const own = pyferry(["lock", "tabulate", "-o", "c.toml"], { cwd: d });
    assert.doesNotMatch(own.stderr, /warning/);
  });
  test("lock --platform takes a lock made for the machine, and refuses --python beside it", () => {
    const d = tmp();
    const first = pyferry(["lock", "six", "-o", join(d, "first.toml")]);
    assert.equal(first.status, 0, first.stderr);
    const again = pyferry([
      "lock",
      "six",
      "--platform",
      join(d, "first.toml"),
      "-o",
      join(d, "again.toml"),
    ]);
    assert.equal(again.status, 0, again.stderr);
    const target = (f: string) =>
      readFileSync(join(d, f), "utf8").split("[tool.pyferry.target]")[1];
    assert.equal(target("again.toml"), target("first.toml"));
    const both = pyferry([
      "lock",
      "six",
      "--platform",
      join(d, "first.toml"),
      "--python",
      "/nonexistent",
      "-o",
      join(d, "x.toml"),
    ]);
    assert.equal(both.status, 2, both.stderr);
    assert.match(both.stderr, /^error: Give --python or --platform, not both\.$/m);
    assert.equal(existsSync(join(d, "x.toml")), false);
  });
  test("lock -o naming the script, a local module or a requirements file: refused, nothing written", () => {
    const d = tmp();
    writeFileSync(join(d, "m.py"), "import six\nimport helper\n");
    writeFileSync(join(d, "helper.py"), "X = 1\n");
    writeFileSync(join(d, "req.txt"), "six\n");
    for (const [inputs, target] of [
      [["m.py"], "m.py"],
      [["m.py"], "helper.py"],
      [["-r", "req.txt"], "req.txt"],
      [["req.txt"], "./req.txt"],
    ] as const) {
      const r = pyferry(["lock", ...inputs, "-o", target], { cwd: d });
      assert.equal(r.status, 2, r.stderr);
      assert.match(r.stderr, /is (\S+, )?a file being locked; write the lock elsewhere\./);
    }
    assert.equal(readFileSync(join(d, "helper.py"), "utf8"), "X = 1\n");
    assert.equal(readFileSync(join(d, "req.txt"), "utf8"), "six\n");
    assert.equal(readFileSync(join(d, "m.py"), "utf8"), "import six\nimport helper\n");
  });
  test("a missing input file, a wheel file, a binary file: each said so, not taken for a project", () => {
    const d = tmp();
    for (const missing of ["missing.py", "spec.json", "requirements.txt", "./sub/x"])
      bad(["lock", join(d, missing), "-o", join(d, "l.toml")], /does not exist\./);
    bad(["lock", "missing.py", "-o", join(d, "l.toml")], /^error: missing\.py does not exist\.$/m);
    writeFileSync(join(d, "six-1.0-py3-none-any.whl"), "PK\x03\x04\0\0");
    bad(
      ["env", "create", join(d, "e"), join(d, "six-1.0-py3-none-any.whl")],
      /is a wheel file, which pyferry does not take as an input; put it in a folder given with --find-links/,
    );
    writeFileSync(join(d, "bin.txt"), Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2, 0x0a]));
    bad(
      ["lock", "-r", join(d, "bin.txt")],
      /bin\.txt cannot be the requirements file: it is not a text file\./,
    );
    bad(
      ["lock", join(d, "bin.txt")],
      /bin\.txt cannot be a requirements file: it is not a text file\./,
    );
    assert.ok(!existsSync(join(d, "e")) && !existsSync(join(d, "l.toml")));
  });
  test("a folder that cannot be made (under /proc): one sentence, at once, not a spin", () => {
    bad(["env", "create", "/proc/pyferry-no-such/env", "six"], /pyferry-no-such/);
  });
  test("env create into a dangling symbolic link", () => {
    const d = tmp();
    symlinkSync(join(d, "nowhere"), join(d, "link"));
    bad(["env", "create", join(d, "link"), "six"], /link already exists \(as a symbolic link\)/);
    assert.deepEqual(readdirSync(d), ["link"]);
  });
  test("a file missing from the cache's unpacked wheel: unpacked again, with a warning", () => {
    const d = tmp();
    const cache = join(d, "cache");
    const env = { PYFERRY_CACHE_DIR: cache };
    assert.equal(pyferry(["env", "create", join(d, "e1"), "six"], { env }).status, 0);
    const [tree] = readdirSync(join(cache, "unpacked")).filter((n) => !n.startsWith("."));
    const dir = join(cache, "unpacked", tree as string);
    chmodSync(dir, 0o755);
    rmSync(join(dir, "six.py"));
    const r = pyferry(["env", "create", join(d, "e2"), "six"], { env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /^warning: The cache's unpacked copy of six 1\.17\.0 changed after it was unpacked \(six\.py is missing\); it is unpacked again\.\n/,
    );
    assert.ok(existsSync(join(d, "e2", "lib", "python3.11", "site-packages", "six.py")));
  });
  test("an edit through an environment's hardlink stays out of the next environment", () => {
    const d = tmp();
    const env = { PYFERRY_CACHE_DIR: join(d, "cache") };
    const six = (e: string) => join(d, e, "lib", "python3.11", "site-packages", "six.py");
    assert.equal(pyferry(["env", "create", join(d, "e1"), "six"], { env }).status, 0);
    const original = readFileSync(six("e1"), "utf8");
    // An in-place edit of the same length, as an editor saving over the file would make (root
    // may write to the cache's read-only files; anyone else gets EACCES and the cache is safe).
    chmodSync(six("e1"), 0o644);
    writeFileSync(six("e1"), original.replace("import", "IMPORT"));
    const r = pyferry(["env", "create", join(d, "e2"), "six"], { env });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /\(six\.py was written to\); it is unpacked again\. An edit in an environment that hardlinks the cache's files reaches the cache.*--link-mode copy/,
    );
    assert.equal(readFileSync(six("e2"), "utf8"), original);
    // Quietly from then on: the tree is new.
    const r3 = pyferry(["env", "create", join(d, "e3"), "six"], { env });
    assert.equal(r3.stderr.includes("warning"), false, r3.stderr);
    assert.equal(readFileSync(six("e3"), "utf8"), original);
  });
  test("a lock for another platform (its environments)", () => {
    const d = tmp();
    const lock = tabulateLock(d, /sys_platform == 'linux'/, "sys_platform == 'win32'");
    bad(
      ["env", "create", join(d, "e"), "--lock", lock],
      /^error: The lock is for ".*sys_platform == 'win32'.*", and \S+ \(Python 3\.\d+\.\d+ on linux x86_64\) is not; lock again for it/,
    );
    assert.equal(existsSync(join(d, "e")), false, "nothing half-built");
  });
});

describe("pyferry run", () => {
  const script = join(REPO, "examples", "hello", "hello.py");
  test("runs the example with its third-party imports; arguments pass through", () => {
    const r = pyferry(["run", script, "one", "--two"]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Hello, pyferry!/);
    assert.match(r.stdout, /"args": \["one", "--two"\]/);
  });
  test("a second run reuses every stage", () => {
    const runs = join(CACHE, "runs");
    const before = readdirSync(runs).map((f) => statSync(join(runs, f)).mtimeMs);
    const r = pyferry(["run", script]);
    assert.equal(r.status, 0, r.stderr);
    const after = readdirSync(runs).map((f) => statSync(join(runs, f)).mtimeMs);
    assert.deepEqual(after, before, "the run record was not rebuilt");
  });
  test("a change to the script is noticed", () => {
    const d = tmp();
    const s = join(d, "s.py");
    writeFileSync(s, "print('v1')\n");
    assert.match(pyferry(["run", s]).stdout, /v1/);
    writeFileSync(s, "import tabulate\nprint('v2', tabulate.__name__)\n");
    const r = pyferry(["run", s]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /v2 tabulate/);
  });
  test("a module written beside the script after a run is noticed: the import it resolves needs its packages", () => {
    const d = tmp();
    const s = join(d, "main.py");
    writeFileSync(s, "import helper\nhelper.go()\n");
    assert.match(pyferry(["run", s]).stderr, /No module named 'helper'/);
    writeFileSync(
      join(d, "helper.py"),
      "import tabulate\ndef go():\n    print('via', tabulate.__name__)\n",
    );
    const r = pyferry(["run", s]);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "via tabulate\n");
  });
  test("exit codes and signals pass through", () => {
    const d = tmp();
    writeFileSync(join(d, "exit.py"), "import sys\nsys.exit(3)\n");
    assert.equal(pyferry(["run", join(d, "exit.py")]).status, 3);
    writeFileSync(join(d, "sig.py"), "import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\n");
    const r = spawnSync(
      process.execPath,
      [join(REPO, "bin", "pyferry.js"), "run", join(d, "sig.py")],
      {
        env: { ...process.env, PYFERRY_CACHE_DIR: CACHE },
        encoding: "utf8",
      },
    );
    assert.equal(r.signal, "SIGTERM", `status ${r.status} ${r.stderr}`);
    // As exec does: SIGKILL is passed on too; a fault signal is the exit status 128+N (raised
    // on pyferry it would write pyferry's own core).
    for (const [name, expected] of [
      ["SIGKILL", { signal: "SIGKILL", status: null }],
      ["SIGSEGV", { signal: null, status: 139 }],
    ] as const) {
      writeFileSync(join(d, "die.py"), `import os, signal\nos.kill(os.getpid(), signal.${name})\n`);
      const died = spawnSync(
        process.execPath,
        [join(REPO, "bin", "pyferry.js"), "run", join(d, "die.py")],
        {
          env: { ...process.env, PYFERRY_CACHE_DIR: CACHE },
        },
      );
      assert.deepEqual({ signal: died.signal, status: died.status }, expected, name);
    }
  });
});

describe("the seed's HOW TO TEST steps, as written", () => {
  test("python_package_analyze -> python_package_create -> python_package_run, elsewhere, with no python on PATH", () => {
    const d = tmp();
    writeFileSync(
      join(d, "hi.py"),
      "import sys\nimport numpy as np\nfrom tabulate import tabulate\nprint(tabulate([[sys.version_info[0], int(np.arange(5).sum())]]))\nprint('prefix', sys.prefix)\n",
    );
    let r = runBin("python_package_analyze", ["hi.py", "output.json"], { cwd: d });
    assert.equal(r.status, 0, r.stderr);
    r = runBin("python_package_create", ["output.json", "venv.tar.gz"], { cwd: d });
    assert.equal(r.status, 0, r.stderr);
    // Another folder, a fresh cache, and a PATH with no python at all.
    const elsewhere = tmp();
    cpSync(join(d, "venv.tar.gz"), join(elsewhere, "venv.tar.gz"));
    cpSync(join(d, "hi.py"), join(elsewhere, "hi.py"));
    const bare = tempDir("pyferry-bare-");
    const out = spawnSync(
      process.execPath,
      [join(REPO, "bin", "python_package_run.js"), "venv.tar.gz", "python3", "hi.py"],
      {
        cwd: elsewhere,
        env: { PATH: bare, HOME: elsewhere, PYFERRY_CACHE_DIR: join(elsewhere, "cache") },
        encoding: "utf8",
      },
    );
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stdout, /3\s+10/);
    assert.match(out.stdout, new RegExp(`prefix ${join(elsewhere, "cache")}`));
    // The spec lists pip, as a conda environment would have it: `pip` is the environment's own,
    // even with the host's pip on PATH.
    const pip = spawnSync(
      process.execPath,
      [join(REPO, "bin", "python_package_run.js"), "venv.tar.gz", "pip", "--version"],
      {
        cwd: elsewhere,
        env: { ...process.env, HOME: elsewhere, PYFERRY_CACHE_DIR: join(elsewhere, "cache") },
        encoding: "utf8",
      },
    );
    assert.equal(pip.status, 0, pip.stderr);
    assert.match(pip.stdout, new RegExp(`^pip \\S+ from ${join(elsewhere, "cache")}/`));
    // The spec made here names this interpreter exactly: nothing to say about it.
    assert.doesNotMatch(r.stderr, /asks for Python/);
    // pyferry's global options before the archive, and exec's `--` after it, are taken too.
    const opts = runBin(
      "python_package_run",
      ["--debug", "venv.tar.gz", "--", "python3", "hi.py"],
      {
        cwd: elsewhere,
        env: { PYFERRY_CACHE_DIR: join(elsewhere, "cache") },
      },
    );
    assert.equal(opts.status, 0, opts.stderr);
    assert.match(opts.stdout, /3\s+10/);
    // The environment's name, as the seed's synopsis has it, stands for its archive.
    const byName = runBin("python_package_run", ["venv", "python3", "hi.py"], {
      cwd: elsewhere,
      env: { PYFERRY_CACHE_DIR: join(elsewhere, "cache") },
    });
    assert.equal(byName.status, 0, byName.stderr);
    assert.match(byName.stdout, /3\s+10/);
    const unknown = runBin("python_package_run", ["--bogus", "venv.tar.gz", "python3"], {
      cwd: elsewhere,
    });
    assert.equal(unknown.status, 2);
    assert.match(unknown.stderr, /^error: unknown option '--bogus'\./);
  });

  test("python_package_create given the script itself finds its packages on the index, as analyze does", () => {
    const d = tmp();
    writeFileSync(join(d, "tab.py"), "import tabulate\nprint(tabulate.tabulate([[1]]))\n");
    // --mixed-sources too, which a resolution failure's hint names.
    const r = runBin("python_package_create", ["--mixed-sources", "tab.py", "tab.tar.gz"], {
      cwd: d,
    });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /no distribution found/);
    const run = runBin("python_package_run", ["tab.tar.gz", "python3", "tab.py"], { cwd: d });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, /^-\n1\n-\n$/);
  });

  test("a spec whose python names no version, or that lists a conda package: one sentence each", () => {
    const d = tmp();
    for (const [dep, message] of [
      [
        "python=banana",
        /'python=banana' does not name a Python version such as python=3\.11\.7\.$/m,
      ],
      ["numpy", /'numpy' is a conda package; pyferry installs pip packages only/m],
    ] as const) {
      writeFileSync(
        join(d, "spec.json"),
        JSON.stringify({ name: "x", dependencies: [dep, "pip"] }),
      );
      const r = runBin("python_package_create", ["spec.json", "x.tar.gz"], { cwd: d });
      assert.equal(r.status, 1, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(existsSync(join(d, "x.tar.gz")), false);
    }
  });
  test("a spec naming a Python patch release this machine lacks: built with its series, and said so", () => {
    const d = tmp();
    const spec = { name: "x", dependencies: ["python=3.11.1", "pip", { pip: ["six"] }] };
    writeFileSync(join(d, "spec.json"), JSON.stringify(spec));
    const r = runBin("python_package_create", ["spec.json", "x.tar.gz"], { cwd: d });
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /^warning: spec\.json asks for Python 3\.11\.1; using 3\.11\.\d+ \(\S+\), of the same series\.\n$/,
    );
  });

  test("a spec naming a Python series this machine lacks: the way out is the spec, not a flag", () => {
    const d = tmp();
    const spec = { name: "x", dependencies: ["python=3.99", "pip", { pip: ["six"] }] };
    writeFileSync(join(d, "spec.json"), JSON.stringify(spec));
    const r = runBin("python_package_create", ["spec.json", "x.tar.gz"], { cwd: d });
    assert.equal(r.status, 1, r.stderr);
    assert.equal(
      r.stderr,
      "error: No Python 3.99 interpreter found on PATH or in pyenv; install one or name another version in the spec's python.\n",
    );
    assert.ok(!existsSync(join(d, "x.tar.gz")));
  });
});

describe("older interpreters", () => {
  const pyenv = join(process.env.HOME ?? "/root", ".pyenv", "versions");
  const has = (prefix: string) =>
    existsSync(pyenv) && readdirSync(pyenv).some((v) => v.startsWith(prefix));
  test("pyferry run follows the active interpreter: another PATH, another folder", (t) => {
    const v312 = existsSync(pyenv) && readdirSync(pyenv).find((v) => v.startsWith("3.12."));
    if (!v312) return t.skip("no CPython 3.12 in pyenv here");
    const d = tmp();
    writeFileSync(join(d, "v.py"), "import sys, six\nprint(sys.version.split()[0])\n");
    const bin = join(pyenv, v312, "bin");
    const first = pyferry(["run", join(d, "v.py")], {
      env: { PATH: `${bin}:${process.env.PATH}` },
    });
    assert.equal(first.status, 0, first.stderr);
    assert.equal(first.stdout.trim(), v312);
    const active = spawnSync("python3", ["-c", "import sys; print(sys.version.split()[0])"], {
      encoding: "utf8",
    }).stdout.trim();
    const second = pyferry(["run", join(d, "v.py")]);
    assert.equal(second.status, 0, second.stderr);
    assert.equal(second.stdout.trim(), active, "the run record of another PATH is not this one's");
  });
  test("Python 3.6 with --compile: timestamp-based bytecode, and the environment works", (t) => {
    if (!has("3.6.")) return t.skip("no CPython 3.6 in pyenv here");
    const d = tmp();
    const r = pyferry(["env", "create", join(d, "env"), "--python", "3.6", "--compile", "six"]);
    assert.equal(r.status, 0, r.stderr);
    const sp = join(d, "env", "lib", "python3.6", "site-packages");
    assert.ok(existsSync(join(sp, "__pycache__", "six.cpython-36.pyc")));
    const py = spawnSync(
      join(d, "env", "bin", "python"),
      ["-c", "import six; print(six.__file__)"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(py.stdout.trim(), join(sp, "six.py"), py.stderr);
  });
  test("Python 2 is refused in one sentence, and nothing is left", (t) => {
    if (!has("2.7.")) return t.skip("no CPython 2.7 in pyenv here");
    const d = tmp();
    const r = pyferry(["env", "create", join(d, "env"), "--python", "2.7", "six"]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^error: pyferry builds environments for Python 3 only, and .* is Python 2\.7\.\d+\.\n$/,
    );
    assert.deepEqual(readdirSync(d), []);
  });
});

describe("pack and exec", () => {
  test("a packed script runs from the archive with its local modules and data files", () => {
    const d = tmp();
    cpSync(join(REPO, "examples", "hello"), d, { recursive: true });
    const archive = join(d, "hello.tar.gz");
    let r = pyferry(["pack", join(d, "hello.py"), "-f", "-o", archive]);
    assert.equal(r.status, 0, r.stderr);
    const other = tmp();
    r = pyferry(["exec", archive, "--", "python", "-m", "hello", "x"], { cwd: other });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Hello, pyferry!/);
    assert.match(r.stdout, /"args": \["x"\]/);
    r = pyferry(["exec", archive], { cwd: other });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Goodbye from pyferry/);
  });

  test("without -f, pack names the files the program names that stay behind, and the imports nothing provides", () => {
    const d = tmp();
    writeFileSync(
      join(d, "app.py"),
      [
        "from pathlib import Path",
        "import tabulate",
        "import nosuchmodule_pyferry_test",
        'print(Path(__file__).with_name("config.yaml").read_text())',
        "",
      ].join("\n"),
    );
    writeFileSync(join(d, "config.yaml"), "a: 1\n");
    const listing = (archive: string) =>
      spawnSync("tar", ["tzf", archive], { encoding: "utf8" }).stdout.split("\n");
    const bare = join(d, "bare.tar.gz");
    let r = pyferry(["pack", join(d, "app.py"), "--no-bundle-python", "-o", bare]);
    assert.equal(r.status, 0, r.stderr);
    assert.match(
      r.stderr,
      /warning: no distribution found for 'nosuchmodule_pyferry_test' \(imported by app\.py\)[^\n]*; it is left out\./,
    );
    assert.match(
      r.stderr,
      /warning: app\.py names config\.yaml beside it, which is not packed; pass -f/,
    );
    assert.ok(!listing(bare).includes("app/config.yaml"));
    const full = join(d, "full.tar.gz");
    r = pyferry(["pack", join(d, "app.py"), "--no-bundle-python", "-f", "-o", full]);
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /not packed/);
    assert.ok(listing(full).includes("app/config.yaml"));
  });

  test("with no command, the packed script runs: not a same-named file where exec starts, nor a stdlib module", () => {
    const d = tmp();
    for (const name of ["train.py", "stat.py", "my.script.py"]) {
      writeFileSync(join(d, name), `print("packed", ${JSON.stringify(name)}, __name__)\n`);
      const archive = join(d, `${name}.tar.gz`);
      let r = pyferry(["pack", join(d, name), "--no-bundle-python", "-o", archive]);
      assert.equal(r.status, 0, r.stderr);
      // The working copy changed after packing, in the folder exec is started from.
      writeFileSync(join(d, name), 'print("the working copy")\n');
      r = pyferry(["exec", archive], { cwd: d });
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, `packed ${name} __main__\n`);
    }
  });
});

describe("cloudpy (seed-compatible)", () => {
  test("-P -n NAME again packs that folder afresh, and keeps a conf/mods edited by hand", () => {
    const d = tmp();
    writeFileSync(join(d, "job.py"), "import six\nimport helper\n");
    writeFileSync(join(d, "helper.py"), "import yaml\n");
    const pack = () => runBin("cloudpy", ["-P", "-n", "myjob", "job.py"], { cwd: d });
    const mods = () =>
      readFileSync(join(d, "myjob", "conf", "mods"), "utf8")
        .split("\n")
        .filter((l) => l && !l.startsWith("#"));
    let r = pack();
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "myjob\n");
    writeFileSync(join(d, "helper.py"), "import yaml\nimport attrs\n");
    r = pack();
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(mods(), ["attrs", "pyyaml", "six"], "the new analysis");
    assert.equal(
      readFileSync(join(d, "myjob", "app", "helper.py"), "utf8"),
      "import yaml\nimport attrs\n",
    );
    writeFileSync(join(d, "myjob", "conf", "mods"), "six\ntabulate\n");
    writeFileSync(join(d, "myjob", "NOTES"), "mine\n");
    r = pack();
    assert.equal(
      readFileSync(join(d, "myjob", "NOTES"), "utf8"),
      "mine\n",
      "what the user put there stays",
    );
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(mods(), ["six", "tabulate"], "the hand edit stays");
    assert.deepEqual(readdirSync(d).sort(), ["helper.py", "job.py", "myjob"]);
    writeFileSync(join(d, "other.py"), "import six\n");
    r = runBin("cloudpy", ["-P", "-n", "myjob", "other.py"], { cwd: d });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /is the pack of job\.py, not of other\.py; pick another name/);
  });
  test("-P names a pack after any script: spaces, other alphabets, a leading underscore", () => {
    const d = tmp();
    for (const name of ["my script.py", "ünï.py", "_main.py", "Ω.py"])
      writeFileSync(join(d, name), "import six\n");
    for (const [name, id] of [
      ["my script.py", /^my-script-[0-9a-f]{6}$/],
      ["ünï.py", /^n-[0-9a-f]{6}$/],
      ["_main.py", /^main-[0-9a-f]{6}$/],
      ["Ω.py", /^pack-[0-9a-f]{6}$/],
    ] as const) {
      const r = runBin("cloudpy", ["-P", name], { cwd: d });
      assert.equal(r.status, 0, r.stderr);
      assert.match(r.stdout.trim(), id);
      assert.ok(existsSync(join(d, r.stdout.trim(), "conf", "mods")));
    }
    const folder = runBin("cloudpy", ["-P", "."], { cwd: d });
    assert.equal(folder.status, 2);
    assert.equal(folder.stderr, "error: A pack folder is made from a script; . is a project.\n");
  });
});

describe("errors", () => {
  test("one sentence by default; under --debug, a stack trace naming the TypeScript sources", () => {
    const dir = tmp();
    const args = ["env", "create", join(dir, "env"), "--lock", join(dir, "missing.toml")];
    const plain = pyferry(args);
    assert.equal(plain.status, 1);
    assert.equal(
      plain.stderr,
      `error: Cannot read the lock file ${join(dir, "missing.toml")} (it does not exist).\n`,
    );
    for (const debug of [
      pyferry(["--debug", ...args]),
      pyferry(args, { env: { PYFERRY_DEBUG: "1" } }),
    ]) {
      assert.equal(debug.status, 1);
      assert.match(debug.stderr, /^error: Cannot read the lock file/);
      assert.match(debug.stderr, /\n {4}at .*src\/pipeline\/commands\.ts:\d+:\d+\)/);
    }
    assert.deepEqual(readdirSync(dir), [], "nothing was made");
  });
  test("run from a folder removed since: one sentence; --version and --help still answer", () => {
    const dir = tmp();
    writeFileSync(join(dir, "t.py"), "print('hi')\n");
    const bundle = join(dir, "t.tar.gz");
    assert.equal(pyferry(["pack", join(dir, "t.py"), "-o", bundle]).status, 0);
    assert.equal(pyferry(["lock", "six", "-o", join(dir, "six.toml")]).status, 0);
    /** pyferry `args` started in a folder that is removed before it starts. */
    const fromGone = (args: string[]) => {
      const cwd = join(dir, "gone");
      mkdirSync(cwd);
      const pyferryJs = join(REPO, "bin", "pyferry.js");
      return spawnSync(
        "sh",
        [
          "-c",
          'cd "$1" && rmdir "$1" && shift && exec "$@"',
          "sh",
          cwd,
          process.execPath,
          pyferryJs,
          ...args,
        ],
        {
          env: { ...process.env, PYFERRY_CACHE_DIR: CACHE, NO_COLOR: "1" },
          encoding: "utf8",
          timeout: 120_000,
        },
      );
    };
    for (const args of [
      ["exec", bundle],
      ["env", "create", "e", "--lock", join(dir, "six.toml")],
      ["run", join(dir, "t.py")],
    ]) {
      const r = fromGone(args);
      assert.equal(r.status, 1, args.join(" "));
      assert.equal(r.stderr, "error: The current folder no longer exists; cd to another one.\n");
    }
    for (const args of [["--version"], ["--help"], ["env", "create", "--help"]]) {
      const r = fromGone(args);
      assert.equal(r.status, 0, r.stderr);
      assert.notEqual(r.stdout, "");
    }
  });
});

describe("requirements files", () => {
  test("--hash is checked as pip does: the file chosen, every package, exact pins", () => {
    const d = tmp();
    assert.equal(pyferry(["lock", "six", "-o", join(d, "six.toml")]).status, 0);
    const sha = /sha256 = "([0-9a-f]{64})"/.exec(readFileSync(join(d, "six.toml"), "utf8"))?.[1];
    const attempt = (name: string, text: string) => {
      writeFileSync(join(d, name), text);
      return pyferry(["env", "create", join(d, `env-${name}`), "-r", join(d, name)]);
    };
    let r = attempt("ok.txt", `six==1.17.0 --hash=sha256:${sha}\n`);
    assert.equal(r.status, 0, r.stderr);
    r = attempt("wrong.txt", `six==1.17.0 --hash=sha256:${"0".repeat(64)}\n`);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^error: six-1\.17\.0-.*\.whl has sha256 [0-9a-f]{64}, which no --hash of six allows/,
    );
    r = attempt("some.txt", `six==1.17.0 --hash=sha256:${sha}\ntabulate==0.10.0\n`);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /every package needs one, and tabulate 0\.10\.0 has none/);
    r = attempt("loose.txt", `six>=1 --hash=sha256:${sha}\n`);
    assert.match(r.stderr, /six has --hash but is not pinned with ==/);
    r = attempt("required.txt", "--require-hashes\nsix==1.17.0\n");
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^error: Hashes are required by --require-hashes, and six 1\.17\.0 has none; list it with --hash/,
    );
    assert.deepEqual(
      readdirSync(d).filter((f) => f.startsWith("env-")),
      ["env-ok.txt"],
      "no environment from a refused file",
    );
  });

  test("editable lines and lines that move where packages come from are refused, naming the line", () => {
    const d = tmp();
    for (const [text, want] of [
      ["six\n-e ./pkg\n", /line 2: editable requirements \(-e \.\/pkg\) are not supported/],
      [
        "--index-url http://elsewhere.invalid/simple\nsix\n",
        /line 1: pyferry takes packages only from the sources on its command line and in pip's configuration, never from --index-url/,
      ],
      ["-fhttp://elsewhere.invalid/\nsix\n", /never from -f in a requirements file/],
      [
        "--trusted-host elsewhere.invalid\nsix\n",
        /never from --trusted-host in a requirements file .*; remove the line, and set trusted-host in pip's configuration \(pip\.conf, or PIP_TRUSTED_HOST\) if it is needed\.$/m,
      ],
      [
        "six --install-option=x\n",
        /line 1: pyferry does not take --install-option=x after a requirement/,
      ],
    ] as const) {
      writeFileSync(join(d, "r.txt"), text);
      const r = pyferry(["lock", "-r", join(d, "r.txt"), "-o", join(d, "l.toml")]);
      assert.equal(r.status, 1, text);
      assert.match(r.stderr, want);
      assert.ok(!existsSync(join(d, "l.toml")));
    }
  });
});

describe("sources", () => {
  test("a project the index has is not taken from find-links, unless PYFERRY_MIXED_SOURCES=1 says so", () => {
    const d = tmp();
    const links = join(d, "links");
    mkdirSync(links);
    // A six the index does not have, in a folder given after it.
    const script = [
      "import base64, hashlib, sys, zipfile",
      "files = {'six-99.0.dist-info/METADATA': 'Metadata-Version: 2.1\\nName: six\\nVersion: 99.0\\n',",
      "         'six-99.0.dist-info/WHEEL': 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n'}",
      "digest = lambda t: base64.urlsafe_b64encode(hashlib.sha256(t.encode()).digest()).rstrip(b'=').decode()",
      "rows = [f'{n},sha256={digest(t)},{len(t)}' for n, t in files.items()] + ['six-99.0.dist-info/RECORD,,']",
      "with zipfile.ZipFile(sys.argv[1], 'w') as z:",
      "    for n, t in files.items(): z.writestr(n, t)",
      "    z.writestr('six-99.0.dist-info/RECORD', '\\n'.join(rows) + '\\n')",
    ].join("\n");
    spawnSync("python3", ["-c", script, join(links, "six-99.0-py3-none-any.whl")]);
    const lock = (env: NodeJS.ProcessEnv = {}) =>
      pyferry(["lock", "six>=99", "--find-links", links, "-o", join(d, "l.toml")], { env });
    const strict = lock();
    assert.equal(strict.status, 1, strict.stderr);
    assert.match(strict.stderr, /--mixed-sources \(or PYFERRY_MIXED_SOURCES=1\) would also take/);
    const mixed = lock({ PYFERRY_MIXED_SOURCES: "1" });
    assert.equal(mixed.status, 0, mixed.stderr);
    assert.match(readFileSync(join(d, "l.toml"), "utf8"), /name = "six"\nversion = "99.0"/);
    // wheelhouse mirror takes the flag itself.
    const mirror = (...flags: string[]) =>
      pyferry(["wheelhouse", "mirror", "six>=99", "--find-links", links, ...flags], {
        env: { PYFERRY_WHEELHOUSE: join(d, "wh") },
      });
    assert.equal(mirror().status, 1);
    const mirrored = mirror("--mixed-sources");
    assert.equal(mirrored.status, 0, mirrored.stderr);
    assert.deepEqual(readdirSync(join(d, "wh", "wheels")), ["six-99.0-py3-none-any.whl"]);
  });
});

describe("the environment's folder made by another while a build runs", () => {
  /** `pyferry env create envr --lock lock` in `d`, running; its exit status and stderr. */
  const start = (d: string, lock: string, more: string[] = []) => {
    const child = spawn(
      process.execPath,
      [join(REPO, "bin", "pyferry.js"), "env", "create", "envr", "--lock", lock, ...more],
      { cwd: d, env: { ...process.env, PYFERRY_CACHE_DIR: CACHE, NO_COLOR: "1" } },
    );
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => {
      stderr += c.toString();
    });
    return new Promise<{ status: number | null; stderr: string }>((done) =>
      child.on("close", (status) => done({ status, stderr })),
    );
  };
  const lockIn = (d: string) => {
    assert.equal(pyferry(["lock", "tabulate", "-o", join(d, "pylock.toml")]).status, 0);
    return join(d, "pylock.toml");
  };
  const taken =
    /^error: envr already exists \(made while this build ran\); pick a new folder or remove it first\.\n$/;

  test("an empty folder made meanwhile is not replaced; the build says so", async () => {
    const d = tmp();
    const lock = lockIn(d);
    const running = start(d, lock);
    // Once the build is past its first look: its scratch folder is there.
    const started = Date.now();
    while (!readdirSync(d).some((n) => n.startsWith(".envr."))) {
      assert.ok(Date.now() - started < 60_000, "the build never started");
      await new Promise((go) => setTimeout(go, 2));
    }
    mkdirSync(join(d, "envr"));
    const r = await running;
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, taken);
    assert.deepEqual(readdirSync(join(d, "envr")), [], "the other's folder is left as it was");
    assert.deepEqual(readdirSync(d).sort(), ["envr", "pylock.toml"], "no scratch folder left");
  });

  test("two builds at once: one makes it, the other names the folder, not a scratch one", async () => {
    const d = tmp();
    // numpy, copied: builds long enough that both are past their first look before either ends.
    const lock = join(d, "pylock.toml");
    assert.equal(pyferry(["lock", "numpy", "-o", lock]).status, 0);
    const [a, b] = await Promise.all([
      start(d, lock, ["--link-mode", "copy"]),
      start(d, lock, ["--link-mode", "copy"]),
    ]);
    const lost = [a, b].filter((r) => r.status !== 0);
    assert.equal(lost.length, 1, `${a.stderr}${b.stderr}`);
    assert.equal(lost[0]?.status, 1);
    assert.match(
      lost[0]?.stderr ?? "",
      /^error: envr already exists( \(made while this build ran\))?; pick a new folder or remove it first\.\n$/,
    );
    assert.deepEqual(readdirSync(d).sort(), ["envr", "pylock.toml"], "no scratch folder left");
  });
});

describe("stopped while copying", () => {
  test("Ctrl-C or SIGTERM during env create ends by the signal, with no trace, and leaves nothing", async () => {
    const d = tmp();
    const pkgs = ["numpy", "pandas", "--link-mode", "copy"];
    const warm = pyferry(["env", "create", join(d, "warm"), ...pkgs]);
    assert.equal(warm.status, 0, warm.stderr);
    for (const [signal, delay] of [
      ["SIGINT", 0],
      ["SIGTERM", 40],
      ["SIGINT", 120],
    ] as const) {
      const child = spawn(
        process.execPath,
        [join(REPO, "bin", "pyferry.js"), "env", "create", "big", ...pkgs],
        {
          cwd: d,
          env: { ...process.env, PYFERRY_CACHE_DIR: CACHE },
        },
      );
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => {
        stderr += c.toString();
      });
      const closed = new Promise<NodeJS.Signals | number | null>((done) =>
        child.on("close", (code, sig) => done(sig ?? code)),
      );
      // Once the copy is under way: the scratch environment has numpy's folder.
      const started = Date.now();
      for (;;) {
        const scratch = readdirSync(d).find((n) => n.startsWith(".big."));
        if (scratch && existsSync(join(d, scratch, "lib"))) break;
        assert.ok(Date.now() - started < 60_000, "the copy never started");
        await new Promise((go) => setTimeout(go, 5));
      }
      await new Promise((go) => setTimeout(go, delay));
      child.kill(signal);
      const end = await closed;
      const what = `${signal} after ${delay} ms`;
      // Finished before the signal landed: nothing to check.
      if (end === 0) {
        rmSync(join(d, "big"), { recursive: true, force: true });
        continue;
      }
      assert.equal(end, signal, `${what}: ended with ${end}: ${stderr}`);
      assert.doesNotMatch(stderr, /node:internal|\n\s+at /, what);
      assert.deepEqual(
        readdirSync(d).filter((n) => n !== "warm"),
        [],
        `${what}: nothing left beside the environment`,
      );
    }
  });
});

describe("a full disk", () => {
  test("env create says so in one sentence and leaves nothing behind", (t) => {
    const mnt = tempDir("pyferry-full-");
    try {
      if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt]).status !== 0) {
        t.skip("cannot mount a small tmpfs here");
        return;
      }
      try {
        const r = pyferry(["env", "create", join(mnt, "env"), "numpy"]);
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /^error: the disk is full/m);
        assert.deepEqual(readdirSync(mnt), [], "no half-built environment, no temporary folder");
      } finally {
        spawnSync("umount", [mnt]);
      }
    } finally {
      rmSync(mnt, { recursive: true, force: true });
    }
  });
  test("a full cache while unpacking a wheel is a full disk, not a corrupt wheel", (t) => {
    const d = tmp();
    const lock = join(d, "pylock.toml");
    assert.equal(pyferry(["lock", "pandas", "-o", lock]).status, 0);
    const mnt = tempDir("pyferry-full-cache-");
    try {
      if (spawnSync("mount", ["-t", "tmpfs", "-o", "size=20m", "tmpfs", mnt]).status !== 0) {
        t.skip("cannot mount a small tmpfs here");
        return;
      }
      try {
        const r = pyferry(["env", "create", join(d, "env"), "--lock", lock], {
          env: { PYFERRY_CACHE_DIR: mnt },
        });
        assert.equal(r.status, 1, r.stderr);
        assert.match(r.stderr, /^error: the disk is full \(ENOSPC: [^\n]*\)\.\n$/);
        assert.deepEqual(readdirSync(join(mnt, "unpacked")), [], "no half-unpacked tree");
        assert.equal(existsSync(join(d, "env")), false);
      } finally {
        spawnSync("umount", [mnt]);
      }
    } finally {
      rmSync(mnt, { recursive: true, force: true });
    }
  });
});
