/**
 * Raw DEFLATE decoding of whole zip entries, whose sizes are known beforehand: with libdeflate
 * through pyferry's native addon (native.ts) when npm install could build it, about 1.7 times
 * as fast as zlib and into a buffer that is reused; else with Node's zlib.
 */
import { inflateRawSync } from "node:zlib";
import { type NativeAddon, nativeAddon } from "./native.js";

/** What both decoders say of a stream that holds more than it should, or is not DEFLATE. */
const TOO_LONG = "it inflates to more than its declared size";
const INVALID = "its compressed data is invalid";

/**
 * The bytes `raw` inflates to, with zlib, refusing more than `size` of them: inflating no
 * further than the declared size stops a zip bomb early.
 */
export function inflateWithZlib(raw: Uint8Array, size: number): Buffer {
  let out: Buffer;
  try {
    out = inflateRawSync(raw, {
      maxOutputLength: Math.max(1, size),
      // One output buffer per entry, sized to it: zlib's default 16 KiB pieces are joined by a
      // copy, a buffer of exactly the size makes Node allocate a second one for the end of the
      // stream, and a larger minimum made every small file cost that much.
      chunkSize: size + 64,
    });
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (code === "ERR_BUFFER_TOO_LARGE") throw new Error(TOO_LONG);
    if (typeof code === "string" && code.startsWith("Z_")) throw new Error(INVALID);
    throw err;
  }
  // zlib needs room for one byte: an entry declared empty may have filled it.
  if (out.length > size) throw new Error(TOO_LONG);
  return out;
}

let out = Buffer.allocUnsafe(0);

/**
 * The bytes `raw` inflates to, which must be `size` of them (else it throws). With the addon
 * they are in a buffer the next call reuses: valid until then.
 */
export function inflateEntry(raw: Uint8Array, size: number): Buffer {
  const addon = nativeAddon();
  const data = addon ? inflateInto(addon, raw, size) : inflateWithZlib(raw, size);
  if (data.length !== size) throw new Error("its size differs from the declared one");
  return data;
}

function inflateInto(addon: NativeAddon, raw: Uint8Array, size: number): Buffer {
  if (out.length < size)
    out = Buffer.allocUnsafe(Math.max(size, Math.min(2 * out.length, 1 << 25)));
  return out.subarray(0, addon.inflateRaw(raw, out.subarray(0, size)));
}
