/**
 * Checking a wheel whole before it goes into a wheelhouse: every entry read and checked
 * against RECORD (extracted into a scratch folder by the installer's own code, which refuses
 * corrupt, truncated and hostile archives), and the file name's project and version agreeing
 * with METADATA.
 */
import { removeTree } from "../install/cache.js";
import { BadWheel, extractWheel } from "../install/wheel-archive.js";
import { parseWheelFilename } from "../python/tags.js";
import { normalizeVersion } from "../python/version.js";

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
    return { name, version };
  } finally {
    await removeTree(tree);
  }
}
