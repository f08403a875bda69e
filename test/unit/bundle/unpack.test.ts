import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { gzipSync } from "node:zlib";
import type { Manifest } from "../../../src/bundle/manifest.js";
import { packBundle } from "../../../src/bundle/pack.js";
import { encodeHeader, padding } from "../../../src/bundle/tar.js";
import { unpackBundle } from "../../../src/bundle/unpack.js";
import { UserError } from "../../../src/util/errors.js";
import { fakeEnv, testHead } from "../../support/bundle-child.js";
import { tempDir } from "../../support/temp.js";

/** A raw tar entry, including kinds our writer never produces. */
interface Raw {
  path: string;
  /** ustar typeflag: "0" file, "1" hard link, "2" symlink, "3" char device, "5" dir, "6" FIFO. */
  flag: string;
  data?: Buffer;
  linkname?: string;
}

function header(e: Raw): Buffer {
  const type = e.flag === "5" ? "dir" : e.flag === "2" ? "symlink" : "file";
  const size = e.flag === "0" ? (e.data?.length ?? 0) : 0;
  const h = encodeHeader({ path: e.path, type, mode: 0o644, size, mtime: 0, linkname: e.linkname });
  // Set the type of the last (ustar) block and its checksum again.
  const last = h.subarray(h.length - 512);
  last.write(e.flag, 156, 1, "latin1");
  last.fill(0x20, 148, 156);
  let sum = 0;
  for (const b of last) sum += b;
  last.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, 8, "latin1");
  return h;
}

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

/** The manifest that honestly describes `entries`. */
function manifestFor(entries: Raw[]): Manifest {
  const m: Manifest = { ...testHead(), files: {}, links: {} };
  for (const e of entries) {
    if (e.flag === "0")
      m.files[e.path] = {
        sha256: sha(e.data ?? Buffer.alloc(0)),
        size: e.data?.length ?? 0,
        mode: 0o644,
      };
    if (e.flag === "2")
      m.links[e.path] = {
        target: e.linkname ?? "",
        external: e.linkname?.startsWith("/") === true,
      };
  }
  return m;
}

function tarOf(entries: Raw[], manifest: unknown): Buffer {
  const body = Buffer.from(JSON.stringify(manifest));
  const parts = [
    header({ path: "manifest.json", flag: "0", data: body }),
    body,
    Buffer.alloc(padding(body.length)),
  ];
  for (const e of entries) {
    parts.push(header(e));
    if (e.flag === "0" && e.data) parts.push(e.data, Buffer.alloc(padding(e.data.length)));
  }
  parts.push(Buffer.alloc(1024));
  return Buffer.concat(parts);
}

/** A fresh folder holding `archive.tar.gz` with these bytes. */
function archive(bytes: Buffer): { dir: string; file: string } {
  const dir = tempDir("pyferry-hostile-");
  const file = join(dir, "archive.tar.gz");
  writeFileSync(file, bytes);
  return { dir, file };
}

const FILE = (path: string, text = "x"): Raw => ({ path, flag: "0", data: Buffer.from(text) });

/** Unpacking must fail with one UserError matching `message` and leave nothing behind. */
async function refuses(bytes: Buffer, message: RegExp): Promise<void> {
  const { dir, file } = archive(bytes);
  const dest = join(dir, "out", "bundle");
  mkdirSync(join(dir, "out"));
  await assert.rejects(unpackBundle(file, dest), (err: unknown) => {
    assert.ok(err instanceof UserError, String(err));
    assert.match(
      err.message,
      /^(The bundle (manifest in )?)?.*archive\.tar\.gz (cannot be unpacked|is truncated or corrupt|is invalid|is not a pyferry bundle)/,
    );
    assert.match(err.message, message);
    return true;
  });
  assert.deepEqual(readdirSync(join(dir, "out")), [], "no partial tree is left");
  assert.deepEqual(readdirSync(dir).sort(), ["archive.tar.gz", "out"], "nothing escaped");
}

