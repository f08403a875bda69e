import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import { pathToFileURL } from "node:url";
import { type IndexSettings, loadPipSettings } from "../../../src/index/pip-config.js";
import type { IndexFile } from "../../../src/index/simple.js";
import {
  chooseWheel,
  loadTopLevelMap,
  lookupModule,
  moduleNamesFromFiles,
  type TopLevelMap,
} from "../../../src/index/top-level-map.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-topmap-");
after(() => rmSync(root, { recursive: true, force: true }));
// cacheDir() reads this at each call; each test file runs in its own process.
process.env.PYFERRY_CACHE_DIR = join(root, "cache");

type Files = Record<string, string>;
/** Wheel filename -> its files, or a string for a file that is not a zip at all. */
type Project = Record<string, Files | string>;

function write(path: string, data: string | Buffer): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, data);
}

/** Write zips with Python's zipfile, all in one process. */
function makeZips(zips: { path: string; files: Files }[]): void {
  const script = [
    "import json, sys, zipfile",
    "for spec in json.load(sys.stdin):",
    "    with zipfile.ZipFile(spec['path'], 'w') as z:",
    "        for name, data in spec['files'].items(): z.writestr(name, data)",
  ].join("\n");
  execFileSync("python3", ["-c", script], { input: JSON.stringify(zips) });
}

/**
 * A PEP 503 index under `dir`: simple/index.html, simple/<project>/index.html linking
 * ../../files/<wheel>#sha256=..., with `extra` anchor attributes per file name.
 */
function buildIndex(dir: string, projects: Record<string, Project>, extra: Files = {}): string {
  const zips: { path: string; files: Files }[] = [];
  for (const project of Object.values(projects)) {
    for (const [filename, files] of Object.entries(project)) {
      const path = join(dir, "files", filename);
      if (typeof files === "string") write(path, files);
      else zips.push({ path, files });
    }
  }
  mkdirSync(join(dir, "files"), { recursive: true });
  makeZips(zips);
  for (const [name, project] of Object.entries(projects))
    writePage(dir, name, Object.keys(project), extra);
  const anchors = Object.keys(projects).map((p) => `<a href="${p}/">${p}</a>`);
  write(join(dir, "simple", "index.html"), `<html><body>\n${anchors.join("\n")}\n</body></html>`);
  return pathToFileURL(join(dir, "simple")).href;
}

function writePage(dir: string, project: string, filenames: string[], extra: Files = {}): void {
  const links = filenames.map((f) => {
    const sha = createHash("sha256")
      .update(readFileSync(join(dir, "files", f)))
      .digest("hex");
    return `<a href="../../files/${f}#sha256=${sha}" ${extra[f] ?? ""}>${f}</a>`;
  });
  write(
    join(dir, "simple", project, "index.html"),
    `<html><body>\n${links.join("\n")}\n</body></html>`,
  );
}

function settings(s: Partial<IndexSettings>): IndexSettings {
  return {
    indexUrl: "https://pypi.invalid/simple",
    extraIndexUrls: [],
    findLinks: [],
    noIndex: false,
    trustedHosts: [],
    sources: {},
    ...s,
  };
}

/** The map as plain data: module -> "project (wheel)[ incidental]" strings. */
function plain(map: TopLevelMap): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [m, providers] of [...map.modules].sort(([a], [b]) => (a < b ? -1 : 1))) {
    out[m] = providers.map((p) => `${p.project} ${p.wheel}${p.incidental ? " incidental" : ""}`);
  }
  return out;
}

