/**
 * The core metadata of a distribution file on an index, read as cheaply as possible: the
 * index's separate `.metadata` file (PEP 658/714) when offered, else the one METADATA member
 * of a wheel found through the zip central directory (HTTP Range requests for remote files),
 * else an sdist's PKG-INFO when PEP 643 says its dependencies are static. Parsed results are
 * cached on disk by the file's sha256, so resolving again reads no distribution file.
 */
import { createHash } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { open, readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import { createGunzip, inflateRawSync } from "node:zlib";
import { type CoreMetadata, parseCoreMetadata } from "../python/metadata.js";
import { normalizeName } from "../python/names.js";
import { parseSdistFilename, parseWheelFilename } from "../python/tags.js";
import { compareVersions, isValidVersion } from "../python/version.js";
import { writeFileAtomic } from "../util/atomic.js";
import { cacheDir } from "../util/dirs.js";
import { UserError } from "../util/errors.js";
import { makeTempDir } from "../util/temp-dir.js";
import {
  fetchRange,
  HttpFailure,
  type HttpOptions,
  httpGet,
  redactUrl,
  statusFailure,
} from "./http.js";
import { type IndexFile, IndexUnavailable } from "./simple.js";

/** The file's metadata could not be had: unreadable archive, bad hash, missing member. */
export class MetadataUnavailable extends UserError {
  constructor(
    readonly filename: string,
    readonly reason: string,
  ) {
    super(`Cannot read the metadata of ${filename} because ${reason}.`);
    this.name = "MetadataUnavailable";
  }
}

/** An sdist whose dependencies are only known after building it (PEP 643). */
export class NeedsBuild extends UserError {
  constructor(
    readonly filename: string,
    readonly reason: string,
  ) {
    super(`${filename} must be built to learn its dependencies: ${reason}.`);
    this.name = "NeedsBuild";
  }
}

export interface MetadataOptions {
  /** Folder for the parsed-metadata cache; default cacheDir()/metadata; false disables it. */
  cache?: string | false;
  http?: HttpOptions;
}

const CACHE_FORMAT = 1;
/** EOCD record (22 bytes), its longest comment, and a zip64 locator before it. */
const EOCD_AREA = 22 + 0xffff + 20;
/** First remote read: covers the EOCD area, and most wheels' central directories. */
const REMOTE_TAIL = 256 * 1024;
/** No real METADATA or PKG-INFO comes near this; a bigger one is a broken or hostile file. */
const MAX_METADATA_BYTES = 16 * 1024 * 1024;

/** Random access to a file's bytes; `read` returns exactly [start, end). */
interface ByteSource {
  size: number;
  read(start: number, end: number): Promise<Buffer>;
  close(): Promise<void>;
}

async function localSource(path: string): Promise<ByteSource> {
  const handle = await open(path, "r");
  const size = (await handle.stat()).size;
  return {
    size,
    async read(start, end) {
      const buffer = Buffer.alloc(end - start);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, start);
      if (bytesRead !== buffer.length) throw new Error("the file ended early");
      return buffer;
    },
    close: () => handle.close(),
  };
}

/** A whole download in a temporary folder, for servers without Range support. */
async function downloadedSource(url: string, opts: HttpOptions): Promise<ByteSource> {
  const res = await httpGet(url, { "Accept-Encoding": "identity" }, opts);
  if (res.status !== 200) {
    await res.discard();
    throw statusFailure(res);
  }
  // Not inTempDir: the folder lives as long as the returned source, which close() ends.
  const dir = await makeTempDir("pyferry-dist-");
  try {
    const path = join(dir.path, "download");
    await pipeline(Readable.from(res.chunks()), createWriteStream(path));
    const source = await localSource(path);
    return {
      ...source,
      async close() {
        await source.close();
        await dir.remove();
      },
    };
  } catch (err) {
    await dir.remove();
    throw err;
  }
}

/** Remote bytes by Range requests; the first one fetches the tail, where zips keep their index. */
async function remoteSource(url: string, opts: HttpOptions): Promise<ByteSource> {
  const tail = await fetchRange(url, `-${REMOTE_TAIL}`, opts);
  if (!tail) return downloadedSource(url, opts);
  return {
    size: tail.total,
    async read(start, end) {
      if (start >= tail.start) return tail.data.subarray(start - tail.start, end - tail.start);
      const part = await fetchRange(url, `${start}-${end - 1}`, opts);
      if (!part || part.start !== start || part.data.length !== end - start) {
        throw new HttpFailure("the server did not honour a byte range request");
      }
      return part.data;
    },
    close: async () => undefined,
  };
}

