/**
 * The Python side of interpreter probing lives in data/python/probe.py, a real Python file so
 * that scripts/gen-stdlib-tables.py runs the very same stdlib rule; this module hands it out.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { packageRoot } from "../util/package-root.js";

/** Printed before the JSON so stray output from `.pth` files cannot be mistaken for the result. */
export const PROBE_MARKER = "PYFERRY-PROBE:";

let source: string | undefined;

/** The probe script's source, read once per process (only needed when the cache misses). */
export function probeSource(): string {
  source ??= readFileSync(join(packageRoot(), "data", "python", "probe.py"), "utf8");
  return source;
}
