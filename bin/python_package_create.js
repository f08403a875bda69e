#!/usr/bin/env node
import { sourceMapsIfDebugging } from "./debug.js";

sourceMapsIfDebugging();
const { runSeedCreate } = await import("../dist/bundle/seed-create.js");
process.exitCode = await runSeedCreate(process.argv.slice(2));
