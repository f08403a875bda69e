/**
 * `pyferry deploy` and `pyferry rollback` at their edges, against one real OpenSSH server
 * (test/support/sshd.ts): a hook of an earlier deploy still running, a stale hook pid file,
 * locks whose files must come from the wheelhouse, the reasons given for changes that move no
 * package, and a rollback whose reload fails. Each test has an inventory of its own, with
 * environments at paths no other test uses.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { findPython311, makeWheelhouse } from "../support/mirror.js";
import {
  defaultStore,
  type Finished,
  hasStackTrace,
  processesIn,
  pyferryAsync,
  show,
  sleep,
  startPyferry,
  summary,
  waitFor,
} from "../support/remote.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { tempDir } from "../support/temp.js";

const WHEELHOUSE = [
  ["six", "1.17.0"],
  ["idna", "3.20"],
  ["tabulate", "0.8.10"],
  ["tabulate", "0.10.0"],
] as const;

/** The name files' id of the environment at `path` (names/deploy-<id>), as the host makes it. */
function envId(path: string): string {
  const r = spawnSync("sh", ["-c", `printf '%s' "$1" | cksum | cut -d' ' -f1`, "-", path], {
    encoding: "utf8",
  });
  return `deploy-${r.stdout.trim()}`;
}

describe("pyferry deploy at its edges", { skip: sshAvailable() ?? false, timeout: 900_000 }, () => {
  let lab: SshLab;
  let work: string;
  let python: string;

  const root = () => lab.host("h1").root;
  const store = () => defaultStore(root());
  const pyferry = (args: string[]): Promise<Finished> =>
    pyferryAsync(args, { cwd: work, env: lab.env(), timeoutMs: 300_000 });

  /** NAME.toml: one environment on h1 at srv/NAME/venv, with `lines` (requirements or lock). */
  function inventory(name: string, lines: string[], py = python): string {
    const path = join(root(), "srv", name, "venv");
    writeFileSync(
      join(work, `${name}.toml`),
      [
        'wheelhouse = "wheelhouse"',
        "[hosts.h1]",
        'address = "h1"',
        "[[hosts.h1.envs]]",
        `path = ${JSON.stringify(path)}`,
        `python = ${JSON.stringify(py)}`,
        ...lines,
        "",
      ].join("\n"),
    );
    return path;
  }

  before(async () => {
    const py = findPython311(process.env.PYFERRY_TEST_PYTHON);
    assert.ok(py, "a CPython 3.11 (set PYFERRY_TEST_PYTHON)");
    python = py;
    lab = await startSshLab({ hosts: 1, netns: "auto" });
    work = tempDir("pyferry-fleet-edges-");
    makeWheelhouse(join(work, "wheelhouse"), WHEELHOUSE);
    writeFileSync(join(work, "six.txt"), "six\n");
  });
  after(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("a hook of a stopped deploy still running: the next deploy fails in a sentence and switches nothing", async () => {
    const path = inventory("busy", [
      'requirements = "six.txt"',
      `hooks = ${JSON.stringify(["trap '' TERM; sleep 20", 'echo "$VIRTUAL_ENV" >> done.log'])}`,
    ]);
    const hookDir = join(path, "..");
    const run = startPyferry(["deploy", "--yes", "-i", "busy.toml"], {
      cwd: work,
      env: lab.env(),
      timeoutMs: 120_000,
    });
    await waitFor("the hook to run", () => processesIn([hookDir]).length > 0, 60_000);
    run.child.kill("SIGINT");
    const stopped = await run.done;
    assert.equal(stopped.status, 130, show(stopped));
    // The hook ignores SIGTERM: it outlives the deploy that started it.
    await sleep(1000);
    assert.ok(processesIn([hookDir]).length > 0, "the hook still runs");
    const link = readlinkSync(path);
    const names = join(store(), "names");
    assert.ok(existsSync(join(names, `${envId(path)}-hooks`)), "its hooks are owed");

    const r = await pyferry(["deploy", "--yes", "-i", "busy.toml"]);
    assert.equal(r.status, 1, show(r));
    assert.ok(!hasStackTrace(r.stderr), show(r));
    assert.match(
      summary(r.stdout).get(`h1:${path}`)?.detail ?? "",
      /^a hook started by an earlier deploy still runs there \(pid \d+\); let it end or stop it, then deploy again$/,
      show(r),
    );
    assert.doesNotMatch(r.stdout, /removed again|switched back/, show(r));
    assert.equal(readlinkSync(path), link, "nothing was switched or removed");
    assert.ok(existsSync(join(names, `${envId(path)}-hooks`)), "its hooks are still owed");
    assert.ok(!existsSync(join(hookDir, "done.log")), "no hook of that deploy ran");

    // Once it ends, the next deploy runs the hooks it owes, once.
    await waitFor("the hook to end", () => processesIn([hookDir]).length === 0, 30_000);
    const ok = await pyferry(["deploy", "--yes", "-i", "busy.toml"]);
    assert.equal(ok.status, 0, show(ok));
    assert.equal(summary(ok.stdout).get(`h1:${path}`)?.outcome, "changed", show(ok));
    assert.equal(readFileSync(join(hookDir, "done.log"), "utf8"), `${path}\n`);
    assert.equal(readlinkSync(path), link);
  });

  /** NAME.pylock.toml for `reqs` on the hosts' Python, from pip's index (file URLs there). */
  async function lockFile(name: string, reqs: string[]): Promise<string> {
    const file = join(work, `${name}.pylock.toml`);
    const r = await pyferry(["lock", ...reqs, "-o", file, "--python", python]);
    assert.equal(r.status, 0, show(r));
    return file;
  }

  test("a lock's files come from the wheelhouse, not its URLs; one the wheelhouse lacks is refused in a sentence", async () => {
    const file = await lockFile("locked", ["six", "idna"]);
    // Its URLs lead nowhere: only the wheelhouse can give these files. A cache of its own, so
    // that no wheel unpacked before stands in for the file.
    const text = readFileSync(file, "utf8");
    assert.match(text, /url = "file:\/\//);
    writeFileSync(file, text.replace(/url = "file:\/\/[^"]*\//g, 'url = "file:///nonexistent/'));
    const path = inventory("locked", ['lock = "locked.pylock.toml"']);
    const env = lab.env({ PYFERRY_CACHE_DIR: tempDir("pyferry-edges-cache-") });
    const run = (args: string[]) => pyferryAsync(args, { cwd: work, env, timeoutMs: 300_000 });
    const r = await run(["deploy", "--yes", "-i", "locked.toml"]);
    assert.equal(r.status, 0, show(r));
    assert.deepEqual(summary(r.stdout).get(`h1:${path}`), {
      outcome: "changed",
      detail: "+idna 3.20 +six 1.17.0",
    });

    // attrs is in the lock, and not in the wheelhouse.
    await lockFile("locked", ["six", "attrs"]);
    const refused = await run(["deploy", "--yes", "-i", "locked.toml"]);
    assert.equal(refused.status, 1, show(refused));
    assert.ok(!hasStackTrace(refused.stderr), show(refused));
    assert.match(
      summary(refused.stdout).get(`h1:${path}`)?.detail ?? "",
      /^\S+locked\.pylock\.toml installs attrs-[^ ]+\.whl \(sha256 [0-9a-f]{12}\.\.\.\), which the wheelhouse \S+ does not hold; pyferry wheelhouse add it, as deployments install from the wheelhouse only$/,
      show(refused),
    );
  });

  test("an environment takes the extras and dependency groups its inventory picks from the lock", async () => {
    const project = join(work, "app");
    mkdirSync(project, { recursive: true });
    writeFileSync(join(project, "app.py"), "import six\n");
    writeFileSync(
      join(project, "pyproject.toml"),
      [
        "[project]",
        'name = "app"',
        'version = "1.0"',
        'dependencies = ["six"]',
        "[project.optional-dependencies]",
        'net = ["idna"]',
        "[dependency-groups]",
        'tools = ["tabulate==0.10.0"]',
        "",
      ].join("\n"),
    );
    await lockFile("app", ["app", "--all-extras", "--all-groups"]);
    const deploy = async (picks: string[], detail: string) => {
      const path = inventory("app", ['lock = "app.pylock.toml"', ...picks]);
      const r = await pyferry(["deploy", "--yes", "-i", "app.toml"]);
      assert.equal(r.status, 0, show(r));
      assert.deepEqual(
        summary(r.stdout).get(`h1:${path}`),
        { outcome: "changed", detail },
        show(r),
      );
      return path;
    };
    await deploy([], "+six 1.17.0");
    await deploy(['extras = ["net"]'], "+idna 3.20");
    const path = await deploy(
      ['extras = ["net"]', 'dependency_groups = ["tools"]'],
      "+tabulate 0.10.0",
    );
    const python = join(path, "bin", "python");
    const versions = spawnSync(
      python,
      ["-c", "import idna, six, tabulate; print(idna.__version__, tabulate.__version__)"],
      { encoding: "utf8" },
    );
    assert.equal(versions.stdout.trim(), "3.20 0.10.0", versions.stderr);
    await deploy(['dependency_groups = ["tools"]'], "-idna 3.20");

    // A name the lock does not offer fails that environment in a sentence; nothing changes.
    inventory("app", ['lock = "app.pylock.toml"', 'extras = ["gpu"]']);
    const refused = await pyferry(["deploy", "--yes", "-i", "app.toml"]);
    assert.equal(refused.status, 1, show(refused));
    assert.ok(!hasStackTrace(refused.stderr), show(refused));
    assert.match(
      summary(refused.stdout).get(`h1:${path}`)?.detail ?? "",
      /^\S+app\.pylock\.toml: The lock has no extra "gpu" \(it offers net\)$/,
      show(refused),
    );
    assert.equal(spawnSync(python, ["-c", "import tabulate"]).status, 0);

    // With requirements, extras belong in them: the inventory says so before connecting.
    inventory("app", ['requirements = "six.txt"', 'extras = ["net"]']);
    const wrong = await pyferry(["deploy", "--yes", "-i", "app.toml"]);
    assert.equal(wrong.status, 1, show(wrong));
    assert.match(
      wrong.stderr,
      /extras picks from a lock; with requirements, name extras in them \(name\[extra\]\)/,
    );
  });

  test("a lock whose requires-python the interpreter does not meet: a sentence naming the inventory's python", async () => {
    const file = await lockFile("oldpy", ["six"]);
    const text = readFileSync(file, "utf8");
    writeFileSync(file, text.replace(/^requires-python = .*$/m, 'requires-python = ">=3.99"'));
    const path = inventory("oldpy", ['lock = "oldpy.pylock.toml"']);
    const r = await pyferry(["deploy", "--yes", "-i", "oldpy.toml"]);
    assert.equal(r.status, 1, show(r));
    const detail = summary(r.stdout).get(`h1:${path}`)?.detail ?? "";
    assert.match(
      detail,
      /^\S+oldpy\.pylock\.toml requires Python >=3\.99, and \S+ there is Python 3\.11\.\d+; set the environment's python in the inventory to one that is, or lock again for that one$/,
      show(r),
    );
    assert.doesNotMatch(detail, /--python/);
  });

  test("another interpreter for the same packages: the plan says the Python changed, old -> new", async () => {
    const other = ["/root/.pyenv/versions/3.10.13/bin/python3.10", "/usr/bin/python3.11"].find(
      (p) => existsSync(p) && realpathSync(p) !== realpathSync(python),
    );
    assert.ok(other, "a second CPython");
    const version = (py: string) =>
      spawnSync(py, ["-c", "import platform; print(platform.python_version())"], {
        encoding: "utf8",
      }).stdout.trim();
    const path = inventory("repy", ['requirements = "six.txt"']);
    const first = await pyferry(["deploy", "--yes", "-i", "repy.toml"]);
    assert.equal(first.status, 0, show(first));
    inventory("repy", ['requirements = "six.txt"'], other);
    const check = await pyferry(["deploy", "--check", "-i", "repy.toml"]);
    assert.equal(check.status, 2, show(check));
    assert.ok(
      check.stderr.includes(
        `h1:${path}: the Python changed (${version(python)} -> ${version(other)})\n`,
      ),
      show(check),
    );
    assert.doesNotMatch(check.stderr, /files that differ/, show(check));
  });

  test("changes that move no package say why, on their line and in --json; a failed one's plan is `planned`", async () => {
    const path = inventory("why", ['requirements = "six.txt"', "compile = false"]);
    const first = await pyferry(["deploy", "--yes", "-i", "why.toml"]);
    assert.equal(first.status, 0, show(first));
    inventory("why", ['requirements = "six.txt"', "compile = true"]);
    const reason = "the same packages, with bytecode compiled there";
    const check = await pyferry(["deploy", "--check", "-i", "why.toml"]);
    assert.equal(check.status, 2, show(check));
    assert.deepEqual(summary(check.stdout).get(`h1:${path}`), {
      outcome: "pending",
      detail: reason,
    });
    const json = await pyferry(["deploy", "--check", "--json", "-i", "why.toml"]);
    assert.equal(json.status, 2, show(json));
    assert.deepEqual(JSON.parse(json.stdout), {
      results: [{ host: "h1", path, outcome: "pending", changes: [], reason }],
    });
    const r = await pyferry(["deploy", "--yes", "--json", "-i", "why.toml"]);
    assert.equal(r.status, 0, show(r));
    assert.deepEqual(JSON.parse(r.stdout), {
      results: [{ host: "h1", path, outcome: "changed", changes: [], reason }],
    });

    // A hook fails: switched back, so nothing of the plan took effect.
    writeFileSync(join(work, "why.txt"), "six\nidna\n");
    inventory("why", ['requirements = "why.txt"', "compile = true", 'hooks = ["exit 4"]']);
    const failed = await pyferry(["deploy", "--yes", "--json", "-i", "why.toml"]);
    assert.equal(failed.status, 1, show(failed));
    const [res] = (JSON.parse(failed.stdout) as { results: Record<string, unknown>[] }).results;
    assert.deepEqual(res?.changes, [], show(failed));
    assert.deepEqual(res?.planned, [{ name: "idna", to: "3.20" }], show(failed));
    assert.equal(res?.outcome, "failed");
    assert.match(String(res?.error), /hook "exit 4" failed with exit status 4/);
  });

  test("a rollback whose reload fails: it says it switched and what changed; the next rollback runs the reload again", async () => {
    writeFileSync(join(work, "rb.txt"), "six\n");
    const path = inventory("rb", ['requirements = "rb.txt"', 'reload = "test ! -e fail"']);
    const fail = join(path, "..", "fail");
    const deploy = async () => {
      const r = await pyferry(["deploy", "--yes", "-i", "rb.toml"]);
      assert.equal(r.status, 0, show(r));
      return readlinkSync(path);
    };
    const first = await deploy();
    writeFileSync(join(work, "rb.txt"), "six\nidna\n");
    await deploy();
    writeFileSync(fail, "");
    const rollback = () => pyferry(["rollback", "--json", "-i", "rb.toml", `h1:${path}`]);
    const r = await rollback();
    assert.equal(r.status, 1, show(r));
    const [res] = (JSON.parse(r.stdout) as { results: Record<string, unknown>[] }).results;
    assert.equal(res?.outcome, "failed", show(r));
    assert.deepEqual(res?.changes, [{ name: "idna", from: "3.20" }], show(r));
    assert.match(
      String(res?.error),
      /^switched back, but reload "test ! -e fail" failed with exit status 1 \(no output\); pyferry rollback runs it again$/,
    );
    assert.equal(readlinkSync(path), first, "it did switch back");

    // Still failing: the reload again, and no further back. The line names what the switch
    // changed only when it switched (the first time), as --json does.
    const again = await pyferry(["rollback", "-i", "rb.toml", `h1:${path}`]);
    assert.equal(again.status, 1, show(again));
    assert.match(
      again.stdout,
      /^\S+ {2}failed {2}reload "test ! -e fail" failed again with exit status 1/,
      show(again),
    );
    assert.equal(readlinkSync(path), first);

    rmSync(fail);
    const done = await rollback();
    assert.equal(done.status, 0, show(done));
    assert.deepEqual(JSON.parse(done.stdout), {
      results: [
        {
          host: "h1",
          path,
          outcome: "changed",
          changes: [],
          reason: "its reload, which failed after the last rollback switched to it",
        },
      ],
    });
    assert.equal(readlinkSync(path), first);
    // Owed no more: the next rollback goes back, and there is nothing before the first deploy.
    const last = await pyferry(["rollback", "-i", "rb.toml", `h1:${path}`]);
    assert.equal(last.status, 1, show(last));
    assert.match(last.stdout, /there is no earlier environment to return to/, show(last));
    // A switch whose reload fails says on its line, too, what the switch changed.
    await deploy();
    writeFileSync(fail, "");
    const text = await pyferry(["rollback", "-i", "rb.toml", `h1:${path}`]);
    rmSync(fail);
    assert.equal(text.status, 1, show(text));
    assert.match(
      text.stdout,
      /^\S+ {2}failed {2}-idna 3\.20: switched back, but reload "test ! -e fail" failed/,
      show(text),
    );
    assert.equal(readlinkSync(path), first);
  });

  test("a stale hook pid file whose pid now belongs to another process does not hold a deploy", async () => {
    const path = inventory("stale", [
      'requirements = "stale.txt"',
      `hooks = ${JSON.stringify(['echo "$VIRTUAL_ENV" >> done.log'])}`,
    ]);
    // Left by a deploy killed while its hook ran; the pid is this test's own process now, which
    // started at another time than the file says, or (a file with the pid alone, as older
    // pyferry wrote) after the file was written.
    mkdirSync(join(store(), "names"), { recursive: true });
    const pidFile = join(store(), "names", `${envId(path)}-hookpid`);
    const hourAgo = new Date(Date.now() - 3_600_000);
    for (const [i, text] of [`${process.pid} 1\n`, `${process.pid}\n`].entries()) {
      writeFileSync(pidFile, text);
      utimesSync(pidFile, hourAgo, hourAgo);
      writeFileSync(join(work, "stale.txt"), i === 0 ? "six\n" : "six\nidna\n");
      const r = await pyferry(["deploy", "--yes", "-i", "stale.toml"]);
      assert.equal(r.status, 0, show(r));
      assert.ok(r.ms < 9000, `${JSON.stringify(text)} was not waited for: ${r.ms} ms`);
      assert.equal(readFileSync(join(path, "..", "done.log"), "utf8"), `${path}\n`.repeat(i + 1));
      assert.ok(!existsSync(pidFile), "the stale file is gone");
      assert.ok(lstatSync(path).isSymbolicLink());
    }
  });
});
