import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import type { IndexFile } from "../../../src/index/simple.js";
import {
  distMetadata,
  fileSha256,
  MetadataUnavailable,
  NeedsBuild,
} from "../../../src/index/wheel-metadata.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-wheelmeta-");
after(() => rmSync(root, { recursive: true, force: true }));

function metadataText(name: string, version: string, extra: string[] = []): string {
  return [
    "Metadata-Version: 2.1",
    `Name: ${name}`,
    `Version: ${version}`,
    "Requires-Python: >=3.9",
    "Requires-Dist: idna>=2",
    'Requires-Dist: pysocks; extra == "socks"',
    ...extra,
    "",
    "A long description body.",
  ].join("\n");
}

/** Python's zipfile and tarfile write the archives, so the reader is tested on real ones. */
function python(script: string, input: unknown): void {
  execFileSync("python3", ["-c", script], { input: JSON.stringify(input) });
}

function makeWheel(path: string, members: Record<string, string>): void {
  python(
    [
      "import json, sys, zipfile",
      "spec = json.load(sys.stdin)",
      "with zipfile.ZipFile(spec['path'], 'w', zipfile.ZIP_DEFLATED) as z:",
      "    for name, data in spec['members'].items(): z.writestr(name, data)",
    ].join("\n"),
    { path, members },
  );
}

/** A gzipped tar; `bulk` adds a large member of random bytes first, `longPath` one with a pax name. */
function makeTarGz(path: string, members: Record<string, string>, bulk = 0): void {
  python(
    [
      "import io, json, os, sys, tarfile",
      "spec = json.load(sys.stdin)",
      "def add(t, name, data):",
      "    info = tarfile.TarInfo(name); info.size = len(data); t.addfile(info, io.BytesIO(data))",
      "with tarfile.open(spec['path'], 'w:gz', format=tarfile.PAX_FORMAT) as t:",
      "    if spec['bulk']: add(t, 'pkg-1.0/' + 'x' * 120 + '.bin', os.urandom(spec['bulk']))",
      "    for name, data in spec['members'].items(): add(t, name, data.encode())",
    ].join("\n"),
    { path, members, bulk },
  );
}

function indexFile(path: string, extra: Partial<IndexFile> = {}): IndexFile {
  const filename = path.split("/").pop() as string;
  return { filename, url: pathToFileURL(path).href, hashes: {}, yanked: false, ...extra };
}

function sha256(data: Buffer | string): string {
  return createHash("sha256").update(data).digest("hex");
}

// Random bytes do not compress: the wheel is mostly this member, far from the central directory.
const padding = randomBytes(2_000_000).toString("base64");
const wheelPath = join(root, "demo_pkg-1.0-py3-none-any.whl");
makeWheel(wheelPath, {
  "demo_pkg/__init__.py": "",
  "demo_pkg/blob.txt": padding,
  "other_vendored-2.0.dist-info/METADATA": metadataText("other-vendored", "2.0"),
  "demo_pkg-1.0.dist-info/METADATA": metadataText("Demo_Pkg", "1.0"),
  "demo_pkg-1.0.dist-info/RECORD": "",
});

async function fileServer(ranges: boolean) {
  const log: { path: string; bytes: number }[] = [];
  const server = createServer((req, res) => {
    const name = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    let data: Buffer;
    try {
      data = readFileSync(join(root, name));
    } catch {
      res.statusCode = 404;
      res.end();
      return;
    }
    const m = /^bytes=(\d*)-(\d*)$/.exec(req.headers.range ?? "");
    if (ranges && m) {
      const start = m[1] ? Number(m[1]) : Math.max(0, data.length - Number(m[2]));
      const end = m[1] && m[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
      res.statusCode = 206;
      res.setHeader("Content-Range", `bytes ${start}-${end}/${data.length}`);
      data = data.subarray(start, end + 1);
    }
    log.push({ path: name, bytes: data.length });
    res.end(data);
  });
  await new Promise<void>((go) => server.listen(0, "127.0.0.1", go));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, log };
}

