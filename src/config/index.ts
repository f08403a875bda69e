/**
 * pyferry's layered configuration (/etc, the user's file, ./pyferry.toml, pyproject.toml,
 * $PYFERRY_CONFIG, environment, flags), target resolution, and the cloudpy seed's files.
 */
export { type CloudpyConfig, type CloudpyLoadOptions, loadCloudpyConfig } from "./cloudpy.js";
export { type ConfigRow, type ConfigValue, describeConfig } from "./describe.js";
export { type Destination, parseDestination } from "./destination.js";
export { type LoadOptions, loadConfig, withFlags } from "./load.js";
export { type PyDict, type PyKey, type PyValue, parsePythonDict } from "./py-literal.js";
export { resolveTarget } from "./target.js";
export type { Config, Source, Sourced, TargetConfig, TargetEntry } from "./types.js";
