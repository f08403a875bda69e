/**
 * Walking the members of a tar read from a ByteReader: pax extended headers applied (and, for
 * archives from other tools, pax globals and GNU long names), sizes checked. Each caller
 * decides what it accepts; this only reads headers.
 */
import type { ByteReader } from "./byte-reader.js";
import { BLOCK, decodeHeader, isZeroBlock, padding, parsePax } from "./tar.js";

export interface TarMember {
  /** As the archive names it (pax path or GNU long name applied). */
  path: string;
  linkname: string;
  typeflag: string;
  mode: number;
  size: number;
}

export interface MemberOptions {
  /** The largest pax header or long name read. */
  maxMeta: number;
  /** Also apply pax global headers ("g") and GNU long names ("L", "K"), as other tars write. */
  foreign?: boolean;
}

/**
 * The members of the archive, in order. The caller reads each member's body (`size` bytes and
 * their padding) before asking for the next one. Ends at the end-of-archive block.
 */
export async function* tarMembers(
  reader: ByteReader,
  fail: (message: string) => Error,
  opts: MemberOptions,
): AsyncGenerator<TarMember> {
  let pax = new Map<string, string>();
  let longName: string | undefined;
  let longLink: string | undefined;
  for (let first = true; ; first = false) {
    // Short of one header, or no header, at the very start: not a cut tar but none at all.
    if (first && !(await reader.has(BLOCK))) throw fail("what it holds is not a tar archive");
    const block = await reader.read(BLOCK);
    if (isZeroBlock(block)) return;
    const h = decodeHeader(block);
    if (typeof h === "string") throw fail(first ? `what it holds is not a tar archive (${h})` : h);
    const size = pax.has("size") ? Number(pax.get("size")) : h.size;
    if (!Number.isSafeInteger(size) || size < 0) throw fail("a pax size is malformed");
    const meta = async (what: string): Promise<Buffer> => {
      if (size > opts.maxMeta) throw fail(`${what} is too large`);
      return (await reader.read(size + padding(size))).subarray(0, size);
    };
    if (h.typeflag === "x" || (opts.foreign && h.typeflag === "g")) {
      const parsed = parsePax(await meta("a pax header"));
      if (typeof parsed === "string") throw fail(parsed);
      if (h.typeflag === "x") pax = parsed;
      continue;
    }
    if (opts.foreign && (h.typeflag === "L" || h.typeflag === "K")) {
      const text = (await meta("a long name")).toString("utf8").replace(/\0+$/, "");
      if (h.typeflag === "L") longName = text;
      else longLink = text;
      continue;
    }
    yield {
      path: pax.get("path") ?? longName ?? h.name,
      linkname: pax.get("linkpath") ?? longLink ?? h.linkname,
      typeflag: h.typeflag,
      mode: h.mode,
      size,
    };
    pax = new Map();
    longName = undefined;
    longLink = undefined;
  }
}
