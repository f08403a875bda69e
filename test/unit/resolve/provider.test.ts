import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer } from "node:http";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { loadPipSettings } from "../../../src/index/pip-config.js";
import { type IndexFile, IndexUnavailable } from "../../../src/index/simple.js";
import { parseRequirement } from "../../../src/python/requirement.js";
import type { Target } from "../../../src/python/target.js";
import {
  allowedVersions,
  type Candidate,
  chooseCandidates,
  IndexProvider,
  sourcesFromSettings,
} from "../../../src/resolve/provider.js";
import { resolve } from "../../../src/resolve/resolver.js";
import { UserError } from "../../../src/util/errors.js";
import { linuxTarget } from "../../support/targets.js";
import { tempDir } from "../../support/temp.js";

const target: Target = linuxTarget({
  platforms: [
    "manylinux_2_28_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "linux_x86_64",
  ],
});

const root = tempDir("pyferry-provider-");
after(() => rmSync(root, { recursive: true, force: true }));

function file(
  filename: string,
  extra: Partial<IndexFile> = {},
): { file: IndexFile; source: string } {
  return {
    file: {
      filename,
      url: `https://files.example/${filename}`,
      hashes: {},
      yanked: false,
      ...extra,
    },
    source: "https://index.example/simple",
  };
}

function versions(cands: Candidate[]): string[] {
  return cands.map((c) => c.version);
}

describe("chooseCandidates", () => {
  test("takes the wheel with the best tag for the target, newest version first", () => {
    const cands = chooseCandidates(
      "Demo_Pkg",
      [
        file("demo_pkg-1.0-py3-none-any.whl"),
        file("demo_pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl"),
        file("demo_pkg-1.0-cp311-abi3-manylinux_2_28_x86_64.whl"),
        file("demo_pkg-1.0.tar.gz"),
        file("demo_pkg-2.0-cp312-cp312-manylinux_2_17_x86_64.whl"),
        file("demo_pkg-2.0-cp311-cp311-win_amd64.whl"),
        file("demo_pkg-1.5.tar.gz"),
        file("demo_pkg-1.5.zip"),
        file("demo_pkg-0.9.tar.bz2"),
        file("other-3.0-py3-none-any.whl"),
      ],
      target,
    );
    // 2.0 has no wheel for the target and no sdist; 0.9's only file is an old sdist format.
    assert.deepEqual(versions(cands), ["1.5", "1.0"]);
    assert.equal(cands[0]?.file.filename, "demo_pkg-1.5.tar.gz");
    assert.equal(cands[0]?.kind, "sdist");
    // The interpreter's own ABI beats abi3 and pure Python, even on an older platform tag.
    assert.equal(cands[1]?.file.filename, "demo_pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl");
    assert.equal(cands[1]?.kind, "wheel");
    assert.equal(cands[1]?.name, "demo-pkg");
  });

  test("drops files whose requires-python excludes the target", () => {
    const cands = chooseCandidates(
      "a",
      [
        file("a-3.0-py3-none-any.whl", { requiresPython: ">=3.12" }),
        file("a-2.0-py3-none-any.whl", { requiresPython: ">=3.8,<4" }),
        file("a-1.0-py3-none-any.whl", { requiresPython: "not a specifier" }),
      ],
      target,
    );
    assert.deepEqual(versions(cands), ["2.0", "1.0"]);
  });

  test("prefers a version's live files to its yanked ones, and marks all-yanked versions", () => {
    const cands = chooseCandidates(
      "a",
      [
        file("a-2.0-cp311-cp311-manylinux_2_17_x86_64.whl", { yanked: "broken build" }),
        file("a-2.0-py3-none-any.whl"),
        file("a-1.0-py3-none-any.whl", { yanked: true }),
      ],
      target,
    );
    assert.equal(cands[0]?.file.filename, "a-2.0-py3-none-any.whl");
    assert.equal(cands[0]?.yanked, false);
    assert.equal(cands[1]?.yanked, true);
  });

  test("with --hash, a version's files with an allowed hash are chosen from, as pip does", () => {
    const [a, b, c] = ["a", "b", "c"].map((x) => x.repeat(64)) as [string, string, string];
    const files = [
      file("a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl", { hashes: { sha256: a } }),
      file("a-1.0-py3-none-any.whl", { hashes: { sha256: b } }),
      file("a-1.0.tar.gz", { hashes: { sha256: c } }),
    ];
    const pick = (allowed?: string[]) =>
      chooseCandidates("a", files, target, undefined, allowed && new Set(allowed))[0]?.file
        .filename;
    assert.equal(pick(), "a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl");
    assert.equal(pick([b]), "a-1.0-py3-none-any.whl");
    assert.equal(pick([c]), "a-1.0.tar.gz", "an sdist, when only its hash is allowed");
    assert.equal(pick([a, c]), "a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl");
    // No file with an allowed hash: the usual choice, which the hash check then refuses.
    assert.equal(pick(["d".repeat(64)]), "a-1.0-cp311-cp311-manylinux_2_17_x86_64.whl");
    // A file whose hash the index does not give stays a candidate beside the allowed ones.
    const unknown = [file("a-1.0-cp311-abi3-manylinux_2_17_x86_64.whl"), ...files.slice(1)];
    assert.equal(
      chooseCandidates("a", unknown, target, undefined, new Set([c]))[0]?.file.filename,
      "a-1.0-cp311-abi3-manylinux_2_17_x86_64.whl",
    );
  });

  test("a higher build number wins between equally good wheels", () => {
    const cands = chooseCandidates(
      "a",
      [
        file("a-1.0-1-py3-none-any.whl"),
        file("a-1.0-2-py3-none-any.whl"),
        file("a-1.0-py3-none-any.whl"),
      ],
      target,
    );
    assert.equal(cands[0]?.file.filename, "a-1.0-2-py3-none-any.whl");
  });
});

