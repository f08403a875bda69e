import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { after, test } from "node:test";
import { parseNetrc } from "../../../src/index/netrc.js";
import { listProjects } from "../../../src/index/simple.js";
import { tempDir } from "../../support/temp.js";

test("parseNetrc: machines, default, comments and macdef bodies", () => {
  const m = parseNetrc(
    [
      "# a comment",
      "machine index.example.com login alice password s3cret",
      "macdef init",
      "cd /pub",
      "",
      "machine other.example.com",
      "  login bob",
      "  password 'p w'",
      "default login anon password guest",
    ].join("\n"),
  );
  assert.deepEqual(m.get("index.example.com"), { login: "alice", password: "s3cret" });
  assert.equal(m.get("other.example.com")?.login, "bob");
  assert.deepEqual(m.get(""), { login: "anon", password: "guest" });
  assert.equal(m.has("cd"), false);
});

const servers: ReturnType<typeof createServer>[] = [];
after(() => {
  for (const s of servers) s.close();
});

test("a private index without credentials in its URL gets them from $NETRC", async () => {
  const dir = tempDir("pyferry-netrc-");
  writeFileSync(join(dir, "netrc"), "machine 127.0.0.1 login carol password pa55\n");
  // Read once per process, on first use: set before any request of this test file.
  process.env.NETRC = join(dir, "netrc");
  const expected = `Basic ${Buffer.from("carol:pa55").toString("base64")}`;
  const server = createServer((req, res) => {
    if (req.headers.authorization !== expected) {
      res.statusCode = 401;
      res.end();
      return;
    }
    res.setHeader("Content-Type", "text/html");
    res.end('<a href="private-pkg/">private-pkg</a>');
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const port = (server.address() as AddressInfo).port;
  assert.deepEqual(await listProjects(`http://127.0.0.1:${port}/simple/`), ["private-pkg"]);
});
