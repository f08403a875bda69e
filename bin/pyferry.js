#!/usr/bin/env node
import { loadBundle } from "../dist/bundle/load.js";

const argv = process.argv.slice(2);
const bundle = new URL("../dist/bundle/pyferry.cjs", import.meta.url);
const { tryFastRun, run } = loadBundle(bundle, argv[0]);
const fast = await tryFastRun(argv);
process.exitCode = fast !== undefined ? fast : await run(argv);