describe("distMetadata", () => {
  test("reads a local wheel's own METADATA member", async () => {
    const meta = await distMetadata(indexFile(wheelPath), { cache: false });
    assert.equal(meta.name, "Demo_Pkg");
    assert.equal(meta.version, "1.0");
    assert.equal(meta.requiresPython, ">=3.9");
    assert.deepEqual(meta.requiresDist, ["idna>=2", 'pysocks; extra == "socks"']);
  });

  test("reads a remote wheel with a few small Range requests", async () => {
    const server = await fileServer(true);
    const url = `${server.base}/demo_pkg-1.0-py3-none-any.whl`;
    const meta = await distMetadata({ ...indexFile(wheelPath), url }, { cache: false });
    assert.equal(meta.version, "1.0");
    const total = server.log.reduce((n, r) => n + r.bytes, 0);
    assert.ok(server.log.length <= 3, `${server.log.length} requests`);
    assert.ok(total < 300_000, `${total} bytes for a ${readFileSync(wheelPath).length}-byte wheel`);
  });

  test("still works when the server ignores Range, and removes its whole download", async () => {
    const server = await fileServer(false);
    const url = `${server.base}/demo_pkg-1.0-py3-none-any.whl`;
    const tmp = tempDir("tmp-", root);
    const saved = process.env.TMPDIR;
    process.env.TMPDIR = tmp;
    try {
      const meta = await distMetadata({ ...indexFile(wheelPath), url }, { cache: false });
      assert.equal(meta.name, "Demo_Pkg");
    } finally {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    }
    assert.deepEqual(readdirSync(tmp), []);
  });

  test("uses the index's separate .metadata file, checking its hash", async () => {
    const server = await fileServer(true);
    const served = join(root, "served-1.0-py3-none-any.whl");
    writeFileSync(served, "not a zip at all");
    const text = metadataText("served", "1.0");
    writeFileSync(`${served}.metadata`, text);
    const file: IndexFile = {
      ...indexFile(served),
      url: `${server.base}/served-1.0-py3-none-any.whl`,
      metadata: { sha256: sha256(text) },
    };
    assert.equal((await distMetadata(file, { cache: false })).name, "served");
    assert.deepEqual(
      server.log.map((r) => r.path),
      ["/served-1.0-py3-none-any.whl.metadata"],
    );
    await assert.rejects(
      distMetadata({ ...file, metadata: { sha256: "0".repeat(64) } }, { cache: false }),
      (err: Error) => err instanceof MetadataUnavailable && /does not match/.test(err.message),
    );
    // Advertised but missing: the wheel itself is read instead.
    const fallback = { ...indexFile(wheelPath), metadata: true as const };
    assert.equal((await distMetadata(fallback, { cache: false })).name, "Demo_Pkg");
  });

  test("trusts an sdist's PKG-INFO only when its dependencies are static", async () => {
    const good = join(root, "pkg-1.0.tar.gz");
    makeTarGz(
      good,
      {
        "pkg-1.0/setup.py": "",
        "pkg-1.0/PKG-INFO": metadataText("pkg", "1.0").replace("2.1", "2.2"),
      },
      3_000_000,
    );
    const meta = await distMetadata(indexFile(good), { cache: false });
    assert.deepEqual(meta.requiresDist, ["idna>=2", 'pysocks; extra == "socks"']);

    const old = join(root, "old-1.0.tar.gz");
    makeTarGz(old, { "old-1.0/PKG-INFO": metadataText("old", "1.0") });
    await assert.rejects(distMetadata(indexFile(old), { cache: false }), NeedsBuild);

    const dynamic = join(root, "dyn-1.0.zip");
    const pkgInfo = metadataText("dyn", "1.0", ["Dynamic: requires-dist"]).replace("2.1", "2.4");
    makeWheel(dynamic, { "dyn-1.0/PKG-INFO": pkgInfo });
    await assert.rejects(
      distMetadata(indexFile(dynamic), { cache: false }),
      (err: Error) => err instanceof NeedsBuild && /dynamic/.test(err.message),
    );

    const zipped = join(root, "zipped-1.0.zip");
    makeWheel(zipped, {
      "zipped-1.0/PKG-INFO": metadataText("zipped", "1.0").replace("2.1", "2.3"),
    });
    assert.equal((await distMetadata(indexFile(zipped), { cache: false })).name, "zipped");
  });

  test("reports unreadable files as MetadataUnavailable", async () => {
    const broken = join(root, "broken-1.0-py3-none-any.whl");
    writeFileSync(broken, "PK not really");
    await assert.rejects(distMetadata(indexFile(broken), { cache: false }), MetadataUnavailable);
    const empty = join(root, "empty-1.0-py3-none-any.whl");
    makeWheel(empty, { "empty/__init__.py": "" });
    await assert.rejects(
      distMetadata(indexFile(empty), { cache: false }),
      /has no \.dist-info\/METADATA/,
    );
    await assert.rejects(
      distMetadata(indexFile(join(root, "gone-1.0-py3-none-any.whl")), { cache: false }),
      /does not exist/,
    );
  });

  test("caches parsed metadata by the file's hash, so a second read opens no file", async () => {
    const cache = join(root, "cache");
    const path = join(root, "cached-1.0-py3-none-any.whl");
    makeWheel(path, { "cached-1.0.dist-info/METADATA": metadataText("cached", "1.0") });
    const hash = sha256(readFileSync(path));
    const file = indexFile(path, { hashes: { sha256: hash } });
    const first = await distMetadata(file, { cache });
    assert.deepEqual(readdirSync(cache), [`${hash}.json`]);
    renameSync(path, `${path}.moved`);
    const second = await distMetadata(file, { cache });
    // The cache keeps everything but the description, which nothing here reads.
    const strip = (m: typeof first) => ({ ...m, description: undefined, fields: [...m.fields] });
    assert.deepEqual(strip(second), strip(first));
    assert.equal(second.description, undefined);
    await assert.rejects(distMetadata(file, { cache: false }), MetadataUnavailable);
  });
});

describe("fileSha256", () => {
  test("uses the index's hash, else hashes the file", async () => {
    const given = "a".repeat(64);
    assert.equal(await fileSha256(indexFile(wheelPath, { hashes: { sha256: given } })), given);
    const computed = await fileSha256(indexFile(wheelPath), { cache: join(root, "hashcache") });
    assert.equal(computed, sha256(readFileSync(wheelPath)));
  });
});
