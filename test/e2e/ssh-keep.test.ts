/**
 * Masters kept between invocations (the default) against a real sshd: what the user's ssh
 * command line and the machine's folders may hold must not make a command wait or fail where a
 * master of the invocation's own would have done.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, test } from "node:test";
import { SshConnection } from "../../src/transport/ssh.js";
import { muxTerminate } from "../../src/transport/ssh-mux.js";
import { UserError } from "../../src/util/errors.js";
import { waitFor } from "../support/remote.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { startProxy } from "../support/tcp-proxy.js";
import { tempDir } from "../support/temp.js";

const skip = sshAvailable();
let lab: SshLab;
before(async () => {
  if (!skip) lab = await startSshLab({ hosts: 2 });
});
after(async () => {
  await lab?.close();
});

const target = { destination: "h1", label: "h1" };

/** `p`, or a rejection after `ms`. */
function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still waiting after ${ms} ms`)), ms);
    }),
  ]);
}

test("ssh -v in PYFERRY_SSH_COMMAND: the first session does not wait for the kept master to end", {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  for (const persist of ["", "0"]) {
    const env = {
      PYFERRY_SSH_COMMAND: `ssh -v -F ${lab.sshConfig}`,
      PYFERRY_SSH_PERSIST: persist,
      XDG_RUNTIME_DIR: tempDir("pyferry-runtime-"),
    };
    const conn = new SshConnection(target, env);
    const t0 = Date.now();
    // Without the fix: 60 s (the default keeping) or 15 s (the linger of an own master).
    const r = await within(10_000, conn.exec("echo up"));
    assert.equal(r.stdout.toString(), "up\n", `PYFERRY_SSH_PERSIST=${persist}`);
    assert.ok(Date.now() - t0 < 10_000);
    const socket = /ControlPath=(\S+)/.exec(conn.sessionArgs("true").join(" "))?.[1] ?? "";
    await conn.close();
    if (persist === "") await muxTerminate(socket);
  }
});

test("by default, a folder of kept sockets that cannot hold them means a master of the invocation's own; asked for, one sentence", {
  skip: skip ?? false,
  timeout: 120_000,
}, async (t) => {
  // A private runtime folder whose path leaves no room for ssh's socket names (108 bytes).
  const long = join(tempDir("pyferry-runtime-"), "r".repeat(60));
  mkdirSync(long, { mode: 0o700 });
  const folders: [string, string][] = [["a path too long for a socket", long]];
  // As root: one that is full, one that is read-only (a small tmpfs).
  const mnt = tempDir("pyferry-mnt-");
  const mounted =
    process.getuid?.() === 0 &&
    spawnSync("mount", ["-t", "tmpfs", "-o", "size=64k,mode=700", "tmpfs", mnt]).status === 0;
  t.after(() => {
    if (mounted) spawnSync("umount", [mnt]);
  });
  if (mounted) {
    mkdirSync(join(mnt, "pyferry-ssh"), { mode: 0o700 });
    writeFileSync(join(mnt, "filler"), Buffer.alloc(64 * 1024));
    folders.push(["a full folder", mnt]);
  } else t.diagnostic("not root or no tmpfs: the full folder is not tried");
  for (const [what, runtime] of folders) {
    const base = { PYFERRY_SSH_COMMAND: `ssh -F ${lab.sshConfig}`, XDG_RUNTIME_DIR: runtime };
    const byDefault = new SshConnection(target, { ...base, PYFERRY_SSH_PERSIST: "" });
    const r = await byDefault.exec("echo fine").catch((e: Error) => e);
    assert.ok(!(r instanceof Error), `${what}: ${r instanceof Error ? r.message : ""}`);
    assert.equal(r.stdout.toString(), "fine\n", what);
    const socket = /ControlPath=(\S+)/.exec(byDefault.sessionArgs("true").join(" "))?.[1] ?? "";
    assert.ok(socket.startsWith(tmpdir()), `${what}: ${socket}`);
    await byDefault.close();
    assert.equal(existsSync(socket), false, `${what}: the invocation's own master is closed`);
    const asked = new SshConnection(target, { ...base, PYFERRY_SSH_PERSIST: "30" });
    await assert.rejects(
      asked.exec("true"),
      (e: Error) => e instanceof UserError && /cannot keep ssh connections in/.test(e.message),
      what,
    );
  }
});

