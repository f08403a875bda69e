/**
 * install.test.ts's unpacking tests again with the native addon turned off (PYFERRY_NATIVE=0):
 * the JavaScript path must write the same trees, and refuse the same wheels in the same words.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { fileURLToPath } from "node:url";

test("wheels unpack and are refused alike without the native addon", () => {
  const suite = fileURLToPath(new URL("./install.test.js", import.meta.url));
  // Without NODE_TEST_CONTEXT the inner run reports in TAP, not to this runner.
  const { NODE_TEST_CONTEXT: _, ...env } = process.env;
  const args = ["--test", "--test-reporter=tap", "--test-name-pattern=^unpackWheel", suite];
  const r = spawnSync(process.execPath, args, {
    encoding: "utf8",
    env: { ...env, PYFERRY_NATIVE: "0" },
  });
  assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
  // The pattern must have matched the suite, not nothing.
  assert.match(r.stdout, /^# pass ([1-9]\d*)$/m);
});
