/**
 * What goes wrong on the way to a host, against real OpenSSH servers: host keys that changed or
 * are unknown, a stopped server, a refused login, a connection cut mid-transfer, the client
 * killed mid-transfer, a full disk there. Each failure is one sentence and a non-zero exit (255
 * when the connection failed); nothing half-sent is ever used, and the next run completes,
 * sending only what is missing.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { CACHE } from "../support/cli.js";
import {
  checkObjects,
  entries,
  errorLine,
  type Finished,
  hasStackTrace,
  pgrep,
  pyferryAsync,
  sentOf,
  show,
  startPyferry,
  waitFor,
} from "../support/remote.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { startProxy, type TcpProxy } from "../support/tcp-proxy.js";
import { tempDir } from "../support/temp.js";

const skip = sshAvailable();
const MiB = 1 << 20;

const NUMPY = "import numpy\nprint(int(numpy.arange(10).sum()))\n";

/** A failure as pyferry should report it: nothing on stdout, one "error:" line, no stack. */
function assertOneSentence(r: Finished, pattern: RegExp): void {
  assert.notEqual(r.status, 0, show(r));
  assert.equal(r.stdout, "", show(r));
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "" && !l.startsWith("pyferry: "));
  assert.equal(lines.length, 1, `one line of error: ${show(r)}`);
  assert.match(errorLine(r.stderr), /^error: \S.*\.$/, show(r));
  assert.match(errorLine(r.stderr), pattern, show(r));
  assert.ok(!hasStackTrace(r.stderr), show(r));
}

/** Pids written by receivers in a store's tmp/ that are still alive. */
function liveReceivers(store: string): number[] {
  return entries(store, "tmp")
    .filter((n) => n.endsWith(".pid"))
    .flatMap((n) => {
      try {
        return [Number(readFileSync(join(store, "tmp", n), "utf8").trim())];
      } catch {
        return [];
      }
    })
    .filter((pid) => pid > 0 && existsSync(`/proc/${pid}`));
}

