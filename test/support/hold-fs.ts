/**
 * Preloaded into a pyferry process (`node --import hold-fs.js bin/pyferry.js ...`), it holds
 * that process at one file system call, so that a test can order what other processes do
 * against it without timing: PYFERRY_TEST_HOLD="CALL PATH" names a call of fs/promises (stat,
 * rename, open) and its first argument. The first such call is made, then the process writes
 * "held" to fd 3 (a pipe from the test) and waits, before the call's caller goes on, until
 * the test writes a line there.
 */
import { promises, writeSync } from "node:fs";
import { Socket } from "node:net";

type Call = (...args: unknown[]) => Promise<unknown>;

const spec = process.env.PYFERRY_TEST_HOLD;
if (spec) {
  const at = spec.indexOf(" ");
  const name = spec.slice(0, at);
  const path = spec.slice(at + 1);
  const calls = promises as unknown as Record<string, Call>;
  const real = calls[name];
  if (!real) throw new Error(`PYFERRY_TEST_HOLD: fs/promises has no ${name}`);
  let held = false;
  const hold = async (): Promise<void> => {
    held = true;
    writeSync(3, "held\n");
    const channel = new Socket({ fd: 3, readable: true, writable: false });
    await new Promise((go) => channel.once("data", go));
    channel.destroy();
  };
  // The bundle calls fs/promises through the module's object, so replacing the property is seen.
  calls[name] = async (...args: unknown[]) => {
    if (held || args[0] !== path) return real(...args);
    try {
      return await real(...args);
    } finally {
      await hold();
    }
  };
}
