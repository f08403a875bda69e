#!/usr/bin/env node
import { runSeedRun } from "../dist/bundle/seed-run.js";

await runSeedRun(process.argv.slice(2));
