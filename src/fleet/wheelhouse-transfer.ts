import { createReadStream } from "node:fs";
import { open, readFile, rm } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import { ByteReader } from "../bundle/byte-reader.js";
import { BLOCK, encodeHeader, padding, RECORD, type TarEntry } from "../bundle/tar.js";
import { tarMembers } from "../bundle/tar-members.js";
import { normalizeName } from "../python/names.js";
import { parseWheelFilename } from "../python/tags.js";
import { isValidVersion, normalizeVersion } from "../python/version.js";
import { UserError } from "../util/errors.js";
import { planOutput, writeOutput } from "../util/output-file.js";
import { whyUnreadable } from "../util/read-text.js";
import {
  type AddOutcome,
  commitWheels,
  isWheelName,
  LOG_FILE,
  NameTaken,
  type StagedWheel,
  scratchDir,
  stageInPlace,
  WHEELS_DIR,
  type Wheelhouse,
  wheelFiles,
  withLock,
} from "./wheelhouse.js";
import { type LogRecord, parseLog } from "./wheelhouse-log.js";

/** Read in pieces of this size when copying a wheel into the archive. */
const CHUNK = 1 << 20;
/** Pax headers and release logs larger than this are not what an export writes. */
const MAX_PAX_BYTES = 1 << 20;
const MAX_LOG_BYTES = 256 << 20;

/** A reason an archive cannot be imported; turned into one sentence naming it. */
class Refused extends Error {}

function errCode(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code;
}

interface Member {
  entry: TarEntry;
  /** Content: a buffer, or a file whose first `entry.size` bytes are read. */
  data?: Buffer;
  source?: string;
}

async function* fileChunks(path: string, size: number): AsyncGenerator<Buffer> {
  const handle = await open(path, "r");
  try {
    for (let at = 0; at < size; ) {
      const buf = Buffer.alloc(Math.min(CHUNK, size - at));
      const { bytesRead } = await handle.read(buf, 0, buf.length, at);
      if (bytesRead === 0) throw new UserError(`${path} changed while it was being exported.`);
      at += bytesRead;
      yield buf.subarray(0, bytesRead);
    }
  } finally {
    await handle.close();
  }
}

/** The tar's bytes: every member with mtime 0 and fixed modes, then the end blocks. */
async function* tarStream(members: readonly Member[]): AsyncGenerator<Buffer> {
  let written = 0;
  for (const m of members) {
    const header = encodeHeader(m.entry);
    written += header.length;
    yield header;
    if (m.entry.type !== "file") continue;
    if (m.data) yield m.data;
    else if (m.source) yield* fileChunks(m.source, m.entry.size);
    const pad = Buffer.alloc(padding(m.entry.size));
    written += m.entry.size + pad.length;
    yield pad;
  }
  const end = 2 * BLOCK;
  yield Buffer.alloc(end + ((RECORD - ((written + end) % RECORD)) % RECORD));
}

/** Write the wheelhouse to `output` (a tar, replaced atomically); returns what went in. */
export async function exportWheelhouse(
  wh: Wheelhouse,
  output: string,
): Promise<{ wheels: number; bytes: number }> {
  const plan = await planOutput(output);
  // Under the lock, the wheels and the log are one state: no add or remove in between.
  return withLock(wh, async () => {
    const log = await readFile(wh.log).catch((err: unknown) => {
      if (errCode(err) === "ENOENT") return Buffer.alloc(0);
      throw err;
    });
    const wheels = await wheelFiles(wh);
    const members: Member[] = [
      {
        entry: { path: LOG_FILE, type: "file", mode: 0o644, size: log.length, mtime: 0 },
        data: log,
      },
      { entry: { path: WHEELS_DIR, type: "dir", mode: 0o755, size: 0, mtime: 0 } },
      ...wheels.map((w) => ({
        entry: {
          path: `${WHEELS_DIR}/${w.file}`,
          type: "file" as const,
          mode: 0o644,
          size: w.size,
          mtime: 0,
        },
        source: join(wh.wheels, w.file),
      })),
    ];
    await writeOutput(output, (out) => pipeline(Readable.from(tarStream(members)), out), plan);
    const bytes = wheels.reduce((n, w) => n + w.size, 0);
    return { wheels: wheels.length, bytes };
  });
}

