/**
 * The two DEFLATE decoders of src/install/inflate.ts: libdeflate (the native addon) and zlib.
 * Differential: every deflated entry of real wheels from the configured index decodes, with
 * each, to exactly what CPython's zipfile reads (which checks each entry's CRC-32). Bad streams
 * are refused in the same words by both.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { describe, test } from "node:test";
import { deflateRawSync } from "node:zlib";
import yauzl from "yauzl";
import { inflateEntry, inflateWithZlib } from "../../../src/install/inflate.js";
import { nativeAddon } from "../../../src/install/native.js";
import { indexWheels, python3 } from "../../support/corpus.js";

/** scripts/test.sh sets this once it has built the addon: then it must load. */
const REQUIRED = process.env.PYFERRY_REQUIRE_NATIVE === "1";
const native = nativeAddon();
const skipNative = native ? false : "the native addon is not built (npm run build:native)";

/** name -> sha256 of each deflated entry, as CPython's zipfile reads it. */
const REFERENCE = `
import hashlib, json, sys, zipfile
out = {}
for path in sys.argv[1:]:
    with zipfile.ZipFile(path) as z:
        out[path] = {i.filename: hashlib.sha256(z.read(i)).hexdigest()
                     for i in z.infolist() if i.compress_type == zipfile.ZIP_DEFLATED}
print(json.dumps(out))
`;

interface RawEntry {
  name: string;
  raw: Buffer;
  size: number;
}

/** The deflated entries of the wheel at `path`, each with its compressed bytes. */
async function deflatedEntries(path: string): Promise<RawEntry[]> {
  const bytes = readFileSync(path);
  const zip = await yauzl.fromBufferPromise(bytes, { lazyEntries: true });
  const out: RawEntry[] = [];
  for await (const e of zip.eachEntry()) {
    if (e.compressionMethod !== 8) continue;
    const at = e.relativeOffsetOfLocalHeader;
    const start = at + 30 + bytes.readUInt16LE(at + 26) + bytes.readUInt16LE(at + 28);
    out.push({
      name: e.fileName,
      raw: bytes.subarray(start, start + e.compressedSize),
      size: e.uncompressedSize,
    });
  }
  zip.close();
  return out;
}

const sha = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

describe("inflate", () => {
  test("the addon loads when the test run built it", () => {
    if (REQUIRED) assert.ok(native, "scripts/test.sh built native/, but it does not load");
  });

  test("real wheels: both decoders give CPython's bytes for every entry", async () => {
    const wheels = await indexWheels(40, 8 * 1024 * 1024);
    assert.ok(wheels.length >= 20, `only ${wheels.length} wheels on the index`);
    const reference = JSON.parse(
      execFileSync(python3(), ["-c", REFERENCE, ...wheels], {
        encoding: "utf8",
        maxBuffer: 1 << 28,
      }),
    ) as Record<string, Record<string, string>>;
    let entries = 0;
    for (const wheel of wheels) {
      const expected = reference[wheel] ?? {};
      const got = await deflatedEntries(wheel);
      assert.deepEqual(got.map((e) => e.name).sort(), Object.keys(expected).sort(), wheel);
      for (const e of got) {
        const want = expected[e.name];
        assert.equal(sha(inflateWithZlib(e.raw, e.size)), want, `zlib: ${wheel} ${e.name}`);
        if (native) {
          assert.equal(sha(inflateEntry(e.raw, e.size)), want, `libdeflate: ${wheel} ${e.name}`);
        }
        entries++;
      }
    }
    assert.ok(entries > 1000, `only ${entries} entries`);
  });

  test("sizes from empty to several MiB, text and noise, every level", () => {
    const inputs = [
      Buffer.alloc(0),
      Buffer.from("a"),
      Buffer.from("import os\n".repeat(100_000)),
      randomBytes(3 * 1024 * 1024),
      Buffer.concat([randomBytes(70_000), Buffer.alloc(70_000), randomBytes(1000)]),
    ];
    for (const input of inputs) {
      for (const level of [0, 1, 6, 9]) {
        const raw = deflateRawSync(input, { level });
        assert.ok(inflateWithZlib(raw, input.length).equals(input), `zlib, level ${level}`);
        assert.ok(inflateEntry(raw, input.length).equals(input), `inflateEntry, level ${level}`);
      }
    }
  });

  const bad = (() => {
    const text = Buffer.from("hello, wheel\n".repeat(2000));
    const raw = deflateRawSync(text);
    return {
      text,
      raw,
      // BFINAL set with block type 3, which DEFLATE reserves.
      reserved: Buffer.concat([Buffer.from([0xff]), raw.subarray(1)]),
      truncated: raw.subarray(0, raw.length - 8),
    };
  })();

  test("an entry declared empty that holds a byte: both say it inflates to more", () => {
    const one = deflateRawSync(Buffer.from("x"));
    assert.throws(
      () => inflateWithZlib(one, 0),
      /^Error: it inflates to more than its declared size$/,
    );
    assert.throws(
      () => inflateEntry(one, 0),
      /^Error: it inflates to more than its declared size$/,
    );
  });

  test("zlib: bad streams are refused in one clause", () => {
    assert.throws(
      () => inflateWithZlib(bad.raw, 100),
      /^Error: it inflates to more than its declared size$/,
    );
    assert.throws(
      () => inflateWithZlib(bad.reserved, bad.text.length),
      /^Error: its compressed data is invalid$/,
    );
    assert.throws(
      () => inflateWithZlib(bad.truncated, bad.text.length),
      /^Error: its compressed data is invalid$/,
    );
  });

  test("libdeflate: the same streams are refused in the same words", { skip: skipNative }, () => {
    const addon = native as NonNullable<typeof native>;
    const room = Buffer.alloc(bad.text.length);
    assert.throws(
      () => addon.inflateRaw(bad.raw, room.subarray(0, 100)),
      /^Error: it inflates to more than its declared size$/,
    );
    assert.throws(
      () => addon.inflateRaw(bad.reserved, room),
      /^Error: its compressed data is invalid$/,
    );
    assert.throws(
      () => addon.inflateRaw(bad.truncated, room),
      /^Error: its compressed data is invalid$/,
    );
    assert.throws(
      () => addon.inflateRaw("x" as unknown as Uint8Array, room),
      /^TypeError: the source must be a Uint8Array$/,
    );
    assert.throws(
      () => addon.inflateRaw(bad.raw, new Uint16Array(4) as unknown as Uint8Array),
      /^TypeError: the destination must be a Uint8Array$/,
    );
    // Fewer bytes than the room given is not an error here; inflateEntry holds the declared size.
    assert.equal(addon.inflateRaw(bad.raw, Buffer.alloc(bad.text.length + 10)), bad.text.length);
    assert.throws(
      () => inflateEntry(bad.raw, bad.text.length + 10),
      /^Error: (its size differs from the declared one|it inflates to more)/,
    );
  });

  test("inflateEntry reuses its buffer: a result is valid until the next call", {
    skip: skipNative,
  }, () => {
    const a = Buffer.from("first ".repeat(50));
    const b = Buffer.from("second".repeat(50));
    const first = inflateEntry(deflateRawSync(a), a.length);
    assert.ok(first.equals(a));
    inflateEntry(deflateRawSync(b), b.length);
    assert.ok(first.equals(b), "the first result's bytes are the second's now");
  });
});
