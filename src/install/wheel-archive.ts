/**
 * Reading and checking a wheel archive (the binary distribution format, PEP 427/491): its zip
 * entries, its one .dist-info directory, WHEEL and RECORD, and extraction into a directory with
 * every file checked against RECORD on the way.
 */
import { createHash } from "node:crypto";
import {
  closeSync,
  fstatSync,
  mkdirSync,
  openSync,
  readSync,
  writeFileSync,
  writeSync,
} from "node:fs";
import { join } from "node:path";
import { Readable } from "node:stream";
import { getSystemErrorMap } from "node:util";
import yauzl from "yauzl";
import { parseCoreMetadata } from "../python/metadata.js";
import { normalizeName } from "../python/names.js";
import { parseWheelFilename } from "../python/tags.js";
import { UserError } from "../util/errors.js";
import { inflateEntry } from "./inflate.js";
import { type NativeAddon, type NativeFailure, nativeAddon } from "./native.js";
import {
  parseRecord,
  type RecordRow,
  recordAlgorithmKnown,
  recordDigest,
  recordHasher,
} from "./record.js";

/** A wheel that cannot be used; the message names the wheel and what is wrong with it. */
export class BadWheel extends UserError {
  constructor(wheel: string, reason: string) {
    super(`${wheel} is not a usable wheel: ${reason}.`);
    this.name = "BadWheel";
  }
}

/** One file of an unpacked wheel, with what RECORD and the zip say about it. */
export interface UnpackedFile {
  /** Path inside the wheel, exactly as the zip names it. */
  path: string;
  size: number;
  /** `sha256=<unpadded URL-safe base64>`, computed while extracting. */
  hash: string;
  /** 0o755 when the zip marks the file executable, else 0o644; a copy applies the umask. */
  mode: number;
}

/** What extraction learns about a wheel, besides its files' bytes. */
export interface WheelContents {
  filename: string;
  /** Name and Version from METADATA. */
  name: string;
  version: string;
  /** The `.dist-info` directory, e.g. "foo-1.0.dist-info". */
  distInfo: string;
  /** The `.data` directory, when the wheel has one. */
  dataDir?: string;
  wheelVersion: string;
  rootIsPurelib: boolean;
  files: UnpackedFile[];
}

/** The description extraction writes into an unpacked tree; no wheel may hold such a file. */
export const UNPACKED_MARKER = ".pyferry-unpacked.json";

/** The keys a `.data` directory may hold (the wheel spec's install scheme). */
const SCHEME_KEYS = new Set(["purelib", "platlib", "scripts", "headers", "data"]);

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;

/** Entries larger than this are streamed; smaller ones are read, inflated and written whole. */
const WHOLE_LIMIT = 32 * 1024 * 1024;

interface ZipFileEntry {
  name: string;
  entry: yauzl.Entry;
  executable: boolean;
}

/** An error's message as a clause: its first sentence, without the final period. */
function detail(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return (text.split(/\.\s/)[0] as string).replace(/\.$/, "");
}

function checkName(name: string, isDir: boolean, fail: (reason: string) => never): void {
  if (name.includes("\0")) fail(`an entry name holds a NUL character (${JSON.stringify(name)})`);
  if (name.startsWith("/") || /^[A-Za-z]:/.test(name)) {
    fail(`it contains the absolute path "${name}"`);
  }
  if (name.includes("\\")) fail(`the entry name "${name}" contains a backslash`);
  const parts = (isDir ? name.slice(0, -1) : name).split("/");
  if (parts.includes("..")) fail(`the entry "${name}" points outside the install directory`);
  if (parts.some((p) => p === "" || p === ".")) {
    fail(`the entry name "${name}" has an empty or "." component`);
  }
}

/**
 * yauzl's reads of one open file, made with readSync. yauzl's own fd reader sends each read
 * to libuv's pool, two per central directory entry: listing a wheel of 1,600 files took
 * 250-300 ms of waiting that way, a few milliseconds this way.
 */
