#!/usr/bin/env node
import { runSeedRun } from "../dist/src/cli/seed-run.js";

await runSeedRun(process.argv.slice(2));
