/** The merged configuration as rows of dotted key, value and source, for `pyferry config show`. */
import { type Config, TARGET_DEFAULTS, TARGET_KEYS, type TargetEntry, targetKey } from "./types.js";

export type ConfigValue = string | number | boolean | string[];

export interface ConfigRow {
  /** As it would be written in pyferry.toml, dotted: "targets.gpu1.port". */
  key: string;
  value: ConfigValue;
  /** A file's absolute path, "environment variable PYFERRY_TARGET", "flag --on" or "default". */
  source: string;
}

/** Every value set, plus the defaults a configured target gets; targets in name order. */
export function describeConfig(config: Config): ConfigRow[] {
  const rows: ConfigRow[] = [];
  if (config.defaultTarget) rows.push({ key: "default_target", ...config.defaultTarget });
  const names = [...config.targets.keys()].sort();
  for (const name of names) {
    const entry = config.targets.get(name) as TargetEntry;
    const prefix = targetKey(name);
    for (const [key, prop] of TARGET_KEYS) {
      const set = entry[prop];
      if (set) {
        rows.push({ key: `${prefix}.${key}`, value: set.value, source: set.source });
      } else if (prop in TARGET_DEFAULTS) {
        const value = TARGET_DEFAULTS[prop as keyof typeof TARGET_DEFAULTS];
        rows.push({
          key: `${prefix}.${key}`,
          value: Array.isArray(value) ? [...value] : value,
          source: "default",
        });
      }
    }
  }
  return rows;
}
