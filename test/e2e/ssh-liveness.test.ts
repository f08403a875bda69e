/**
 * ssh's liveness limits are defaults under the user's own configuration, for a master kept
 * between invocations (PYFERRY_SSH_PERSIST) as much as for one this invocation starts.
 */
import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { SshConnection } from "../../src/transport/ssh.js";
import { muxTerminate } from "../../src/transport/ssh-mux.js";
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

  // The next invocation finds the master up: no ssh -G, and the same limits for its sessions.
  writeFileSync(log, "");
  const second = new SshConnection(target, env);
  assert.equal((await second.exec("echo two")).stdout.toString(), "two\n");
  const session = second.sessionArgs("true").join(" ");
  assert.doesNotMatch(session, /ConnectTimeout/, session);
  assert.match(session, /ServerAliveInterval=15 -o ServerAliveCountMax=4/, session);
  assert.doesNotMatch(readFileSync(log, "utf8"), / -G /);
  const socket = /ControlPath=(\S+)/.exec(session)?.[1];
  await second.close();
  if (socket) await muxTerminate(socket);
});