describe("remote faults", { skip: skip ?? false, timeout: 900_000 }, () => {
  let lab: SshLab;
  const dirs: string[] = [];
  const work = (files: Record<string, string>) => {
    const dir = tempDir("pyferry-remote-faults-");
    dirs.push(dir);
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
    return dir;
  };
  const run = (args: string[], cwd: string, env: NodeJS.ProcessEnv = lab.env()) =>
    pyferryAsync(args, { cwd, env });
  /** A small disk for the disk-full test; mounted before the lab starts, because sshd in a
   *  network namespace gets a copy of the mount table as it is then. */
  let tiny: string | undefined;
  let tinyWhyNot: string | undefined;

  before(async () => {
    const dir = tempDir("pyferry-tiny-disk-");
    const m = spawnSync("mount", ["-t", "tmpfs", "-o", "size=30m", "tmpfs", dir], {
      encoding: "utf8",
    });
    if (m.status === 0) tiny = dir;
    else {
      tinyWhyNot = `cannot mount a tmpfs (${(m.stderr || m.error?.message || "").trim()})`;
      rmSync(dir, { recursive: true, force: true });
    }
    lab = await startSshLab({ hosts: 2, netns: "auto" });
  });
  after(async () => {
    await lab?.close();
    if (tiny) {
      spawnSync("umount", [tiny]);
      rmSync(tiny, { recursive: true, force: true });
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
    // This file's private cache (cli.ts makes one per test process): hundreds of MB.
    rmSync(CACHE, { recursive: true, force: true });
  });

  test("a changed host key is refused, and nothing is written there", async () => {
    const dir = work({ "hi.py": 'print("hi")\n' });
    const h2 = lab.host("h2");
    await h2.replaceHostKey();
    try {
      const r = await run(["run", "--on", "h2", "hi.py"], dir);
      assert.equal(r.status, 255, show(r));
      assertOneSentence(r, /host key of h2 has changed/);
      assert.equal(existsSync(join(h2.root, ".cache")), false, "nothing in h2's store");
      assert.deepEqual(entries(h2.root, ""), []);
    } finally {
      lab.trustCurrentHostKeys();
    }
    const ok = await run(["run", "--on", "h2", "hi.py"], dir);
    assert.equal(ok.status, 0, show(ok));
    assert.equal(ok.stdout, "hi\n");
  });

  test("an unknown host key is refused", async () => {
    const dir = work({ "hi.py": 'print("hi")\n' });
    const h1 = lab.host("h1");
    lab.addAlias("stranger", h1.address, h1.port);
    const r = await run(["run", "--on", "stranger", "hi.py"], dir);
    assert.equal(r.status, 255, show(r));
    assertOneSentence(r, /host key of stranger is not in known_hosts/);
  });

  test("a stopped server: connection refused, then it works once it is back", async () => {
    const dir = work({ "hi.py": 'print("hi")\n' });
    const h1 = lab.host("h1");
    await h1.stop();
    try {
      const r = await run(["run", "--on", "h1", "hi.py"], dir);
      assert.equal(r.status, 255, show(r));
      assertOneSentence(r, /h1 refused the connection/);
    } finally {
      await h1.restart();
    }
    const ok = await run(["run", "--on", "h1", "hi.py"], dir);
    assert.equal(ok.status, 0, show(ok));
    assert.equal(ok.stdout, "hi\n");
  });

  test("a key the host does not accept: the login is refused", async () => {
    const dir = work({ "hi.py": 'print("hi")\n' });
    const key = join(dir, "stranger_key");
    const kg = spawnSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", key]);
    assert.equal(kg.status, 0, String(kg.stderr));
    // IdentityFile adds to a list in ssh_config, so the lab's key is swapped in a copy.
    const config = join(dir, "ssh_config");
    const text = readFileSync(lab.sshConfig, "utf8");
    assert.ok(text.includes(`IdentityFile ${lab.identityFile}`));
    writeFileSync(config, text.replace(`IdentityFile ${lab.identityFile}`, `IdentityFile ${key}`));
    const r = await run(
      ["run", "--on", "h1", "hi.py"],
      dir,
      lab.env({ PYFERRY_SSH_COMMAND: `ssh -F ${config}` }),
    );
    assert.equal(r.status, 255, show(r));
    assertOneSentence(r, /h1 refused the login/);
  });

  describe("interrupted transfers", () => {
    const proxies: TcpProxy[] = [];
    /** A proxy in front of h2 and an alias for it that meets h2's host key. */
    async function proxied(alias: string): Promise<TcpProxy> {
      const h2 = lab.host("h2");
      const p = await startProxy(h2.address, h2.port);
      proxies.push(p);
      lab.addAlias(alias, "127.0.0.1", p.port, { hostKeyOf: "h2" });
      return p;
    }
    after(async () => {
      for (const p of proxies) await p.close();
    });
    /** The numpy environment is ~130 MiB; its objects are sent in the order of their hashes,
     *  and one file alone is up to ~25 MiB, so a cut at 50 MiB leaves a good part whole. */
    const CUT = 50 * MiB;

    test("a connection cut mid-transfer fails with one sentence about the connection", async (t) => {
      const p = await proxied("h2p");
      const dir = work({
        "pyferry.toml": '[targets.cut]\naddress = "h2p"\nroot = "~/cut1"\n',
        "np.py": NUMPY,
      });
      const start = p.bytes();
      p.cutAfter(CUT);
      const r = await run(["run", "--on", "cut", "-v", "np.py"], dir);
      const passed = p.bytes() - start;
      t.diagnostic(`${(passed / MiB).toFixed(1)} MiB passed; ${r.ms} ms`);
      assert.equal(r.status, 255, show(r));
      assertOneSentence(r, /connection to cut dropped/i);
      assert.ok(passed < CUT + 5 * MiB, `nothing was sent after the cut: ${passed} bytes passed`);
      assert.deepEqual(checkObjects(join(lab.host("h2").root, "cut1")).bad, []);
    });

    test("after a cut, nothing partial is kept and the next run sends only the rest", async (t) => {
      const p = await proxied("h2q");
      const again = await proxied("h2r");
      const dir = work({
        "pyferry.toml": [
          "[targets.cut]",
          'address = "h2q"',
          'root = "~/cut2"',
          "[targets.again]",
          'address = "h2r"',
          'root = "~/cut2"',
          "",
        ].join("\n"),
        "np.py": NUMPY,
      });
      const store = join(lab.host("h2").root, "cut2");
      // The link stays down after the cut: no new connection gets through that proxy.
      const start = p.bytes();
      p.cutAfter(CUT);
      let down = false;
      const watch = setInterval(() => {
        if (!down && p.bytes() - start >= CUT) {
          down = true;
          void p.close();
        }
      }, 2);
      let failed: Finished;
      try {
        failed = await run(["run", "--on", "cut", "-v", "np.py"], dir);
      } finally {
        clearInterval(watch);
      }
      assert.equal(failed.status, 255, show(failed));
      assertOneSentence(failed, /\b(connection|cut)\b.*\b(dropped|refused)/i);
      await waitFor("the receiver there to end", () => liveReceivers(store).length === 0, 20_000);
      const kept = checkObjects(store);
      assert.deepEqual(kept.bad, [], "no partial object in the store");
      assert.deepEqual(entries(store, "envs"), [], "no partial environment");

      const before2 = again.bytes();
      const ok = await run(["run", "--on", "again", "-v", "np.py"], dir);
      const passed = again.bytes() - before2;
      assert.equal(ok.status, 0, show(ok));
      assert.equal(ok.stdout, "45\n");
      const whole = checkObjects(store);
      assert.deepEqual(whole.bad, []);
      assert.deepEqual(entries(store, "tmp"), [], "tmp/ is empty after a success");
      const sent = sentOf(ok.stderr).env[0];
      assert.ok(sent, show(ok));
      t.diagnostic(
        `kept after the cut: ${kept.objects} objects, ${(kept.bytes / MiB).toFixed(1)} MiB; ` +
          `the next run sent ${sent.files} files, ${sent.mib} MiB (${(passed / MiB).toFixed(1)} MiB through the proxy); ` +
          `whole: ${whole.objects} objects, ${(whole.bytes / MiB).toFixed(1)} MiB`,
      );
      assert.ok(kept.objects > 0 && kept.bytes > 10 * MiB, "what arrived whole was kept");
      assert.equal(sent.files, whole.objects - kept.objects - 1, "only the rest was sent");
      assert.ok(
        passed < whole.bytes - 10 * MiB,
        `the next run passed ${passed} bytes; a whole ship is ${whole.bytes}`,
      );
    });

    test("the client killed mid-transfer: the next run completes and every object verifies", async (t) => {
      const p = await proxied("h2k");
      const dir = work({
        "pyferry.toml": '[targets.k9]\naddress = "h2k"\nroot = "~/k9"\n',
        "np.py": NUMPY,
      });
      const store = join(lab.host("h2").root, "k9");
      const start = p.bytes();
      const victim = startPyferry(["run", "--on", "k9", "-v", "np.py"], {
        cwd: dir,
        env: lab.env(),
      });
      await waitFor(`${CUT / MiB} MiB through the proxy`, () => p.bytes() - start > CUT, 60_000);
      victim.child.kill("SIGKILL");
      const killed = await victim.done;
      assert.equal(killed.signal, "SIGKILL", show(killed));
      t.diagnostic(`killed after ${((p.bytes() - start) / MiB).toFixed(1)} MiB`);
      // The receiver there sees its input end and salvages what arrived whole.
      await waitFor("the receiver there to end", () => liveReceivers(store).length === 0, 20_000);
      const kept = checkObjects(store);
      assert.deepEqual(kept.bad, []);

      const ok = await run(["run", "--on", "k9", "-v", "np.py"], dir);
      assert.equal(ok.status, 0, show(ok));
      assert.equal(ok.stdout, "45\n");
      const whole = checkObjects(store);
      assert.deepEqual(whole.bad, []);
      assert.deepEqual(entries(store, "tmp"), []);
      const sent = sentOf(ok.stderr).env[0];
      assert.ok(sent, show(ok));
      t.diagnostic(
        `kept ${kept.objects} objects (${(kept.bytes / MiB).toFixed(1)} MiB); the next run sent ${sent.files} of ${whole.objects}`,
      );
      assert.ok(kept.bytes > 10 * MiB, "what arrived whole was kept");
      assert.equal(sent.files, whole.objects - kept.objects - 1, "only the rest was sent");
    });

    test("the connection dropped while the program runs: one sentence, exit 255", async (t) => {
      const p = await proxied("h2d");
      const dir = work({
        "wait.py":
          'import sys, time\nprint("started", flush=True)\ntime.sleep(30)\nprint("finished")\n',
      });
      const marker = `pf-drop-${process.pid}-${Date.now()}`;
      const r = startPyferry(["run", "--on", "h2d", "wait.py", marker], {
        cwd: dir,
        env: lab.env(),
      });
      try {
        // The whole line: unbuffered there, print's text and its newline are two writes.
        await waitFor("the program to start", () => r.stdout().includes("started\n"), 60_000);
        p.dropAll();
        const done = await r.done;
        t.diagnostic(
          `after the drop, processes with the marker still here: ${pgrep(marker).length}`,
        );
        assert.equal(done.status, 255, show(done));
        assert.equal(done.stdout, "started\n");
        assertOneSentence(
          { ...done, stdout: "" },
          /connection to h2d dropped.*while the program ran there/i,
        );
      } finally {
        // The remote program (a process of this machine) and anything else this test started.
        if (r.child.exitCode === null && r.child.signalCode === null) r.child.kill("SIGKILL");
        for (const pid of pgrep(marker)) {
          try {
            process.kill(pid, "SIGKILL");
          } catch {
            // Gone.
          }
        }
      }
    });
  });

  test("a full disk there: one sentence, nothing broken kept, and it works with room", async (t) => {
    if (!tiny) {
      t.skip(tinyWhyNot ?? "no small disk");
      return;
    }
    const root = join(tiny, "store");
    const dir = work({
      "pyferry.toml": `[targets.tiny]\naddress = "h1"\nroot = "${root}"\n`,
      "np.py": NUMPY,
    });
    const full = await run(["run", "--on", "tiny", "-v", "np.py"], dir);
    assertOneSentence(full, /disk of tiny is full/);
    const c = checkObjects(root);
    assert.deepEqual(c.bad, [], "every object present verifies");
    assert.deepEqual(entries(root, "envs"), [], "no partial environment");
    assert.deepEqual(entries(root, "tmp"), [], "nothing left half-received");
    t.diagnostic(
      `kept ${c.objects} objects (${(c.bytes / MiB).toFixed(1)} MiB) of the failed ship`,
    );

    // More room on the same disk; what is there stays (a remount keeps a tmpfs's files).
    const m = spawnSync("mount", ["-o", "remount,size=400m", tiny], { encoding: "utf8" });
    assert.equal(m.status, 0, m.stderr);
    const ok = await run(["run", "--on", "tiny", "-v", "np.py"], dir);
    assert.equal(ok.status, 0, show(ok));
    assert.equal(ok.stdout, "45\n");
    const whole = checkObjects(root);
    assert.deepEqual(whole.bad, []);
    assert.deepEqual(entries(root, "tmp"), []);
    t.diagnostic(`then sent: ${JSON.stringify(sentOf(ok.stderr).env)}`);
  });
});
