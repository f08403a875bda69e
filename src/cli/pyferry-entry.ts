/**
 * What bin/pyferry.js runs, bundled into one file: the fast path of `pyferry run SCRIPT` (and
 * the early SSH handshakes), else the whole command line. One bundle, so that both share the
 * connections started early.
 */
export { tryFastRun } from "./fast-run.js";
export { run } from "./main.js";
