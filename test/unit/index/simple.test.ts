import assert from "node:assert/strict";
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import {
  decodeEntities,
  findLinksFiles,
  IndexTooLarge,
  IndexUnavailable,
  listProjects,
  projectFiles,
} from "../../../src/index/simple.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-simple-");
after(() => rmSync(root, { recursive: true, force: true }));

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** Serve `handler` on 127.0.0.1; the server is closed when the tests end. */
async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  after(() => {
    server.closeAllConnections();
    server.close();
  });
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const SHA = "a".repeat(64);

describe("HTML pages", () => {
  const index = join(root, "idx");
  write(
    join(index, "index.html"),
    `<!DOCTYPE html><html><body>
      <!-- <a href="ghost/">ghost</a> -->
      <a href="alpha/">alpha</a>
      <A HREF='Beta_Pkg/'>Beta_Pkg</A>
      <a class="x" href="gamma/"><span>gamma</span></a>
    </body></html>`,
  );
  write(
    join(index, "alpha", "index.html"),
    `<html><body>
      <a data-requires-python="&gt;=3.8" href="../../files/alpha-1.0-py3-none-any.whl#sha256=${SHA}">alpha-1.0-py3-none-any.whl</a>
      <a href='https://cdn.example/x/alpha-2.0.tar.gz?a=1&amp;b=2#md5=ff' data-yanked>alpha-2.0.tar.gz</a>
      <a data-yanked="broken &quot;build&quot;" href=alpha-3.0-py3-none-any.whl data-dist-info-metadata="true">alpha-3.0</a>
      <a href="alpha-4.0-py3-none-any.whl" data-core-metadata="sha256=BEEF" data-dist-info-metadata="true">x</a>
      <a href="alpha%2B5.0-py3-none-any.whl" title="a > b">x</a>
      <a href="../">parent</a>
      <a href="notes.txt">notes</a>
    </body></html>`,
  );
  const indexUrl = pathToFileURL(index).href;

  test("listProjects reads anchor texts and skips commented-out links", async () => {
    assert.deepEqual(await listProjects(indexUrl), ["alpha", "Beta_Pkg", "gamma"]);
  });

  test("projectFiles parses attributes in any order, quoting and entity", async () => {
    const files = await projectFiles(indexUrl, "Alpha");
    assert.deepEqual(files, [
      {
        filename: "alpha-1.0-py3-none-any.whl",
        url: pathToFileURL(join(root, "files", "alpha-1.0-py3-none-any.whl")).href,
        hashes: { sha256: SHA },
        requiresPython: ">=3.8",
        yanked: false,
      },
      {
        filename: "alpha-2.0.tar.gz",
        url: "https://cdn.example/x/alpha-2.0.tar.gz?a=1&b=2",
        hashes: { md5: "ff" },
        yanked: true,
      },
      {
        filename: "alpha-3.0-py3-none-any.whl",
        url: `${pathToFileURL(join(index, "alpha")).href}/alpha-3.0-py3-none-any.whl`,
        hashes: {},
        yanked: 'broken "build"',
        metadata: true,
      },
      {
        filename: "alpha-4.0-py3-none-any.whl",
        url: `${pathToFileURL(join(index, "alpha")).href}/alpha-4.0-py3-none-any.whl`,
        hashes: {},
        yanked: false,
        metadata: { sha256: "beef" },
      },
      {
        filename: "alpha+5.0-py3-none-any.whl",
        url: `${pathToFileURL(join(index, "alpha")).href}/alpha%2B5.0-py3-none-any.whl`,
        hashes: {},
        yanked: false,
      },
    ]);
  });

  test("a project missing from the index has no page, unlike one whose page lists nothing", async () => {
    assert.equal(await projectFiles(indexUrl, "nope"), undefined);
  });

  test("a local index folder that does not exist cannot answer: an error, not 'no such project'", async () => {
    const missing = pathToFileURL(join(root, "no-such-index", "simple")).href;
    await assert.rejects(
      projectFiles(missing, "alpha"),
      (err: unknown) =>
        err instanceof IndexUnavailable &&
        /the index folder \S+no-such-index\/simple does not exist/.test(err.message),
    );
  });

  test("<base href> decides how relative links resolve", async () => {
    const page = join(root, "based", "p", "index.html");
    write(page, `<base href="https://mirror.example/pkgs/"><a href="p-1.0.zip">p</a>`);
    const files = await projectFiles(pathToFileURL(join(root, "based")).href, "p");
    assert.equal(files?.[0]?.url, "https://mirror.example/pkgs/p-1.0.zip");
  });

  test("decodeEntities handles named, decimal and hex references", () => {
    assert.equal(decodeEntities("&lt;&#62;&#x3D;&amp;amp;&unknown;"), "<>=&amp;&unknown;");
  });
});

