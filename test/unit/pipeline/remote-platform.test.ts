/** A host the environment cannot run on is refused before anything is built or sent. */
import assert from "node:assert/strict";
import { machine } from "node:os";
import { test } from "node:test";
import { checkPlatform } from "../../../src/pipeline/remote-run.js";
import type { RemoteFacts } from "../../../src/transport/index.js";

const here: RemoteFacts = { root: "/r", arch: machine(), os: "Linux", glibc: "2.36", setsid: true };

test("the same architecture and a new enough glibc pass", () => {
  checkPlatform(here, "h1", "2.34");
  checkPlatform({ ...here, glibc: "2.34" }, "h1", "2.34");
  checkPlatform(here, "h1");
});

test("another architecture, another OS, an old or missing glibc: one sentence each", () => {
  const other = machine() === "x86_64" ? "aarch64" : "x86_64";
  assert.throws(
    () => checkPlatform({ ...here, arch: other }, "h1"),
    new RegExp(`h1 is ${other} and this machine is ${machine()}`),
  );
  assert.throws(
    () => checkPlatform({ ...here, os: "Darwin" }, "h1"),
    /h1 runs Darwin; pyferry ships environments to Linux hosts only\./,
  );
  assert.throws(
    () => checkPlatform({ ...here, glibc: "2.17" }, "h1", "2.34"),
    /h1 has glibc 2\.17, but the bundled Python needs glibc 2\.34 or newer/,
  );
  const { glibc: _none, ...musl } = here;
  assert.throws(() => checkPlatform(musl, "h1", "2.34"), /h1 has no glibc/);
  // 2.4 is older than 2.34: versions compare by number, not as text.
  assert.throws(() => checkPlatform({ ...here, glibc: "2.4" }, "h1", "2.34"), /glibc 2\.4,/);
});