function isRemote(url: string): boolean {
  return /^https?:/i.test(url);
}

function localPath(url: string): string {
  return url.startsWith("file:") ? fileURLToPath(url) : url;
}

interface ZipEntry {
  name: string;
  method: number;
  flags: number;
  compressedSize: number;
  size: number;
  localOffset: number;
}

/** The central directory's position, from the EOCD record (and its zip64 form if present). */
async function findCentralDirectory(src: ByteSource): Promise<{ offset: number; size: number }> {
  const start = Math.max(0, src.size - EOCD_AREA);
  const tail = await src.read(start, src.size);
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== 0x06054b50) continue;
    const locator = i - 20;
    if (locator >= 0 && tail.readUInt32LE(locator) === 0x07064b50) {
      const at = Number(tail.readBigUInt64LE(locator + 8));
      const record = await src.read(at, at + 56);
      if (record.readUInt32LE(0) !== 0x06064b50) throw new Error("its zip64 end record is missing");
      return {
        size: Number(record.readBigUInt64LE(40)),
        offset: Number(record.readBigUInt64LE(48)),
      };
    }
    return { size: tail.readUInt32LE(i + 12), offset: tail.readUInt32LE(i + 16) };
  }
  throw new Error("no end of central directory record was found");
}

/** Sizes and offset that do not fit 32 bits live in the zip64 extra field, in this order. */
function applyZip64(entry: ZipEntry, extra: Buffer): void {
  let i = 0;
  while (i + 4 <= extra.length) {
    const id = extra.readUInt16LE(i);
    const len = extra.readUInt16LE(i + 2);
    if (id === 0x0001) {
      let p = i + 4;
      const next = () => {
        const v = Number(extra.readBigUInt64LE(p));
        p += 8;
        return v;
      };
      if (entry.size === 0xffffffff) entry.size = next();
      if (entry.compressedSize === 0xffffffff) entry.compressedSize = next();
      if (entry.localOffset === 0xffffffff) entry.localOffset = next();
      return;
    }
    i += 4 + len;
  }
}

async function zipEntries(src: ByteSource): Promise<ZipEntry[]> {
  const cd = await findCentralDirectory(src);
  if (cd.offset + cd.size > src.size) throw new Error("its central directory is out of range");
  const data = await src.read(cd.offset, cd.offset + cd.size);
  const entries: ZipEntry[] = [];
  let p = 0;
  while (p + 46 <= data.length && data.readUInt32LE(p) === 0x02014b50) {
    const nameLen = data.readUInt16LE(p + 28);
    const extraLen = data.readUInt16LE(p + 30);
    const commentLen = data.readUInt16LE(p + 32);
    const flags = data.readUInt16LE(p + 8);
    const rawName = data.subarray(p + 46, p + 46 + nameLen);
    const entry: ZipEntry = {
      // Bit 11 marks UTF-8; the names looked for here are ASCII either way.
      name: rawName.toString(flags & 0x800 ? "utf8" : "latin1"),
      method: data.readUInt16LE(p + 10),
      flags,
      compressedSize: data.readUInt32LE(p + 20),
      size: data.readUInt32LE(p + 24),
      localOffset: data.readUInt32LE(p + 42),
    };
    applyZip64(entry, data.subarray(p + 46 + nameLen, p + 46 + nameLen + extraLen));
    entries.push(entry);
    p += 46 + nameLen + extraLen + commentLen;
  }
  return entries;
}

async function readZipEntry(src: ByteSource, entry: ZipEntry): Promise<Buffer> {
  if (entry.flags & 1) throw new Error(`${entry.name} is encrypted`);
  if (entry.size > MAX_METADATA_BYTES) throw new Error(`${entry.name} is implausibly large`);
  // The local header's own name and extra lengths may differ from the central directory's, so
  // read it first; for remote files the tail read usually holds it already.
  const header = await src.read(entry.localOffset, Math.min(src.size, entry.localOffset + 30));
  if (header.length < 30 || header.readUInt32LE(0) !== 0x04034b50) {
    throw new Error(`the local header of ${entry.name} is missing`);
  }
  const dataStart = entry.localOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
  const dataEnd = dataStart + entry.compressedSize;
  if (dataEnd > src.size) throw new Error(`${entry.name} runs past the end of the file`);
  const raw = await src.read(dataStart, dataEnd);
  let out: Buffer;
  if (entry.method === 0) out = raw;
  else if (entry.method === 8) out = inflateRawSync(raw, { maxOutputLength: MAX_METADATA_BYTES });
  else throw new Error(`${entry.name} uses unsupported compression method ${entry.method}`);
  if (out.length !== entry.size) throw new Error(`${entry.name} has the wrong length`);
  return out;
}

