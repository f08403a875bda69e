/** What ssh says when it fails, turned into sentences; destinations that are options refused. */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { join } from "node:path";
import { test } from "node:test";
import { setTimeout } from "node:timers/promises";
import { LocalConnection } from "../../../src/transport/connection.js";
import {
  closeKeptConnections,
  explainSshFailure,
  keptControlDir,
  persistSetting,
  SshConnection,
  sshProgram,
} from "../../../src/transport/ssh.js";
import { RemoteStore } from "../../../src/transport/store.js";
import { UserError } from "../../../src/util/errors.js";
import { tempDir } from "../../support/temp.js";

const target = { destination: "alice@gpu1", label: "gpu1" };

test("ssh's failures become one sentence naming the target and what to do", () => {
  const cases: [string, RegExp][] = [
    [
      "@@@@@@@@\n@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @\n@@@@@@@@\nHost key verification failed.\n",
      /host key of gpu1 has changed.*ssh-keygen -R/,
    ],
    [
      "No ED25519 host key is known for [127.0.0.1]:2222 and you have requested strict checking.\nHost key verification failed.\n",
      /not in known_hosts/,
    ],
    [
      "alice@127.0.0.1: Permission denied (publickey).\n",
      /gpu1 refused the login \(alice@127\.0\.0\.1: Permission denied \(publickey\)\)/,
    ],
    [
      "ssh: Could not resolve hostname nowhere: Name or service not known\n",
      /host of gpu1 is unknown/,
    ],
    [
      "ssh: connect to host 127.0.0.1 port 1: Connection refused\n",
      /gpu1 refused the connection .* port 1: Connection refused/,
    ],
    ["ssh: connect to host 10.9.9.9 port 22: Connection timed out\n", /gpu1 cannot be reached/],
    ["Connection to 127.0.0.1 closed by remote host.\n", /connection to gpu1 dropped/],
    ["something else entirely\n", /ssh to gpu1 failed \(something else entirely\)/],
  ];
  for (const [stderr, want] of cases) {
    const said = explainSshFailure(target, stderr);
    assert.match(said, want, stderr);
    assert.ok(!said.includes("\n"), "one line");
    assert.match(said, /\.$/);
  }
});

test("a destination that ssh would read as an option is refused before ssh runs", () => {
  for (const bad of ["-oProxyCommand=touch /tmp/x", "a b", "x\0y"]) {
    assert.throws(() => new SshConnection({ destination: bad, label: bad }), UserError);
  }
});

test("PYFERRY_SSH_COMMAND replaces ssh, split like a command line", () => {
  assert.deepEqual(sshProgram({}), ["ssh"]);
  assert.deepEqual(sshProgram({ PYFERRY_SSH_COMMAND: "ssh -F '/tmp/my config'" }), [
    "ssh",
    "-F",
    "/tmp/my config",
  ]);
  assert.throws(
    () => sshProgram({ PYFERRY_SSH_COMMAND: "ssh 'x" }),
    /PYFERRY_SSH_COMMAND cannot be read/,
  );
});

test("PYFERRY_SSH_PERSIST is a number of seconds; the kept sockets' folder must be private", () => {
  assert.deepEqual(persistSetting({}), { seconds: 60, asked: false });
  assert.deepEqual(persistSetting({ PYFERRY_SSH_PERSIST: "" }), { seconds: 60, asked: false });
  assert.deepEqual(persistSetting({ PYFERRY_SSH_PERSIST: " 90 " }), { seconds: 90, asked: true });
  assert.deepEqual(persistSetting({ PYFERRY_SSH_PERSIST: "0" }), { seconds: 0, asked: true });
  assert.throws(() => persistSetting({ PYFERRY_SSH_PERSIST: "1m" }), UserError);
  assert.throws(
    () => new SshConnection(target, { PYFERRY_SSH_PERSIST: "-5" }),
    /PYFERRY_SSH_PERSIST must be a number of seconds/,
  );
  const runtime = tempDir("pyferry-runtime-");
  try {
    const dir = keptControlDir({ XDG_RUNTIME_DIR: runtime });
    assert.equal(dir, join(runtime, "pyferry-ssh"));
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    chmodSync(dir, 0o711);
    assert.throws(() => keptControlDir({ XDG_RUNTIME_DIR: runtime }), /not a private folder/);
    // A runtime folder that cannot hold one (here: a file) is one sentence too.
    const file = join(runtime, "file");
    writeFileSync(file, "");
    assert.throws(
      () => keptControlDir({ XDG_RUNTIME_DIR: file }),
      (err: unknown) => err instanceof UserError && /cannot keep ssh connections/.test(err.message),
    );
  } finally {
    rmSync(runtime, { recursive: true, force: true });
  }
});

