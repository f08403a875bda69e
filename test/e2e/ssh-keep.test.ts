/**
 * Masters kept between invocations (the default) against a real sshd: what the user's ssh
 * command line and the machine's folders may hold must not make a command wait or fail where a
 * master of the invocation's own would have done.
 */
import assert from "node:assert/strict";
import { after, before, test } from "node:test";
import { SshConnection } from "../../src/transport/ssh.js";
import { muxTerminate } from "../../src/transport/ssh-mux.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { tempDir } from "../support/temp.js";

const skip = sshAvailable();
let lab: SshLab;
before(async () => {
  if (!skip) lab = await startSshLab({ hosts: 1 });
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