async function withSource<T>(
  file: IndexFile,
  opts: HttpOptions,
  use: (src: ByteSource) => Promise<T>,
): Promise<T> {
  const src = isRemote(file.url)
    ? await remoteSource(file.url, opts)
    : await localSource(localPath(file.url));
  try {
    return await use(src);
  } finally {
    await src.close();
  }
}

/** `<name>-<version>.dist-info/METADATA` of a wheel; the dist-info folder named after it wins. */
function pickMetadataEntry(entries: ZipEntry[], project: string): ZipEntry {
  const found = entries.filter((e) => /^[^/]+\.dist-info\/METADATA$/.test(e.name));
  const own = found.filter((e) => normalizeName(e.name.split("-")[0] ?? "") === project);
  const chosen = own.length === 1 ? own[0] : found.length === 1 ? found[0] : undefined;
  if (!chosen) {
    throw new Error(
      found.length === 0 ? "it has no .dist-info/METADATA" : "it has several .dist-info folders",
    );
  }
  return chosen;
}

async function wheelMetadataText(file: IndexFile, opts: HttpOptions): Promise<string> {
  const project = parseWheelFilename(file.filename).normalized;
  return withSource(file, opts, async (src) => {
    const entry = pickMetadataEntry(await zipEntries(src), project);
    return (await readZipEntry(src, entry)).toString("utf8");
  });
}

async function zipSdistPkgInfo(file: IndexFile, opts: HttpOptions): Promise<string> {
  return withSource(file, opts, async (src) => {
    const found = (await zipEntries(src)).filter((e) => /^[^/]+\/PKG-INFO$/.test(e.name));
    if (found.length !== 1) throw new Error("it has no top-level PKG-INFO");
    return (await readZipEntry(src, found[0] as ZipEntry)).toString("utf8");
  });
}

/** A tar header field: NUL-terminated text. */
function tarString(block: Buffer, start: number, length: number): string {
  const field = block.subarray(start, start + length);
  const end = field.indexOf(0);
  return field.subarray(0, end < 0 ? field.length : end).toString("utf8");
}

/** A tar size field: octal text, or base-256 when the high bit of the first byte is set. */
function tarSize(block: Buffer): number {
  if (block[124] !== undefined && block[124] & 0x80) {
    let n = 0;
    for (let i = 125; i < 136; i++) n = n * 256 + (block[i] as number);
    return n;
  }
  return Number.parseInt(tarString(block, 124, 12).trim() || "0", 8);
}

/** The `path` record of a pax extended header, if any. */
function paxPath(data: Buffer): string | undefined {
  let p = 0;
  let path: string | undefined;
  while (p < data.length) {
    const space = data.indexOf(0x20, p);
    if (space < 0) break;
    const len = Number(data.subarray(p, space).toString("ascii"));
    if (!Number.isInteger(len) || len <= 0) break;
    const record = data.subarray(space + 1, p + len - 1).toString("utf8");
    const eq = record.indexOf("=");
    if (record.slice(0, eq) === "path") path = record.slice(eq + 1);
    p += len;
  }
  return path;
}

/**
 * Find `<top>/PKG-INFO` in a gzipped tar by streaming it, and stop as soon as it is read: the
 * members before it are skipped, never stored.
 */