class SyncFdReader extends yauzl.RandomAccessReader {
  constructor(private readonly fd: number) {
    super();
  }

  /** Fills what it can of the range; yauzl takes a short count for the end of the file. */
  private fill(buffer: Buffer, offset: number, length: number, position: number): number {
    let done = 0;
    while (done < length) {
      const n = readSync(this.fd, buffer, offset + done, length - done, position + done);
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null) => void,
  ): void {
    // yauzl passes the count on as fs.read's callback does; its typings leave it out.
    const done = callback as (err: Error | null, bytesRead?: number) => void;
    let n: number;
    try {
      n = this.fill(buffer, offset, length, position);
    } catch (err) {
      process.nextTick(done, err as Error);
      return;
    }
    process.nextTick(done, null, n);
  }

  override _readStreamForRange(start: number, end: number): Readable {
    const reader = this;
    return Readable.from(
      (function* () {
        for (let at = start; at < end; ) {
          const chunk = Buffer.allocUnsafe(Math.min(1 << 20, end - at));
          const n = reader.fill(chunk, 0, chunk.length, at);
          if (n === 0) return;
          at += n;
          yield chunk.subarray(0, n);
        }
      })(),
      { objectMode: false },
    );
  }
}

async function readEntries(source: number | Buffer, label: string): Promise<yauzl.ZipFile> {
  const options = {
    lazyEntries: true,
    // Names are decoded and checked below, with messages of our own.
    decodeStrings: false,
    validateEntrySizes: true,
  };
  try {
    if (typeof source !== "number") return await yauzl.fromBufferPromise(source, options);
    return await yauzl.fromRandomAccessReaderPromise(
      new SyncFdReader(source),
      fstatSync(source).size,
      {
        ...options,
        autoClose: false,
      },
    );
  } catch (err) {
    throw new BadWheel(label, `it is not a readable zip archive (${detail(err)})`);
  }
}

/** The archive's file entries, every name and type checked; directory entries are dropped. */
async function listFiles(zip: yauzl.ZipFile, label: string): Promise<ZipFileEntry[]> {
  const fail = (reason: string): never => {
    throw new BadWheel(label, reason);
  };
  const files: ZipFileEntry[] = [];
  const seen = new Set<string>();
  const dirs = new Set<string>();
  try {
    for await (const entry of zip.eachEntry()) {
      const name = yauzl.getFileNameLowLevel(
        entry.generalPurposeBitFlag,
        entry.fileNameRaw,
        entry.extraFields,
        true,
      );
      const isDir = name.endsWith("/");
      checkName(name, isDir, fail);
      if (seen.has(name)) fail(`it holds "${name}" twice`);
      seen.add(name);
      const mode = entry.externalFileAttributes >>> 16;
      const type = mode & S_IFMT;
      if (type === S_IFLNK) fail(`the entry "${name}" is a symbolic link`);
      if (type !== 0 && type !== S_IFREG && type !== S_IFDIR) {
        fail(`the entry "${name}" is a special file`);
      }
      if (isDir) {
        dirs.add(name.slice(0, -1));
        continue;
      }
      if (type === S_IFDIR) fail(`the entry "${name}" is a directory without a trailing "/"`);
      if (entry.isEncrypted()) fail(`the entry "${name}" is encrypted`);
      if (!entry.canDecodeFileData()) {
        fail(`the entry "${name}" uses compression method ${entry.compressionMethod}`);
      }
      if (name === UNPACKED_MARKER)
        fail(`it holds a file named "${name}", a name pyferry reserves`);
      // As pip decides it: only a regular-file mode with an execute bit makes a file executable.
      files.push({ name, entry, executable: type === S_IFREG && (mode & 0o111) !== 0 });
    }
  } catch (err) {
    if (err instanceof BadWheel) throw err;
    throw new BadWheel(label, `its zip directory is corrupt (${detail(err)})`);
  }
  const fileNames = new Set(files.map((f) => f.name));
  for (const d of [...parentDirs(fileNames), ...dirs]) {
    if (fileNames.has(d)) fail(`"${d}" is both a file and a directory`);
  }
  return files;
}

