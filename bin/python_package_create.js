#!/usr/bin/env node
import { runSeedCreate } from "../dist/src/cli/seed-create.js";

process.exitCode = await runSeedCreate(process.argv.slice(2));
