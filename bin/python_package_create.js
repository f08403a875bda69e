#!/usr/bin/env node
import { runSeedCreate } from "../dist/bundle/seed-create.js";

process.exitCode = await runSeedCreate(process.argv.slice(2));
