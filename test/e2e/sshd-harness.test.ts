/**
 * The sshd test harness itself: real OpenSSH servers answer through the generated ssh_config,
 * a changed host key is refused, a proxy can cut a session mid-stream, kill() drops sessions,
 * and close() leaves no namespace, process or folder behind.
 */
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { startProxy } from "../support/tcp-proxy.js";

const skip = sshAvailable();

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs the lab's ssh command the way pyferry will: PYFERRY_SSH_COMMAND split on whitespace. */
function ssh(
  lab: SshLab,
  args: string[],
  opts: { input?: Buffer; timeoutMs?: number; onSpawn?: () => void } = {},
): Promise<Result> {
  const [cmd = "ssh", ...pre] = lab.sshCommand.split(/\s+/);
  const start = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, [...pre, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (s: string) => {
      stdout += s;
    });
    child.stderr.setEncoding("utf8").on("data", (s: string) => {
      stderr += s;
    });
    // ssh dying mid-write is what some of these tests want.
    child.stdin.on("error", () => {});
    child.stdin.end(opts.input ?? "");
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`ssh ${args.join(" ")} timed out; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 10_000);
    child.once("error", reject);
    child.once("close", (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, ms: Date.now() - start });
    });
    opts.onSpawn?.();
  });
}

/** Processes whose command line contains `needle` (NUL separates the arguments). */
function processesWith(needle: string): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name) || Number(name) === process.pid) continue;
    try {
      if (readFileSync(`/proc/${name}/cmdline`, "utf8").includes(needle)) out.push(Number(name));
    } catch {
      // Exited meanwhile.
    }
  }
  return out;
}

async function waitFor(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

test("sshd lab: real servers, changed host keys, dropped links, clean close", {
  skip: skip ?? false,
  timeout: 120_000,
}, async (t) => {
  let t0 = Date.now();
  const lab = await startSshLab({ hosts: 3, netns: "auto" });
  t.diagnostic(
    `mode ${lab.mode}${lab.netnsError ? ` (${lab.netnsError})` : ""}; ` +
      `3 hosts started in ${Date.now() - t0} ms`,
  );
  const namespaces = lab.hosts.flatMap((h) => (h.netns ? [h.netns] : []));
  const uid = String(process.getuid?.() ?? "");
  let closed = false;
  try {
    if (process.getuid?.() === 0) assert.equal(lab.mode, "netns", "root should get namespaces");
    assert.equal(lab.env().PYFERRY_SSH_COMMAND, lab.sshCommand);

    await t.test("every alias runs a command on its own host", async () => {
      const results = await Promise.all(
        lab.hosts.map((h) => ssh(lab, [h.alias, "echo ok; id -u; echo $HOME"])),
      );
      for (const [i, r] of results.entries()) {
        const h = lab.hosts[i];
        assert.ok(h);
        assert.equal(r.code, 0, `${h.alias}: ${r.stderr}`);
        assert.deepEqual(r.stdout.trim().split("\n"), ["ok", uid, h.root]);
      }
      if (lab.mode === "netns") {
        // Separate machines as far as the network goes: each host sees its own address only.
        const h2 = lab.host("h2");
        const r = await ssh(lab, ["h2", "ip -4 -o addr show scope global"]);
        assert.match(r.stdout, new RegExp(h2.address.replaceAll(".", "\\.")));
        assert.equal(r.stdout.trim().split("\n").length, 1, r.stdout);
      }
    });

    await t.test(
      "user@address with -p and the lab's known_hosts works without an alias",
      async () => {
        const h = lab.host("h1");
        const r = await ssh(lab, ["-p", String(h.port), `${lab.user}@${h.address}`, "echo direct"]);
        assert.equal(r.code, 0, r.stderr);
        assert.equal(r.stdout, "direct\n");
      },
    );

    await t.test("an alias whose host key is unknown is refused", async () => {
      const h = lab.host("h1");
      lab.addAlias("stranger", h.address, h.port);
      const r = await ssh(lab, ["stranger", "true"]);
      assert.equal(r.code, 255);
      assert.match(r.stderr, /Host key verification failed/);
    });

    await t.test("a replaced host key is refused until trusted", async () => {
      const h = lab.host("h3");
      const before = h.hostKeyFingerprint;
      await h.replaceHostKey();
      assert.notEqual(h.hostKeyFingerprint, before);
      assert.match(h.hostKeyFingerprint, /^SHA256:/);
      const r = await ssh(lab, ["h3", "true"]);
      assert.equal(r.code, 255);
      assert.match(r.stderr, /REMOTE HOST IDENTIFICATION HAS CHANGED|Host key verification failed/);
      assert.ok(r.stderr.includes(h.hostKeyFingerprint), r.stderr);
      lab.trustCurrentHostKeys();
      assert.equal((await ssh(lab, ["h3", "true"])).code, 0);
    });

    await t.test("a proxy cut drops a session mid-stream", async () => {
      const h = lab.host("h2");
      const proxy = await startProxy(h.address, h.port);
      try {
        lab.addAlias("h2p", "127.0.0.1", proxy.port, { hostKeyOf: "h2" });
        const ok = await ssh(lab, ["h2p", "echo via proxy"]);
        assert.equal(ok.code, 0, ok.stderr);
        assert.equal(ok.stdout, "via proxy\n");

        const before = proxy.bytes();
        proxy.cutAfter(1 << 20);
        const input = Buffer.alloc(5 << 20, 7);
        const r = await ssh(lab, ["h2p", "cat > /dev/null; echo finished"], { input });
        assert.notEqual(r.code, 0, "ssh must fail when its connection is cut");
        assert.doesNotMatch(r.stdout, /finished/);
        const passed = proxy.bytes() - before;
        assert.ok(passed === 1 << 20, `exactly 1 MiB passed before the cut, not ${passed}`);
        t.diagnostic(`cut session: exit ${r.code} after ${r.ms} ms: ${r.stderr.trim()}`);

        // The proxy still accepts new connections after a cut.
        assert.equal((await ssh(lab, ["h2p", "true"])).code, 0);
      } finally {
        await proxy.close();
      }
    });

    await t.test(
      "kill() drops open sessions and their commands; restart() brings it back",
      async () => {
        const h = lab.host("h1");
        // A distinctive command line, to find the remote command among this machine's processes.
        const marker = "sleep 987.25";
        const session = ssh(lab, ["h1", marker]);
        await waitFor("the remote sleep", () => processesWith("sleep\u0000987.25").length > 0);
        h.kill();
        assert.equal(h.running, false);
        const r = await session;
        assert.notEqual(r.code, 0);
        await waitFor(
          "the remote sleep to be gone",
          () => processesWith("sleep\u0000987.25").length === 0,
        );
        assert.notEqual((await ssh(lab, ["h1", "true"], { timeoutMs: 8000 })).code, 0);
        await h.restart();
        assert.equal((await ssh(lab, ["h1", "true"])).code, 0);
      },
    );

    t0 = Date.now();
    await lab.close();
    closed = true;
    t.diagnostic(`closed in ${Date.now() - t0} ms`);
    const list = spawnSync("ip", ["netns", "list"], { encoding: "utf8" }).stdout ?? "";
    for (const ns of namespaces) assert.ok(!list.includes(ns), `namespace ${ns} is left`);
    assert.deepEqual(processesWith(lab.dir), [], "sshd processes of the lab are left");
    assert.equal(existsSync(lab.dir), false);
    for (const h of lab.hosts) assert.equal(h.running, false);
  } finally {
    if (!closed) await lab.close();
  }
});

test("sshd lab on loopback ports", { skip: skip ?? false, timeout: 60_000 }, async (t) => {
  const t0 = Date.now();
  const lab = await startSshLab({ hosts: 2, netns: false });
  t.diagnostic(`2 loopback hosts started in ${Date.now() - t0} ms`);
  try {
    assert.equal(lab.mode, "loopback");
    for (const h of lab.hosts) {
      assert.equal(h.address, "127.0.0.1");
      assert.equal(h.netns, undefined);
      const r = await ssh(lab, [h.alias, "echo $HOME"]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), h.root);
    }
    assert.notEqual(lab.hosts[0]?.port, lab.hosts[1]?.port);
  } finally {
    await lab.close();
  }
  assert.deepEqual(processesWith(lab.dir), []);
  assert.equal(existsSync(lab.dir), false);
});