describe("moduleNamesFromFiles", () => {
  test("well-known shared namespaces are looked into even with an __init__.py", () => {
    const r = moduleNamesFromFiles([
      "backports/__init__.py",
      "backports/tarfile/__init__.py",
      "jaraco/__init__.py",
      "jaraco/text/__init__.py",
      "ownpkg/__init__.py",
      "ownpkg/sub/__init__.py",
    ]);
    assert.deepEqual(r.modules, ["backports.tarfile", "jaraco.text", "ownpkg"]);
  });
  test("regular packages, modules and extension modules", () => {
    const r = moduleNamesFromFiles([
      "pkg/",
      "pkg/__init__.py",
      "pkg/sub/__init__.py",
      "single.py",
      "fast.cpython-311-x86_64-linux-gnu.so",
      "stable.abi3.so",
      "plain.so",
      "win.cp311-win_amd64.pyd",
      "old.pyd",
      "libfoo.so.1",
      "setup.cfg",
      "not-a-name.py",
      "__init__.py",
      "pkg-1.0.dist-info/METADATA",
      "pkg-1.0.dist-info/RECORD",
      "pkg.libs/libz-1234.so",
    ]);
    assert.deepEqual(r.modules, ["fast", "old", "pkg", "plain", "single", "stable", "win"]);
    assert.deepEqual(r.incidental, []);
  });

  test("namespace packages are recorded by their dotted sub-packages", () => {
    const r = moduleNamesFromFiles([
      "google/protobuf/__init__.py",
      "google/protobuf/message.py",
      "google/_upb/_message.abi3.so",
      "google/cloud/storage/__init__.py",
      "google/cloud/storage/blob.py",
      "google/api/http_pb2.py",
      "nspkg/deeper/mod.py",
      "nvidia/cudnn/lib/libcudnn.so",
    ]);
    assert.deepEqual(r.modules, [
      "google.api.http_pb2",
      "google.cloud.storage",
      "google.protobuf",
      "nspkg.deeper.mod",
    ]);
  });

  test("a folder without any .py file is data, not a module", () => {
    const r = moduleNamesFromFiles(["assets/logo.png", "assets/sub/x.json", "real.py"]);
    assert.deepEqual(r.modules, ["real"]);
  });

  test(".data/purelib and platlib count as top level; scripts, headers and data do not", () => {
    const r = moduleNamesFromFiles([
      "d-1.0.data/purelib/dl/__init__.py",
      "d-1.0.data/platlib/dlext.cpython-311-x86_64-linux-gnu.so",
      "d-1.0.data/scripts/runme.py",
      "d-1.0.data/headers/h.py",
      "d-1.0.data/data/share/x/y.py",
    ]);
    assert.deepEqual(r.modules, ["dl", "dlext"]);
  });

  test("tests/docs/examples beside a real module are incidental, alone they are not", () => {
    const r = moduleNamesFromFiles([
      "sloppy/__init__.py",
      "tests/__init__.py",
      "docs/conf.py",
      "examples/demo.py",
    ]);
    assert.deepEqual(r.modules, ["docs.conf", "examples.demo", "sloppy", "tests"]);
    assert.deepEqual(r.incidental, ["docs.conf", "examples.demo", "tests"]);
    assert.deepEqual(moduleNamesFromFiles(["testing/__init__.py"]).incidental, []);
  });
});

