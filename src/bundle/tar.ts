/**
 * The tar format, as far as bundles use it: POSIX ustar headers, with a pax extended header
 * in front of an entry only when its path or link target does not fit ustar's fields or its
 * size does not fit 11 octal digits. Written from the POSIX pax/ustar specification.
 */

export const BLOCK = 512;
/** GNU and BSD tar write archives in records of 20 blocks; padding to one keeps them quiet. */
export const RECORD = 20 * BLOCK;

/** "hardlink": a link to a path already on the extracting side (the remote store's objects). */
export type EntryType = "file" | "dir" | "symlink" | "hardlink";

export interface TarEntry {
  /** Path inside the archive, "/"-separated, without a trailing "/" for directories. */
  path: string;
  type: EntryType;
  mode: number;
  /** Bytes of content (files only; 0 otherwise). */
  size: number;
  mtime: number;
  /** Link target (symlinks and hardlinks). */
  linkname?: string;
}

const TYPEFLAG: Record<EntryType, string> = { file: "0", dir: "5", symlink: "2", hardlink: "1" };
/** The largest size 11 octal digits hold. */
const MAX_OCTAL_SIZE = 0o77777777777;

/** Bytes of padding that bring `size` to a whole number of blocks. */
export function padding(size: number): number {
  return (BLOCK - (size % BLOCK)) % BLOCK;
}

function writeString(buf: Buffer, offset: number, length: number, value: Buffer): void {
  value.copy(buf, offset, 0, length);
}

function writeOctal(buf: Buffer, offset: number, length: number, value: number): void {
  // length-1 zero-padded octal digits and a NUL, as ustar readers expect.
  buf.write(`${value.toString(8).padStart(length - 1, "0")}\0`, offset, length, "latin1");
}

/** One pax record: "<len> <key>=<value>\n", where <len> counts the whole record in bytes. */
function paxRecord(key: string, value: string): string {
  const rest = ` ${key}=${value}\n`;
  const restBytes = Buffer.byteLength(rest);
  let len = restBytes + 1;
  while (String(len).length + restBytes !== len) len = String(len).length + restBytes;
  return `${len}${rest}`;
}

/**
 * Where a name of 101 to 256 bytes splits into ustar's prefix (up to 155 bytes) and name (up
 * to 100) fields at a "/", or -1 when it cannot: such names need no pax header.
 */
function ustarSplit(name: Buffer): number {
  const last = Math.min(155, name.length - 2);
  for (let i = last; i >= name.length - 101 && i > 0; i--) if (name[i] === 0x2f) return i;
  return -1;
}

function ustarHeader(
  name: Buffer,
  flag: string,
  mode: number,
  size: number,
  mtime: number,
  linkname: Buffer,
): Buffer {
  const h = Buffer.alloc(BLOCK);
  const split = name.length > 100 ? ustarSplit(name) : -1;
  if (split > 0) {
    writeString(h, 345, 155, name.subarray(0, split));
    writeString(h, 0, 100, name.subarray(split + 1));
  } else writeString(h, 0, 100, name);
  writeOctal(h, 100, 8, mode);
  writeOctal(h, 108, 8, 0);
  writeOctal(h, 116, 8, 0);
  writeOctal(h, 124, 12, size);
  writeOctal(h, 136, 12, mtime);
  h.write(flag, 156, 1, "latin1");
  writeString(h, 157, 100, linkname);
  h.write("ustar\0" + "00", 257, 8, "latin1");
  // uname/gname stay empty and devmajor/devminor zero: nothing about the packing machine leaks.
  writeOctal(h, 329, 8, 0);
  writeOctal(h, 337, 8, 0);
  h.write("        ", 148, 8, "latin1");
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += h[i] as number;
  h.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return h;
}

