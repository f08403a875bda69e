#!/usr/bin/env node
import { sourceMapsIfDebugging } from "./debug.js";

sourceMapsIfDebugging();
const { runSeedAnalyze } = await import("../dist/bundle/seed-analyze.js");
process.exitCode = await runSeedAnalyze(process.argv.slice(2));
