#!/usr/bin/env node
import { sourceMapsIfDebugging } from "./debug.js";

sourceMapsIfDebugging();
const { tryFastRun } = await import("../dist/bundle/fast-run.js");
const argv = process.argv.slice(2);
const fast = await tryFastRun(argv);
if (fast !== undefined) {
  process.exitCode = fast;
} else {
  const { run } = await import("../dist/bundle/main.js");
  process.exitCode = await run(argv);
}
