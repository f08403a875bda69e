#!/usr/bin/env node
import { runSeedAnalyze } from "../dist/bundle/seed-analyze.js";

process.exitCode = await runSeedAnalyze(process.argv.slice(2));
