/**
 * pyferry as npm installs it from its tarball, as from the registry: the tarball holds what the
 * package's install script needs, which builds the native addon where libdeflate's headers are,
 * and the installed commands run.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { NATIVE_FILE } from "../../src/install/native.js";
import { REPO } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const HEADERS = existsSync("/usr/include/libdeflate.h");

function npm(args: string[], cwd: string): string {
  // npm_execpath is npm itself when the tests run under `npm test`.
  const cli = process.env.npm_execpath;
  const r = cli
    ? spawnSync(process.execPath, [cli, ...args], { cwd, encoding: "utf8" })
    : spawnSync("npm", args, { cwd, encoding: "utf8" });
  assert.equal(r.status, 0, `npm ${args.join(" ")}: ${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

test("an install of the packed tarball builds the native addon and runs", {
  skip: HEADERS ? false : "libdeflate's headers are missing (libdeflate-dev)",
  timeout: 300_000,
}, () => {
  const dir = tempDir("pyferry-npm-install-");
  // The build is the checkout's own (dist/ is built before the tests): no scripts here.
  npm(["pack", "--ignore-scripts", "--pack-destination", dir], REPO);
  const tarball = readdirSync(dir).find((n) => n.endsWith(".tgz"));
  assert.ok(tarball, "npm pack wrote a tarball");
  const prefix = join(dir, "prefix");
  npm(
    [
      "install",
      "--prefer-offline",
      "--no-audit",
      "--no-fund",
      "--prefix",
      prefix,
      join(dir, tarball),
    ],
    dir,
  );
  const installed = join(prefix, "node_modules", "pyferry");
  const addon = join(installed, NATIVE_FILE);
  assert.ok(existsSync(addon), `${addon} was built`);
  const loads = spawnSync(
    process.execPath,
    ["-p", `typeof require(${JSON.stringify(addon)}).extractFiles`],
    { encoding: "utf8" },
  );
  assert.equal(loads.stdout.trim(), "function", loads.stderr);
  const version = spawnSync(join(prefix, "node_modules", ".bin", "pyferry"), ["--version"], {
    encoding: "utf8",
  });
  assert.equal(version.status, 0, version.stderr);
  assert.match(version.stdout, /\d+\.\d+\.\d+/);
});