describe("hostile and broken archives are refused, leaving nothing", () => {
  test("paths that leave the destination", async () => {
    const evil = `/tmp/pyferry-abs-${randomBytes(4).toString("hex")}`;
    for (const path of [
      "../evil",
      "env/../../evil",
      "env/../evil",
      evil,
      "./env/x",
      "etc/passwd",
    ]) {
      const entries = [FILE("env/ok"), FILE(path)];
      await refuses(
        gzipSync(tarOf(entries, manifestFor([entries[0]]))),
        /not a relative path under env\/ or app\//,
      );
    }
    assert.ok(!existsSync(evil));
  });

  test("symlinks that leave the bundle, unless recorded as the env's base interpreter", async () => {
    const inside = (flag: Raw[]) => gzipSync(tarOf(flag, manifestFor(flag)));
    const up: Raw = { path: "env/esc", flag: "2", linkname: "../../.." };
    await refuses(inside([up]), /symlink "env\/esc" points outside/);
    const abs: Raw = { path: "app/etc", flag: "2", linkname: "/etc" };
    await refuses(inside([abs]), /symlink "app\/etc" points outside/);
    // Recorded as external under env/: allowed, but nothing may be written through it.
    const root: Raw = { path: "env/root", flag: "2", linkname: "/" };
    await refuses(
      inside([root, FILE("env/root/pwned")]),
      /"env\/root\/pwned" lies inside a symlink/,
    );
    // A link whose manifest record lies about where it points.
    const lie = [{ path: "env/l", flag: "2", linkname: "../x" }];
    const m = manifestFor(lie);
    m.links["env/l"] = { target: "../x", external: true };
    await refuses(gzipSync(tarOf(lie, m)), /recorded wrongly/);
    const unlisted = [{ path: "env/l", flag: "2", linkname: "x" }];
    await refuses(
      gzipSync(tarOf(unlisted, manifestFor([]))),
      /symlink "env\/l" is not in its manifest/,
    );
  });

  test("an app link that leaves through another link, and folders beyond count", async () => {
    const inside = (flag: Raw[]) => gzipSync(tarOf(flag, manifestFor(flag)));
    const root: Raw = { path: "env/b", flag: "2", linkname: "/" };
    const detour: Raw = { path: "app/c", flag: "2", linkname: "../env/b/etc" };
    await refuses(
      inside([root, detour]),
      /symlink "app\/c" points outside the bundle through other links/,
    );
    const loop = [
      { path: "app/x", flag: "2", linkname: "y" },
      { path: "app/y", flag: "2", linkname: "x/z" },
    ];
    await refuses(inside(loop), /symlink "app\/x" points outside the bundle through other links/);
    const dirs: Raw[] = Array.from({ length: 4100 }, (_, i) => ({ path: `env/d${i}`, flag: "5" }));
    await refuses(inside(dirs), /more than 4096 folders its manifest does not account for/);
  });

  test("hard links, devices and FIFOs", async () => {
    for (const [flag, message] of [
      ["1", /hard link/],
      ["3", /device or a FIFO/],
      ["4", /device or a FIFO/],
      ["6", /device or a FIFO/],
      ["L", /unsupported tar type "L"/],
    ] as const) {
      const entries = [{ path: "env/x", flag, linkname: "/etc/passwd" }];
      await refuses(gzipSync(tarOf(entries, manifestFor([]))), message);
    }
  });

  test("content that does not match the manifest", async () => {
    const entries = [FILE("env/a", "real")];
    const wrongHash = manifestFor(entries);
    wrongHash.files["env/a"].sha256 = sha(Buffer.from("fake"));
    await refuses(
      gzipSync(tarOf(entries, wrongHash)),
      /content of "env\/a" does not match its manifest's sha256/,
    );
    const wrongSize = manifestFor(entries);
    wrongSize.files["env/a"].size = 99;
    await refuses(gzipSync(tarOf(entries, wrongSize)), /size of "env\/a" differs/);
    await refuses(
      gzipSync(tarOf(entries, manifestFor([]))),
      /file "env\/a" is not in its manifest/,
    );
    const missing = manifestFor([...entries, FILE("app/gone.py")]);
    await refuses(gzipSync(tarOf(entries, missing)), /lists app\/gone\.py, which it lacks/);
    await refuses(gzipSync(tarOf([...entries, ...entries], manifestFor(entries))), /appears twice/);
    await refuses(
      gzipSync(tarOf(entries, { ...manifestFor(entries), format: 9 })),
      /manifest .* is invalid/,
    );
  });

  test("archives that are not bundles, truncated or corrupt", async () => {
    const plain = Buffer.concat([
      header(FILE("env/a")),
      Buffer.from("x"),
      Buffer.alloc(511 + 1024),
    ]);
    await refuses(gzipSync(plain), /does not start with manifest\.json/);
    await refuses(
      Buffer.from("not an archive at all"),
      /is not a pyferry bundle \(it is not gzip-compressed\)/,
    );
    await refuses(gzipSync(Buffer.alloc(0)), /what it holds is not a tar archive\.$/);
    await refuses(gzipSync(Buffer.from("hello\n")), /what it holds is not a tar archive\.$/);
    await refuses(
      gzipSync(Buffer.from("some text, ".repeat(100))),
      /what it holds is not a tar archive \(/,
    );

    const env = fakeEnv();
    const good = join(tempDir("pyferry-good-"), "b.tar.gz");
    await packBundle({ envDir: env, appFiles: [], manifest: testHead(), output: good, level: 1 });
    const bytes = readFileSync(good);
    await refuses(bytes.subarray(0, Math.floor(bytes.length / 2)), /truncated or corrupt/);
    await refuses(bytes.subarray(0, bytes.length - 4), /truncated or corrupt/);
    const flipped = Buffer.from(bytes);
    flipped[Math.floor(bytes.length * 0.6)] ^= 0xff;
    await refuses(flipped, /./);
    // A complete gzip stream around a tar cut short, and one cut inside a header.
    const tar = tarOf(
      [FILE("env/a", "y".repeat(5000))],
      manifestFor([FILE("env/a", "y".repeat(5000))]),
    );
    const at = tar.indexOf("env/a\0");
    assert.equal(at % 512, 0, "the file's header");
    await refuses(gzipSync(tar.subarray(0, at + 512 * 3)), /it is truncated/);
    await refuses(gzipSync(tar.subarray(0, at + 100)), /it is truncated/);
    const badChecksum = Buffer.from(tar);
    badChecksum[at + 1] ^= 1;
    await refuses(gzipSync(badChecksum), /header checksum does not match/);
  });
});

test("a recorded link to the base interpreter is created as it was", async () => {
  const entries: Raw[] = [
    { path: "env/bin", flag: "5" },
    { path: "env/bin/python", flag: "2", linkname: "python3" },
    { path: "env/bin/python3", flag: "2", linkname: "/usr/bin/python3" },
    FILE("app/main.py", "print(1)\n"),
  ];
  const { dir, file } = archive(gzipSync(tarOf(entries, manifestFor(entries))));
  const dest = join(dir, "u");
  const m = await unpackBundle(file, dest);
  assert.equal(m.links["env/bin/python3"].external, true);
  assert.equal(readlinkSync(join(dest, "env/bin/python3")), "/usr/bin/python3");
  assert.equal(readlinkSync(join(dest, "env/bin/python")), "python3");
  assert.equal(readFileSync(join(dest, "app/main.py"), "utf8"), "print(1)\n");
  await assert.rejects(unpackBundle(file, dest), /already exists/);
  await assert.rejects(
    unpackBundle(join(dir, "nope.tar.gz"), join(dir, "v")),
    /nope\.tar\.gz does not exist/,
  );
});
