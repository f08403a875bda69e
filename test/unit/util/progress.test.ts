import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { progress } from "../../../src/util/progress.js";

/** A stream that records what was written, as a terminal of `columns` or a pipe. */
function stream(isTTY: boolean, columns = 40): NodeJS.WriteStream & { text: string } {
  const s = {
    isTTY,
    columns,
    text: "",
    write(chunk: string) {
      s.text += chunk;
      return true;
    },
  };
  return s as unknown as NodeJS.WriteStream & { text: string };
}

describe("progress", () => {
  test("work done within a moment shows nothing, ever", async () => {
    const out = stream(true);
    const bar = progress(out);
    bar.update("quick", 1, 2);
    bar.done();
    await sleep(500);
    assert.equal(out.text, "");
  });

  test("a stage named at once shows when the moment is over, with no further update", async () => {
    const out = stream(true);
    const text = () => out.text;
    const bar = progress(out);
    bar.update("Resolving");
    bar.update("Installing");
    assert.equal(text(), "");
    await sleep(500);
    assert.equal(text(), "\r\x1b[2KInstalling", "the newest message, once");
    bar.done();
    assert.equal(text(), "\r\x1b[2KInstalling\r\x1b[2K", "done clears the line");
    bar.done();
    assert.equal(text(), "\r\x1b[2KInstalling\r\x1b[2K", "nothing more to clear");
  });

  test("at most one redraw per 80 ms, the newest message last; cut to the width", async () => {
    const out = stream(true, 30);
    const text = () => out.text;
    const bar = progress(out);
    await sleep(450);
    bar.update("sending the environment", 3, 10);
    assert.equal(text(), "\r\x1b[2Ksending the environment 3/10");
    bar.update("older", 4, 10);
    bar.update("a message much longer than the terminal is wide");
    assert.equal(text(), "\r\x1b[2Ksending the environment 3/10");
    await sleep(150);
    assert.equal(
      text(),
      "\r\x1b[2Ksending the environment 3/10\r\x1b[2Ka message much longer than th",
    );
    bar.done();
  });

  test("a terminal of unknown width (0 columns) is taken as 80 wide", async () => {
    const out = stream(true, 0);
    const bar = progress(out);
    await sleep(450);
    bar.update("x".repeat(100));
    assert.equal(out.text, `\r\x1b[2K${"x".repeat(79)}`);
    bar.done();
  });

  test("nothing at all on a pipe, or when asked to be quiet", async () => {
    for (const [out, quiet] of [
      [stream(false), false],
      [stream(true), true],
    ] as const) {
      const bar = progress(out, quiet);
      await sleep(450);
      bar.update("working", 1, 2);
      bar.done();
      assert.equal(out.text, "");
    }
  });
});
