/**
 * What the server says about each wheel in a wheelhouse: its sha256, and its METADATA (served
 * as `<file>.metadata`, PEP 658) with that file's hash and Requires-Python. Worked out once per
 * file version (inode, size, times) and kept in memory, so that pages reflect the folder at
 * request time without reading every wheel on every request.
 */
import { createHash } from "node:crypto";
import { stat } from "node:fs/promises";
import yauzl from "yauzl";
import { parseCoreMetadata } from "../python/metadata.js";
import { normalizeName } from "../python/names.js";
import { parseWheelFilename } from "../python/tags.js";
import { memoSha256 } from "../util/hash-memo.js";
import { sha256File } from "../util/sha256-file.js";

/** No METADATA comes near this; a bigger one is not served. */
const MAX_METADATA_BYTES = 16 << 20;

export interface WheelInfo {
  sha256: string;
  /** The METADATA bytes, when the wheel has one readable `.dist-info/METADATA`. */
  metadata?: Buffer;
  metadataSha256?: string;
  requiresPython?: string;
}

/** The METADATA member of the wheel at `path`: its own project's `.dist-info`, read whole. */
export async function readWheelMetadata(path: string, filename: string): Promise<Buffer> {
  const project = parseWheelFilename(filename).normalized;
  // Kept open after the listing ends: the entry is read after it.
  const zip = await yauzl.openPromise(path, {
    lazyEntries: true,
    validateEntrySizes: true,
    autoClose: false,
  });
  try {
    const found: yauzl.Entry[] = [];
    for await (const entry of zip.eachEntry()) {
      if (/^[^/]+\.dist-info\/METADATA$/.test(entry.fileName)) found.push(entry);
    }
    const own = found.filter((e) => normalizeName(e.fileName.split("-")[0] ?? "") === project);
    const entry = own.length === 1 ? own[0] : found.length === 1 ? found[0] : undefined;
    if (!entry) throw new Error("it has no single .dist-info/METADATA");
    if (entry.uncompressedSize > MAX_METADATA_BYTES) throw new Error("its METADATA is too large");
    const chunks: Buffer[] = [];
    for await (const chunk of await zip.openReadStreamPromise(entry)) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  } finally {
    zip.close();
  }
}

async function describe(path: string, filename: string): Promise<WheelInfo> {
  const sha256 = await memoSha256(path, () => sha256File(path));
  let metadata: Buffer;
  try {
    metadata = await readWheelMetadata(path, filename);
  } catch {
    // A wheel put into the folder by hand may be broken: it is still listed, without metadata.
    return { sha256 };
  }
  const info: WheelInfo = {
    sha256,
    metadata,
    metadataSha256: createHash("sha256").update(metadata).digest("hex"),
  };
  try {
    const requiresPython = parseCoreMetadata(metadata.toString("utf8")).requiresPython?.trim();
    if (requiresPython) info.requiresPython = requiresPython;
  } catch {
    // Metadata that does not parse is served as it is, only without Requires-Python.
  }
  return info;
}

/** Wheel facts by file version, for one server. */
export class WheelInfoCache {
  private readonly known = new Map<string, { version: string; info: Promise<WheelInfo> }>();

  async get(path: string, filename: string): Promise<WheelInfo> {
    const st = await stat(path, { bigint: true });
    const version = `${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`;
    const hit = this.known.get(path);
    if (hit?.version === version) return hit.info;
    const info = describe(path, filename);
    this.known.set(path, { version, info });
    // A failure (the file went away meanwhile) must not stick.
    info.catch(() => this.known.delete(path));
    return info;
  }
}