describe("local folders", () => {
  test("an index folder without index.html is listed", async () => {
    const index = join(root, "bare");
    write(join(index, "one", "one-1.0-py3-none-any.whl"), "x");
    write(join(index, "two", "README"), "x");
    const url = pathToFileURL(index).href;
    assert.deepEqual(await listProjects(url), ["one", "two"]);
    const files = await projectFiles(index, "one");
    assert.deepEqual(
      files?.map((f) => f.filename),
      ["one-1.0-py3-none-any.whl"],
    );
  });

  test("find-links: folder listing plus the HTML pages in it, path or URL", async () => {
    const dir = join(root, "links");
    write(join(dir, "a-1.0-py3-none-any.whl"), "x");
    write(join(dir, "b-2.0.tar.gz"), "x");
    write(join(dir, "index.html"), '<a href="https://h.example/c-3.0-py3-none-any.whl">c</a>');
    write(join(dir, "notes.txt"), "x");
    const expected = ["a-1.0-py3-none-any.whl", "b-2.0.tar.gz", "c-3.0-py3-none-any.whl"];
    const names = (files: { filename: string }[]) => files.map((f) => f.filename).sort();
    assert.deepEqual(names(await findLinksFiles(dir)), expected);
    assert.deepEqual(names(await findLinksFiles(pathToFileURL(dir).href)), expected);
    assert.deepEqual(names(await findLinksFiles(join(dir, "index.html"))), [
      "c-3.0-py3-none-any.whl",
    ]);
  });

  test("a missing location is reported with its name", async () => {
    const missing = join(root, "missing");
    await assert.rejects(findLinksFiles(missing), (err: unknown) => {
      assert.ok(err instanceof IndexUnavailable);
      assert.match(err.message, /^The find-links location .*missing could not be read because/);
      return true;
    });
    await assert.rejects(listProjects(pathToFileURL(missing).href), IndexUnavailable);
  });

  test("a location that cannot be read says why in a clause, for any errno", async () => {
    write(join(root, "a-file"), "x");
    symlinkSync("loop-b", join(root, "loop-a"));
    symlinkSync("loop-a", join(root, "loop-b"));
    const cases: [string, string][] = [
      [join(root, "a-file", "wheels"), "part of its path is a file, not a folder"],
      [join(root, "loop-a"), "its path is a loop of symbolic links"],
    ];
    for (const [location, reason] of cases) {
      await assert.rejects(findLinksFiles(location), (err: unknown) => {
        assert.ok(err instanceof IndexUnavailable);
        assert.equal(err.reason, reason);
        assert.equal(
          err.message,
          `The find-links location ${pathToFileURL(location).href} could not be read because ${reason}.`,
        );
        return true;
      });
    }
  });
});

