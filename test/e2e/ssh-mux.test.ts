/**
 * pyferry's own client of OpenSSH's control socket against the reference, `ssh -O check`,
 * `ssh -O exit` and `ssh host CMD` on a real master; and against sockets that are not a master.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { proxyExec, STALLED } from "../../src/transport/ssh-channel.js";
import { muxAlive, muxTerminate } from "../../src/transport/ssh-mux.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { tempDir } from "../support/temp.js";

const dirs: string[] = [];
const scratch = () => {
  const d = tempDir("pyferry-mux-");
  dirs.push(d);
  return d;
};
after(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A Unix socket server that answers each connection with `reply`, 10 ms between parts. */
async function fakeServer(reply: Buffer[]): Promise<{ path: string; server: Server }> {
  const path = join(scratch(), "s");
  const server = createServer((c) => {
    c.on("error", () => undefined);
    c.once("data", async () => {
      for (const part of reply) {
        c.write(part);
        await new Promise((r) => setTimeout(r, 10));
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(path, resolve));
  return { path, server };
}

const words = (...w: number[]) => {
  const b = Buffer.alloc(4 * w.length);
  w.forEach((x, i) => {
    b.writeUInt32BE(x, 4 * i);
  });
  return b;
};

describe("sockets that are not an OpenSSH master", () => {
  test("no socket at all", async () => {
    assert.equal(await muxAlive(join(scratch(), "none")), false);
    assert.equal(await muxTerminate(join(scratch(), "none")), false);
  });
  test("a server that never answers: false after the timeout", async () => {
    const { path, server } = await fakeServer([]);
    const start = Date.now();
    assert.equal(await muxAlive(path, 300), false);
    assert.ok(Date.now() - start >= 250, "waited for the timeout");
    server.close();
  });
  test("a server that answers garbage, or another protocol version", async () => {
    for (const answer of [
      Buffer.from("SSH-2.0-OpenSSH_9.2\r\n"),
      words(8, 1, 3, 12, 0x80000005, 1, 42), // hello with version 3
      words(0xffffffff, 1),
    ]) {
      const { path, server } = await fakeServer([answer]);
      assert.equal(await muxAlive(path, 2000), false, answer.toString("hex"));
      server.close();
    }
  });
  test("a master's replies are understood, also when split across reads", async () => {
    const hello = words(8, 1, 4);
    const alive = words(12, 0x80000005, 1, 4242);
    const { path, server } = await fakeServer([hello.subarray(0, 6), hello.subarray(6), alive]);
    assert.equal(await muxAlive(path, 2000), true);
    server.close();
  });
  test("terminate: a close after the hello is agreement, a refusal is not", async () => {
    const hello = words(8, 1, 4);
    const quiet = await fakeServer([hello]);
    // The fake keeps the connection open: end it after the hello, as an exiting master does.
    quiet.server.on("connection", (c) => setTimeout(() => c.end(), 50));
    assert.equal(await muxTerminate(quiet.path, 2000), true);
    assert.equal(await muxAlive(quiet.path, 2000), false, "a close is not an alive reply");
    quiet.server.close();
    const denied = Buffer.concat([words(19, 0x80000002, 1, 7), Buffer.from("denied!")]);
    const refusing = await fakeServer([hello, denied]);
    assert.equal(await muxTerminate(refusing.path, 2000), false);
    refusing.server.close();
  });
  test("a master without proxy mode: the command is not run, so it can be run another way", async () => {
    const hello = words(8, 1, 4);
    const failure = Buffer.concat([words(19, 0x80000003, 1, 7), Buffer.from("no way!")]);
    const old = await fakeServer([hello, failure]);
    assert.equal(await proxyExec(old.path, "true"), undefined);
    old.server.close();
    assert.equal(await proxyExec(join(scratch(), "none"), "true"), undefined);
  });
});

describe("a real master", { skip: sshAvailable() }, () => {
  let lab: SshLab;
  before(async () => {
    lab = await startSshLab({ hosts: 1, netns: "auto" });
  });
  after(async () => {
    await lab?.close();
  });

  const sshO = (socket: string, op: string) =>
    spawnSync("ssh", ["-F", lab.sshConfig, "-o", `ControlPath=${socket}`, "-O", op, "h1"], {
      encoding: "utf8",
    }).status;

  const startMaster = (socket: string) => {
    const master = spawnSync(
      "ssh",
      [
        ...["-F", lab.sshConfig, "-M", "-N", "-o", `ControlPath=${socket}`],
        ...["-o", "ControlPersist=60", "h1"],
      ],
      { encoding: "utf8", input: "" },
    );
    assert.equal(master.status, 0, master.stderr);
  };

  test("a command through the master's proxy mode does what ssh host CMD does", async () => {
    const socket = join(scratch(), "m");
    startMaster(socket);
    try {
      const viaSsh = (cmd: string, input = "") =>
        spawnSync("ssh", ["-F", lab.sshConfig, "-o", `ControlPath=${socket}`, "h1", cmd], {
          input,
          maxBuffer: 64 << 20,
        });
      const cases: [string, string | Buffer][] = [
        ["echo out; echo err >&2; exit 3", ""],
        ["cat; printf '|%s' \"$0\"", "some input\n"],
        ["head -c 12000000 /dev/zero | tr '\\0' x", ""],
        ["wc -c", Buffer.alloc(5_000_000, 1)],
        ["kill -9 $$", ""],
      ];
      for (const [cmd, input] of cases) {
        const mine = await proxyExec(socket, cmd, input);
        assert.ok(mine && mine !== STALLED, `${cmd}: run`);
        const ref = viaSsh(cmd, input.toString());
        assert.equal(mine.code, ref.status, `${cmd}: exit status`);
        assert.ok(mine.stdout.equals(ref.stdout), `${cmd}: the same output`);
        assert.equal(mine.stderr, ref.stderr.toString(), `${cmd}: the same errors`);
      }
    } finally {
      await muxTerminate(socket);
    }
  });

  test("alive and terminate agree with ssh -O check and ssh -O exit", async () => {
    const socket = join(scratch(), "m");
    startMaster(socket);
    assert.equal(sshO(socket, "check"), 0, "ssh sees the master");
    assert.equal(await muxAlive(socket), true);
    assert.equal(await muxTerminate(socket), true);
    for (let i = 0; i < 100 && existsSync(socket); i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(existsSync(socket), false, "the master went and took its socket");
    assert.notEqual(sshO(socket, "check"), 0, "ssh no longer sees a master");
    assert.equal(await muxAlive(socket), false);
  });
});
