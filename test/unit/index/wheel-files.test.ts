import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { WheelUnreadable, wheelFileNames } from "../../../src/index/wheel-files.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-wheelfiles-");
after(() => rmSync(root, { recursive: true, force: true }));

/** Write a zip with Python's zipfile; `filler` adds that many empty entries (for zip64). */
function makeZip(path: string, files: Record<string, string>, filler = 0): void {
  const script = [
    "import json, sys, zipfile",
    "spec = json.load(sys.stdin)",
    "with zipfile.ZipFile(spec['path'], 'w', zipfile.ZIP_DEFLATED) as z:",
    "    for name, data in spec['files'].items(): z.writestr(name, data)",
    "    for i in range(spec['filler']): z.writestr('filler/%d' % i, '')",
  ].join("\n");
  execFileSync("python3", ["-c", script], { input: JSON.stringify({ path, files, filler }) });
}

/** Serve files from `root` over HTTP, with or without Range support, logging each request. */
async function fileServer(ranges: boolean) {
  const log: { path: string; range?: string; bytes: number }[] = [];
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const name = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
    let data: Buffer;
    try {
      data = readFileSync(join(root, name));
    } catch {
      res.statusCode = 404;
      res.end();
      return;
    }
    const range = req.headers.range;
    const m = /^bytes=(\d*)-(\d*)$/.exec(range ?? "");
    if (ranges && m) {
      const start = m[1] ? Number(m[1]) : Math.max(0, data.length - Number(m[2]));
      const end = m[1] && m[2] ? Math.min(Number(m[2]), data.length - 1) : data.length - 1;
      res.statusCode = 206;
      res.setHeader("Content-Range", `bytes ${start}-${end}/${data.length}`);
      data = data.subarray(start, end + 1);
    }
    log.push({ path: name, range, bytes: data.length });
    res.end(data);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  return { base: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, log };
}

const small = join(root, "demo-1.0-py3-none-any.whl");
const smallFiles = {
  "demo/__init__.py": "x = 1\n".repeat(1000),
  "demo/ünï.py": "",
  "demo-1.0.dist-info/RECORD": "",
};
makeZip(small, smallFiles);
// More than 65535 entries forces zip64 end records, and a central directory larger than the
// first tail read.
const big = join(root, "big-1.0-py3-none-any.whl");
makeZip(big, { "big/__init__.py": "" }, 70_000);
// Mostly entry data, with a tiny central directory: reads must stay near the end.
const padded = join(root, "padded-1.0-py3-none-any.whl");
const noise = randomBytes(300_000).toString("base64");
makeZip(padded, { "padded/__init__.py": "", "padded/blob.txt": noise });

describe("wheelFileNames", () => {
  test("lists a local wheel by path or file URL", async () => {
    const expected = Object.keys(smallFiles);
    assert.deepEqual(await wheelFileNames(small), expected);
    assert.deepEqual(await wheelFileNames(pathToFileURL(small).href), expected);
  });

  test("reads only the end of a large wheel", async () => {
    assert.deepEqual(await wheelFileNames(padded), ["padded/__init__.py", "padded/blob.txt"]);
    const { base, log } = await fileServer(true);
    const names = await wheelFileNames(`${base}/padded-1.0-py3-none-any.whl`);
    assert.deepEqual(names, ["padded/__init__.py", "padded/blob.txt"]);
    assert.equal(log.length, 1);
    assert.ok((log[0]?.bytes ?? 0) < statSync(padded).size);
  });

  test("reads zip64 archives", async () => {
    const names = await wheelFileNames(big);
    assert.equal(names.length, 70_001);
    assert.equal(names[0], "big/__init__.py");
  });

  test("over HTTP reads only the tail and central directory with Range requests", async () => {
    const { base, log } = await fileServer(true);
    assert.deepEqual(
      await wheelFileNames(`${base}/${small.split("/").pop()}`),
      Object.keys(smallFiles),
    );
    assert.equal(log.length, 1);
    log.length = 0;
    const names = await wheelFileNames(`${base}/big-1.0-py3-none-any.whl`);
    assert.equal(names.length, 70_001);
    assert.equal(log.length, 2, "the tail, then the rest of the central directory");
    const read = log.reduce((n, r) => n + r.bytes, 0);
    // Every entry is tiny here, so the file is almost all central directory; what matters is
    // that the local headers before it (30 bytes and a name per entry) were not read.
    assert.ok(read < statSync(big).size - 70_000 * 30, `${read} bytes read`);
  });

  test("over HTTP without Range support, downloads the file instead", async () => {
    const { base, log } = await fileServer(false);
    assert.deepEqual(
      await wheelFileNames(`${base}/${small.split("/").pop()}`),
      Object.keys(smallFiles),
    );
    assert.equal(log.length, 2);
  });

  test("a missing remote wheel is reported with its URL and status", async () => {
    const { base } = await fileServer(true);
    await assert.rejects(wheelFileNames(`${base}/nope-1.0-py3-none-any.whl`), (err) => {
      assert.ok(err instanceof WheelUnreadable);
      assert.match(
        err.message,
        /nope-1\.0-py3-none-any\.whl because the server answered HTTP 404\.$/,
      );
      return true;
    });
  });

  test("corrupt, truncated, empty and missing files give a sentence naming the file", async () => {
    const garbage = join(root, "garbage-1.0-py3-none-any.whl");
    writeFileSync(garbage, Buffer.alloc(5000, 7));
    const truncated = join(root, "truncated-1.0-py3-none-any.whl");
    writeFileSync(truncated, readFileSync(small).subarray(0, statSync(small).size / 2));
    const empty = join(root, "empty-1.0-py3-none-any.whl");
    writeFileSync(empty, "");
    for (const path of [garbage, truncated, empty]) {
      await assert.rejects(wheelFileNames(path), (err) => {
        assert.ok(err instanceof WheelUnreadable);
        assert.equal(
          err.message,
          `Could not list the files in ${path} because it is not a valid zip file (no end of central directory record was found).`,
        );
        return true;
      });
    }
    // An end record whose directory offset points past the file's end.
    const lying = join(root, "lying-1.0-py3-none-any.whl");
    const eocd = Buffer.alloc(22);
    eocd.writeUInt32LE(0x06054b50, 0);
    eocd.writeUInt16LE(1, 8);
    eocd.writeUInt16LE(1, 10);
    eocd.writeUInt32LE(46, 12);
    eocd.writeUInt32LE(1_000_000, 16);
    writeFileSync(lying, eocd);
    await assert.rejects(
      wheelFileNames(lying),
      /lying-1\.0-py3-none-any\.whl because it is not a valid zip file/,
    );
    await assert.rejects(
      wheelFileNames(join(root, "absent.whl")),
      /absent\.whl because it does not exist\.$/,
    );
  });
});