test("an edit of ssh's configuration that sends an alias elsewhere does not reuse the old host's master", {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  const dir = tempDir("pyferry-retarget-");
  const config = join(dir, "ssh_config");
  const pointAt = (alias: string) => {
    const h = lab.host(alias);
    writeFileSync(
      config,
      `Host moving\n  HostName ${h.address}\n  Port ${h.port}\n  HostKeyAlias ${alias}\nHost *\nInclude ${lab.sshConfig}\n`,
    );
  };
  const env = {
    PYFERRY_SSH_COMMAND: `ssh -F ${config}`,
    PYFERRY_SSH_PERSIST: "30",
    XDG_RUNTIME_DIR: tempDir("pyferry-runtime-"),
  };
  const home = async () => {
    const conn = new SshConnection({ destination: "moving", label: "moving" }, env);
    const r = await conn.exec('printf %s "$HOME"');
    const socket = /ControlPath=(\S+)/.exec(conn.sessionArgs("true").join(" "))?.[1] ?? "";
    await conn.close();
    return { home: r.stdout.toString(), socket };
  };
  pointAt("h1");
  const first = await home();
  assert.equal(first.home, lab.host("h1").root);
  pointAt("h2");
  const second = await home();
  assert.equal(second.home, lab.host("h2").root, "the command reached the host ssh now names");
  assert.notEqual(second.socket, first.socket);
  for (const s of [first.socket, second.socket]) await muxTerminate(s);
});

test("a new master never listens where the master before it may still remove its socket", {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  const env = {
    PYFERRY_SSH_COMMAND: `ssh -F ${lab.sshConfig}`,
    PYFERRY_SSH_PERSIST: "30",
    XDG_RUNTIME_DIR: tempDir("pyferry-runtime-"),
  };
  const open = async () => {
    const conn = new SshConnection(target, env);
    assert.equal((await conn.exec("echo up")).stdout.toString(), "up\n");
    const socket = /ControlPath=(\S+)/.exec(conn.sessionArgs("true").join(" "))?.[1] ?? "";
    await conn.close();
    return socket;
  };
  const first = await open();
  // The first master at the end of its keeping time: it no longer answers, and it will unlink
  // its path as it exits. A socket that takes connections and never answers stands for it.
  await muxTerminate(first);
  await waitFor("the ended master's socket to go", () => !existsSync(first), 5000);
  const silent = createServer(() => undefined);
  await new Promise<void>((ok) => silent.listen(first, ok));
  try {
    const second = await open();
    assert.notEqual(second, first, "the new master listens on a path of its own");
    // The old master's last act.
    rmSync(first, { force: true });
    assert.ok(existsSync(second), "the new master's socket is still there");
    assert.equal(await open(), second, "the next command reuses the new master");
    await muxTerminate(second);
  } finally {
    silent.close();
  }
});

test("a kept master whose link died in silence is replaced within the connect timeout", {
  skip: skip ?? false,
  timeout: 120_000,
}, async () => {
  const h = lab.host("h1");
  const proxy = await startProxy(h.address, h.port);
  const dir = tempDir("pyferry-stalled-");
  const config = join(dir, "ssh_config");
  // The lab's configuration says ConnectTimeout 5.
  writeFileSync(
    config,
    `Host viaproxy\n  HostName 127.0.0.1\n  Port ${proxy.port}\n  HostKeyAlias h1\nHost *\nInclude ${lab.sshConfig}\n`,
  );
  const env = {
    PYFERRY_SSH_COMMAND: `ssh -F ${config}`,
    PYFERRY_SSH_PERSIST: "30",
    XDG_RUNTIME_DIR: tempDir("pyferry-runtime-"),
  };
  const viaProxy = { destination: "viaproxy", label: "viaproxy" };
  const sockets: string[] = [];
  /** `streamed`: the command goes as a session of ssh's own (spawn), not the proxy mode. */
  const run = async (cmd: string, streamed = false) => {
    const conn = new SshConnection(viaProxy, env);
    const r = await conn.exec(cmd, [], streamed ? Readable.from([]) : undefined);
    sockets.push(/ControlPath=(\S+)/.exec(conn.sessionArgs("true").join(" "))?.[1] ?? "");
    await conn.close();
    return r;
  };
  try {
    assert.equal((await run("echo one")).stdout.toString(), "one\n");
    // The kept master's connection stops passing anything; new connections still get through.
    proxy.stallOpen();
    const t0 = Date.now();
    // Without the replacement: the keepalives' 60 s and more.
    const two = await within(25_000, run("echo two"));
    assert.equal(two.stdout.toString(), "two\n");
    assert.equal(two.code, 0);
    assert.ok(Date.now() - t0 < 25_000);
    assert.notEqual(sockets[1], sockets[0], "a new master took over");
    // The next command reuses the new master, with no wait.
    assert.equal((await within(5_000, run("echo three"))).stdout.toString(), "three\n");
    assert.equal(sockets[2], sockets[1]);
    // A session of ssh's own as the first use of a reused master is just as safe.
    proxy.stallOpen();
    const t1 = Date.now();
    const four = await within(25_000, run("echo four", true));
    assert.equal(four.stdout.toString(), "four\n");
    assert.ok(Date.now() - t1 < 25_000);
    assert.notEqual(sockets[3], sockets[2], "a new master took over");
  } finally {
    for (const s of new Set(sockets)) await muxTerminate(s, 2000).catch(() => false);
    await proxy.close();
  }
});