/** Every directory that holds one of `paths` (relative, "/"-separated), parents first. */
export function parentDirs(paths: Iterable<string>): string[] {
  const dirs = new Set<string>();
  for (const path of paths) {
    for (let i = path.lastIndexOf("/"); i > 0; i = path.lastIndexOf("/", i - 1)) {
      const dir = path.slice(0, i);
      if (dirs.has(dir)) break;
      dirs.add(dir);
    }
  }
  // A parent sorts before its children, which start with it and a "/".
  return [...dirs].sort();
}

/**
 * The archive: yauzl for the central directory and large entries; the wheel's bytes in memory
 * when the caller read it whole, else positional reads. Entries are read, inflated and written
 * with synchronous calls: extraction runs in worker threads (unpack-pool.ts), one wheel each,
 * where a round trip through libuv's thread pool per file only added lock contention. Read
 * bytes land in one scratch buffer reused for every entry: a fresh buffer each time was memory
 * V8 counts against its heap, and the collections it set off cost more than the reads.
 */
interface Archive {
  zip: yauzl.ZipFile;
  /** The whole wheel, or else `fd` to read it from. */
  bytes?: Buffer;
  fd: number;
  label: string;
  scratch: Buffer;
}

/**
 * Up to `length` bytes at `position`, at least `need` of them (fewer only where the file ends),
 * in the wheel's bytes or the scratch buffer: valid until the next call.
 */
function readAt(a: Archive, length: number, position: number, need = length): Buffer {
  if (a.bytes) {
    const end = Math.min(a.bytes.length, position + length);
    if (end - position < need) throw new Error("the archive ends early");
    return a.bytes.subarray(position, end);
  }
  if (a.scratch.length < length) {
    a.scratch = Buffer.allocUnsafe(Math.max(length, a.scratch.length * 2));
  }
  let done = 0;
  while (done < length) {
    const n = readSync(a.fd, a.scratch, done, length - done, position + done);
    if (n === 0) break;
    done += n;
  }
  if (done < need) throw new Error("the archive ends early");
  return a.scratch.subarray(0, done);
}

/** Room for a local header's extra field beyond what the central directory says it holds. */
const EXTRA_SLACK = 64;

/**
 * An entry's uncompressed bytes, for entries up to WHOLE_LIMIT, in a buffer the next read
 * reuses: `keep` asks for a copy of their own.
 */
function readEntry(a: Archive, f: ZipFileEntry, keep = false): Buffer {
  const e = f.entry;
  // The local header, its name and extra field, and the data, in one read when the local
  // extra field is no longer than the central directory's plus some slack (it nearly always is).
  const guess = 30 + e.fileNameLength + e.extraFieldLength + EXTRA_SLACK + e.compressedSize;
  let block = readAt(a, guess, e.relativeOffsetOfLocalHeader, 30);
  if (block.readUInt32LE(0) !== 0x04034b50) throw new Error("a local file header is missing");
  const skip = 30 + block.readUInt16LE(26) + block.readUInt16LE(28);
  if (skip + e.compressedSize > block.length) {
    block = readAt(a, skip + e.compressedSize, e.relativeOffsetOfLocalHeader);
  }
  const raw = block.subarray(skip, skip + e.compressedSize);
  if (e.compressionMethod === 0) {
    if (raw.length !== e.uncompressedSize)
      throw new Error("its size differs from the declared one");
    return keep ? Buffer.from(raw) : raw;
  }
  const data = inflateEntry(raw, e.uncompressedSize);
  return keep ? Buffer.from(data) : data;
}

function readSmall(a: Archive, f: ZipFileEntry): Buffer {
  try {
    return readEntry(a, f, true);
  } catch (err) {
    throw new BadWheel(a.label, `its entry "${f.name}" is corrupt (${detail(err)})`);
  }
}