async function tarSdistPkgInfo(file: IndexFile, opts: HttpOptions): Promise<string> {
  let input: AsyncIterable<Uint8Array>;
  if (isRemote(file.url)) {
    const res = await httpGet(file.url, {}, opts);
    if (res.status !== 200) {
      await res.discard();
      throw statusFailure(res);
    }
    input = res.chunks();
  } else {
    input = createReadStream(localPath(file.url));
  }
  const gunzip = createGunzip();
  const source = Readable.from(input);
  source.on("error", (err) => gunzip.destroy(err));
  source.pipe(gunzip);
  let pending: Buffer = Buffer.alloc(0);
  let longName: string | undefined;
  // Bytes still to pass over of a member that is not wanted: skipped as they stream by.
  let skip = 0;
  try {
    for await (const chunk of gunzip) {
      let buf: Buffer = chunk as Buffer;
      if (skip > 0) {
        const n = Math.min(skip, buf.length);
        skip -= n;
        buf = buf.subarray(n);
      }
      pending = pending.length > 0 ? Buffer.concat([pending, buf]) : buf;
      while (pending.length >= 512) {
        const header = pending.subarray(0, 512);
        if (header.every((b) => b === 0)) throw new Error("it has no top-level PKG-INFO");
        const size = tarSize(header);
        const padded = Math.ceil(size / 512) * 512;
        const type = String.fromCharCode(header[156] ?? 0);
        let name = tarString(header, 0, 100);
        const prefix = tarString(header, 345, 155);
        if (tarString(header, 257, 5) === "ustar" && prefix) name = `${prefix}/${name}`;
        name = longName ?? name;
        const isPkgInfo = (type === "0" || type === "\0") && /^[^/]+\/PKG-INFO$/.test(name);
        // Long-name records (pax "x", GNU "L") and PKG-INFO itself are read; others skipped.
        const wanted = isPkgInfo || type === "x" || type === "L";
        if (wanted && size > MAX_METADATA_BYTES) throw new Error(`${name} is implausibly large`);
        if (wanted && pending.length < 512 + size) break;
        const data = pending.subarray(512, 512 + size);
        if (isPkgInfo) return data.toString("utf8");
        if (type === "x") longName = paxPath(data);
        else if (type === "L") longName = tarString(data, 0, data.length);
        else if (type !== "g") longName = undefined;
        if (pending.length >= 512 + padded) {
          pending = pending.subarray(512 + padded);
        } else {
          skip = 512 + padded - pending.length;
          pending = Buffer.alloc(0);
        }
      }
    }
    throw new Error("it has no top-level PKG-INFO");
  } finally {
    source.destroy();
    gunzip.destroy();
  }
}

/** PEP 643: trust PKG-INFO only from Metadata-Version 2.2 on, and only when not dynamic. */
function checkStatic(file: IndexFile, meta: CoreMetadata): void {
  const mv = meta.metadataVersion;
  if (!isValidVersion(mv) || compareVersions(mv, "2.2") < 0) {
    throw new NeedsBuild(file.filename, `its PKG-INFO has Metadata-Version ${mv || "(none)"}`);
  }
  const dynamic = (meta.fields.get("dynamic") ?? []).map((d) => d.trim().toLowerCase());
  if (dynamic.includes("requires-dist")) {
    throw new NeedsBuild(file.filename, "its PKG-INFO marks Requires-Dist as dynamic");
  }
}

