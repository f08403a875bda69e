#!/usr/bin/env node
import { runCloudpy } from "../dist/src/cli/seed-cloudpy.js";

process.exitCode = await runCloudpy(process.argv.slice(2));
