/**
 * A pack folder (pyferry pack --folder, cloudpy -P): ID/app/ with the app's files and ID/conf/
 * with pack.json and mods. Only file-system reads here, so that commands that merely locate a
 * pack load nothing heavy.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { join, relative, resolve, sep } from "node:path";
import { UserError } from "../util/errors.js";

export const PACK_CONF = join("conf", "pack.json");
export const PACK_MODS = join("conf", "mods");

export interface PackInfo {
  format: 1;
  /** The script to run, relative to app/. */
  entry: string;
  /** The interpreter request (a version), if one was made. */
  python?: string;
  created_by: string;
  /** sha256 of conf/mods as pyferry wrote it: another one there was edited by hand. */
  mods_sha256?: string;
}

/**
 * Refuse a pack name that is not one plain file name (`../evil`, "", a space), before any work:
 * it names a folder or archive here and a pack on the target.
 */
export function checkPackName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
    throw new UserError(
      `A pack name is letters, digits, ".", "_" and "-", starting with a letter or digit, not "${name}".`,
      2,
    );
}

/** The pack folder `id` names (a path, or a folder of that name here), or undefined. */
export function findPack(id: string): string | undefined {
  const dir = resolve(id);
  return existsSync(join(dir, PACK_CONF)) ? dir : undefined;
}

export function readPackInfo(dir: string): PackInfo {
  try {
    const info = JSON.parse(readFileSync(join(dir, PACK_CONF), "utf8")) as PackInfo;
    if (info.format !== 1 || typeof info.entry !== "string") throw new Error("unknown format");
    return info;
  } catch (err) {
    throw new UserError(`${join(dir, PACK_CONF)} cannot be read (${(err as Error).message}).`);
  }
}

/** Every file under the pack's app/ folder, relative to it. */
export function packAppFiles(dir: string): string[] {
  const app = join(dir, "app");
  const out: string[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d)) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(relative(app, p).split(sep).join("/"));
    }
  };
  walk(app);
  return out.sort();
}
