#!/usr/bin/env node
import { loadBundle } from "../dist/bundle/load.js";

const { runCloudpy } = loadBundle(new URL("../dist/bundle/seed-cloudpy.cjs", import.meta.url));
process.exitCode = await runCloudpy(process.argv.slice(2));
