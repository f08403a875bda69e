/** capture's time limit reaches what the program started, when asked to (`group`). */
import assert from "node:assert/strict";
import { test } from "node:test";
import { capture } from "../../../src/util/capture.js";

test("a timed-out program's own children go with it in group mode, so the wait ends on time", async () => {
  // The shell's background sleep holds the output pipe open after the shell itself is killed.
  const timed = async (group: boolean) => {
    const started = Date.now();
    const r = await capture("sh", ["-c", "sleep 4 & wait"], { timeoutMs: 500, group });
    return { ms: Date.now() - started, signal: r.signal };
  };
  const grouped = await timed(true);
  assert.equal(grouped.signal, "SIGKILL");
  assert.ok(grouped.ms < 2500, `ended ${grouped.ms} ms after the start`);
  const alone = await timed(false);
  assert.equal(alone.signal, "SIGKILL");
  assert.ok(alone.ms >= 3500, `without the group the sleep held the pipe: ${alone.ms} ms`);
});
