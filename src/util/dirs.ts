import { homedir } from "node:os";
import { join } from "node:path";

/** Root of pyferry's on-disk cache: $PYFERRY_CACHE_DIR, else $XDG_CACHE_HOME/pyferry, else ~/.cache/pyferry. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PYFERRY_CACHE_DIR) return env.PYFERRY_CACHE_DIR;
  const xdg = env.XDG_CACHE_HOME;
  return join(xdg && xdg.length > 0 ? xdg : join(homedir(), ".cache"), "pyferry");
}