/** The bytes of `archive`, gunzipped when it is gzip-compressed (tar.gz is accepted too). */
async function archiveChunks(archive: string): Promise<AsyncIterator<Buffer>> {
  const head = Buffer.alloc(2);
  const handle = await open(archive, "r").catch((err: unknown) => {
    throw new UserError(`Cannot read ${archive} (${whyUnreadable(err)}).`);
  });
  try {
    // A folder opens on Linux, and only reading it fails (EISDIR): say what it is instead.
    if ((await handle.stat()).isDirectory())
      throw new Refused("it is a folder, not a tar (pyferry wheelhouse export writes one)");
    await handle.read(head, 0, 2, 0);
  } finally {
    await handle.close();
  }
  const file = createReadStream(archive);
  if (head[0] !== 0x1f || head[1] !== 0x8b) return file[Symbol.asyncIterator]();
  const gunzip = createGunzip();
  file.on("error", (err) => gunzip.destroy(err));
  file.pipe(gunzip);
  return gunzip[Symbol.asyncIterator]();
}

/** A member's path as written, made plain: a leading "./" dropped. */
function memberPath(name: string): string {
  const shown = JSON.stringify(name);
  if (name.includes("\0")) throw new Refused(`a member name holds a NUL character`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) {
    throw new Refused(`it holds the absolute path ${shown}`);
  }
  const parts = name.split("/");
  if (parts.includes("..")) throw new Refused(`its member ${shown} points outside the wheelhouse`);
  return parts.filter((p) => p !== "" && p !== ".").join("/");
}

const TYPE_NAMES: Record<string, string> = {
  "1": "a hard link",
  "2": "a symbolic link",
  "3": "a character device",
  "4": "a block device",
  "6": "a fifo",
};

interface Extracted {
  /** Wheel file names, written into the staging folder under those names. */
  wheels: string[];
  log?: Buffer;
}

/** Read the archive, writing its wheels into `stage`; every member is checked first. */
async function extractArchive(archive: string, stage: string): Promise<Extracted> {
  let read = 0;
  try {
    return await extractMembers(archive, stage, () => read++);
  } catch (err) {
    // Not even one whole tar header (tar-members.ts): no export at all, rather than a cut one.
    if (
      err instanceof Refused &&
      read === 0 &&
      err.message.startsWith("what it holds is not a tar archive")
    )
      throw new Refused("it is not a wheelhouse export (pyferry wheelhouse export writes one)");
    throw err;
  }
}

async function extractMembers(
  archive: string,
  stage: string,
  onMember: () => void,
): Promise<Extracted> {
  const reader = new ByteReader(await archiveChunks(archive), (m) => new Refused(m));
  const out: Extracted = { wheels: [] };
  const seen = new Set<string>();
  const members = tarMembers(reader, (m) => new Refused(m), {
    maxMeta: MAX_PAX_BYTES,
    foreign: true,
  });
  for await (const h of members) {
    onMember();
    const { size } = h;
    const body = async (limit: number, what: string): Promise<Buffer> => {
      if (size > limit) throw new Refused(`${what} is too large`);
      return (await reader.read(size + padding(size))).subarray(0, size);
    };
    const raw = h.path;
    const shown = JSON.stringify(raw);
    const kind = TYPE_NAMES[h.typeflag];
    if (kind) throw new Refused(`its member ${shown} is ${kind}`);
    const path = memberPath(raw);
    if (h.typeflag === "5") {
      if (path !== "" && path !== WHEELS_DIR) {
        throw new Refused(`its folder ${shown} is not ${WHEELS_DIR}/`);
      }
      await reader.read(size + padding(size));
      continue;
    }
    if (h.typeflag !== "0" && h.typeflag !== "\0") {
      throw new Refused(
        `its member ${shown} is not a plain file (type ${JSON.stringify(h.typeflag)})`,
      );
    }
    const file = path.startsWith(`${WHEELS_DIR}/`) ? path.slice(WHEELS_DIR.length + 1) : undefined;
    const isWheel = file !== undefined && !file.includes("/") && isWheelName(file);
    if (path !== LOG_FILE && !isWheel) {
      throw new Refused(`its member ${shown} is neither ${LOG_FILE} nor a wheel in ${WHEELS_DIR}/`);
    }
    if (seen.has(path)) throw new Refused(`its member ${shown} appears twice`);
    seen.add(path);
    if (path === LOG_FILE) {
      out.log = await body(MAX_LOG_BYTES, `its ${LOG_FILE}`);
      continue;
    }
    const target = join(stage, file as string);
    const handle = await open(target, "wx", 0o644);
    try {
      for await (const chunk of reader.stream(size)) await handle.write(chunk);
    } finally {
      await handle.close();
    }
    await reader.read(padding(size));
    out.wheels.push(file as string);
  }
  await reader.drain();
  return out;
}