/** RFC 822-style `Key: value` lines, as WHEEL uses; keys lower-cased, first value kept. */
function parseHeaders(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    const m = /^([^\s:]+):\s*(.*?)\s*$/.exec(line);
    if (m && !fields.has((m[1] as string).toLowerCase())) {
      fields.set((m[1] as string).toLowerCase(), m[2] as string);
    }
  }
  return fields;
}

interface Layout {
  distInfo: string;
  dataDir?: string;
}

/** Find the one .dist-info directory and check the top level against the file name. */
function checkLayout(files: ZipFileEntry[], label: string): Layout {
  const fail = (reason: string): never => {
    throw new BadWheel(label, reason);
  };
  const top = new Set(files.filter((f) => f.name.includes("/")).map((f) => f.name.split("/")[0]));
  const distInfos = [...top].filter((t) => t?.endsWith(".dist-info")) as string[];
  if (distInfos.length === 0) fail("it has no .dist-info directory");
  if (distInfos.length > 1) fail(`it has several .dist-info directories (${distInfos.join(", ")})`);
  const distInfo = distInfos[0] as string;
  const stem = distInfo.slice(0, -".dist-info".length);
  const wheelName = parseWheelFilename(label).normalized;
  if (normalizeName(stem.split("-")[0] as string) !== wheelName) {
    fail(`its directory ${distInfo} does not belong to the project ${wheelName}`);
  }
  const dataDirs = [...top].filter((t) => t?.endsWith(".data")) as string[];
  const dataDir = `${stem}.data`;
  for (const d of dataDirs) {
    if (d !== dataDir) fail(`its directory ${d} does not match ${distInfo}`);
  }
  for (const f of files) {
    if (!f.name.startsWith(`${dataDir}/`)) continue;
    const parts = f.name.split("/");
    if (parts.length < 3 || !SCHEME_KEYS.has(parts[1] as string)) {
      fail(`"${f.name}" is not under one of ${dataDir}/{${[...SCHEME_KEYS].join(",")}}`);
    }
  }
  return dataDirs.length > 0 ? { distInfo, dataDir } : { distInfo };
}

/** Files RECORD does not cover: RECORD itself and its signatures. */
function unhashed(distInfo: string): Set<string> {
  return new Set(["RECORD", "RECORD.jws", "RECORD.p7s"].map((n) => `${distInfo}/${n}`));
}

/** An error writing the unpacked tree (a full disk, a read-only folder): not the wheel's fault. */
class WriteFailure {
  constructor(readonly cause: unknown) {}
}

function writing<T>(write: () => T): T {
  try {
    return write();
  } catch (err) {
    throw new WriteFailure(err);
  }
}

/** Whether an entry is read, inflated and written whole (else it is streamed). */
function whole(f: ZipFileEntry): boolean {
  return f.entry.uncompressedSize <= WHOLE_LIMIT && f.entry.compressedSize <= WHOLE_LIMIT;
}

/**
 * Write `files` (each held whole) under `dest` with the native addon, returning their sha256
 * digests, 32 bytes each, in order. A write error is thrown as Node's fs would throw it; a
 * corrupt entry as BadWheel.
 */
function extractNatively(
  addon: NativeAddon,
  a: Archive,
  files: ZipFileEntry[],
  dest: string,
): Buffer {
  const meta = new Float64Array(files.length * 4);
  files.forEach((f, i) => {
    const e = f.entry;
    meta[4 * i] = e.relativeOffsetOfLocalHeader;
    meta[4 * i + 1] = e.compressedSize;
    meta[4 * i + 2] = e.uncompressedSize;
    meta[4 * i + 3] = (e.compressionMethod === 8 ? 1 : 0) | (f.executable ? 2 : 0);
  });
  const names = Buffer.from(files.map((f) => `${f.name}\0`).join(""));
  const digests = Buffer.allocUnsafe(files.length * 32);
  try {
    addon.extractFiles(a.bytes ?? a.fd, dest, names, meta, digests);
  } catch (err) {
    const { index, errno, syscall } = err as NativeFailure;
    const f = index === undefined ? undefined : files[index];
    if (errno === undefined) {
      throw new BadWheel(a.label, `its entry "${f?.name}" is corrupt (${detail(err)})`);
    }
    const path = f ? join(dest, f.name) : dest;
    const [code, description] = getSystemErrorMap().get(-errno) ?? [`errno ${errno}`, "failed"];
    const failure: NodeJS.ErrnoException = new Error(
      `${code}: ${description}, ${syscall} '${path}'`,
    );
    Object.assign(failure, { code, errno: -errno, syscall, path });
    throw failure;
  }
  return digests;
}

