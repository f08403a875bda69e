import { createWriteStream } from "node:fs";
import { open } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { fileURLToPath } from "node:url";
import yauzl from "yauzl";
import { inTempDir } from "../util/temp-dir.js";
import {
  fetchRange,
  HttpFailure,
  type HttpOptions,
  httpGet,
  type RangeBytes,
  redactUrl,
  statusFailure,
} from "./http.js";

/** A wheel whose file list could not be read; the message names the file and the reason. */
export class WheelUnreadable extends Error {
  constructor(
    readonly source: string,
    readonly reason: string,
  ) {
    super(`Could not list the files in ${redactUrl(source)} because ${reason}.`);
    this.name = "WheelUnreadable";
  }
}

/** The end-of-central-directory record is 22 bytes plus a comment of at most 65535 bytes. */
const MAX_EOCD = 22 + 0xffff;
/** What yauzl reads from the end to find that record: it, and a zip64 locator before it. */
const EOCD_AREA = 20 + MAX_EOCD;
/**
 * First HTTP request: the EOCD area plus room for a typical wheel's whole central directory,
 * to save a round trip. Locally only the EOCD area is read first, as yauzl itself does.
 */
const REMOTE_TAIL_BYTES = 256 * 1024;

function collectNames(zip: yauzl.ZipFile): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const names: string[] = [];
    zip.on("entry", (entry: yauzl.Entry) => {
      names.push(entry.fileName);
      zip.readEntry();
    });
    zip.on("end", () => resolve(names));
    zip.on("error", reject);
    zip.readEntry();
  });
}

function reasonOf(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "it does not exist";
  if (code === "EACCES" || code === "EPERM") return "permission was denied";
  const message = err instanceof Error ? err.message : String(err);
  return `it is not a valid zip file (${message})`;
}

/** Serves yauzl's reads from the bytes held in memory: the file's tail from `start` on. */
class TailReader extends yauzl.RandomAccessReader {
  constructor(
    private readonly data: Buffer,
    private readonly start: number,
  ) {
    super();
  }

  override read(
    buffer: Buffer,
    offset: number,
    length: number,
    position: number,
    callback: (err: Error | null) => void,
  ): void {
    const from = position - this.start;
    if (from < 0 || from + length > this.data.length) {
      setImmediate(() =>
        callback(new Error(`offset ${position} lies outside its central directory`)),
      );
      return;
    }
    this.data.copy(buffer, offset, from, from + length);
    setImmediate(() => callback(null));
  }
}

/** Offset of the central directory (and the zip64 end record, if any) from the file's tail. */
function findDirectory(tail: Buffer): { cdOffset: number; zip64Record?: number } {
  const lowest = Math.max(0, tail.length - MAX_EOCD);
  for (let i = tail.length - 22; i >= lowest; i--) {
    if (tail.readUInt32LE(i) !== 0x06054b50) continue;
    const cdOffset = tail.readUInt32LE(i + 16);
    const locator = i - 20;
    if (locator >= 0 && tail.readUInt32LE(locator) === 0x07064b50) {
      return { cdOffset, zip64Record: Number(tail.readBigUInt64LE(locator + 8)) };
    }
    return { cdOffset };
  }
  throw new Error("no end of central directory record was found");
}

/**
 * Read the entry names given the file's tail and a way to read earlier bytes: the central
 * directory is loaded into memory in at most two more reads, then yauzl walks it there
 * (reading entry by entry from a file or over HTTP would take one read per entry).
 */
async function namesFromTail(
  first: RangeBytes,
  readRange: (start: number, end: number) => Promise<Buffer>,
): Promise<string[]> {
  let { data, start } = first;
  const extendTo = async (offset: number) => {
    if (offset >= start) return;
    if (offset < 0) throw new Error(`an offset (${offset}) is out of range`);
    data = Buffer.concat([await readRange(offset, start), data]);
    start = offset;
  };
  const found = findDirectory(data);
  let cdOffset = found.cdOffset;
  if (found.zip64Record !== undefined) {
    if (found.zip64Record > first.total) throw new Error("its zip64 end record is out of range");
    await extendTo(found.zip64Record);
    const rec = found.zip64Record - start;
    if (data.readUInt32LE(rec) !== 0x06064b50) throw new Error("its zip64 end record is missing");
    cdOffset = Number(data.readBigUInt64LE(rec + 48));
  }
  if (cdOffset > first.total) throw new Error("its central directory offset is out of range");
  await extendTo(cdOffset);
  const reader = new TailReader(data, start);
  const zip = await yauzl.fromRandomAccessReaderPromise(reader, first.total, { autoClose: true });
  return collectNames(zip);
}

async function localNames(path: string): Promise<string[]> {
  const file = await open(path, "r");
  try {
    const read = async (start: number, end: number) => {
      const buffer = Buffer.alloc(end - start);
      const { bytesRead } = await file.read(buffer, 0, buffer.length, start);
      return buffer.subarray(0, bytesRead);
    };
    const total = (await file.stat()).size;
    const start = Math.max(0, total - EOCD_AREA);
    return await namesFromTail({ data: await read(start, total), start, total }, read);
  } finally {
    await file.close();
  }
}

async function remoteNames(url: string, opts: HttpOptions): Promise<string[]> {
  const first = await fetchRange(url, `-${REMOTE_TAIL_BYTES}`, opts);
  if (!first) return downloadedNames(url, opts);
  return namesFromTail(first, async (start, end) => {
    const more = await fetchRange(url, `${start}-${end - 1}`, opts);
    if (!more || more.start !== start || more.data.length !== end - start) {
      throw new HttpFailure("the server did not honour a byte range request");
    }
    return more.data;
  });
}

/** For servers that ignore Range: download to a temporary file and read that. */
async function downloadedNames(url: string, opts: HttpOptions): Promise<string[]> {
  const res = await httpGet(url, { "Accept-Encoding": "identity" }, opts);
  if (res.status !== 200) {
    await res.discard();
    throw statusFailure(res);
  }
  return inTempDir("pyferry-wheel-", async (dir) => {
    const path = join(dir, "wheel.zip");
    await pipeline(Readable.from(res.chunks()), createWriteStream(path));
    return localNames(path);
  });
}

/**
 * The names of the files inside a wheel (or any zip), read from its central directory only,
 * never from the entries' data: over HTTP that takes one or two Range requests.
 */
export async function wheelFileNames(source: string, opts: HttpOptions = {}): Promise<string[]> {
  try {
    if (/^https?:/i.test(source)) return await remoteNames(source, opts);
    return await localNames(source.startsWith("file:") ? fileURLToPath(source) : source);
  } catch (err) {
    if (err instanceof HttpFailure) throw new WheelUnreadable(source, err.reason);
    throw new WheelUnreadable(source, reasonOf(err));
  }
}
