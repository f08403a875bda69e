/**
 * ssh's liveness limits are defaults under the user's own configuration, for a master kept
 * between invocations (PYFERRY_SSH_PERSIST) as much as for one this invocation starts.
 */
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { SshConnection } from "../../src/transport/ssh.js";
import { muxTerminate } from "../../src/transport/ssh-mux.js";
import { waitFor } from "../support/remote.js";
import { type SshLab, startSshLab } from "../support/sshd.js";
import { tempDir } from "../support/temp.js";

let lab: SshLab;
before(async () => {
  lab = await startSshLab({ hosts: 1 });
});
after(async () => {
  await lab?.close();
});

test("a kept master's limits follow the user's configuration into later invocations", async () => {
  const dir = tempDir("pyferry-liveness-");
  const log = join(dir, "args.log");
  const wrapper = join(dir, "ssh-logged");
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec ssh "$@"\n`, {
    mode: 0o755,
  });
  writeFileSync(log, "");
  // The lab's configuration sets ConnectTimeout and leaves the keepalives unset.
  assert.match(readFileSync(lab.sshConfig, "utf8"), /ConnectTimeout 5/);
  const env = {
    PYFERRY_SSH_COMMAND: `${wrapper} -F ${lab.sshConfig}`,
    PYFERRY_SSH_PERSIST: "30",
    XDG_RUNTIME_DIR: tempDir("pyferry-runtime-"),
  };
  const target = { destination: "h1", label: "h1" };
  const first = new SshConnection(target, env);
  assert.equal((await first.exec("echo one")).stdout.toString(), "one\n");
  await first.close();
  const master =
    readFileSync(log, "utf8")
      .split("\n")
      .find((l) => / -N /.test(l)) ?? "";
  assert.doesNotMatch(master, /ConnectTimeout/, master);
  assert.match(master, /ServerAliveInterval=15 -o ServerAliveCountMax=4/, master);

  // The next invocation finds the master up, and gives its sessions the same limits.
  writeFileSync(log, "");
  const second = new SshConnection(target, env);
  assert.equal((await second.exec("echo two")).stdout.toString(), "two\n");
  const session = second.sessionArgs("true").join(" ");
  assert.doesNotMatch(session, /ConnectTimeout/, session);
  assert.match(session, /ServerAliveInterval=15 -o ServerAliveCountMax=4/, session);
  assert.doesNotMatch(readFileSync(log, "utf8"), / -N /, "no second master");
  const socket = /ControlPath=(\S+)/.exec(session)?.[1];
  await second.close();
  if (socket) await muxTerminate(socket);
});

test("the default keeping falls back to a master of the invocation's own where sockets cannot be kept", async () => {
  const dir = tempDir("pyferry-nokeep-");
  // A runtime folder that is a file: no folder of kept sockets can be made in it.
  const file = join(dir, "not-a-folder");
  writeFileSync(file, "");
  const target = { destination: "h1", label: "h1" };
  const base = { PYFERRY_SSH_COMMAND: `ssh -F ${lab.sshConfig}`, XDG_RUNTIME_DIR: file };
  const byDefault = new SshConnection(target, { ...base, PYFERRY_SSH_PERSIST: "" });
  assert.equal((await byDefault.exec("echo fine")).stdout.toString(), "fine\n");
  const socket = /ControlPath=(\S+)/.exec(byDefault.sessionArgs("true").join(" "))?.[1] ?? "";
  assert.ok(socket.startsWith(tmpdir()), socket);
  await byDefault.close();
  assert.equal(existsSync(socket), false, "the invocation's own master is closed with it");
  // Asked for by the user, keeping that cannot be done is one sentence.
  const asked = new SshConnection(target, { ...base, PYFERRY_SSH_PERSIST: "30" });
  await assert.rejects(asked.exec("true"), /cannot keep ssh connections.*PYFERRY_SSH_PERSIST=0/);
});

test("the files naming kept masters long gone are swept; a live master's stays", async () => {
  const runtime = tempDir("pyferry-runtime-");
  const kept = join(runtime, "pyferry-ssh");
  mkdirSync(kept, { mode: 0o700 });
  const old = new Date(Date.now() - 2 * 60 * 60 * 1000);
  const stale = join(kept, "0123456789abcdef.current");
  const recent = join(kept, "89abcdef01234567.current");
  writeFileSync(stale, "0123456789abcdef-c0ffee");
  utimesSync(stale, old, old);
  writeFileSync(recent, "89abcdef01234567-c0ffee");
  // Old, but naming a socket that is there: it stays.
  const oldLive = join(kept, "456789abcdef0123.current");
  writeFileSync(oldLive, "456789abcdef0123-c0ffee");
  writeFileSync(join(kept, "456789abcdef0123-c0ffee"), "");
  utimesSync(oldLive, old, old);
  const env = {
    PYFERRY_SSH_COMMAND: `ssh -F ${lab.sshConfig}`,
    PYFERRY_SSH_PERSIST: "30",
    XDG_RUNTIME_DIR: runtime,
  };
  const conn = new SshConnection({ destination: "h1", label: "h1" }, env);
  assert.equal((await conn.exec("echo up")).stdout.toString(), "up\n");
  const socket = /ControlPath=(\S+)/.exec(conn.sessionArgs("true").join(" "))?.[1] ?? "";
  await conn.close();
  const name = socket.slice(kept.length + 1);
  const ours = join(kept, `${name.split("-")[0]}.current`);
  assert.equal(readFileSync(ours, "utf8"), name, "the live master's file names its socket");
  await waitFor("the sweep to remove the old file", () => !existsSync(stale), 5000);
  assert.equal(existsSync(stale), false, "a gone master's old file is removed");
  assert.ok(existsSync(recent), "a recent one stays");
  assert.ok(existsSync(oldLive), "an old one naming a socket that is there stays");
  assert.ok(existsSync(ours));
  await muxTerminate(socket);
});
