/**
 * `pyferry wheelhouse` end to end through the CLI, with real wheels from pip's configured index
 * and real pip: mirror, add (a project folder built too), list, remove, log and prune with
 * --json; a corrupt wheel refused; the server used by pip (PEP 691 JSON and PEP 658 metadata
 * negotiated) to install into a fresh venv and to download; export/import; and a mirror of
 * requests that pip installs from with --no-index --find-links.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { promisify } from "node:util";
import { CACHE, pyferry, REPO } from "../support/cli.js";
import { indexWheels } from "../support/mirror.js";
import { tempDir } from "../support/temp.js";

const dir = tempDir("pyferry-wh-cli-");
// This process fetches wheels too (for prune); into the same private cache as the CLI's.
process.env.PYFERRY_CACHE_DIR = CACHE;
after(() => rmSync(dir, { recursive: true, force: true }));
const WH = join(dir, "wh");
const PYTHON = process.env.PYFERRY_TEST_PYTHON ?? "python3";

/** pip with no configuration of its own: it sees only what the test gives it. */
const PIP_ENV: NodeJS.ProcessEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !k.startsWith("PIP_")),
);
PIP_ENV.PIP_CONFIG_FILE = "/dev/null";
const PIP_FLAGS = [
  "--no-cache-dir",
  "--retries",
  "0",
  "--timeout",
  "5",
  "--disable-pip-version-check",
];

/** A fresh venv with pip, made while the first tests run. */
const venv = join(dir, "venv");
const venvReady = promisify(execFile)(PYTHON, ["-m", "venv", venv]);
// Awaited by the tests that need it; a failure is theirs, not an unhandled rejection.
venvReady.catch(() => undefined);
const venvPython = join(venv, "bin", "python");

function pip(args: string[]) {
  return spawnSync(venvPython, ["-m", "pip", ...args], {
    env: PIP_ENV,
    encoding: "utf8",
    timeout: 120_000,
  });
}

function wh(args: string[], env: NodeJS.ProcessEnv = {}) {
  return pyferry(["wheelhouse", ...args], { cwd: dir, env });
}

function ok(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = wh(args, env);
  assert.equal(r.status, 0, r.stderr);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  return r;
}

const sha256 = (path: string) => createHash("sha256").update(readFileSync(path)).digest("hex");