describe("chooseWheel", () => {
  const file = (filename: string, yanked: boolean | string = false): IndexFile => ({
    filename,
    url: `https://h/${filename}`,
    hashes: {},
    yanked,
  });

  test("newest release, preferring py3-none-any, then any, then Linux", () => {
    const pick = (names: string[]) =>
      chooseWheel(
        names.map((n) => file(n)),
        "foo-bar",
      )?.filename;
    assert.equal(
      pick([
        "foo_bar-1.0-py3-none-any.whl",
        "foo_bar-1.10-cp311-cp311-win_amd64.whl",
        "foo_bar-1.10-cp311-cp311-manylinux_2_17_x86_64.whl",
        "foo_bar-1.10-py3-none-any.whl",
        "foo_bar-1.10.tar.gz",
        "foo_bar-1.9-py3-none-any.whl",
      ]),
      "foo_bar-1.10-py3-none-any.whl",
    );
    assert.equal(
      pick([
        "Foo.Bar-2.0-cp311-cp311-win_amd64.whl",
        "foo_bar-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
      ]),
      "foo_bar-2.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    );
    assert.equal(
      pick(["foo_bar-2.0-py2.py3-none-any.whl", "foo_bar-2.0-cp311-abi3-linux_x86_64.whl"]),
      "foo_bar-2.0-py2.py3-none-any.whl",
    );
  });

  test("skips yanked files, other projects and pre-releases unless nothing else exists", () => {
    const files = [
      file("foo_bar-3.0-py3-none-any.whl", "broken"),
      file("foo_bar-2.1rc1-py3-none-any.whl"),
      file("other-9.0-py3-none-any.whl"),
      file("foo_bar-2.0-py3-none-any.whl"),
    ];
    assert.equal(chooseWheel(files, "foo-bar")?.filename, "foo_bar-2.0-py3-none-any.whl");
    assert.equal(
      chooseWheel(files.slice(0, 3), "foo-bar")?.filename,
      "foo_bar-2.1rc1-py3-none-any.whl",
    );
    assert.equal(chooseWheel([file("foo_bar-1.0.tar.gz")], "foo-bar"), undefined);
  });
});

describe("loadTopLevelMap", () => {
  const first = join(root, "first");
  const firstUrl = buildIndex(
    first,
    {
      alpha: {
        "alpha-1.0-py3-none-any.whl": { "alpha_old/__init__.py": "" },
        "alpha-2.0-py3-none-any.whl": { "alpha/__init__.py": "", "alpha/sub.py": "" },
        "alpha-2.0-cp311-cp311-manylinux_2_17_x86_64.whl": {
          "alpha/__init__.py": "",
          "alpha_linux_only.py": "",
        },
        "alpha-2.1-py3-none-any.whl": { "alpha_yanked.py": "" },
        "alpha-3.0rc1-py3-none-any.whl": { "alpha_pre.py": "" },
        "evil-9.0-py3-none-any.whl": { "evil.py": "" },
      },
      protobuf: {
        "protobuf-5.0-cp39-abi3-manylinux2014_x86_64.whl": {
          "google/protobuf/__init__.py": "",
          "google/_upb/_message.abi3.so": "",
          "protobuf-5.0.dist-info/METADATA": "",
        },
      },
      "google-cloud-storage": {
        "google_cloud_storage-2.0-py2.py3-none-any.whl": { "google/cloud/storage/__init__.py": "" },
      },
      extmods: {
        "extmods-1.0-cp311-cp311-linux_x86_64.whl": {
          "fast.cpython-311-x86_64-linux-gnu.so": "",
          "stable.abi3.so": "",
          "win.pyd": "",
          "single.py": "",
        },
      },
      datalib: {
        "datalib-1.0-py3-none-any.whl": {
          "datalib-1.0.data/purelib/dl/__init__.py": "",
          "datalib-1.0.data/scripts/runme.py": "",
        },
      },
      sloppy: {
        "sloppy-1.0-py3-none-any.whl": {
          "sloppy/__init__.py": "",
          "tests/__init__.py": "",
          "assets/logo.png": "",
        },
      },
      nowheel: { "nowheel-1.0.tar.gz": "not read" },
      broken: { "broken-1.0-py3-none-any.whl": "this is not a zip file" },
      "shared-a": { "shared_a-1.0-py3-none-any.whl": { "shared/__init__.py": "" } },
      dup: { "dup-1.0-py3-none-any.whl": { "dupmod.py": "" } },
    },
    { "alpha-2.1-py3-none-any.whl": 'data-yanked=""' },
  );
  const secondUrl = buildIndex(join(root, "second"), {
    dup: { "dup-5.0-py3-none-any.whl": { "dupmod.py": "", "dup_new.py": "" } },
    "shared-b": { "shared_b-1.0-py3-none-any.whl": { "shared/__init__.py": "" } },
  });
  const links = join(root, "links");
  mkdirSync(links, { recursive: true });
  makeZips([
    {
      path: join(links, "shared_c-1.0-py3-none-any.whl"),
      files: { "shared/__init__.py": "", "flmod.py": "" },
    },
    { path: join(links, "alpha-9.0-py3-none-any.whl"), files: { "alpha_fl.py": "" } },
  ]);
  write(join(links, "other-1.0.tar.gz"), "x");

  const expected = {
    alpha: ["alpha alpha-2.0-py3-none-any.whl"],
    dl: ["datalib datalib-1.0-py3-none-any.whl"],
    dupmod: ["dup dup-1.0-py3-none-any.whl"],
    fast: ["extmods extmods-1.0-cp311-cp311-linux_x86_64.whl"],
    flmod: ["shared-c shared_c-1.0-py3-none-any.whl"],
    "google.cloud.storage": ["google-cloud-storage google_cloud_storage-2.0-py2.py3-none-any.whl"],
    "google.protobuf": ["protobuf protobuf-5.0-cp39-abi3-manylinux2014_x86_64.whl"],
    shared: [
      "shared-a shared_a-1.0-py3-none-any.whl",
      "shared-b shared_b-1.0-py3-none-any.whl",
      "shared-c shared_c-1.0-py3-none-any.whl",
    ],
    single: ["extmods extmods-1.0-cp311-cp311-linux_x86_64.whl"],
    sloppy: ["sloppy sloppy-1.0-py3-none-any.whl"],
    stable: ["extmods extmods-1.0-cp311-cp311-linux_x86_64.whl"],
    tests: ["sloppy sloppy-1.0-py3-none-any.whl incidental"],
    win: ["extmods extmods-1.0-cp311-cp311-linux_x86_64.whl"],
  };

  test("reads the sources named by pip's configuration, in priority order", async () => {
    const conf = join(root, "pip.conf");
    write(
      conf,
      `[global]\nindex-url = ${firstUrl}\nextra-index-url = ${secondUrl}\nfind-links = ${links}\n`,
    );
    const s = loadPipSettings({ HOME: join(root, "home"), PIP_CONFIG_FILE: conf }, root);
    const progress: [number, number][] = [];
    const map = await loadTopLevelMap(s, { onProgress: (d, t) => progress.push([d, t]) });
    assert.deepEqual(plain(map), expected);
    assert.deepEqual(map.indexes, [firstUrl, secondUrl, links]);
    assert.equal(map.warnings.length, 1);
    assert.match(
      map.warnings[0] as string,
      /^Could not list the files in file:\/\/.*\/broken-1\.0-py3-none-any\.whl because it is not a valid zip file \(/,
    );
    assert.deepEqual(progress.at(-1), [14, 14]);
    assert.deepEqual(lookupModule(map, "google.protobuf.message"), {
      prefix: "google.protobuf",
      providers: [
        { project: "protobuf", wheel: "protobuf-5.0-cp39-abi3-manylinux2014_x86_64.whl" },
      ],
    });
    assert.equal(
      lookupModule(map, "google.cloud.storage")?.providers[0]?.project,
      "google-cloud-storage",
    );
    assert.equal(lookupModule(map, "google"), undefined);
    assert.equal(lookupModule(map, "alpha.sub.x")?.prefix, "alpha");
  });

  test("no-index leaves only find-links", async () => {
    const map = await loadTopLevelMap(
      settings({ indexUrl: firstUrl, noIndex: true, findLinks: [links] }),
    );
    assert.deepEqual(map.indexes, [links]);
    assert.deepEqual(Object.keys(plain(map)), ["alpha_fl", "flmod", "shared"]);
  });

  test("reads an index served over HTTP the same way", async () => {
    const server = createServer((req, res) => {
      let path = join(first, decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname));
      if (path.endsWith("/")) path = join(path, "index.html");
      let data: Buffer;
      try {
        data = readFileSync(path);
      } catch {
        res.statusCode = 404;
        res.end();
        return;
      }
      const m = /^bytes=-(\d+)$/.exec(req.headers.range ?? "");
      if (m) {
        const start = Math.max(0, data.length - Number(m[1]));
        res.statusCode = 206;
        res.setHeader("Content-Range", `bytes ${start}-${data.length - 1}/${data.length}`);
        data = data.subarray(start);
      }
      res.end(data);
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    after(() => {
      server.closeAllConnections();
      server.close();
    });
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/simple`;
    const map = await loadTopLevelMap(settings({ indexUrl: url }));
    assert.equal(map.warnings.length, 1);
    assert.match(map.warnings[0] as string, /broken-1\.0-py3-none-any\.whl because/);
    const fromFiles = { ...expected } as Record<string, string[]>;
    delete fromFiles.flmod;
    fromFiles.shared = ["shared-a shared_a-1.0-py3-none-any.whl"];
    assert.deepEqual(plain(map), fromFiles);
  });

  test("unreachable, insecure and oversized sources become warnings, quickly", async () => {
    const dead = await new Promise<string>((resolve) => {
      const s = createServer();
      s.listen(0, "127.0.0.1", () => {
        const port = (s.address() as AddressInfo).port;
        s.close(() => resolve(`http://127.0.0.1:${port}/simple`));
      });
    });
    const huge = join(root, "huge");
    const anchors = Array.from({ length: 20_001 }, (_, i) => `<a href="p${i}/">p${i}</a>`);
    write(join(huge, "index.html"), anchors.join("\n"));
    const start = Date.now();
    const map = await loadTopLevelMap(
      settings({
        indexUrl: dead,
        extraIndexUrls: [huge, "http://example.invalid/simple", secondUrl],
      }),
    );
    assert.ok(Date.now() - start < 5000);
    assert.deepEqual(map.indexes, [secondUrl]);
    assert.deepEqual(map.warnings, [
      `The package index ${dead}/ could not be read because the connection was refused.`,
      `Skipped ${huge}: it lists more than 20000 projects, too many to read one wheel of each.`,
      "Skipped http://example.invalid/simple: pip ignores plain-HTTP sources unless their host is a trusted-host.",
    ]);
    assert.deepEqual(Object.keys(plain(map)), ["dup_new", "dupmod", "shared"]);
  });

  test("a damaged cache is rebuilt and an unwritable one is a warning", async () => {
    const dir = join(root, "damaged");
    const url = buildIndex(dir, { solo: { "solo-1.0-py3-none-any.whl": { "solo.py": "" } } });
    const s = settings({ indexUrl: url });
    assert.deepEqual(Object.keys(plain(await loadTopLevelMap(s))), ["solo"]);
    const key = createHash("sha256").update(url).digest("hex");
    const cacheFile = join(process.env.PYFERRY_CACHE_DIR as string, "index-map", `${key}.json`);
    writeFileSync(cacheFile, '{"version":1,"projects":{"solo":{"wheel":3}}');
    assert.deepEqual(Object.keys(plain(await loadTopLevelMap(s))), ["solo"]);
    assert.match(readFileSync(cacheFile, "utf8"), /"solo-1\.0-py3-none-any\.whl"/);

    const saved = process.env.PYFERRY_CACHE_DIR;
    process.env.PYFERRY_CACHE_DIR = join(cacheFile, "not-a-dir");
    try {
      const map = await loadTopLevelMap(s);
      assert.deepEqual(Object.keys(plain(map)), ["solo"]);
      assert.equal(map.warnings.length, 1);
      assert.match(map.warnings[0] as string, /^Could not save the index cache .*not-a-dir/);
    } finally {
      process.env.PYFERRY_CACHE_DIR = saved;
    }
  });

  test("a second load reads only the projects whose chosen wheel changed", async () => {
    const dir = join(root, "cached");
    const url = buildIndex(dir, {
      one: { "one-1.0-py3-none-any.whl": { "one.py": "" } },
      two: { "two-1.0-py3-none-any.whl": { "two.py": "" } },
      three: { "three-1.0-py3-none-any.whl": { "three.py": "" } },
      four: { "four-1.0-py3-none-any.whl": { "four.py": "" } },
      five: { "five-1.0-py3-none-any.whl": { "five.py": "" } },
    });
    const s = settings({ indexUrl: url });
    const cold = await loadTopLevelMap(s);
    assert.deepEqual(cold.warnings, []);
    assert.deepEqual(Object.keys(plain(cold)), ["five", "four", "one", "three", "two"]);

    // Without the wheel files, only the cache can answer.
    rmSync(join(dir, "files"), { recursive: true });
    const warm = await loadTopLevelMap(s);
    assert.deepEqual(warm.warnings, []);
    assert.deepEqual(plain(warm), plain(cold));

    // A new release of one project: that wheel, and only it, is read.
    mkdirSync(join(dir, "files"));
    makeZips([{ path: join(dir, "files", "two-2.0-py3-none-any.whl"), files: { "two2.py": "" } }]);
    writePage(dir, "two", ["two-2.0-py3-none-any.whl"]);
    const updated = await loadTopLevelMap(s);
    assert.deepEqual(updated.warnings, []);
    assert.deepEqual(Object.keys(plain(updated)), ["five", "four", "one", "three", "two2"]);

    // refresh ignores the cache, so the deleted wheels are missed (and the warnings grouped).
    const refreshed = await loadTopLevelMap(s, { refresh: true, concurrency: 1 });
    assert.deepEqual(Object.keys(plain(refreshed)), ["two2"]);
    assert.equal(refreshed.warnings.length, 4);
    assert.match(
      refreshed.warnings[0] as string,
      /five-1\.0-py3-none-any\.whl because it does not exist\.$/,
    );
    assert.equal(refreshed.warnings[3], `1 more project on ${url} could not be read.`);
    // The cache kept the entries of projects that failed, so the next load still has them.
    assert.deepEqual(Object.keys(plain(await loadTopLevelMap(s))), Object.keys(plain(updated)));
  });
});
