import { homedir } from "node:os";
import { join, resolve } from "node:path";

/** Root of pyferry's on-disk cache: $PYFERRY_CACHE_DIR, else $XDG_CACHE_HOME/pyferry, else ~/.cache/pyferry. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  // Absolute: its paths go into programs' PATH and PYTHONPATH, which must survive a cd.
  if (env.PYFERRY_CACHE_DIR) return resolve(env.PYFERRY_CACHE_DIR);
  const xdg = env.XDG_CACHE_HOME;
  return resolve(xdg && xdg.length > 0 ? xdg : join(homedir(), ".cache"), "pyferry");
}
