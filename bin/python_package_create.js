#!/usr/bin/env node
import { loadBundle } from "../dist/bundle/load.js";

const { runSeedCreate } = loadBundle(new URL("../dist/bundle/seed-create.cjs", import.meta.url));
process.exitCode = await runSeedCreate(process.argv.slice(2));
