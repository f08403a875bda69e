#!/usr/bin/env node
import { loadBundle } from "../dist/bundle/load.js";

const { runSeedAnalyze } = loadBundle(new URL("../dist/bundle/seed-analyze.cjs", import.meta.url));
process.exitCode = await runSeedAnalyze(process.argv.slice(2));