export interface ImportResult {
  outcomes: AddOutcome[];
  /** Records of the archive's log appended to this one. */
  merged: number;
  /**
   * Records of the archive's log left out: removes of wheels this wheelhouse still holds
   * (an import never removes, and the log must stay true of what is here).
   */
  skipped: LogRecord[];
  /** Lines of the archive's log that hold no record (skipped). */
  unreadable: number;
}

/**
 * What is wrong with an archive's release log, if anything: a record that is not one of a
 * wheel (its file name, project, version and sha256 agreeing), or one that says a wheel is
 * there which the archive does not hold. The log is history to keep, so it must be true.
 */
function logMismatch(
  records: readonly LogRecord[],
  wheels: readonly StagedWheel[],
): string | undefined {
  const present = new Map<string, string>();
  for (const r of records) {
    let ok = /^[0-9a-f]{64}$/.test(r.sha256) && !Number.isNaN(Date.parse(r.time));
    try {
      const w = parseWheelFilename(r.file);
      ok &&= w.normalized === normalizeName(r.name) && isValidVersion(r.version);
      ok &&= normalizeVersion(w.version) === normalizeVersion(r.version);
    } catch {
      ok = false;
    }
    if (!ok) return `has a record that is not one of a wheel (${r.action} ${r.file} ${r.sha256})`;
    if (r.action === "add") present.set(r.file, r.sha256);
    else if (present.get(r.file) === r.sha256) present.delete(r.file);
  }
  const held = new Map(wheels.map((w) => [w.file, w.sha256]));
  for (const [file, sha256] of present) {
    if (held.get(file) !== sha256)
      return `says ${file} (sha256 ${sha256.slice(0, 12)}...) is in it, and the archive does not hold that file`;
  }
  return undefined;
}

/** Import an exported wheelhouse into `wh` (which may be new). */
export async function importWheelhouse(wh: Wheelhouse, archive: string): Promise<ImportResult> {
  const stage = await scratchDir(wh, "import");
  try {
    let extracted: Extracted;
    try {
      extracted = await extractArchive(archive, stage);
    } catch (err) {
      if (err instanceof Refused) {
        throw new UserError(`${archive} cannot be imported: ${err.message}.`);
      }
      if (errCode(err) === "Z_DATA_ERROR" || errCode(err) === "Z_BUF_ERROR") {
        throw new UserError(`${archive} cannot be imported: its gzip data is corrupt.`);
      }
      throw err;
    }
    const staged: StagedWheel[] = [];
    for (const file of extracted.wheels) {
      staged.push(await stageInPlace(wh, join(stage, file), file));
    }
    const log = parseLog(extracted.log?.toString("utf8") ?? "");
    const wrong = logMismatch(log.records, staged);
    if (wrong) throw new UserError(`${archive} cannot be imported: its release log ${wrong}.`);
    const { outcomes, merged, skipped } = await commitWheels(wh, staged, {
      via: "import",
      history: log.records,
    }).catch((err: unknown) => {
      if (!(err instanceof NameTaken)) throw err;
      throw new UserError(
        `${archive} cannot be imported: the wheelhouse already holds a different ${err.file} (sha256 ${err.sha256.slice(0, 12)}...); remove one of them first.`,
      );
    });
    return { outcomes, merged, skipped, unreadable: log.unreadable.length };
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}