test("closing kept connections when none was ever kept leaves no folder behind", async () => {
  const runtime = tempDir("pyferry-runtime-");
  try {
    assert.equal(await closeKeptConnections({ XDG_RUNTIME_DIR: runtime }), 0);
    assert.equal(existsSync(join(runtime, "pyferry-ssh")), false);
  } finally {
    rmSync(runtime, { recursive: true, force: true });
  }
});

test("the socket folders of pyferry processes that died are removed by the next connection", async () => {
  const deadPid = spawnSync("true").pid as number;
  const dead = tempDir(`pf-ssh-${deadPid}-`);
  const alive = tempDir(`pf-ssh-${process.ppid}-`);
  try {
    // An ssh that fails at once: the sweep does not depend on the connection.
    const conn = new SshConnection(target, { PYFERRY_SSH_COMMAND: "false" });
    await assert.rejects(conn.open(), UserError);
    conn.closeSync();
    // The sweep runs in the background.
    for (let i = 0; i < 250 && existsSync(dead); i++) await setTimeout(20);
    assert.equal(existsSync(dead), false, "a dead process's folder is removed");
    assert.equal(existsSync(alive), true, "a live process's folder stays");
  } finally {
    rmSync(dead, { recursive: true, force: true });
    rmSync(alive, { recursive: true, force: true });
  }
});

test("a store over ssh sends its streams gzip-compressed; a local one does not", () => {
  assert.equal(new RemoteStore(new SshConnection(target), "").compress, true);
  assert.equal(new RemoteStore(new LocalConnection(), "").compress, false);
});

test("liveness limits are defaults: the user's ssh configuration and the target's options win", async (t) => {
  // A server that takes the connection and never speaks: only ConnectTimeout ends the wait.
  const held: Socket[] = [];
  const silent = createServer((s) => held.push(s));
  await new Promise<void>((ok) => silent.listen(0, "127.0.0.1", ok));
  t.after(() => {
    for (const s of held) s.destroy();
    silent.close();
  });
  const port = (silent.address() as AddressInfo).port;
  const dir = tempDir("pyferry-ssh-liveness-");
  const log = join(dir, "args.log");
  const wrapper = join(dir, "ssh-logged");
  writeFileSync(wrapper, `#!/bin/sh\nprintf '%s\\n' "$*" >> '${log}'\nexec ssh "$@"\n`, {
    mode: 0o755,
  });
  const config = (lines: string) => {
    const file = join(dir, `config-${Math.random().toString(16).slice(2)}`);
    writeFileSync(file, `Host *\n  BatchMode yes\n  UserKnownHostsFile /dev/null\n${lines}`);
    return file;
  };
  const masterLine = async (cfg: string, options: string[] = []) => {
    writeFileSync(log, "");
    const conn = new SshConnection(
      { destination: "127.0.0.1", port, sshOptions: options, label: "silent" },
      { PYFERRY_SSH_COMMAND: `${wrapper} -F ${cfg}` },
    );
    const started = Date.now();
    const err = await conn.open().then(
      () => undefined,
      (e: unknown) => e,
    );
    conn.closeSync();
    assert.ok(
      err instanceof UserError && /cannot be reached .*timed out/.test(err.message),
      `${err}`,
    );
    const line =
      readFileSync(log, "utf8")
        .split("\n")
        .find((l) => / -N /.test(l)) ?? "";
    return { line, ms: Date.now() - started };
  };

  const own = await masterLine(config("  ConnectTimeout 1\n  ServerAliveInterval 7\n"));
  assert.doesNotMatch(own.line, /ConnectTimeout|ServerAlive/, own.line);
  assert.ok(own.ms < 8000, `the configuration's 1 s timeout was used: ${own.ms} ms`);

  const given = await masterLine(config(""), ["-o", "ConnectTimeout=1"]);
  assert.doesNotMatch(given.line, /ConnectTimeout=10/, given.line);
  assert.match(given.line, /ServerAliveInterval=15 -o ServerAliveCountMax=4/, given.line);
  assert.ok(given.ms < 8000, `the target's 1 s timeout was used: ${given.ms} ms`);
});
