/**
 * The wheelhouse served over HTTP, read back by pyferry's own index client (PEP 691 JSON, which
 * it asks for first) and checked as PEP 503 HTML: hashes, requires-python, PEP 658 metadata,
 * downloads, content negotiation, redirects, 404s for traversal, and pages that follow the
 * folder at request time.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import {
  addWheels,
  openWheelhouse,
  type RunningServer,
  removeWheels,
  serveWheelhouse,
  type Wheelhouse,
} from "../../../src/fleet/index.js";
import { negotiate } from "../../../src/fleet/wheelhouse-pages.js";
import { listProjects, projectFiles } from "../../../src/index/simple.js";
import { distMetadata } from "../../../src/index/wheel-metadata.js";
import { indexWheel } from "../../support/mirror.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-wh-serve-");
process.env.PYFERRY_CACHE_DIR = join(root, "cache");
after(() => rmSync(root, { recursive: true, force: true }));

const sha256 = (data: Buffer) => createHash("sha256").update(data).digest("hex");

/** A raw GET: the path is sent exactly as given (fetch would resolve dot segments). */
function get(
  base: string,
  path: string,
  headers: Record<string, string> = {},
  method = "GET",
): Promise<{
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}> {
  const { hostname, port } = new URL(base);
  return new Promise((done, failed) => {
    const req = request({ host: hostname, port, path, headers, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () =>
        done({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
      );
    });
    req.on("error", failed);
    req.end();
  });
}

describe("negotiate", () => {
  test("JSON when preferred, HTML by default, 406 when neither is acceptable", () => {
    const pip =
      "application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01";
    assert.equal(negotiate(pip)?.kind, "json");
    assert.equal(negotiate(undefined)?.contentType, "text/html");
    assert.equal(
      negotiate("text/html;q=0.5, application/vnd.pypi.simple.latest+json;q=0.4")?.kind,
      "html",
    );
    assert.equal(
      negotiate("application/vnd.pypi.simple.latest+html")?.contentType,
      "application/vnd.pypi.simple.v1+html",
    );
    assert.equal(negotiate("*/*")?.contentType, "text/html");
    assert.equal(negotiate("application/json, image/png"), undefined);
    assert.equal(negotiate("application/vnd.pypi.simple.v1+json;q=0"), undefined);
  });
});

describe("serving a wheelhouse", () => {
  let wh: Wheelhouse;
  let server: RunningServer;
  let six: string;
  let idna: string;
  let base: string;
  const logged: string[] = [];
  before(async () => {
    six = await indexWheel("six");
    idna = await indexWheel("idna");
    wh = await openWheelhouse(join(root, "house"), { create: true });
    await addWheels(wh, [six]);
    server = await serveWheelhouse(wh, { port: 0, onRequest: (l) => logged.push(l) });
    base = server.url.replace(/simple\/$/, "");
  });
  after(() => server.close());

  test("it binds loopback by default and names its index URL", () => {
    assert.equal(server.host, "127.0.0.1");
    assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/simple\/$/);
  });

  test("pyferry's index client reads it: hashes, requires-python, PEP 658 metadata", async () => {
    assert.deepEqual(await listProjects(server.url), ["six"]);
    const files = (await projectFiles(server.url, "Six")) ?? [];
    assert.equal(files.length, 1);
    const [f] = files as [(typeof files)[0]];
    assert.equal(f.filename, basename(six));
    assert.equal(f.url, `${base}files/${basename(six)}`);
    assert.deepEqual(f.hashes, { sha256: sha256(readFileSync(six)) });
    assert.match(f.requiresPython ?? "", />=2\.7/);
    assert.equal(typeof f.metadata, "object");
    const meta = await distMetadata(f, { cache: false });
    assert.equal(meta.name, "six");
    assert.ok(
      logged.some((l) => / \/simple\/six\/ 200 json$/.test(l)),
      "JSON was negotiated",
    );
    assert.ok(
      logged.some((l) => /\.whl\.metadata 200/.test(l)),
      "the metadata file was read",
    );
    const metadata = await get(base, `/files/${basename(six)}.metadata`);
    assert.equal(sha256(metadata.body), (f.metadata as Record<string, string>).sha256);
    const wheel = await get(base, `/files/${basename(six)}`);
    assert.equal(wheel.status, 200);
    assert.equal(sha256(wheel.body), f.hashes.sha256);
    const head = await get(base, `/files/${basename(six)}`, {}, "HEAD");
    assert.equal(head.headers["content-length"], String(readFileSync(six).length));
    assert.equal(head.body.length, 0);
  });

  test("PEP 503 HTML: relative links with the hash, escaped requires-python, core metadata", async () => {
    const page = await get(base, "/simple/six/", { Accept: "text/html" });
    assert.equal(page.status, 200);
    assert.match(String(page.headers["content-type"]), /^text\/html/);
    const html = page.body.toString();
    const digest = sha256(readFileSync(six));
    assert.ok(html.includes(`href="../../files/${basename(six)}#sha256=${digest}"`));
    assert.match(html, /data-requires-python="&gt;=2\.7[^"]*"/);
    const core = /data-core-metadata="(sha256=[0-9a-f]{64})"/.exec(html)?.[1];
    assert.ok(core, html);
    // The old attribute as well, as PEP 714 allows in HTML, for pip before 23.2.
    assert.ok(html.includes(`data-dist-info-metadata="${core}"`), html);
    const rootPage = await get(base, "/simple/");
    assert.match(rootPage.body.toString(), /<a href="six\/">six<\/a>/);
  });

  test("PEP 691 JSON: api-version 1.0, files with hashes and core-metadata only", async () => {
    const page = await get(base, "/simple/six/", {
      Accept: "application/vnd.pypi.simple.v1+json",
    });
    assert.equal(page.headers["content-type"], "application/vnd.pypi.simple.v1+json");
    const data = JSON.parse(page.body.toString());
    assert.equal(data.meta["api-version"], "1.0");
    assert.equal(data.name, "six");
    assert.equal(data.files[0].hashes.sha256, sha256(readFileSync(six)));
    assert.match(data.files[0]["core-metadata"].sha256, /^[0-9a-f]{64}$/);
    // PEP 714: never the old key in JSON, on which pip 22.3 to 23.1 crash.
    assert.ok(!("dist-info-metadata" in data.files[0]));
    const none = await get(base, "/simple/six/", { Accept: "application/xml" });
    assert.equal(none.status, 406);
  });

  test("names are redirected to their normal form; the rest is 404, traversal included", async () => {
    const moved = await get(base, "/simple/Six/");
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, "/simple/six/");
    assert.equal((await get(base, "/simple/six")).status, 301);
    for (const path of [
      "/",
      "/release.log",
      "/wheels/",
      "/simple/nothing/",
      "/files/",
      "/files/../release.log",
      "/files/%2e%2e/release.log",
      "/files/..%2frelease.log",
      "/files/%2e%2e%2f.lock",
      "/simple/../files/x",
      "/files/six-0.0.0-py3-none-any.whl",
      `/files/${basename(six)}/`,
      `/files//${basename(six)}`,
    ]) {
      assert.equal((await get(base, path)).status, 404, path);
    }
    assert.equal((await get(base, "/simple/", {}, "POST")).status, 405);
  });

  test("pages follow the folder at request time", async () => {
    await addWheels(wh, [idna]);
    assert.deepEqual(await listProjects(server.url), ["idna", "six"]);
    assert.equal((await projectFiles(server.url, "idna"))?.length, 1);
    await removeWheels(wh, [basename(idna)]);
    assert.equal(await projectFiles(server.url, "idna"), undefined, "no page for it any more");
    assert.equal((await get(base, `/files/${basename(idna)}`)).status, 404);
  });

  test("a port in use is one sentence", async () => {
    await assert.rejects(
      serveWheelhouse(wh, { port: server.port }),
      /already in use; pick another port/,
    );
  });
});
