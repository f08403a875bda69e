/**
 * Turning a .py file's bytes into text the way CPython does: a UTF-8 BOM, or a PEP 263
 * coding declaration in the first two lines, else UTF-8 (strict).
 */

import { TextDecoder } from "node:util";

const CODING = /^[ \t\f]*#.*?coding[:=][ \t]*([-\w.]+)/;

/** Encodings CPython accepts that TextDecoder names differently. */
const ALIASES: Record<string, string> = {
  "latin-1": "latin1",
  latin_1: "latin1",
  "iso-latin-1": "latin1",
  "utf-8-sig": "utf-8",
  utf8: "utf-8",
  utf_8: "utf-8",
  ascii: "utf-8",
  "us-ascii": "utf-8",
  euc_jp: "euc-jp",
  shift_jis: "shift_jis",
  cp1252: "windows-1252",
};

export type DecodeResult = { text: string } | { error: string };

function firstLines(buf: Uint8Array): string {
  let end = 0;
  let lines = 0;
  while (end < buf.length && end < 4096) {
    if (buf[end] === 10 && ++lines === 2) break;
    end++;
  }
  return Buffer.from(buf.subarray(0, end)).toString("latin1");
}

/**
 * The encoding a PEP 263 line declares: as written (lower-cased) and as TextDecoder names it;
 * undefined when no line does.
 */
export function declaredEncoding(buf: Uint8Array): { name: string; encoding: string } | undefined {
  const head = firstLines(buf).split(/\r?\n|\r/);
  for (let i = 0; i < Math.min(2, head.length); i++) {
    const line = head[i] ?? "";
    const m = CODING.exec(line);
    if (m?.[1]) {
      const name = m[1].toLowerCase();
      return { name, encoding: ALIASES[name] ?? name.replace(/_/g, "-") };
    }
    // Only a comment or blank first line lets the second line declare the encoding.
    if (!/^[ \t\f]*(#.*)?$/.test(line)) break;
  }
  return undefined;
}

export function decodePythonSource(buf: Uint8Array): DecodeResult {
  let body = buf;
  let bom = false;
  if (buf[0] === 0xef && buf[1] === 0xbb && buf[2] === 0xbf) {
    body = buf.subarray(3);
    bom = true;
  }
  const declared = declaredEncoding(body);
  const encoding = declared?.encoding ?? "utf-8";
  // CPython only accepts a BOM beside a declaration it normalizes to "utf-8" itself.
  if (bom && declared !== undefined && !/^utf[-_]8(-|$)/.test(declared.name)) {
    return { error: `a UTF-8 byte order mark conflicts with the declared encoding '${encoding}'` };
  }
  let decoder: TextDecoder;
  try {
    decoder = new TextDecoder(encoding, { fatal: true });
  } catch {
    return { error: `unknown source encoding '${encoding}'` };
  }
  try {
    return { text: decoder.decode(body) };
  } catch {
    return { error: `the file is not valid ${encoding} text (binary data?)` };
  }
}