function sha256Hex(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

/** PEP 658 metadata served next to the file; undefined when the index turns out not to have it. */
async function separateMetadata(file: IndexFile, opts: HttpOptions): Promise<Buffer | undefined> {
  const url = `${file.url}.metadata`;
  let data: Buffer;
  if (isRemote(url)) {
    const res = await httpGet(url, { "Accept-Encoding": "identity" }, opts);
    if (res.status === 404 || res.status === 410) {
      await res.discard();
      return undefined;
    }
    if (res.status !== 200) {
      await res.discard();
      throw statusFailure(res);
    }
    data = await res.bytes();
  } else {
    try {
      data = await readFile(localPath(url));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
  }
  const expected = typeof file.metadata === "object" ? file.metadata.sha256 : undefined;
  if (expected && sha256Hex(data) !== expected.toLowerCase()) {
    throw new MetadataUnavailable(
      file.filename,
      "its .metadata file does not match the sha256 the index gave for it",
    );
  }
  return data;
}

/**
 * The cache key: the file's sha256 when the index gave it; for a local file without one, a
 * hash of its path, size and modification time (hashing the file itself would read it all);
 * none for a remote file without a hash, which is then not cached.
 */
async function cacheKey(file: IndexFile): Promise<string | undefined> {
  const known = file.hashes.sha256?.toLowerCase();
  if (known && /^[0-9a-f]{64}$/.test(known)) return known;
  if (isRemote(file.url)) return undefined;
  const path = localPath(file.url);
  const info = await stat(path).catch(() => undefined);
  return info ? `local-${sha256Hex(`${path}\0${info.size}\0${info.mtimeMs}`)}` : undefined;
}

interface CachedMetadata {
  format: number;
  filename: string;
  metadata: Omit<CoreMetadata, "fields" | "description"> & { fields: [string, string[]][] };
}

function fromCache(text: string, filename: string): CoreMetadata | undefined {
  try {
    const c = JSON.parse(text) as CachedMetadata;
    if (c.format !== CACHE_FORMAT || c.filename !== filename) return undefined;
    return { ...c.metadata, fields: new Map(c.metadata.fields) };
  } catch {
    return undefined;
  }
}

function toCache(filename: string, meta: CoreMetadata): string {
  // The description is left out: it is often most of the bytes and nothing here reads it.
  const { fields, description: _description, ...rest } = meta;
  const entries = [...fields].filter(([k]) => k !== "description");
  const cached: CachedMetadata = {
    format: CACHE_FORMAT,
    filename,
    metadata: { ...rest, fields: entries },
  };
  return JSON.stringify(cached);
}

async function fetchMetadata(file: IndexFile, http: HttpOptions): Promise<CoreMetadata> {
  const name = file.filename.toLowerCase();
  try {
    if (file.metadata) {
      const data = await separateMetadata(file, http);
      if (data) return parseCoreMetadata(data.toString("utf8"));
    }
    if (name.endsWith(".whl")) return parseCoreMetadata(await wheelMetadataText(file, http));
    if (!parseSdistFilename(file.filename)) throw new Error("it is neither a wheel nor an sdist");
    const text = name.endsWith(".zip")
      ? await zipSdistPkgInfo(file, http)
      : await tarSdistPkgInfo(file, http);
    const meta = parseCoreMetadata(text);
    checkStatic(file, meta);
    return meta;
  } catch (err) {
    if (err instanceof UserError) throw err;
    // A network failure says nothing about the file: it is not reported as unusable.
    if (err instanceof HttpFailure) throw new IndexUnavailable(file.url, err.reason, "file");
    const code = (err as NodeJS.ErrnoException).code;
    const reason =
      code === "ENOENT"
        ? "the file does not exist"
        : `it is not a readable archive (${err instanceof Error ? err.message : String(err)})`;
    throw new MetadataUnavailable(file.filename, reason);
  }
}

/**
 * Core metadata of an index file. Throws NeedsBuild for an sdist whose PKG-INFO cannot be
 * trusted, MetadataUnavailable when the file is not a readable distribution, MetadataError
 * when its metadata is malformed, IndexUnavailable when the network fails. Without `opts.cache: false`, results are kept under cacheDir()/metadata.
 */
export async function distMetadata(
  file: IndexFile,
  opts: MetadataOptions = {},
): Promise<CoreMetadata> {
  const folder = opts.cache === false ? undefined : (opts.cache ?? join(cacheDir(), "metadata"));
  const key = folder ? await cacheKey(file) : undefined;
  const cachePath = folder && key ? join(folder, `${key}.json`) : undefined;
  if (cachePath) {
    const text = await readFile(cachePath, "utf8").catch(() => undefined);
    const cached = text === undefined ? undefined : fromCache(text, file.filename);
    if (cached) return cached;
  }
  const meta = await fetchMetadata(file, opts.http ?? {});
  // A cache that cannot be written only costs speed.
  if (cachePath)
    await writeFileAtomic(cachePath, toCache(file.filename, meta)).catch(() => undefined);
  return meta;
}

/**
 * The file's sha256: as the index gave it, else computed by streaming the file (once per local
 * file version: remembered under cacheDir()/sha256 by path, size and modification time).
 */
export async function fileSha256(file: IndexFile, opts: MetadataOptions = {}): Promise<string> {
  const known = file.hashes.sha256?.toLowerCase();
  if (known && /^[0-9a-f]{64}$/.test(known)) return known;
  const folder = opts.cache === false ? undefined : join(opts.cache ?? cacheDir(), "sha256");
  const key = folder ? await cacheKey(file) : undefined;
  const cachePath = folder && key ? join(folder, `${key}.txt`) : undefined;
  if (cachePath) {
    const text = (await readFile(cachePath, "utf8").catch(() => "")).trim();
    if (/^[0-9a-f]{64}$/.test(text)) return text;
  }
  const hash = createHash("sha256");
  try {
    if (isRemote(file.url)) {
      const res = await httpGet(file.url, { "Accept-Encoding": "identity" }, opts.http ?? {});
      if (res.status !== 200) {
        await res.discard();
        throw statusFailure(res);
      }
      for await (const chunk of res.chunks()) hash.update(chunk);
    } else {
      for await (const chunk of createReadStream(localPath(file.url))) hash.update(chunk as Buffer);
    }
  } catch (err) {
    const reason = err instanceof HttpFailure ? err.reason : (err as Error).message;
    throw new UserError(`Cannot read ${redactUrl(file.url)} to hash it: ${reason}.`);
  }
  const digest = hash.digest("hex");
  if (cachePath) await writeFileAtomic(cachePath, `${digest}\n`).catch(() => undefined);
  return digest;
}
