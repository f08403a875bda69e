#!/usr/bin/env node
import { runSeedAnalyze } from "../dist/src/cli/seed-analyze.js";

process.exitCode = await runSeedAnalyze(process.argv.slice(2));
