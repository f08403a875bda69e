/**
 * Checking a wheel whole before it goes into a wheelhouse: every entry read and checked
 * against RECORD (extracted into a scratch folder by the installer's own code, which refuses
 * corrupt, truncated and hostile archives), the file name's project and version agreeing
 * with METADATA and the .dist-info folder, and every file RECORD lists present.
 */
import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { removeTree } from "../install/cache.js";
import { parseRecord } from "../install/record.js";
import { BadWheel, extractWheel } from "../install/wheel-archive.js";
import { parseWheelFilename } from "../python/tags.js";
import { normalizeVersion } from "../python/version.js";

/**
 * What the installer lets pass, as pip does, but a wheelhouse does not: a RECORD listing files
 * the wheel lacks (an environment would miss them), and a .dist-info folder whose version is
 * not the wheel's (deploy reads versions from those folders).
 */
async function checkComplete(filename: string, tree: string, version: string): Promise<void> {
  const distInfo = (await readdir(tree)).find((d) => d.endsWith(".dist-info")) as string;
  const stated = distInfo.slice(0, -".dist-info".length).split("-")[1] ?? "";
  let same = false;
  try {
    same = normalizeVersion(stated) === normalizeVersion(version);
  } catch {
    // An unreadable version is not the same one.
  }
  if (!same)
    throw new BadWheel(filename, `its folder ${distInfo} does not carry its version ${version}`);
  const record = parseRecord(await readFile(join(tree, distInfo, "RECORD"), "utf8"));
  for (const row of record) {
    const inside = !row.path.startsWith("/") && !row.path.split("/").includes("..");
    const isFile =
      inside &&
      (await lstat(join(tree, row.path)).then(
        (st) => st.isFile(),
        () => false,
      ));
    if (!isFile) throw new BadWheel(filename, `its RECORD lists "${row.path}", which it lacks`);
  }
}

export interface CheckedWheel {
  /** As METADATA writes them. */
  name: string;
  version: string;
}

/**
 * Check the wheel at `path`, to be named `filename`, extracting it into `tree` (which must not
 * exist, and is removed again); throws BadWheel (a UserError).
 */
export async function checkWheel(
  path: string,
  filename: string,
  tree: string,
): Promise<CheckedWheel> {
  const fromName = parseWheelFilename(filename);
  try {
    const { name, version } = await extractWheel(path, filename, tree);
    let same = false;
    try {
      same = normalizeVersion(version) === normalizeVersion(fromName.version);
    } catch {
      throw new BadWheel(filename, `its METADATA gives the invalid version "${version}"`);
    }
    if (!same) {
      throw new BadWheel(
        filename,
        `its METADATA gives version ${version}, but its file name says ${fromName.version}`,
      );
    }
    await checkComplete(filename, tree, fromName.version);
    return { name, version };
  } finally {
    await removeTree(tree);
  }
}