describe("the store through the CLI", () => {
  test("mirror puts six and idna in, with --json", () => {
    const r = ok(["mirror", "six", "idna", "--wheelhouse", WH, "--json"]);
    const outcomes = JSON.parse(r.stdout) as { name: string; status: string }[];
    assert.deepEqual(outcomes.map((o) => [o.name, o.status]).sort(), [
      ["idna", "added"],
      ["six", "added"],
    ]);
  });

  test("list (PYFERRY_WHEELHOUSE or --wheelhouse names the folder) as a table and as JSON", () => {
    const text = ok(["list"], { PYFERRY_WHEELHOUSE: WH }).stdout;
    assert.match(text, /^NAME\s+VERSION\s+FILE\s+SHA256\s+ADDED$/m);
    assert.match(text, /^six\s+\S+\s+six-\S+\.whl\s+[0-9a-f]{12}\s+\d{4}-/m);
    const entries = JSON.parse(ok(["list", "--json", "--wheelhouse", WH]).stdout);
    assert.deepEqual(
      entries.map((e: { name: string }) => e.name),
      ["idna", "six"],
    );
    for (const e of entries) assert.equal(e.sha256, sha256(join(WH, "wheels", e.file)));
    // --wheelhouse before the action too; given in both places, the later one counts.
    assert.deepEqual(JSON.parse(ok(["--wheelhouse", WH, "list", "--json"]).stdout), entries);
    const both = ["--wheelhouse", join(dir, "none"), "list", "--json", "--wheelhouse", WH];
    assert.deepEqual(JSON.parse(ok(both).stdout), entries);
  });

  test("adding a file already there changes nothing; a corrupt wheel is one sentence", () => {
    const six = readdirSync(join(WH, "wheels")).find((f) => f.startsWith("six-")) as string;
    const copy = join(dir, "copy");
    mkdirSync(copy);
    writeFileSync(join(copy, six), readFileSync(join(WH, "wheels", six)));
    const log = readFileSync(join(WH, "release.log"), "utf8");
    assert.match(
      ok(["add", join(copy, six), "--wheelhouse", WH]).stderr,
      /is already in the wheelhouse/,
    );
    writeFileSync(join(copy, six), readFileSync(join(WH, "wheels", six)).subarray(0, 2000));
    const bad = wh(["add", join(copy, six), "--wheelhouse", WH]);
    assert.equal(bad.status, 1);
    assert.match(
      bad.stderr,
      /^error: six-\S+ is not a usable wheel: it is not a readable zip archive/,
    );
    assert.equal(bad.stderr.trim().split("\n").length, 1);
    assert.equal(readFileSync(join(WH, "release.log"), "utf8"), log);
  });

  test("a project folder is built and added; remove and log, with --json", () => {
    const proj = join(dir, "proj");
    mkdirSync(join(proj, "src", "wh_cli_demo"), { recursive: true });
    writeFileSync(
      join(proj, "pyproject.toml"),
      '[build-system]\nrequires = ["setuptools>=61"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "wh-cli-demo"\nversion = "1.2"\ndependencies = ["six"]\n',
    );
    writeFileSync(
      join(proj, "src", "wh_cli_demo", "__init__.py"),
      'ANSWER = "from the wheelhouse"\n',
    );
    const added = JSON.parse(ok(["add", proj, "--wheelhouse", WH, "--json"]).stdout);
    assert.deepEqual(added, [
      {
        file: "wh_cli_demo-1.2-py3-none-any.whl",
        name: "wh-cli-demo",
        version: "1.2",
        sha256: sha256(join(WH, "wheels", "wh_cli_demo-1.2-py3-none-any.whl")),
        status: "added",
      },
    ]);
    const idna = ok(["list", "--json", "--wheelhouse", WH]).stdout;
    const version = JSON.parse(idna).find((e: { name: string }) => e.name === "idna").version;
    const removed = JSON.parse(
      ok(["remove", `idna==${version}`, "--wheelhouse", WH, "--json"]).stdout,
    );
    assert.equal(removed[0].name, "idna");
    const missing = wh(["remove", "idna==0.0", "--wheelhouse", WH]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /has no wheel idna==0\.0\./);
    const log = JSON.parse(ok(["log", "--json", "--wheelhouse", WH]).stdout);
    assert.deepEqual(
      log.map((r: { action: string; name: string; via?: string }) => [
        r.action,
        r.name,
        r.via ?? "",
      ]),
      [
        ["add", "idna", "mirror"],
        ["add", "six", "mirror"],
        ["add", "wh-cli-demo", "build"],
        ["remove", "idna", ""],
      ],
    );
    assert.match(ok(["log", "--wheelhouse", WH]).stdout, /remove\s+idna\s+\S+\s+idna-/);
  });

  test("prune keeps the newest versions (dry run first), logged as removes", async () => {
    const fsspec = await indexWheels("fsspec");
    const house = join(dir, "prune");
    ok(["add", ...fsspec, "--wheelhouse", house]);
    const dry = JSON.parse(
      ok(["prune", "--keep", "1", "--dry-run", "--json", "--wheelhouse", house]).stdout,
    );
    assert.equal(dry.dry_run, true);
    assert.equal(dry.removed.length, fsspec.length - 1);
    assert.equal(readdirSync(join(house, "wheels")).length, fsspec.length);
    assert.match(ok(["prune", "--keep", "1", "--wheelhouse", house]).stderr, /Removed fsspec/);
    assert.deepEqual(readdirSync(join(house, "wheels")), [dry.kept[0].file]);
    const log = JSON.parse(ok(["log", "--json", "--wheelhouse", house]).stdout);
    assert.equal(log.filter((r: { via?: string }) => r.via === "prune").length, fsspec.length - 1);
    const bad = wh(["prune", "--keep", "none", "--wheelhouse", house]);
    assert.equal(bad.status, 2);
  });
});

