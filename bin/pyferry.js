#!/usr/bin/env node
import { tryFastRun } from "../dist/src/cli/fast-run.js";

const argv = process.argv.slice(2);
const fast = await tryFastRun(argv);
if (fast !== undefined) {
  process.exitCode = fast;
} else {
  const { run } = await import("../dist/src/cli/main.js");
  process.exitCode = await run(argv);
}
