#!/usr/bin/env node
import { runCloudpy } from "../dist/bundle/seed-cloudpy.js";

process.exitCode = await runCloudpy(process.argv.slice(2));
