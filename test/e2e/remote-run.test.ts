/**
 * `pyferry run --on HOST` against real OpenSSH servers (test/support/sshd.ts): a program with a
 * third-party import, local code and a data file runs there with its arguments, environment,
 * stdin, exit status and result files intact; only what a store lacks is sent; hosts keep
 * separate stores of verified objects; signals reach the remote program; the staged flow (pack
 * --folder, sync, run ID, clean), store gc, and two runs at once.
 *
 * Each host's $HOME is a folder on this machine, so its store is inspected directly.
 */
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  statSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { stripVTControlCharacters } from "node:util";
import { CACHE, REPO } from "../support/cli.js";
import {
  checkObjects,
  defaultStore,
  entries,
  errorLine,
  type Finished,
  hasStackTrace,
  pgrep,
  pyferryAsync,
  type Running,
  replacedEnvFiles,
  sentOf,
  show,
  startPyferry,
  unlinkedObjects,
  waitFor,
} from "../support/remote.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { tempDir } from "../support/temp.js";

const skip = sshAvailable();

/** A fresh folder for one test's scripts (the cwd of its pyferry runs). */
function workdir(files: Record<string, string>): string {
  const dir = tempDir("pyferry-remote-run-");
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

/** Every line -v writes about what it sent. */
const SENT_LINE = /^pyferry: sent \d+ /m;

describe("pyferry run --on", { skip: skip ?? false, timeout: 900_000 }, () => {
  let lab: SshLab;
  const dirs: string[] = [];
  const work = (files: Record<string, string>) => {
    const d = workdir(files);
    dirs.push(d);
    return d;
  };
  const run = (args: string[], cwd: string, input?: string): Promise<Finished> =>
    pyferryAsync(args, { cwd, env: lab.env(), ...(input !== undefined ? { input } : {}) });
  const store = (alias: string) => defaultStore(lab.host(alias).root);

  before(async () => {
    lab = await startSshLab({ hosts: 3, netns: "auto" });
  });
  after(async () => {
    await lab?.close();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    // This file's private cache (cli.ts makes one per test process): hundreds of MB.
    rmSync(CACHE, { recursive: true, force: true });
  });

  test("a program runs there as it would here: arguments, output, exit status, env, stdin, fetch", async (t) => {
    const dir = work({
      "main.py": [
        "import json, os, sys",
        "import idna",
        "import helper",
        "",
        'with open("data.txt") as f:',
        "    data = f.read().strip()",
        "print(json.dumps(sys.argv[1:]))",
        "print(helper.greet(), data)",
        'print(idna.encode("bücher.example").decode())',
        'print("K=" + os.environ["K"])',
        'print("stdin=" + json.dumps(sys.stdin.read()))',
        'with open("out.txt", "w") as f:',
        '    f.write("written there\\n")',
        'print("to stderr", file=sys.stderr)',
        "sys.exit(3)",
        "",
      ].join("\n"),
      "helper.py": 'def greet():\n    return "hello from helper"\n',
      "data.txt": "the data file\n",
    });
    const r = await run(
      [
        "run",
        "--on",
        "h1",
        "-f",
        "--env",
        "K=v w",
        "--fetch",
        "out.txt",
        "main.py",
        "a b",
        "$HOME",
        "x;rm -rf /",
      ],
      dir,
      "line one\nline two\n",
    );
    t.diagnostic(`first run (build + ship): ${r.ms} ms`);
    assert.equal(r.status, 3, show(r));
    assert.equal(
      r.stdout,
      [
        '["a b", "$HOME", "x;rm -rf /"]',
        "hello from helper the data file",
        "xn--bcher-kva.example",
        "K=v w",
        'stdin="line one\\nline two\\n"',
        "",
      ].join("\n"),
    );
    assert.equal(r.stderr, "to stderr\n", show(r));
    assert.equal(readFileSync(join(dir, "out.txt"), "utf8"), "written there\n");

    const bad = await run(["run", "--on", "h1", "--fetch", "../x", "main.py"], dir);
    assert.equal(bad.status, 2, show(bad));
    assert.match(errorLine(bad.stderr), /^error: --fetch takes a path inside the run's folder/);
    assert.equal(bad.stdout, "");
    assert.ok(!hasStackTrace(bad.stderr), show(bad));
  });

  test("without -f, the files the program names are named as not sent", async () => {
    const dir = work({
      "look.py": 'import os\nprint(os.path.exists("data.txt"))\n',
      "data.txt": "the data file\n",
    });
    const r = await run(["run", "--on", "h1", "look.py"], dir);
    assert.equal(r.status, 0, show(r));
    assert.equal(r.stdout, "False\n");
    assert.match(
      r.stderr,
      /^warning: look\.py names data\.txt beside it, which is not sent; pass -f to send the files the program names\.\n/,
    );
  });

  test("only what the store lacks is sent", async (t) => {
    // Its own store on h1, so that the first ship is a whole environment.
    const dir = work({
      "pyferry.toml": '[targets.fresh]\naddress = "h1"\nroot = "~/store2"\n',
      "calc.py": 'import idna\nprint("v1", idna.decode("xn--bcher-kva"))\n',
    });
    const first = await run(["run", "--on", "fresh", "-v", "calc.py"], dir);
    assert.equal(first.status, 0, show(first));
    assert.equal(first.stdout, "v1 bücher\n");
    const full = sentOf(first.stderr);
    assert.equal(full.env.length, 1, show(first));
    const fullMib = full.env[0]?.mib ?? 0;
    assert.ok(fullMib > 10, `a first ship carries the interpreter too: ${show(first)}`);
    t.diagnostic(`first ship: ${full.env[0]?.files} files, ${fullMib} MiB in ${first.ms} ms`);

    const again = await run(["run", "--on", "fresh", "-v", "calc.py"], dir);
    assert.equal(again.status, 0, show(again));
    assert.equal(again.stdout, "v1 bücher\n");
    assert.doesNotMatch(again.stderr, SENT_LINE, "an unchanged run sends nothing");
    t.diagnostic(`unchanged run: ${again.ms} ms`);

    writeFileSync(join(dir, "calc.py"), 'import idna\nprint("v2", idna.decode("xn--bcher-kva"))\n');
    const edited = await run(["run", "--on", "fresh", "-v", "calc.py"], dir);
    assert.equal(edited.status, 0, show(edited));
    assert.equal(edited.stdout, "v2 bücher\n");
    const e = sentOf(edited.stderr);
    assert.deepEqual(e.env, [], `no environment is sent for an edited script: ${show(edited)}`);
    assert.deepEqual(
      e.app.map((a) => a.files),
      [1],
      show(edited),
    );
    assert.equal((edited.stderr.match(SENT_LINE) ?? []).length, 1);

    writeFileSync(
      join(dir, "calc.py"),
      'import idna\nimport six\nprint("v3", idna.decode("xn--bcher-kva"), six.PY3)\n',
    );
    const grown = await run(["run", "--on", "fresh", "-v", "calc.py"], dir);
    assert.equal(grown.status, 0, show(grown));
    assert.equal(grown.stdout, "v3 bücher True\n");
    const g = sentOf(grown.stderr);
    assert.equal(g.env.length, 1, show(grown));
    const grownMib = g.env[0]?.mib ?? Number.POSITIVE_INFINITY;
    t.diagnostic(`after adding six: ${g.env[0]?.files} files, ${grownMib} MiB`);
    assert.ok(
      grownMib <= fullMib * 0.05,
      `adding six sent ${grownMib} MiB, the first ship ${fullMib} MiB`,
    );
    assert.notEqual(g.env[0]?.key, full.env[0]?.key);
    assert.deepEqual(
      g.app.map((a) => a.files),
      [1],
    );
  });

  test("by default the next run reuses the connection the last one kept; PYFERRY_SSH_PERSIST=0 keeps none", async () => {
    // A store of its own on h2, which "several hosts" expects to find untouched.
    const dir = work({
      "pyferry.toml": '[targets.kept]\naddress = "h2"\nroot = "~/store-kept"\n',
      "hi.py": 'print("hi")\n',
    });
    // Every ssh call is logged, to tell a new master (ControlMaster=yes) from a reused one.
    const log = join(dir, "ssh.log");
    const wrapper = join(dir, "ssh-logged");
    writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec ssh "$@"\n`, {
      mode: 0o755,
    });
    const runtime = join(dir, "runtime");
    mkdirSync(runtime, { mode: 0o700 });
    const env = lab.env({
      PYFERRY_SSH_COMMAND: lab.sshCommand.replace(/^ssh/, wrapper),
      // Unset: the default (60 s).
      PYFERRY_SSH_PERSIST: "",
      XDG_RUNTIME_DIR: runtime,
    });
    const calls = () => readFileSync(log, "utf8").trim().split("\n");
    const masters = () => calls().filter((c) => c.includes("ControlMaster=yes")).length;
    try {
      const first = await pyferryAsync(["run", "--on", "kept", "hi.py"], { cwd: dir, env });
      assert.equal(first.status, 0, show(first));
      assert.equal(first.stdout, "hi\n");
      assert.equal(masters(), 1, calls().join("\n"));
      // The master outlives pyferry, its socket in a private folder.
      const kept = join(runtime, "pyferry-ssh");
      assert.equal(statSync(kept).mode & 0o777, 0o700);
      // Beside each socket: the file that names it (and a lock while a run looks).
      const socketsIn = (d: string) =>
        readdirSync(d).filter((n) => !n.endsWith(".lock") && !n.endsWith(".current"));
      const sockets = socketsIn(kept);
      assert.equal(sockets.length, 1, sockets.join(" "));
      const socket = join(kept, sockets[0] as string);
      const check = () =>
        spawnSync(
          "ssh",
          ["-F", lab.sshConfig, "-o", `ControlPath=${socket}`, "-O", "check", "h2"],
          {
            encoding: "utf8",
          },
        );
      assert.equal(check().status, 0, check().stderr);

      const second = await pyferryAsync(["run", "--on", "kept", "hi.py"], { cwd: dir, env });
      assert.equal(second.status, 0, show(second));
      assert.equal(second.stdout, "hi\n");
      assert.equal(
        masters(),
        1,
        `the second run opened a master of its own:\n${calls().join("\n")}`,
      );
      assert.equal(check().status, 0, "the master is still kept");
      // With PYFERRY_SSH_PERSIST=0 a run neither uses nor keeps a master there.
      const plain = await pyferryAsync(["run", "--on", "kept", "hi.py"], {
        cwd: dir,
        env: { ...env, PYFERRY_SSH_PERSIST: "0" },
      });
      assert.equal(plain.status, 0, show(plain));
      assert.equal(masters(), 2);
      assert.deepEqual(socketsIn(kept), sockets);
      // A kept master killed outright leaves its socket: the next run starts a new one.
      for (const pid of pgrep(`ControlPath=${socket}`)) process.kill(pid, "SIGKILL");
      await waitFor("the master to be gone", () => check().status !== 0, 10_000);
      assert.ok(existsSync(socket), "the dead master's socket is still there");
      const again = await pyferryAsync(["run", "--on", "kept", "hi.py"], {
        cwd: dir,
        env,
        timeoutMs: 60_000,
      });
      assert.equal(again.status, 0, show(again));
      assert.equal(again.stdout, "hi\n");
      assert.equal(masters(), 3);
      // pyferry disconnect closes what is kept.
      const kept2 = socketsIn(kept).map((n) => join(kept, n));
      assert.equal(kept2.length, 1, kept2.join(" "));
      const closed = await pyferryAsync(["disconnect", "--json"], { cwd: dir, env });
      assert.equal(closed.status, 0, show(closed));
      assert.deepEqual(JSON.parse(closed.stdout), { closed: 1 });
      await waitFor("the socket to go", () => !existsSync(kept2[0] as string), 10_000);
      assert.deepEqual(readdirSync(kept), []);
    } finally {
      for (const name of existsSync(join(runtime, "pyferry-ssh"))
        ? readdirSync(join(runtime, "pyferry-ssh"))
        : []) {
        spawnSync("ssh", [
          "-F",
          lab.sshConfig,
          "-o",
          `ControlPath=${join(runtime, "pyferry-ssh", name)}`,
          "-O",
          "exit",
          "h2",
        ]);
      }
    }
    // A folder others can enter keeps no socket: by default the run closes its connection at
    // the end; asked for by the user, keeping is refused in one sentence.
    const open = join(dir, "open");
    mkdirSync(join(open, "pyferry-ssh"), { recursive: true, mode: 0o755 });
    chmodSync(join(open, "pyferry-ssh"), 0o755);
    const unkept = await pyferryAsync(["run", "--on", "kept", "hi.py"], {
      cwd: dir,
      env: { ...env, XDG_RUNTIME_DIR: open },
    });
    assert.equal(unkept.status, 0, show(unkept));
    assert.equal(unkept.stdout, "hi\n");
    assert.deepEqual(readdirSync(join(open, "pyferry-ssh")), []);
    const refused = await pyferryAsync(["run", "--on", "kept", "hi.py"], {
      cwd: dir,
      env: { ...env, XDG_RUNTIME_DIR: open, PYFERRY_SSH_PERSIST: "60" },
    });
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /is not a private folder of yours/);
    assert.ok(!hasStackTrace(refused.stderr), refused.stderr);
  });

  test("on a terminal, a first ship shows its progress, cleared before the program's output", async (t) => {
    const dir = work({
      "pyferry.toml": '[targets.fresh4]\naddress = "h2"\nroot = "~/store4"\n',
      "calc.py": 'import idna\nprint("out", idna.decode("xn--bcher-kva"))\n',
    });
    const r = await startPyferry(["run", "--on", "fresh4", "calc.py"], {
      cwd: dir,
      env: lab.env(),
      terminal: true,
    }).done;
    t.diagnostic(`a first ship on a terminal: ${r.ms} ms`);
    assert.equal(r.status, 0, show(r));
    assert.match(r.stdout, /sending the environment to fresh4: [\d.]+ MiB/, show(r));
    // What the terminal shows in the end: the program's line, and no status left over.
    const shown = r.stdout
      .split("\n")
      .map((l) => stripVTControlCharacters(l.replace(/\r$/, "").split("\r").pop() ?? ""));
    assert.deepEqual(
      shown.filter((l) => l !== ""),
      ["out bücher"],
      show(r),
    );
  });

  test("an added package sends its own files, not the unchanged packages' again", async (t) => {
    const dir = work({
      "pyferry.toml": '[targets.fresh3]\naddress = "h1"\nroot = "~/store3"\n',
      "calc.py": 'import idna\nprint(idna.decode("xn--bcher-kva"))\n',
    });
    const first = await run(["run", "--on", "fresh3", "-v", "calc.py"], dir);
    assert.equal(first.status, 0, show(first));
    writeFileSync(join(dir, "calc.py"), 'import idna, six\nprint(idna.decode("xn--bcher-kva"))\n');
    const grown = await run(["run", "--on", "fresh3", "-v", "calc.py"], dir);
    assert.equal(grown.status, 0, show(grown));
    const sent = sentOf(grown.stderr).env[0];
    assert.ok(sent, show(grown));
    t.diagnostic(`adding six sent ${sent.files} files, ${sent.mib} MiB`);
    // six is one module: its .py and .pyc, five dist-info files; the environment's own record.
    assert.ok(
      sent.files <= 10,
      `adding six sent ${sent.files} files; idna's files are the same bytes in both environments`,
    );
  });

  test("a target with python = the host's own interpreter: a venv for it, no interpreter shipped", async () => {
    const hostPython = realpathSync(
      execFileSync("python3", ["-c", "import sys; print(sys.executable)"]).toString().trim(),
    );
    const dir = work({
      "pyferry.toml": `[targets.own]\naddress = "h3"\nroot = "~/store-own"\npython = "${hostPython}"\n`,
      "which.py":
        'import sys, idna\nprint(sys.version_info[:2] >= (3, 6), idna.decode("xn--bcher-kva"))\n',
    });
    const r = await run(["run", "--on", "own", "-v", "which.py"], dir);
    assert.equal(r.status, 0, show(r));
    assert.equal(r.stdout, "True bücher\n");
    const root = join(lab.host("h3").root, "store-own");
    const [env] = entries(root, "envs");
    assert.ok(env, "one environment");
    const envDir = join(root, "envs", env as string);
    assert.equal(realpathSync(join(envDir, "bin", "python")), realpathSync(hostPython));
    assert.match(readFileSync(join(envDir, "pyvenv.cfg"), "utf8"), /^home = /m);
    // No interpreter travelled: the environment holds no libpython and no stdlib.
    assert.ok(
      !existsSync(join(envDir, "lib", "python3.11", "os.py")) &&
        !existsSync(join(envDir, "lib", "libpython3.11.so.1.0")),
    );
    const bad = work({
      "pyferry.toml": '[targets.nopy]\naddress = "h3"\npython = "/nonexistent/python3"\n',
      "which.py": "print(1)\n",
    });
    const b = await run(["run", "--on", "nopy", "which.py"], bad);
    assert.equal(b.status, 1, show(b));
    assert.match(
      b.stderr,
      /^error: \/nonexistent\/python3 on nopy is not a working Python interpreter/m,
    );
  });

  test("several hosts: each runs the program and keeps only its own things", async () => {
    const dir = work({
      "where.py": [
        "import os, idna",
        'with open("host.txt", "w") as f:',
        '    f.write(os.environ["HOME"])',
        'print(os.environ["HOME"], idna.encode("a.b").decode())',
        "",
      ].join("\n"),
    });
    const aliases = ["h1", "h2", "h3"];
    const results = await Promise.all(
      aliases.map((a) => run(["run", "--on", a, "-v", "where.py"], dir)),
    );
    const runIds = new Map<string, string>();
    for (const [i, alias] of aliases.entries()) {
      const r = results[i] as Finished;
      const home = lab.host(alias).root;
      assert.equal(r.status, 0, `${alias}: ${show(r)}`);
      assert.equal(r.stdout, `${home} a.b\n`);
      const ids = sentOf(r.stderr).runIds;
      assert.equal(ids.length, 1, show(r));
      runIds.set(alias, ids[0] as string);
      assert.ok(
        existsSync(join(store(alias), "runs", ids[0] as string, "host.txt")),
        `${alias}: the run's folder is in its own store`,
      );
    }
    for (const alias of aliases) {
      const s = store(alias);
      const runs = entries(s, "runs").filter((n) => !n.includes("."));
      for (const id of runs) {
        const p = join(s, "runs", id, "host.txt");
        if (existsSync(p)) assert.equal(readFileSync(p, "utf8"), lab.host(alias).root);
      }
      for (const [other, id] of runIds) {
        assert.equal(runs.includes(id), other === alias, `${id} of ${other} in ${alias}'s store`);
      }
    }
    // h2 and h3 were used by this test only: one environment, this test's run, nothing else.
    for (const alias of ["h2", "h3"]) {
      const s = store(alias);
      assert.equal(entries(s, "envs").length, 1, `${alias}: ${entries(s, "envs")}`);
      assert.deepEqual(entries(s, "runs"), [
        runIds.get(alias) as string,
        `${runIds.get(alias)}.env`,
      ]);
      assert.deepEqual(entries(s, "names"), []);
      assert.deepEqual(entries(s, "tmp"), []);
    }
  });

  test("every object in every store hashes to its name", () => {
    const stores = [
      ...["h1", "h2", "h3"].map(store),
      join(lab.host("h1").root, "store2"),
      join(lab.host("h1").root, "store3"),
    ];
    for (const s of stores) {
      const c = checkObjects(s);
      assert.ok(c.objects > 100, `${s}: ${c.objects} objects`);
      assert.deepEqual(c.bad, [], s);
      assert.deepEqual(entries(s, "tmp"), [], `${s}/tmp is empty`);
    }
  });

  test("a run leaves its environment as assembled", () => {
    // Every environment on h1 has run programs by now (the first test's among them).
    const envs = entries(store("h1"), "envs");
    assert.ok(envs.length > 0);
    for (const key of envs) {
      const replaced = replacedEnvFiles(join(store("h1"), "envs", key));
      assert.deepEqual(
        replaced.slice(0, 5),
        [],
        `${replaced.length} file(s) of envs/${key.slice(0, 12)} were rewritten after it was assembled, so they are no longer the store's objects`,
      );
    }
  });

  describe("signals", () => {
    test("a program killed by a signal there gives 128+N", async () => {
      const dir = work({
        "die.py": [
          "import os, signal, idna",
          'print("dying", flush=True)',
          "os.kill(os.getpid(), signal.SIGKILL)",
          "",
        ].join("\n"),
      });
      const r = await run(["run", "--on", "h1", "die.py"], dir);
      assert.equal(r.status, 137, show(r));
      assert.equal(r.stdout, "dying\n");
      assert.ok(!hasStackTrace(r.stderr), show(r));
    });

    test("output arrives as the program prints it, without flush=True", async () => {
      // The program waits for a file the test writes only once the first line has arrived here.
      const go = join(lab.host("h2").root, "go-live");
      const dir = work({
        "live.py": [
          "import os, sys, time, idna",
          'print("first")',
          "for _ in range(600):",
          "    if os.path.exists(sys.argv[1]):",
          '        print("second", repr(os.environ.get("PYTHONUNBUFFERED")))',
          "        sys.exit(0)",
          "    time.sleep(0.05)",
          "sys.exit(9)",
          "",
        ].join("\n"),
      });
      const p = startPyferry(["run", "--on", "h2", "live.py", go], {
        cwd: dir,
        env: lab.env(),
        timeoutMs: 120_000,
      });
      try {
        await waitFor("the first line", () => p.stdout().includes("first\n"), 60_000);
        writeFileSync(go, "");
        const r = await p.done;
        assert.equal(r.status, 0, show(r));
        assert.equal(r.stdout, "first\nsecond '1'\n");
        // The user's own setting wins.
        rmSync(go, { force: true });
        writeFileSync(go, "");
        const buffered = await run(
          ["run", "--on", "h2", "--env", "PYTHONUNBUFFERED=", "live.py", go],
          dir,
        );
        assert.equal(buffered.status, 0, show(buffered));
        assert.equal(buffered.stdout, "first\nsecond ''\n");
      } finally {
        rmSync(go, { force: true });
        if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill("SIGKILL");
      }
    });

    const long = [
      "import sys, time, idna",
      'print("started", flush=True)',
      "time.sleep(float(sys.argv[1]))",
      'print("finished")',
      "",
    ].join("\n");

    /**
     * Start long.py on h1 with a unique marker argument, wait until it runs there, send `sig`
     * to pyferry; the remote program must be gone soon after and pyferry end non-zero.
     */
    async function interrupt(sig: NodeJS.Signals, marker: string): Promise<Finished> {
      const dir = work({ "long.py": long });
      const p: Running = startPyferry(["run", "--on", "h1", "long.py", "120", marker], {
        cwd: dir,
        env: lab.env(),
        timeoutMs: 150_000,
      });
      try {
        await waitFor("the program to start there", () => p.stdout().includes("started"), 60_000);
        // The remote interpreter is a process of this machine (the lab's sshd runs here).
        const remote = pgrep(marker).filter((pid) => {
          try {
            return readFileSync(`/proc/${pid}/cmdline`, "utf8").includes("/bin/python\0");
          } catch {
            return false;
          }
        });
        assert.equal(remote.length, 1, `one remote python with ${marker}: ${remote}`);
        p.child.kill(sig);
        let timer: NodeJS.Timeout | undefined;
        const ended = await Promise.race([
          p.done,
          new Promise<undefined>((r) => {
            timer = setTimeout(r, 20_000, undefined);
          }),
        ]);
        clearTimeout(timer);
        assert.ok(ended, `pyferry was still running 20 s after ${sig}; stderr: ${p.stderr()}`);
        await waitFor(
          `the remote program to be gone after ${sig}`,
          () => pgrep(marker).length === 0,
          10_000,
        );
        assert.doesNotMatch(ended.stdout, /finished/);
        return ended;
      } finally {
        // Whatever this test started and left: pyferry (SIGTERM first, so that it closes its
        // ssh connection), its ssh sessions, the remote program.
        const alive = () => p.child.exitCode === null && p.child.signalCode === null;
        if (alive()) {
          p.child.kill("SIGTERM");
          await waitFor("pyferry to end", () => !alive(), 5_000).catch(() =>
            p.child.kill("SIGKILL"),
          );
        }
        for (const pid of pgrep(marker)) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // Gone.
          }
        }
      }
    }

    test("SIGTERM to pyferry stops the remote program", async () => {
      const r = await interrupt("SIGTERM", `pf-term-${process.pid}-${Date.now()}`);
      assert.notEqual(r.status, 0, show(r));
      assert.equal(r.status, 143, show(r));
    });

    test("SIGINT to pyferry stops the remote program", async () => {
      const r = await interrupt("SIGINT", `pf-int-${process.pid}-${Date.now()}`);
      assert.notEqual(r.status, 0, show(r));
    });
  });

  test("staged: pack --folder, edit conf/mods, sync, run the ID, clean --on, clean", async (t) => {
    const dir = work({
      "job.py": [
        "import importlib, sys",
        "import idna",
        "for m in sys.argv[1:]:",
        "    importlib.import_module(m)",
        '    print(m, "ok")',
        "",
      ].join("\n"),
    });
    const packed = await run(["pack", "job.py", "--folder", "-n", "nightly"], dir);
    assert.equal(packed.status, 0, show(packed));
    assert.equal(packed.stdout, "nightly\n");
    const pack = join(dir, "nightly");
    assert.equal(
      readFileSync(join(pack, "app", "job.py"), "utf8"),
      readFileSync(join(dir, "job.py"), "utf8"),
    );
    const mods = readFileSync(join(pack, "conf", "mods"), "utf8");
    assert.match(mods, /^idna$/m);
    assert.doesNotMatch(mods, /^six/m);
    assert.equal(JSON.parse(readFileSync(join(pack, "conf", "pack.json"), "utf8")).entry, "job.py");
    writeFileSync(join(pack, "conf", "mods"), `${mods}six\n`);

    const synced = await run(["sync", "nightly", "--on", "h1", "-v"], dir);
    assert.equal(synced.status, 0, show(synced));
    assert.match(synced.stderr, /^Synced nightly to h1: sent \d+ file\(s\), [\d.]+ MiB\.$/m);
    const key = sentOf(synced.stderr).env[0]?.key;
    assert.ok(key, show(synced));
    const s = store("h1");
    const named = readFileSync(join(s, "names", "nightly"), "utf8").trim();
    assert.ok(named.startsWith(key), `names/nightly holds ${named}`);
    assert.ok(existsSync(join(s, "envs", named, ".pyferry-complete")));
    t.diagnostic(`sync: ${synced.ms} ms`);

    const ran = await run(["run", "--on", "h1", "-v", "nightly", "six", "idna"], dir);
    assert.equal(ran.status, 0, show(ran));
    assert.equal(ran.stdout, "six ok\nidna ok\n");
    assert.deepEqual(sentOf(ran.stderr).env, [], `sync sent the environment: ${show(ran)}`);
    const runId = sentOf(ran.stderr).runIds[0] as string;
    assert.ok(existsSync(join(s, "runs", runId, "job.py")));

    const cleaned = await run(["clean", "nightly", "--on", "h1"], dir);
    assert.equal(cleaned.status, 0, show(cleaned));
    assert.match(
      cleaned.stderr,
      /Removed the name nightly, 1 finished run\(s\) and 1 environment\(s\) on h1\./,
    );
    assert.equal(existsSync(join(s, "names", "nightly")), false);
    assert.equal(existsSync(join(s, "envs", named)), false);
    assert.equal(existsSync(join(s, "runs", runId)), false);
    assert.ok(existsSync(pack), "clean --on leaves the local folder");

    const local = await run(["clean", "nightly"], dir);
    assert.equal(local.status, 0, show(local));
    assert.equal(existsSync(pack), false);
    const none = await run(["clean", "nightly"], dir);
    assert.equal(none.status, 2, show(none));
    assert.match(errorLine(none.stderr), /^error: There is no pack folder nightly here/);
  });

  test("cloudpy, the seed's way: the easy way cleans up after itself; steps; -n keeps; -c removes", async () => {
    const dir = work({
      "job.py": "import six, sys\nprint('hello', six.__version__, sys.argv[1:])\nsys.exit(4)\n",
      "cloudpy.conf": '{"host": "h2", "depository": "cloudpy_depo"}\n',
    });
    const depo = join(lab.host("h2").root, "cloudpy_depo");
    const cloudpy = (...args: string[]) =>
      pyferryAsync(args, { bin: "cloudpy", cwd: dir, env: lab.env() });
    const there = (sub: string) =>
      existsSync(join(depo, sub)) ? readdirSync(join(depo, sub)) : [];
    const runsThere = () => there("runs").filter((n) => !n.startsWith("."));
    const hello = "hello 1.17.0 ['a', 'b']\n";

    // The easy way: pack, send, run, then nothing of it is left, here or there, but the
    // store's files (what a next run reuses).
    let r = await cloudpy("job.py", "--", "a", "b");
    assert.equal(r.status, 4, show(r));
    assert.equal(r.stdout, hello);
    assert.deepEqual(readdirSync(dir).sort(), ["cloudpy.conf", "job.py"]);
    assert.deepEqual([there("names"), runsThere(), there("envs")], [[], [], []]);
    assert.ok(there("objects").length > 0);

    // The steps: -P prints the ID, -S sends and names it, -R runs it, -R -c removes the run
    // and the environment, -C the local folder.
    r = await cloudpy("-P", "job.py");
    assert.equal(r.status, 0, show(r));
    const id = r.stdout.trim();
    assert.match(id, /^job-[0-9a-f]{6}$/);
    r = await cloudpy("-S", id);
    assert.equal(r.status, 0, show(r));
    assert.deepEqual([there("names"), there("envs").length], [[id], 1]);
    r = await cloudpy("-R", id, "--", "a", "b");
    assert.equal(r.status, 4, show(r));
    assert.equal(r.stdout, hello);
    assert.equal(runsThere().length, 2, "the run's folder stays without -c");
    r = await cloudpy("-R", "-N", "-c", id, "--", "a", "b");
    assert.equal(r.status, 4, show(r));
    assert.equal(r.stdout, hello);
    assert.match(r.stderr, /removed the run's folder and its environment there/);
    // -N says what the environment is.
    assert.match(
      r.stderr,
      /^pyferry: environment: Python 3\.\d+\.\d+ \(travels with it\), 1 package\(s\): six==1\.17\.0$/m,
    );
    assert.deepEqual([there("names"), there("envs")], [[], []]);
    r = await cloudpy("-C", id);
    assert.equal(r.status, 0, show(r));
    assert.ok(!existsSync(join(dir, id)));

    // -n keeps the folder here and the named environment there, for the next run.
    r = await cloudpy("-n", "keep", "job.py", "--", "a", "b");
    assert.equal(r.status, 4, show(r));
    assert.ok(existsSync(join(dir, "keep", "conf", "mods")));
    assert.deepEqual([there("names"), there("envs").length], [["keep"], 1]);
  });

  test("store gc: finished runs, then what a dropped name kept; a running program's environment stays", async (t) => {
    // h3 holds only the several-hosts test's run and environment.
    const s = store("h3");
    const dir = work({
      "where.py": [
        "import os, idna",
        'print(os.environ["HOME"], idna.encode("a.b").decode())',
        "",
      ].join("\n"),
      "slow.py": [
        "import sys, time",
        'print("started", flush=True)',
        "time.sleep(float(sys.argv[1]))",
        "import idna",
        'print(idna.encode("bücher.example").decode())',
        "",
      ].join("\n"),
    });
    const named = await run(["run", "--on", "h3", "-n", "keep", "where.py"], dir);
    assert.equal(named.status, 0, show(named));
    const key = readFileSync(join(s, "names", "keep"), "utf8").trim();
    const runsBefore = entries(s, "runs").filter((n) => n.endsWith(".env")).length;
    assert.ok(runsBefore >= 2, `runs: ${entries(s, "runs")}`);
    // What gc may take: the app files of the finished runs (their folders go first), and
    // objects nothing links to any more (see "a run leaves its environment as assembled").
    const appObjects = new Set(
      entries(s, "runs")
        .filter((n) => !n.includes("."))
        .map((id) => join(s, "runs", id, "where.py"))
        .map((p) => `${statSync(p).dev}:${statSync(p).ino}`),
    );
    const unused = unlinkedObjects(s).length;
    const objectsBefore = checkObjects(s).objects;

    const gc1 = await run(["store", "gc", "--on", "h3", "--json"], dir);
    assert.equal(gc1.status, 0, show(gc1));
    assert.deepEqual(JSON.parse(gc1.stdout), {
      runs: runsBefore,
      envs: 0,
      objects: unused + appObjects.size,
    });
    assert.deepEqual(entries(s, "runs"), []);
    assert.deepEqual(entries(s, "envs"), [key], "the named environment stays");
    assert.equal(checkObjects(s).objects, objectsBefore - unused - appObjects.size);
    // The named environment is whole: a run by the name sends only its app file.
    const reuse = await run(["run", "--on", "h3", "-v", "-n", "keep", "where.py"], dir);
    assert.equal(reuse.status, 0, show(reuse));
    assert.deepEqual(sentOf(reuse.stderr).env, [], show(reuse));
    const gc1b = await run(["store", "gc", "--on", "h3", "--json"], dir);
    assert.equal(gc1b.status, 0, show(gc1b));
    assert.equal((JSON.parse(gc1b.stdout) as { runs: number }).runs, 1);
    const left = checkObjects(s).objects;

    const dropped = await run(["clean", "keep", "--on", "h3"], dir);
    assert.equal(dropped.status, 0, show(dropped));
    assert.deepEqual(entries(s, "envs"), []);
    const gc2 = await run(["store", "gc", "--on", "h3", "--json"], dir);
    assert.equal(gc2.status, 0, show(gc2));
    assert.deepEqual(JSON.parse(gc2.stdout), { runs: 0, envs: 0, objects: left });
    assert.equal(checkObjects(s).objects, 0);

    // Now a program that needs its environment after a gc has run.
    const slow = startPyferry(["run", "--on", "h3", "-v", "slow.py", "4"], {
      cwd: dir,
      env: lab.env(),
    });
    await waitFor("slow.py to start", () => slow.stdout().includes("started"), 60_000);
    const running = entries(s, "envs");
    assert.equal(running.length, 1);
    const orphans = unlinkedObjects(s).length;
    const gc3 = await run(["store", "gc", "--on", "h3", "--json"], dir);
    assert.equal(gc3.status, 0, show(gc3));
    assert.deepEqual(JSON.parse(gc3.stdout), { runs: 0, envs: 0, objects: orphans });
    assert.deepEqual(entries(s, "envs"), running, "the running program's environment stays");
    const done = await slow.done;
    assert.equal(done.status, 0, show(done));
    assert.equal(done.stdout, "started\nxn--bcher-kva.example\n");
    t.diagnostic(`gc while running: ${gc3.ms} ms`);

    const gc4 = await run(["store", "gc", "--on", "h3", "--json"], dir);
    assert.equal(gc4.status, 0, show(gc4));
    const removed = JSON.parse(gc4.stdout) as { runs: number; envs: number; objects: number };
    assert.equal(removed.runs, 1);
    assert.equal(removed.envs, 1);
    assert.ok(removed.objects > 100, gc4.stdout);
    assert.equal(checkObjects(s).objects, 0);
    const human = await run(["store", "gc", "--on", "h3"], dir);
    assert.equal(human.status, 0, show(human));
    assert.match(
      human.stderr,
      /^Removed 0 finished run\(s\), 0 environment\(s\) and 0 file\(s\) nothing used\.$/m,
    );
  });

  test("two runs at once on the same fresh program both succeed", async () => {
    // A fresh store and an environment not built before: both runs build and ship it at once.
    const dir = work({
      "pyferry.toml": '[targets.par]\naddress = "h2"\nroot = "~/store8"\n',
      "twice.py": [
        "import sys, certifi, idna",
        'print(sys.argv[1], certifi.where().endswith(".pem"), idna.encode("a.b").decode())',
        "",
      ].join("\n"),
    });
    const [a, b] = await Promise.all([
      run(["run", "--on", "par", "-v", "twice.py", "one"], dir),
      run(["run", "--on", "par", "-v", "twice.py", "two"], dir),
    ]);
    assert.equal(a?.status, 0, a && show(a));
    assert.equal(b?.status, 0, b && show(b));
    assert.equal(a?.stdout, "one True a.b\n");
    assert.equal(b?.stdout, "two True a.b\n");
    const s = join(lab.host("h2").root, "store8");
    assert.equal(entries(s, "envs").length, 1, `envs: ${entries(s, "envs")}`);
    assert.deepEqual(entries(s, "tmp"), []);
    assert.deepEqual(checkObjects(s).bad, []);
  });

  describe("the wrapper there stays out of the way", () => {
    const ENV =
      'import os\nfor k in ["e", "n", "r", "id", "IFS", "PATH"]:\n    print(k, repr(os.environ.get(k)))\n';

    test("--env settings reach the program exactly, whatever their names", async () => {
      const dir = work({ "env.py": ENV });
      const settings = ["e=/tmp", "n=3", "r=/nowhere", "id=x", "IFS=e", "PATH=/usr/bin:/bin"];
      const r = await run(
        ["run", "--on", "h3", ...settings.flatMap((v) => ["--env", v]), "env.py"],
        dir,
      );
      assert.equal(r.status, 0, show(r));
      assert.equal(
        r.stdout,
        "e '/tmp'\nn '3'\nr '/nowhere'\nid 'x'\nIFS 'e'\nPATH '/usr/bin:/bin'\n",
      );
    });

    test("a gc lock left by a killed gc is taken away; a stop before the program starts keeps it from starting", async () => {
      const dir = work({ "hi.py": 'open("ran", "w").close()\nprint("hi")\n' });
      const s = store("h3");
      mkdirSync(join(s, "gc.lock"), { recursive: true });
      const old = new Date(Date.now() - 5 * 60_000);
      utimesSync(join(s, "gc.lock"), old, old);
      let r = await run(["run", "--on", "h3", "hi.py"], dir);
      assert.equal(r.status, 0, show(r));
      assert.equal(r.stdout, "hi\n");
      assert.ok(!existsSync(join(s, "gc.lock")), "the stale lock is gone");

      // A gc that is alive: the run waits for it, and Ctrl-C then means it never starts.
      const gc = spawn("sleep", ["60"]);
      try {
        mkdirSync(join(s, "gc.lock"));
        writeFileSync(join(s, "gc.lock", "pid"), `${gc.pid}\n`);
        const runs = entries(s, "runs").length;
        const p = startPyferry(["run", "--on", "h3", "hi.py"], {
          cwd: dir,
          env: lab.env(),
          timeoutMs: 60_000,
        });
        await waitFor("the run to wait for the gc", () => entries(s, "runs").length > runs, 30_000);
        p.child.kill("SIGINT");
        r = await p.done;
        assert.equal(r.status, 130, show(r));
        assert.equal(r.stdout, "");
        rmSync(join(s, "gc.lock"), { recursive: true, force: true });
        await new Promise((res) => setTimeout(res, 1500));
        assert.equal(pgrep("hi.py").length, 0, "nothing runs it there");
      } finally {
        gc.kill();
        rmSync(join(s, "gc.lock"), { recursive: true, force: true });
      }
    });

    test("a target's own ControlMaster or ControlPersist options do not hold the connection in the foreground", async () => {
      // The user's own configuration: a project's may not set these options.
      const dir = work({
        "own.toml":
          '[targets.own]\naddress = "h3"\nssh_options = ["-o", "ControlMaster=no", "-o", "ControlPersist=no"]\n',
        "hi.py": 'print("hi")\n',
      });
      const r = await pyferryAsync(["run", "--on", "own", "hi.py"], {
        cwd: dir,
        env: lab.env({ PYFERRY_CONFIG: join(dir, "own.toml") }),
      });
      assert.equal(r.status, 0, show(r));
      assert.equal(r.stdout, "hi\n");
    });

    test("a reader that goes away (| head) ends pyferry as SIGPIPE does, with no word of a dropped connection", async () => {
      const dir = work({ "many.py": 'for i in range(200000):\n    print("line", i)\n' });
      const r = spawnSync(
        "bash",
        [
          "-c",
          `"${process.execPath}" "${join(REPO, "bin", "pyferry.js")}" run --on h3 many.py 2>err | head -1; echo "rc=\${PIPESTATUS[0]}"`,
        ],
        {
          cwd: dir,
          env: { ...process.env, ...lab.env(), PYFERRY_CACHE_DIR: CACHE },
          encoding: "utf8",
        },
      );
      assert.equal(r.stdout, "line 0\nrc=141\n", r.stderr);
      assert.doesNotMatch(readFileSync(join(dir, "err"), "utf8"), /dropped/);
    });
  });
});