/** The header block(s) for one entry: a pax header first when ustar cannot hold it. */
export function encodeHeader(e: TarEntry): Buffer {
  const fullName = Buffer.from(e.type === "dir" ? `${e.path}/` : e.path, "utf8");
  const link = Buffer.from(e.linkname ?? "", "utf8");
  const size = e.type === "file" ? e.size : 0;
  let pax = "";
  const fits = fullName.length <= 100 || ustarSplit(fullName) > 0;
  if (!fits) pax += paxRecord("path", e.type === "dir" ? `${e.path}/` : e.path);
  if (link.length > 100) pax += paxRecord("linkpath", e.linkname ?? "");
  if (size > MAX_OCTAL_SIZE) pax += paxRecord("size", String(size));
  const header = ustarHeader(
    fits ? fullName : fullName.subarray(0, 100),
    TYPEFLAG[e.type],
    e.mode,
    size > MAX_OCTAL_SIZE ? 0 : size,
    e.mtime,
    link.length > 100 ? link.subarray(0, 100) : link,
  );
  if (pax === "") return header;
  const body = Buffer.from(pax, "utf8");
  // The pax header's own name is fixed, so that the bytes do not depend on who packed.
  const paxName = Buffer.from("PaxHeader", "utf8");
  return Buffer.concat([
    ustarHeader(paxName, "x", 0o644, body.length, e.mtime, Buffer.alloc(0)),
    body,
    Buffer.alloc(padding(body.length)),
    header,
  ]);
}

/** A header as read back, before pax records are applied. */
export interface RawHeader {
  name: string;
  mode: number;
  size: number;
  typeflag: string;
  linkname: string;
}

function readString(buf: Buffer, offset: number, length: number): string {
  const field = buf.subarray(offset, offset + length);
  const end = field.indexOf(0);
  return field.subarray(0, end === -1 ? length : end).toString("utf8");
}

function readOctal(buf: Buffer, offset: number, length: number): number | undefined {
  const text = buf
    .subarray(offset, offset + length)
    .toString("latin1")
    .replace(/[\0 ]+$/, "")
    .replace(/^ +/, "");
  if (text === "") return 0;
  return /^[0-7]+$/.test(text) ? Number.parseInt(text, 8) : undefined;
}

/** True for the all-zero block that marks the end of an archive. */
export function isZeroBlock(block: Buffer): boolean {
  for (const b of block) if (b !== 0) return false;
  return true;
}

/** Decode one header block; a string is the reason it is not a valid ustar header. */
export function decodeHeader(block: Buffer): RawHeader | string {
  const stored = readOctal(block, 148, 8);
  let sum = 0;
  for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 0x20 : block[i];
  if (stored === undefined || stored !== sum) return "a header checksum does not match";
  if (block.toString("latin1", 257, 262) !== "ustar") return "a header is not in ustar format";
  const mode = readOctal(block, 100, 8);
  const size = readOctal(block, 124, 12);
  if (mode === undefined || size === undefined) return "a header has a malformed number";
  const prefix = readString(block, 345, 155);
  const name = readString(block, 0, 100);
  return {
    name: prefix === "" ? name : `${prefix}/${name}`,
    mode,
    size,
    typeflag: block.toString("latin1", 156, 157),
    linkname: readString(block, 157, 100),
  };
}

/** Parse a pax extended header's body into its records; a string is the reason it is malformed. */
export function parsePax(body: Buffer): Map<string, string> | string {
  const out = new Map<string, string>();
  let at = 0;
  while (at < body.length) {
    const space = body.indexOf(0x20, at);
    const len = space === -1 ? Number.NaN : Number(body.toString("latin1", at, space));
    if (!Number.isInteger(len) || len <= 0 || at + len > body.length || body[at + len - 1] !== 0x0a)
      return "a pax header is malformed";
    const record = body.toString("utf8", space + 1, at + len - 1);
    const eq = record.indexOf("=");
    if (eq <= 0) return "a pax header is malformed";
    out.set(record.slice(0, eq), record.slice(eq + 1));
    at += len;
  }
  return out;
}
