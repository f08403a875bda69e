import assert from "node:assert/strict";
import { test } from "node:test";
import { sshTargetOf } from "../../../src/cli/ssh-target.js";
import type { TargetConfig } from "../../../src/config/types.js";

const base = { sshOptions: [] as string[], python: "bundled", acceptNewHostKeys: false };

test("messages name a destination as it is written: IPv6 in brackets before a port", () => {
  const label = (t: Omit<TargetConfig, keyof typeof base>) => sshTargetOf({ ...base, ...t }).label;
  assert.equal(
    label({ address: "user@::1", user: "user", host: "::1", port: 2222 }),
    "user@[::1]:2222",
  );
  assert.equal(label({ address: "::1", host: "::1" }), "::1");
  assert.equal(label({ address: "root@h2", user: "root", host: "h2", port: 22 }), "root@h2:22");
  assert.equal(label({ name: "gpu1", address: "h1", host: "h1", port: 2200 }), "gpu1");
});