describe("allowedVersions", () => {
  const cands = chooseCandidates(
    "a",
    [
      file("a-3.0b1-py3-none-any.whl"),
      file("a-2.1-py3-none-any.whl", { yanked: true }),
      file("a-2.0-py3-none-any.whl"),
      file("a-1.0-py3-none-any.whl"),
    ],
    target,
  );

  test("skips yanked versions unless pinned exactly", () => {
    assert.deepEqual(versions(allowedVersions(cands, ">=2")), ["2.0"]);
    assert.deepEqual(versions(allowedVersions(cands, "==2.1")), ["2.1"]);
    assert.deepEqual(versions(allowedVersions(cands, "===2.1")), ["2.1"]);
    assert.deepEqual(versions(allowedVersions(cands, "==2.1.*")), []);
  });

  test("takes pre-releases when asked, when named, or when nothing else matches", () => {
    assert.deepEqual(versions(allowedVersions(cands, "")), ["2.0", "1.0"]);
    assert.deepEqual(versions(allowedVersions(cands, "", { prereleases: true })), [
      "3.0b1",
      "2.0",
      "1.0",
    ]);
    assert.deepEqual(versions(allowedVersions(cands, ">=3.0b1")), ["3.0b1"]);
    assert.deepEqual(versions(allowedVersions(cands, ">2.5")), ["3.0b1"]);
  });
});

/** A loopback URL where nothing listens: a port the system gave out and took back. */
async function deadIndex(): Promise<string> {
  const server = createServer();
  await new Promise<void>((go) => server.listen(0, "127.0.0.1", go));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  await new Promise((go) => server.close(go));
  return `http://127.0.0.1:${port}/simple`;
}

/** A PEP 503 index folder with the given project pages. */
function makeIndex(name: string, projects: Record<string, string[]>): string {
  const dir = join(root, name);
  for (const [project, files] of Object.entries(projects)) {
    mkdirSync(join(dir, project), { recursive: true });
    const links = files.map(
      (f) => `<a href="https://files.example/${f}#sha256=${"0".repeat(64)}">${f}</a>`,
    );
    writeFileSync(
      join(dir, project, "index.html"),
      `<html><body>${links.join("\n")}</body></html>`,
    );
  }
  return pathToFileURL(dir).href;
}

/** A real wheel: Python's zipfile writes it. */
function makeWheel(path: string, name: string, version: string, requires: string[] = []): void {
  const metadata = [
    "Metadata-Version: 2.1",
    `Name: ${name}`,
    `Version: ${version}`,
    ...requires.map((r) => `Requires-Dist: ${r}`),
    "",
  ].join("\n");
  const script = [
    "import sys, zipfile",
    "path, info, metadata = sys.argv[1:4]",
    "with zipfile.ZipFile(path, 'w', zipfile.ZIP_DEFLATED) as z:",
    "    z.writestr(info + '/METADATA', metadata)",
    "    z.writestr(info + '/WHEEL', 'Wheel-Version: 1.0\\n')",
  ].join("\n");
  execFileSync("python3", ["-c", script, path, `${name}-${version}.dist-info`, metadata]);
}

