/**
 * Running commands inside a packed bundle made from a real venv, the way a remote task does:
 * a separate process per run (bundle-child exec), real signals, real stdin.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { before, describe, test } from "node:test";
import { packBundle } from "../../src/bundle/pack.js";
import { CHILD, testHead } from "../support/bundle-child.js";
import { REPO } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const PYTHON = process.env.PYFERRY_TEST_PYTHON ?? "python3";
const CACHE = tempDir("pyferry-exec-cache-");
// Python must not see these: the bundle decides where its home and user site are.
const ENV = { ...process.env, PYFERRY_CACHE_DIR: CACHE, PYTHONHOME: "/nonexistent" };

const HI = `
import json, os, site, sys
import helper
print(json.dumps({
    "prefix": sys.prefix,
    "executable": sys.executable,
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "helper": helper.VALUE,
    "app_dir": os.environ.get("PYFERRY_APP_DIR"),
    "virtual_env": os.environ.get("VIRTUAL_ENV"),
    "home": os.environ.get("PYTHONHOME"),
    "user_site": site.ENABLE_USER_SITE,
}))
`;

function makeVenv(): string {
  const dir = tempDir("pyferry-venv-");
  execFileSync(PYTHON, ["-m", "venv", "--without-pip", join(dir, "env")]);
  return join(dir, "env");
}

async function packVenv(
  env: string,
  entry?: string[],
): Promise<{ archive: string; sha256: string }> {
  const app = tempDir("pyferry-exec-app-");
  writeFileSync(join(app, "helper.py"), "VALUE = 'from the app'\n");
  const archive = join(tempDir("pyferry-exec-out-"), "app.tar.gz");
  const r = await packBundle({
    envDir: env,
    appFiles: [{ source: join(app, "helper.py"), dest: "helper.py" }],
    manifest: testHead(entry ? { entry } : {}),
    output: archive,
  });
  return { archive, sha256: r.sha256 };
}

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function exec(archive: string, argv: string[], opts: { cwd?: string; input?: string } = {}): Run {
  const r = spawnSync(process.execPath, [CHILD, "exec", archive, "--", ...argv], {
    cwd: opts.cwd,
    env: ENV,
    input: opts.input ?? "",
    encoding: "utf8",
    timeout: 60_000,
  });
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

describe("execInBundle with a real venv", () => {
  let archive = "";
  let envDir = "";
  const work = tempDir("pyferry-exec-cwd-");
  writeFileSync(join(work, "hi.py"), HI);

  before(async () => {
    const packed = await packVenv(makeVenv());
    archive = packed.archive;
    envDir = join(CACHE, "bundles", packed.sha256, "env");
  });

  test("`python3 hi.py` in the caller's folder runs on the bundle's interpreter, app importable", () => {
    for (const python of ["python3", "python"]) {
      const r = exec(archive, [python, "hi.py", "x"], { cwd: work });
      assert.equal(r.status, 0, r.stderr);
      const facts = JSON.parse(r.stdout);
      assert.equal(facts.prefix, envDir);
      assert.equal(facts.executable, join(envDir, "bin", python));
      assert.deepEqual(facts.argv, ["x"]);
      assert.equal(realpathSync(facts.cwd), realpathSync(work));
      assert.equal(facts.helper, "from the app");
      assert.equal(facts.app_dir, join(envDir, "..", "app"));
      assert.equal(facts.virtual_env, envDir);
      assert.equal(facts.home, null);
      assert.equal(facts.user_site, false);
    }
  });

  test("--cwd runs the command elsewhere", () => {
    const other = tempDir("pyferry-exec-other-");
    const r = spawnSync(
      process.execPath,
      [
        CHILD,
        "exec",
        archive,
        "--cwd",
        other,
        "--",
        "python",
        "-c",
        "import os; print(os.getcwd())",
      ],
      { env: ENV, encoding: "utf8" },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(realpathSync(r.stdout.trim()), realpathSync(other));
  });

  test("exit codes pass through", () => {
    assert.equal(exec(archive, ["python", "-c", "pass"]).status, 0);
    assert.equal(exec(archive, ["python", "-c", "import sys; sys.exit(3)"]).status, 3);
  });

  test("a child killed by SIGTERM kills us with SIGTERM", () => {
    const r = exec(archive, [
      "python",
      "-c",
      "import os, signal; os.kill(os.getpid(), signal.SIGTERM)",
    ]);
    assert.equal(r.signal, "SIGTERM");
    assert.equal(r.status, null);
    // The same policy as run's: SIGKILL passed on, a fault signal as the exit status 128+N.
    const killed = exec(archive, [
      "python",
      "-c",
      "import os, signal; os.kill(os.getpid(), signal.SIGKILL)",
    ]);
    assert.deepEqual([killed.signal, killed.status], ["SIGKILL", null]);
    const fault = exec(archive, [
      "python",
      "-c",
      "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
    ]);
    assert.deepEqual([fault.signal, fault.status], [null, 139]);
  });

  test("argv reaches the child byte for byte, with no shell in between", () => {
    const args = [
      "a b",
      "c'd",
      'e"f',
      "g\nh",
      "",
      "$HOME",
      "*",
      "\\",
      "; rm -rf /",
      "ünï",
      "--",
      "-c",
    ];
    const r = exec(archive, [
      "python",
      "-c",
      "import json, sys; print(json.dumps(sys.argv[1:]))",
      ...args,
    ]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(JSON.parse(r.stdout), args);
  });

  test("stdin passes through", () => {
    const input = "first line\nsecond line\n".repeat(1000);
    const r = exec(
      archive,
      ["python", "-c", "import sys; sys.stdout.write(sys.stdin.read().upper())"],
      {
        input,
      },
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, input.toUpperCase());
  });

  /** Start exec on a script that prints "ready" once its handlers are set, then signal us. */
  async function signalled(script: string, sig: NodeJS.Signals): Promise<Run> {
    const child = spawn(
      process.execPath,
      [CHILD, "exec", archive, "--", "python", "-u", "-c", script],
      {
        env: ENV,
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d;
    });
    child.stdout.on("data", (d: Buffer) => {
      stdout += d;
      if (stdout.includes("ready\n") && !child.killed) child.kill(sig);
    });
    return new Promise((resolve) =>
      child.on("close", (status, signal) => resolve({ status, signal, stdout, stderr })),
    );
  }

  test("SIGTERM sent to us is forwarded, and we wait for the child's own exit", async () => {
    const script = [
      "import signal, sys, time",
      "def bye(n, f):",
      "    time.sleep(0.3)",
      "    print('got', n)",
      "    sys.exit(7)",
      "signal.signal(signal.SIGTERM, bye)",
      "print('ready')",
      "time.sleep(30)",
    ].join("\n");
    const r = await signalled(script, "SIGTERM");
    assert.equal(r.status, 7, r.stderr);
    assert.match(r.stdout, /got 15/);
  });

  test("SIGINT sent to us reaches the child; its death by SIGINT becomes ours", async () => {
    const r = await signalled("import time\nprint('ready')\ntime.sleep(30)", "SIGINT");
    assert.equal(r.signal, "SIGINT");
    assert.match(r.stderr, /KeyboardInterrupt/);
  });

  test("a missing command is one sentence and exit 127", () => {
    const r = exec(archive, ["no-such-command-xyz", "arg"]);
    assert.equal(r.status, 127);
    assert.equal(
      r.stderr,
      "pyferry: no-such-command-xyz: command not found in the bundle's environment or on PATH.\n",
    );
  });

  test("a script whose #! names a missing interpreter is exit 126 with the reason", async () => {
    const env = makeVenv();
    // What a venv's console scripts look like after a move: #! names the build machine's path.
    writeFileSync(join(env, "bin", "stale"), "#!/nonexistent/build/env/bin/python\nprint(1)\n", {
      mode: 0o755,
    });
    const { archive: stale, sha256 } = await packVenv(env);
    const r = exec(stale, ["stale"]);
    assert.equal(r.status, 126);
    const script = join(CACHE, "bundles", sha256, "env", "bin", "stale");
    assert.equal(
      r.stderr,
      `pyferry: ${script} exists but cannot start: the interpreter on its #! line, or its dynamic loader, is missing on this machine.\n`,
    );
  });

  test("with no command, the manifest's entry runs; without one, a clear error", async () => {
    const withEntry = await packVenv(makeVenv(), ["python", "-c", "print('the entry ran')"]);
    const r = exec(withEntry.archive, []);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, "the entry ran\n");
    const none = exec(archive, []);
    assert.equal(none.status, 2);
    assert.match(none.stderr, /has no default command/);
  });

  test("a base interpreter missing on this machine is reported before anything runs", async () => {
    const env = makeVenv();
    // The venv's link to its base interpreter, pointing where this machine has nothing.
    const base = execFileSync("readlink", [join(env, "bin", "python3")], {
      encoding: "utf8",
    }).trim();
    rmSync(join(env, "bin", "python3"));
    symlinkSync("/nonexistent/pyferry/python3", join(env, "bin", "python3"));
    assert.ok(base.startsWith("/"), base);
    const { archive: broken } = await packVenv(env);
    const r = exec(broken, ["python", "-c", "pass"]);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      "pyferry: The bundle's env/bin/python3 links to /nonexistent/pyferry/python3, which this machine lacks: install cpython 3.11.7 there, or pack the bundle with its interpreter included.\n",
    );
  });

  test("an environment without env/bin/python is refused rather than run on the machine's python", async () => {
    const env = makeVenv();
    rmSync(join(env, "bin", "python"));
    const { archive: broken } = await packVenv(env);
    const r = exec(broken, ["python", "-c", "pass"]);
    assert.equal(r.status, 1);
    assert.equal(
      r.stderr,
      "pyferry: The bundle has no env/bin/python, so it cannot run cpython 3.11.7 programs.\n",
    );
  });
});

test("a FIFO given as the bundle is refused in one sentence, not read for ever", () => {
  const fifo = join(tempDir("pyferry-exec-fifo-"), "app.tar.gz");
  execFileSync("mkfifo", [fifo]);
  const r = spawnSync(process.execPath, [join(REPO, "bin", "pyferry.js"), "exec", fifo], {
    env: ENV,
    encoding: "utf8",
    timeout: 20_000,
  });
  assert.equal(r.signal, null, "still waiting on the FIFO");
  assert.notEqual(r.status, 0);
  assert.equal(r.stderr, `error: ${fifo} is not a regular file, so it cannot be a bundle.\n`);
});