describe("HTTP", () => {
  test("negotiates the JSON API and resolves relative file URLs", async () => {
    let accept = "";
    const base = await serve((req, res) => {
      accept = req.headers.accept ?? "";
      res.setHeader("Content-Type", "application/vnd.pypi.simple.v1+json");
      if (req.url === "/simple/") {
        res.end(
          JSON.stringify({ meta: { "api-version": "1.1" }, projects: [{ name: "Foo.Bar" }] }),
        );
      } else if (req.url === "/simple/foo-bar/") {
        res.end(
          JSON.stringify({
            meta: { "api-version": "1.0" },
            name: "foo-bar",
            files: [
              {
                filename: "foo_bar-1.0-py3-none-any.whl",
                url: "../../files/foo_bar-1.0-py3-none-any.whl",
                hashes: { sha256: SHA },
                "requires-python": ">=3.9",
                yanked: "bad",
                "core-metadata": { sha256: SHA },
              },
            ],
          }),
        );
      } else {
        res.statusCode = 404;
        res.end();
      }
    });
    assert.deepEqual(await listProjects(`${base}/simple`), ["Foo.Bar"]);
    assert.match(accept, /^application\/vnd\.pypi\.simple\.v1\+json, .*text\/html;q=0\.01$/);
    assert.deepEqual(await projectFiles(`${base}/simple/`, "Foo.Bar"), [
      {
        filename: "foo_bar-1.0-py3-none-any.whl",
        url: `${base}/files/foo_bar-1.0-py3-none-any.whl`,
        hashes: { sha256: SHA },
        requiresPython: ">=3.9",
        yanked: "bad",
        metadata: { sha256: SHA },
      },
    ]);
    assert.equal(await projectFiles(`${base}/simple/`, "other"), undefined);
  });

  test("JSON metadata: core-metadata first, the older dist-info-metadata only without it", async () => {
    const file = (name: string, keys: Record<string, unknown>) => ({
      filename: name,
      url: name,
      hashes: {},
      ...keys,
    });
    const base = await serve((_req, res) => {
      res.setHeader("Content-Type", "application/vnd.pypi.simple.v1+json");
      res.end(
        JSON.stringify({
          meta: { "api-version": "1.0" },
          name: "p",
          files: [
            file("p-1.0-py3-none-any.whl", { "dist-info-metadata": { sha256: SHA } }),
            file("p-2.0-py3-none-any.whl", { "dist-info-metadata": true }),
            file("p-3.0-py3-none-any.whl", {
              "core-metadata": false,
              "dist-info-metadata": true,
            }),
            file("p-4.0-py3-none-any.whl", {
              "core-metadata": { sha256: SHA },
              "dist-info-metadata": { sha256: "beef" },
            }),
          ],
        }),
      );
    });
    const files = (await projectFiles(`${base}/simple/`, "p")) ?? [];
    assert.deepEqual(
      files.map((f) => f.metadata),
      [{ sha256: SHA }, true, undefined, { sha256: SHA }],
    );
  });

  test("sends basic auth from the URL's user info and never shows the password", async () => {
    const expected = `Basic ${Buffer.from("me:s3cr:t").toString("base64")}`;
    const base = await serve((req, res) => {
      if (req.headers.authorization !== expected) {
        res.statusCode = 401;
        res.end();
        return;
      }
      res.setHeader("Content-Type", "text/html");
      res.end('<a href="p/">p</a>');
    });
    const authed = base.replace("http://", "http://me:s3cr%3At@");
    assert.deepEqual(await listProjects(`${authed}/simple/`), ["p"]);
    await assert.rejects(
      listProjects(`${base.replace("127.0.0.1", "localhost")}/simple/`),
      (err) => {
        assert.ok(err instanceof IndexUnavailable);
        assert.match(err.message, /because the server answered HTTP 401\.$/);
        return true;
      },
    );
    const wrong = base.replace("http://", "http://me:wrong@");
    await assert.rejects(listProjects(`${wrong}/other/`), (err) => {
      assert.ok(err instanceof Error);
      assert.doesNotMatch(err.message, /wrong/);
      assert.match(err.message, /me:\*\*\*\*@/);
      return true;
    });
    // A token as the user name, with no password (as some hosted indexes issue them).
    await assert.rejects(listProjects(`${base.replace("http://", "http://T0KEN@")}/x/`), (err) => {
      assert.ok(err instanceof IndexUnavailable && err.status === 401);
      assert.doesNotMatch(err.message, /T0KEN/);
      assert.match(err.message, /\/\/\*\*\*\*@/);
      return true;
    });
  });

  test("an unreachable or silent server fails fast with a readable reason", async () => {
    const silent = await serve(() => undefined); // accepts, never answers
    const start = Date.now();
    await assert.rejects(listProjects(`${silent}/simple/`, { timeoutMs: 300 }), (err) => {
      assert.ok(err instanceof IndexUnavailable);
      assert.match(
        err.message,
        /simple\/ could not be read because there was no response within 0\.3 s\.$/,
      );
      return true;
    });
    assert.ok(Date.now() - start < 3000);
    // A port nobody listens on: take one from a server closed first.
    const gone = await new Promise<string>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const p = (s.address() as AddressInfo).port;
        s.close(() => resolve(`http://127.0.0.1:${p}`));
      });
    });
    await assert.rejects(listProjects(`${gone}/simple/`), /because the connection was refused\.$/);
    await assert.rejects(
      listProjects("ftp://example.invalid/simple/"),
      /only http, https and file/,
    );
  });

  test("a server error on a project page is an IndexUnavailable", async () => {
    const base = await serve((_req, res) => {
      res.statusCode = 503;
      res.end();
    });
    await assert.rejects(projectFiles(base, "x"), (err) => {
      assert.ok(err instanceof IndexUnavailable && err.page, "this page, not the whole index");
      assert.match(err.message, /x\/ could not be read because the server answered HTTP 503/);
      return true;
    });
  });

  test("a giant root page is abandoned once it passes maxProjects", async () => {
    let stopped = false;
    const base = await serve((_req, res) => {
      res.setHeader("Content-Type", "text/html");
      let i = 0;
      const more = () => {
        if (stopped || res.destroyed) return;
        res.write(`<a href="p${i}/">p${i}</a>\n`.repeat(50));
        i++;
        setImmediate(more);
      };
      res.on("close", () => {
        stopped = true;
      });
      more();
    });
    await assert.rejects(listProjects(`${base}/simple/`, { maxProjects: 1000 }), (err) => {
      assert.ok(err instanceof IndexTooLarge);
      assert.match(err.message, /lists more than 1000 projects/);
      return true;
    });
    const small = join(root, "small-index.html");
    write(small, '<a href="a/">a</a><a href="b/">b</a><a href="c/">c</a>');
    await assert.rejects(listProjects(small, { maxProjects: 2 }), IndexTooLarge);
  });
});
