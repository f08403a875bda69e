/** Running the built CLI entries as a user would, with a private cache. */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { tempDir } from "./temp.js";

export const REPO = fileURLToPath(new URL("../../../", import.meta.url));
/** Hundreds of MB of environments per test file: gone with the process. */
export const CACHE = tempDir("pyferry-test-cache-");

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export function runBin(
  bin: string,
  args: string[],
  opts: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string } = {},
): Run {
  const r = spawnSync(process.execPath, [join(REPO, "bin", `${bin}.js`), ...args], {
    cwd: opts.cwd ?? REPO,
    env: { ...process.env, PYFERRY_CACHE_DIR: CACHE, NO_COLOR: "1", ...opts.env },
    encoding: "utf8",
    input: opts.input ?? "",
    timeout: 120_000,
  });
  return { status: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

export function pyferry(args: string[], opts: Parameters<typeof runBin>[2] = {}): Run {
  return runBin("pyferry", args, opts);
}