/** Start `pyferry wheelhouse serve` on a free port; resolves with its URL once it listens. */
async function startServer(
  house: string,
): Promise<{ child: ChildProcess; url: string; log: () => string }> {
  const child = spawn(
    process.execPath,
    [join(REPO, "bin", "pyferry.js"), "wheelhouse", "serve", "--port", "0", "--wheelhouse", house],
    {
      env: { ...process.env, PYFERRY_CACHE_DIR: CACHE, NO_COLOR: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    },
  );
  let stderr = "";
  child.stderr?.on("data", (c: Buffer) => {
    stderr += c.toString();
  });
  const url = await new Promise<string>((done, failed) => {
    const timer = setTimeout(
      () => failed(new Error(`the server did not start: ${stderr}`)),
      30_000,
    );
    const look = () => {
      const m = /Serving .* at (http:\/\/\S+)/.exec(stderr);
      if (m) {
        clearTimeout(timer);
        done(m[1] as string);
      }
    };
    child.stderr?.on("data", look);
    child.on("exit", () => failed(new Error(`the server exited: ${stderr}`)));
  });
  return { child, url, log: () => stderr };
}

/** Send `signal`; resolves with how the server ended ("0" when it exited cleanly). */
function stopped(child: ChildProcess, signal: NodeJS.Signals): Promise<string> {
  return new Promise((done) => {
    child.on("exit", (code, by) => done(String(code ?? by)));
    child.kill(signal);
  });
}

/** Wait until `check` passes: a child's output arrives only when the event loop runs. */
async function eventually(check: () => void, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      check();
      return;
    } catch (err) {
      if (Date.now() > end) throw err;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

describe("serve, used by real pip", () => {
  let server: Awaited<ReturnType<typeof startServer>>;
  before(async () => {
    server = await startServer(WH);
  });
  after(() => server.child.kill("SIGKILL"));

  test("pip installs six and the built project into a fresh venv, over PEP 691 JSON", async () => {
    await venvReady;
    const r = pip(["install", "--index-url", server.url, ...PIP_FLAGS, "six", "wh-cli-demo"]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const run = spawnSync(
      venvPython,
      ["-c", "import six, wh_cli_demo; print(wh_cli_demo.ANSWER)"],
      {
        encoding: "utf8",
      },
    );
    assert.equal(run.stdout.trim(), "from the wheelhouse", run.stderr);
    await eventually(() => {
      assert.match(server.log(), /GET \/simple\/six\/ 200 json/);
      assert.match(server.log(), /GET \/files\/six-\S+\.whl\.metadata 200/);
      assert.match(server.log(), /GET \/files\/wh_cli_demo-1\.2-py3-none-any\.whl 200/);
    });
  });

  test("pip download gets the very file the wheelhouse holds", async () => {
    await venvReady;
    const dest = join(dir, "downloads");
    const r = pip([
      "download",
      "--index-url",
      server.url,
      ...PIP_FLAGS,
      "--no-deps",
      "-d",
      dest,
      "six",
    ]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const [file] = readdirSync(dest) as [string];
    assert.equal(sha256(join(dest, file)), sha256(join(WH, "wheels", file)));
  });

  test("pip 22.3 to 23.1 (Debian 12's 23.0.1) install over PEP 691 JSON too (PEP 714)", async (t) => {
    // These pips crash on the JSON key `dist-info-metadata`; Debian 12's python3.11 has one.
    const python = process.env.PYFERRY_TEST_OLD_PIP_PYTHON ?? "/usr/bin/python3.11";
    if (!existsSync(python)) return t.skip(`${python} is missing`);
    const old = join(dir, "old-pip");
    const made = spawnSync(python, ["-m", "venv", old], { encoding: "utf8" });
    if (made.status !== 0) return t.skip(`${python} makes no venv: ${made.stderr.trim()}`);
    const oldPip = (args: string[]) =>
      spawnSync(join(old, "bin", "python"), ["-m", "pip", ...args], {
        env: PIP_ENV,
        encoding: "utf8",
        timeout: 120_000,
      });
    const version = /^pip (\d+)\.(\d+)/.exec(oldPip(["--version"]).stdout);
    const [major, minor] = [Number(version?.[1]), Number(version?.[2])];
    if (!(major === 22 ? minor >= 3 : major === 23 && minor <= 1)) {
      return t.skip(`${python}'s venv has pip ${major}.${minor}, not one from 22.3 to 23.1`);
    }
    const r = oldPip(["install", "--index-url", server.url, ...PIP_FLAGS, "wh-cli-demo"]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Successfully installed six-\S+ wh-cli-demo-1\.2/);
    await eventually(() => assert.match(server.log(), /GET \/simple\/wh-cli-demo\/ 200 json/));
  });

  test("SIGINT and SIGTERM stop it cleanly", async () => {
    assert.equal(await stopped(server.child, "SIGINT"), "0", server.log());
    assert.match(server.log(), /Stopped\.\n$/);
    const other = await startServer(WH);
    assert.equal(await stopped(other.child, "SIGTERM"), "0", other.log());
  });
});

describe("export and import through the CLI", () => {
  test("a round trip into a new folder gives identical wheels and a merged log", () => {
    const archive = join(dir, "wh.tar");
    assert.match(ok(["export", archive, "--wheelhouse", WH]).stderr, /Exported 2 wheel\(s\)/);
    const copy = join(dir, "imported");
    const r = ok(["import", archive, "--wheelhouse", copy]);
    assert.match(r.stderr, /2 wheel\(s\) added, 0 already there; 4 log record\(s\) merged/);
    const files = (d: string) =>
      readdirSync(d)
        .sort()
        .map((f) => [f, sha256(join(d, f))]);
    assert.deepEqual(files(join(copy, "wheels")), files(join(WH, "wheels")));
    const log = JSON.parse(ok(["log", "--json", "--wheelhouse", copy]).stdout);
    assert.deepEqual(
      log.slice(4).map((r: { via?: string }) => r.via),
      ["import", "import"],
    );
  });

  test("export into a folder that does not exist is one sentence, and makes no folder", () => {
    const lost = join(dir, "no-such-folder", "wh.tar");
    const r = wh(["export", lost, "--wheelhouse", WH]);
    assert.equal(r.status, 2);
    assert.equal(
      r.stderr,
      `error: ${lost} cannot be written: the folder ${join(dir, "no-such-folder")} does not exist.\n`,
    );
    assert.ok(!existsSync(join(dir, "no-such-folder")));
  });

  test("a tar with a symbolic link is refused with one sentence", () => {
    const src = join(dir, "evil-src");
    mkdirSync(join(src, "wheels"), { recursive: true });
    symlinkSync("/etc/passwd", join(src, "wheels", "six-1.0-py3-none-any.whl"));
    const evil = join(dir, "evil.tar");
    const tar = spawnSync("tar", ["cf", evil, "-C", src, "wheels"]);
    assert.equal(tar.status, 0);
    const house = join(dir, "guarded");
    const r = wh(["import", evil, "--wheelhouse", house]);
    assert.equal(r.status, 1);
    assert.match(
      r.stderr,
      /^error: \S+evil\.tar cannot be imported: its member "wheels\/six-1\.0-py3-none-any\.whl" is a symbolic link\.\n$/,
    );
    assert.ok(!existsSync(house), "a refused import into a new folder leaves none");
  });
});

describe("mirror of requests", () => {
  test("fills a wheelhouse that pip installs requests from with --no-index --find-links", async () => {
    const house = join(dir, "requests");
    ok(["mirror", "requests", "--wheelhouse", house]);
    const names = JSON.parse(ok(["list", "--json", "--wheelhouse", house]).stdout).map(
      (e: { name: string }) => e.name.toLowerCase().replace(/_/g, "-"),
    );
    for (const n of ["requests", "urllib3", "idna", "certifi", "charset-normalizer"]) {
      assert.ok(names.includes(n), `${n} in ${names.join(", ")}`);
    }
    await venvReady;
    const r = pip([
      "install",
      "--no-index",
      "--find-links",
      join(house, "wheels"),
      ...PIP_FLAGS,
      "requests",
    ]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const run = spawnSync(venvPython, ["-c", "import requests; print(requests.__version__)"], {
      encoding: "utf8",
    });
    assert.equal(run.status, 0, run.stderr);
  });
});