/** What writing an entry learnt: its size and digests (sha256, and RECORD's own). */
interface Extracted {
  size: number;
  sha256: string;
  recordHash: string;
}

/** Write one entry to `dest`. */
async function extractEntry(
  a: Archive,
  f: ZipFileEntry,
  dest: string,
  algorithm: string,
): Promise<Extracted> {
  const sha = createHash("sha256");
  const other = algorithm === "sha256" ? undefined : recordHasher(algorithm);
  const mode = f.executable ? 0o555 : 0o444;
  let size = 0;
  if (whole(f)) {
    const data = readEntry(a, f);
    sha.update(data);
    other?.update(data);
    size = data.length;
    // Created read-only: the open descriptor may still write; later opens for writing fail.
    writing(() => writeFileSync(dest, data, { mode, flag: "wx" }));
  } else {
    const stream = await a.zip.openReadStreamPromise(f.entry);
    const fd = writing(() => openSync(dest, "wx", mode));
    try {
      for await (const chunk of stream) {
        const data = chunk as Buffer;
        sha.update(data);
        other?.update(data);
        size += data.length;
        for (let done = 0; done < data.length; ) done += writing(() => writeSync(fd, data, done));
      }
    } finally {
      writing(() => closeSync(fd));
    }
  }
  const sha256 = recordDigest("sha256", sha.digest());
  return { size, sha256, recordHash: other ? recordDigest(algorithm, other.digest()) : sha256 };
}

/**
 * Extract the wheel at `path` (named `filename`) into `dest`, which must not exist: from
 * `bytes`, the wheel's contents, when the caller has read it whole. Every file is checked
 * against RECORD while it is written. Throws BadWheel (a UserError); the caller removes `dest`
 * on failure.
 */
