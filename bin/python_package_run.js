#!/usr/bin/env node
import { sourceMapsIfDebugging } from "./debug.js";

sourceMapsIfDebugging();
const { runSeedRun } = await import("../dist/bundle/seed-run.js");
await runSeedRun(process.argv.slice(2));
