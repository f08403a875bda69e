#!/usr/bin/env node
import { sourceMapsIfDebugging } from "./debug.js";

sourceMapsIfDebugging();
const { runCloudpy } = await import("../dist/bundle/seed-cloudpy.js");
process.exitCode = await runCloudpy(process.argv.slice(2));
