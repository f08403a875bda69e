#!/usr/bin/env node
import { loadBundle } from "../dist/bundle/load.js";

const { runSeedRun } = loadBundle(new URL("../dist/bundle/seed-run.cjs", import.meta.url));
await runSeedRun(process.argv.slice(2));