export async function extractWheel(
  path: string,
  filename: string,
  dest: string,
  bytes?: Buffer,
): Promise<WheelContents> {
  const fail = (reason: string): never => {
    throw new BadWheel(filename, reason);
  };
  let fd = -1;
  if (!bytes) {
    try {
      fd = openSync(path, "r");
    } catch (err) {
      throw new BadWheel(filename, `it cannot be read (${detail(err)})`);
    }
  }
  let zip: yauzl.ZipFile;
  try {
    zip = await readEntries(bytes ?? fd, filename);
  } catch (err) {
    if (fd >= 0) closeSync(fd);
    throw err;
  }
  const a: Archive = {
    zip,
    ...(bytes ? { bytes } : {}),
    fd,
    label: filename,
    scratch: bytes ? Buffer.alloc(0) : Buffer.allocUnsafe(1 << 20),
  };
  try {
    const files = await listFiles(zip, filename);
    const { distInfo, dataDir } = checkLayout(files, filename);
    const byName = new Map(files.map((f) => [f.name, f]));
    const required = (name: string) =>
      byName.get(`${distInfo}/${name}`) ?? fail(`${distInfo} has no ${name} file`);
    const small = new Map<string, Buffer>();
    for (const name of ["WHEEL", "RECORD", "METADATA"]) {
      small.set(name, readSmall(a, required(name)));
    }
    const wheel = parseHeaders((small.get("WHEEL") as Buffer).toString("utf8"));
    const wheelVersion = wheel.get("wheel-version") ?? fail("its WHEEL file has no Wheel-Version");
    const major = /^(\d+)\.\d+/.exec(wheelVersion)?.[1];
    if (major === undefined) fail(`its Wheel-Version "${wheelVersion}" is not a version`);
    if (Number(major) > 1) fail(`its Wheel-Version is ${wheelVersion}, and only 1.x is supported`);
    let name = "";
    let version = "";
    try {
      ({ name, version } = parseCoreMetadata((small.get("METADATA") as Buffer).toString("utf8")));
    } catch (err) {
      fail(`its METADATA cannot be read (${detail(err)})`);
    }
    if (normalizeName(name) !== parseWheelFilename(filename).normalized) {
      fail(`its METADATA names the project ${name}`);
    }

    const record = new Map<string, RecordRow>();
    for (const row of parseRecord((small.get("RECORD") as Buffer).toString("utf8"))) {
      record.set(row.path, row);
    }
    const exempt = unhashed(distInfo);
    const expectation = (f: ZipFileEntry): { algorithm: string; row?: RecordRow } => {
      if (exempt.has(f.name)) return { algorithm: "sha256" };
      const row = record.get(f.name) ?? fail(`"${f.name}" is not listed in its RECORD`);
      const algorithm = row.hash.split("=", 1)[0] as string;
      if (row.hash === "") fail(`its RECORD gives no hash for "${f.name}"`);
      if (!recordAlgorithmKnown(algorithm)) {
        fail(`its RECORD uses the unsupported hash ${algorithm}`);
      }
      return { algorithm, row };
    };
    // Every file is judged against RECORD before any is written.
    const judged = files.map((f) => ({ f, ...expectation(f) }));

    mkdirSync(dest);
    for (const d of parentDirs(files.map((f) => f.name))) mkdirSync(join(dest, d));

    const extracted: UnpackedFile[] = [];
    const check = ({ f, row }: (typeof judged)[number], got: Extracted) => {
      if (row && row.hash !== got.recordHash) {
        fail(`"${f.name}" has hash ${got.recordHash}, but its RECORD says ${row.hash}`);
      }
      if (row && row.size !== "" && Number(row.size) !== got.size) {
        fail(`"${f.name}" is ${got.size} bytes, but its RECORD says ${row.size}`);
      }
      const mode = f.executable ? 0o755 : 0o644;
      extracted.push({ path: f.name, size: got.size, hash: got.sha256, mode });
    };
    // Entries held whole and hashed in sha256 (nearly all) are written by the addon at once.
    const addon = nativeAddon();
    const natively = addon ? judged.filter((j) => whole(j.f) && j.algorithm === "sha256") : [];
    if (addon && natively.length > 0) {
      const digests = extractNatively(
        addon,
        a,
        natively.map((j) => j.f),
        dest,
      );
      natively.forEach((j, i) => {
        const sha256 = recordDigest("sha256", digests.subarray(32 * i, 32 * i + 32));
        check(j, { size: j.f.entry.uncompressedSize, sha256, recordHash: sha256 });
      });
    }
    const done = new Set(natively);
    for (const j of judged) {
      if (done.has(j)) continue;
      let got: Extracted;
      try {
        got = await extractEntry(a, j.f, join(dest, j.f.name), j.algorithm);
      } catch (err) {
        if (err instanceof WriteFailure) throw err.cause;
        throw new BadWheel(filename, `its entry "${j.f.name}" is corrupt (${detail(err)})`);
      }
      check(j, got);
    }
    const rootIsPurelib = (wheel.get("root-is-purelib") ?? "").toLowerCase() === "true";
    return {
      filename,
      name,
      version,
      distInfo,
      ...(dataDir !== undefined ? { dataDir } : {}),
      wheelVersion,
      rootIsPurelib,
      files: extracted.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0)),
    };
  } finally {
    // Closes `fd` as well: yauzl owns a descriptor it was given.
    zip.close();
  }
}
