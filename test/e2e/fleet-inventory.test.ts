/**
 * `pyferry deploy` stopped by its inventory's wheelhouse, with no host needed: the one host
 * listed is a TCP port here that counts connections (and closes them at once), which must see
 * none, early connections included (cli/early-connect.ts).
 */
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { pyferry } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const dir = tempDir("pyferry-fleet-inv-");
after(() => rmSync(dir, { recursive: true, force: true }));

describe("deploy with a wrong wheelhouse", () => {
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    socket.destroy();
  });
  let port = 0;
  before(async () => {
    await new Promise<void>((done) => server.listen(0, "127.0.0.1", done));
    port = (server.address() as { port: number }).port;
    writeFileSync(join(dir, "app.txt"), "six\n");
    mkdirSync(join(dir, "bare"));
  });
  after(() => server.close());

  /** An inventory with `wheelhouse` (none: the line is left out) and one host, here. */
  function inventory(name: string, wheelhouse?: string): string {
    const file = join(dir, `${name}.toml`);
    writeFileSync(
      file,
      `${wheelhouse === undefined ? "" : `wheelhouse = "${wheelhouse}"\n`}[hosts.h]
address = "127.0.0.1:${port}"
ssh_options = ["-o", "ConnectTimeout=3"]
[[hosts.h.envs]]
path = "/srv/app/venv"
python = "/usr/bin/python3"
requirements = "app.txt"
`,
    );
    return file;
  }

  const cases: [string, string | undefined, string, string][] = [
    ["missing", "nowh", "nowh", "does not exist."],
    ["default", undefined, "wheelhouse", "does not exist."],
    ["file", "app.txt", "app.txt", "is not a folder."],
    ["bare", "bare", "bare", "has no wheels folder; pyferry wheelhouse add makes one."],
  ];
  for (const [name, wheelhouse, at, why] of cases) {
    test(`${name}: one sentence, exit 1, no host connected to`, async () => {
      const file = inventory(name, wheelhouse);
      for (const flags of [["--yes"], ["--check"]]) {
        const r = pyferry(["deploy", "-i", file, ...flags], { cwd: dir });
        assert.equal(r.status, 1, r.stderr);
        assert.equal(r.stderr, `error: The wheelhouse ${join(dir, at)} (from ${file}) ${why}\n`);
        assert.equal(r.stdout, "");
      }
      // The server's accept events run only now that the event loop does.
      await new Promise((done) => setTimeout(done, 200));
      assert.equal(connections, 0);
    });
  }
});