describe("IndexProvider", () => {
  const first = makeIndex("first", {
    shared: ["shared-1.0-py3-none-any.whl"],
    only1: ["only1-1.0-py3-none-any.whl"],
  });
  const second = makeIndex("second", {
    shared: ["shared-9.0-py3-none-any.whl"],
    only2: ["only2-1.0-py3-none-any.whl"],
  });
  const links = join(root, "links");
  mkdirSync(links);
  makeWheel(join(links, "shared-5.0-py3-none-any.whl"), "shared", "5.0");
  makeWheel(join(links, "local_only-1.0-py3-none-any.whl"), "local_only", "1.0");
  makeWheel(join(links, "winonly-1.0-cp311-cp311-win_amd64.whl"), "winonly", "1.0");
  const sources = sourcesFromSettings({
    indexUrl: first,
    extraIndexUrls: [second],
    findLinks: [links],
    noIndex: false,
    trustedHosts: [],
    sources: {},
  });

  test("uses only the first source that has a project, unless told to mix", async () => {
    const strict = new IndexProvider(target, { sources });
    const shared = await strict.candidates("Shared");
    assert.deepEqual(versions(shared), ["1.0"]);
    assert.equal(shared[0]?.source, first);
    assert.equal(shared[0]?.index, first);
    assert.deepEqual(versions(await strict.candidates("only2")), ["1.0"]);
    const local = await strict.candidates("local-only");
    assert.equal(local[0]?.source, links);
    assert.equal(local[0]?.index, undefined);
    assert.deepEqual(await strict.candidates("missing"), []);
    assert.equal(strict.whyNone("missing"), undefined, "absent, not unusable");
    assert.deepEqual(await strict.candidates("winonly"), []);
    assert.equal(
      strict.whyNone("WinOnly"),
      "its one file is for other platforms or Pythons (winonly-1.0-cp311-cp311-win_amd64.whl)",
    );

    const mixed = new IndexProvider(target, { sources, allowMixedSources: true });
    assert.deepEqual(versions(await mixed.candidates("shared")), ["9.0", "5.0", "1.0"]);
  });

  test("a source that cannot answer stops the search there, unless it is pip's unset default", async () => {
    const dead = await deadIndex();
    // Configured first: no project is taken from a later source instead (dependency confusion).
    const strict = new IndexProvider(target, {
      sources: [{ kind: "index", location: dead }, ...sources],
    });
    await assert.rejects(strict.candidates("only2"), (err: Error) => {
      assert.ok(err instanceof UserError && !(err instanceof IndexUnavailable));
      assert.match(
        err.message,
        /^The package index page .* could not be read because the connection was refused, so only2 is not looked for on a later source .*--mixed-sources/,
      );
      return true;
    });
    // pip's way with --mixed-sources, and pip's default index when nobody set it: a warning.
    for (const opts of [
      {
        sources: [{ kind: "index" as const, location: dead }, ...sources],
        allowMixedSources: true,
      },
      { sources: [{ kind: "index" as const, location: dead, implicit: true }, ...sources] },
    ]) {
      const warnings: string[] = [];
      const provider = new IndexProvider(target, { ...opts, onWarning: (m) => warnings.push(m) });
      assert.deepEqual(versions(await provider.candidates("only2")), ["1.0"]);
      assert.deepEqual(versions(await provider.candidates("only1")), ["1.0"]);
      assert.deepEqual(warnings, [
        `Skipping the package index ${dead}: the connection was refused.`,
      ]);
      assert.ok(provider.describeSources().endsWith(`, with ${dead} unreachable`));
    }
    const down = new IndexProvider(target, { sources: [{ kind: "index", location: dead }] });
    await assert.rejects(down.candidates("shared"), IndexUnavailable);
  });

  test("one failing page stops only its project; a page listing nothing still claims the name", async () => {
    const server = createHttpServer((req, res) => {
      if (req.url === "/simple/only2/") res.writeHead(503).end();
      else if (req.url === "/simple/local-only/") res.writeHead(401).end();
      else if (req.url === "/simple/shared/")
        res
          .writeHead(200, { "Content-Type": "text/html" })
          .end("<html>down for maintenance</html>");
      else if (req.url === "/simple/junk/")
        res
          .writeHead(200, { "Content-Type": "application/vnd.pypi.simple.v1+json" })
          .end("{not json");
      else res.writeHead(404).end();
    });
    await new Promise<void>((go) => server.listen(0, "127.0.0.1", go));
    const port = (server.address() as { port: number }).port;
    const primary = `http://127.0.0.1:${port}/simple/`;
    try {
      const provider = new IndexProvider(target, {
        sources: [{ kind: "index", location: primary }, ...sources],
      });
      await assert.rejects(
        provider.candidates("only2"),
        /only2\/ could not be read because the server answered HTTP 503, so only2 is not looked for on a later source/,
      );
      await assert.rejects(provider.candidates("junk"), /its JSON is invalid/);
      await assert.rejects(
        provider.candidates("local-only"),
        /HTTP 401, so local-only is not looked for on a later source .*; check the credentials or permissions it wants, or pass --mixed-sources/,
      );
      // The primary still answers for the rest: "only1" is absent there (404) and found later.
      assert.deepEqual(versions(await provider.candidates("only1")), ["1.0"]);
      assert.deepEqual(
        await provider.candidates("shared"),
        [],
        "not shared 1.0, 9.0 or 5.0 from later sources",
      );
      assert.equal(
        provider.whyNone("shared"),
        `its page on ${primary} lists no file pyferry can use`,
      );
    } finally {
      server.close();
    }
  });

  test("makes a candidate of a local wheel named by URL, and refuses unusable ones", async () => {
    const provider = new IndexProvider(target, { sources: [] });
    const wheel = join(root, "direct_pkg-2.0-py3-none-any.whl");
    makeWheel(wheel, "direct_pkg", "2.0", ["shared>=1"]);
    const c = await provider.directCandidate("Direct-Pkg", pathToFileURL(wheel).href);
    assert.equal(c.name, "direct-pkg");
    assert.equal(c.version, "2.0");
    assert.equal(c.direct, true);
    assert.deepEqual((await provider.metadata(c)).requiresDist, ["shared>=1"]);
    assert.match(await provider.sha256(c), /^[0-9a-f]{64}$/);

    const windows = join(root, "winonly-1.0-cp311-cp311-win_amd64.whl");
    writeFileSync(windows, "");
    await assert.rejects(
      provider.directCandidate("winonly", pathToFileURL(windows).href),
      (err: Error) =>
        err instanceof UserError && /cannot be installed on the target/.test(err.message),
    );
    await assert.rejects(
      provider.directCandidate(
        "direct-pkg",
        pathToFileURL(join(root, "direct_pkg-3.0-py3-none-any.whl")).href,
      ),
      /does not exist/,
    );
    await assert.rejects(
      provider.directCandidate("other", pathToFileURL(wheel).href),
      /another project/,
    );
  });

  test("resolves a direct reference to a local wheel together with its dependencies", async () => {
    const wheel = join(root, "withdeps-1.0-py3-none-any.whl");
    makeWheel(wheel, "withdeps", "1.0", ["local-only>=1", 'shared; extra == "more"']);
    const res = await resolve(
      {
        requirements: [parseRequirement(`withdeps[more] @ ${pathToFileURL(wheel).href}`)],
        target,
      },
      new IndexProvider(target, { sources: [{ kind: "find-links", location: links }] }),
    );
    const got = Object.fromEntries(res.packages.map((p) => [p.name, p.version]));
    assert.deepEqual(got, { "local-only": "1.0", shared: "5.0", withdeps: "1.0" });
    const direct = res.packages.find((p) => p.name === "withdeps");
    assert.equal(direct?.source, pathToFileURL(wheel).href);
    assert.deepEqual(direct?.extras, ["more"]);
    assert.match(direct?.sha256 ?? "", /^[0-9a-f]{64}$/);
  });

  test("a resolution with every source down says which and why", async () => {
    const dead = await deadIndex();
    await assert.rejects(
      resolve({
        requirements: [parseRequirement("requests")],
        target,
        settings: {
          indexUrl: dead,
          extraIndexUrls: [],
          findLinks: [],
          noIndex: false,
          trustedHosts: [],
          sources: {},
        },
      }),
      (err: Error) =>
        err instanceof IndexUnavailable &&
        err.message ===
          `The package index page ${dead}/requests/ could not be read because the connection was refused.`,
    );
  });

  test("a find-links location under a file: the error says why in words, once (no warning too)", async () => {
    writeFileSync(join(root, "app.txt"), "not a wheelhouse\n");
    const location = join(root, "app.txt", "wheels");
    const warnings: string[] = [];
    const provider = new IndexProvider(target, {
      sources: [{ kind: "find-links", location }],
      onWarning: (m) => warnings.push(m),
    });
    const why = "part of its path is a file, not a folder";
    await assert.rejects(provider.candidates("six"), (err: Error) => {
      assert.ok(err instanceof IndexUnavailable);
      assert.match(err.message, new RegExp(`could not be read because ${why}\\.$`));
      return true;
    });
    assert.deepEqual(warnings, []);
  });

  test("on the configured index, a project comes from one source only", async () => {
    const settings = loadPipSettings();
    const configured = sourcesFromSettings(settings);
    const strict = new IndexProvider(target, { sources: configured, http: { timeoutMs: 2000 } });
    const mixed = new IndexProvider(target, {
      sources: configured,
      allowMixedSources: true,
      http: { timeoutMs: 2000 },
    });
    for (const project of ["numpy", "requests"]) {
      const one = await strict.candidates(project);
      assert.ok(one.length > 0, `${project} should be on the configured index`);
      assert.equal(new Set(one.map((c) => c.source)).size, 1);
      const all = await mixed.candidates(project);
      assert.ok(all.length >= one.length);
      for (const c of one) assert.ok(all.some((a) => a.version === c.version));
    }
  });
});
