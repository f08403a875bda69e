import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { describe, test } from "node:test";
import type { Target } from "../../../src/python/target.js";
import {
  formatLock,
  lockedFileUrl,
  lockFromResolution,
  lockToml,
  readLock,
} from "../../../src/resolve/lock.js";
import type { Resolution, ResolvedPackage } from "../../../src/resolve/resolver.js";
import { UserError } from "../../../src/util/errors.js";
import { linuxTarget } from "../../support/targets.js";

const target: Target = linuxTarget({}, { platform_version: '#1 SMP "quoted" \\ back' });

function pkg(name: string, version: string, extra: Partial<ResolvedPackage> = {}): ResolvedPackage {
  const filename = `${name}-${version}-py3-none-any.whl`;
  return {
    name,
    version,
    file: {
      filename,
      url: `https://files.example/packages/${filename}`,
      hashes: {},
      yanked: false,
    },
    kind: "wheel",
    sha256: "ab".repeat(32),
    requested: false,
    extras: [],
    dependencies: [],
    source: "https://index.example/simple",
    index: "https://index.example/simple",
    ...extra,
  };
}

const resolution: Resolution = {
  target,
  requirements: ["requests[socks]>=2", 'tomli; python_version < "3.11"'],
  constraints: ["urllib3<3"],
  packages: [
    pkg("certifi", "2024.2.2", { requiresPython: ">=3.6", size: 163774 }),
    pkg("localpkg", "0.1", {
      file: {
        filename: "localpkg-0.1-py3-none-any.whl",
        url: "file:///srv/project/wheels/localpkg-0.1-py3-none-any.whl",
        hashes: {},
        yanked: false,
      },
      source: "/srv/project/wheels",
      index: undefined,
    }),
    pkg("requests", "2.31.0", {
      requested: true,
      extras: ["socks"],
      dependencies: ["certifi", "pysocks", "urllib3"],
    }),
    pkg("srconly", "1.0", {
      kind: "sdist",
      file: {
        filename: "srconly-1.0.tar.gz",
        url: "https://files.example/srconly-1.0.tar.gz",
        hashes: {},
        yanked: false,
      },
    }),
  ],
};
// An optional field set to undefined is not the same as an absent one to deepEqual.
delete (resolution.packages[1] as Partial<ResolvedPackage>).index;

describe("lockToml / readLock", () => {
  test("round trips: what is written reads back as the same lock, and formats to the same bytes", () => {
    const text = lockToml(resolution, { createdBy: "pyferry 0.1.0" });
    const lock = readLock(text, "pylock.toml");
    assert.deepEqual(lock, lockFromResolution(resolution, { createdBy: "pyferry 0.1.0" }));
    assert.equal(formatLock(lock), text);
    assert.equal(lock.target?.markerEnv.platform_version, '#1 SMP "quoted" \\ back');
    const requests = lock.packages.find((p) => p.name === "requests");
    assert.deepEqual(requests?.extras, ["socks"]);
    assert.equal(requests?.requested, true);
    assert.equal(
      lock.packages.find((p) => p.name === "srconly")?.sdist?.name,
      "srconly-1.0.tar.gz",
    );
    assert.deepEqual(lock.requirements, resolution.requirements);
  });

  test("is deterministic and records the target as an environment", () => {
    const shuffled: Resolution = {
      ...resolution,
      target: {
        ...target,
        markerEnv: Object.fromEntries(
          Object.entries(target.markerEnv).reverse(),
        ) as Target["markerEnv"],
      },
    };
    const a = lockToml(resolution);
    assert.equal(lockToml(resolution), a);
    assert.equal(lockToml(shuffled), a);
    assert.doesNotMatch(a, /\d{4}-\d\d-\d\dT/);
    assert.match(
      a,
      /^environments = \["python_version == '3\.11' and implementation_name == 'cpython' and sys_platform == 'linux' and platform_machine == 'x86_64'"\]$/m,
    );
    assert.match(a, /^requires-python = "==3\.11\.\*"$/m);
    assert.match(a, /^created-by = "pyferry"$/m);
  });

  test("is TOML that Python's tomllib reads as PEP 751 describes", () => {
    const text = lockToml(resolution, { lockDir: "/srv/project" });
    const script = "import json, sys, tomllib; print(json.dumps(tomllib.loads(sys.stdin.read())))";
    const doc = JSON.parse(
      execFileSync("python3", ["-c", script], { input: text, encoding: "utf8" }),
    );
    assert.equal(doc["lock-version"], "1.0");
    assert.deepEqual(doc.extras, []);
    const names = doc.packages.map((p: { name: string }) => p.name);
    assert.deepEqual(names, ["certifi", "localpkg", "requests", "srconly"]);
    assert.deepEqual(doc.packages[0].wheels, [
      {
        name: "certifi-2024.2.2-py3-none-any.whl",
        url: "https://files.example/packages/certifi-2024.2.2-py3-none-any.whl",
        size: 163774,
        hashes: { sha256: "ab".repeat(32) },
      },
    ]);
    assert.equal(doc.packages[1].wheels[0].path, "wheels/localpkg-0.1-py3-none-any.whl");
    assert.deepEqual(doc.packages[2].dependencies, [
      { name: "certifi" },
      { name: "pysocks" },
      { name: "urllib3" },
    ]);
    assert.equal(doc.packages[3].sdist.name, "srconly-1.0.tar.gz");
    assert.equal(doc.tool.pyferry.target["python-version"], "3.11.7");
  });

  test("records local files under the lock's folder relative to it, others by URL", () => {
    const lock = readLock(
      lockToml(resolution, { lockDir: "/srv/project" }),
      "/srv/project/pylock.toml",
    );
    const local = lock.packages.find((p) => p.name === "localpkg")?.wheels[0];
    assert.equal(local?.path, "wheels/localpkg-0.1-py3-none-any.whl");
    assert.equal(local?.url, undefined);
    assert.equal(
      lockedFileUrl(local ?? { name: "", sha256: "" }, "/srv/project"),
      "file:///srv/project/wheels/localpkg-0.1-py3-none-any.whl",
    );
    // Outside the lock's folder (a local index): its absolute URL, so a copied lock still works.
    const elsewhere = readLock(
      lockToml(resolution, { lockDir: "/srv/project/sub" }),
      "/srv/project/sub/pylock.toml",
    ).packages.find((p) => p.name === "localpkg")?.wheels[0];
    assert.equal(elsewhere?.path, undefined);
    assert.equal(elsewhere?.url, "file:///srv/project/wheels/localpkg-0.1-py3-none-any.whl");
  });

  test("reads a lock written by another tool", () => {
    const text = [
      "lock-version = '1.0'",
      "environments = [\"sys_platform == 'linux'\"]",
      "requires-python = '>=3.9'",
      "created-by = 'another-tool'",
      "",
      "[[packages]]",
      "name = 'Attrs'",
      "requires-python = '>=3.8'",
      "",
      "    [[packages.wheels]]",
      "    upload-time = 2025-01-25T11:30:10.164985+00:00",
      "    url = 'https://files.example/attrs-25.1.0-py3-none-any.whl'",
      "    hashes = {sha256 = 'C75A69E28A550A7E93789579C22AA26B0F5B83B75DC4E08FE092980051E1090A', md5 = 'x'}",
      "",
      "[[packages]]",
      "name = 'winonly'",
      "version = '1.0'",
      "marker = \"sys_platform == 'win32'\"",
      "wheels = [{url = 'https://files.example/winonly-1.0-py3-none-win_amd64.whl', hashes = {sha256 = '" +
        "0".repeat(64) +
        "'}}]",
      "",
    ].join("\n");
    const lock = readLock(text, "pylock.toml");
    assert.equal(lock.createdBy, "another-tool");
    assert.equal(lock.target, undefined);
    const attrs = lock.packages[0];
    assert.equal(attrs?.name, "attrs");
    assert.equal(attrs?.version, "25.1.0");
    assert.equal(attrs?.wheels[0]?.name, "attrs-25.1.0-py3-none-any.whl");
    assert.equal(
      attrs?.wheels[0]?.sha256,
      "c75a69e28a550a7e93789579c22aa26b0f5b83b75dc4e08fe092980051e1090a",
    );
    assert.equal(lock.packages[1]?.marker, "sys_platform == 'win32'");
  });

  test("reads the extras and dependency groups a lock offers, and its default groups", () => {
    const text = [
      "lock-version = '1'",
      "extras = ['CLI', 'fast_io']",
      "dependency-groups = ['dev']",
      "default-groups = ['default']",
      "created-by = 'another-tool'",
      "packages = []",
    ].join("\n");
    const lock = readLock(text, "pylock.toml");
    assert.deepEqual(lock.extras, ["cli", "fast-io"]);
    assert.deepEqual(lock.dependencyGroups, ["dev"]);
    assert.deepEqual(lock.defaultGroups, ["default"]);
    assert.equal(readLock(lockToml(resolution), "pylock.toml").extras, undefined);
    assert.throws(
      () => readLock(text.replace("'CLI'", "'-bad'"), "pylock.toml"),
      /The lock file pylock\.toml is invalid: its extra "-bad" is not a valid name\.$/,
    );
  });

  test("reads direct references: archives, folders and version-control commits", () => {
    const hash = "a".repeat(64);
    const text = [
      "lock-version = '1.0'",
      "created-by = 'another-tool'",
      "[[packages]]",
      "name = 'app'",
      "directory = { path = '.', editable = true }",
      "[[packages]]",
      "name = 'lib'",
      "version = '0.3'",
      "vcs = { type = 'git', url = 'https://example.org/lib.git', requested-revision = 'v0.3', commit-id = 'abc', subdirectory = 'py' }",
      "[[packages]]",
      "name = 'tar'",
      `archive = { path = 'vendor/tar-1.0.tar.gz', hashes = { sha256 = '${hash}' } }`,
    ].join("\n");
    const [app, lib, tar] = readLock(text, "pylock.toml").packages;
    assert.deepEqual(app?.source, { kind: "directory", path: ".", editable: true });
    assert.equal(app?.version, "");
    assert.deepEqual(lib?.source, {
      kind: "vcs",
      type: "git",
      url: "https://example.org/lib.git",
      commitId: "abc",
      requestedRevision: "v0.3",
      subdirectory: "py",
    });
    assert.deepEqual(tar?.source, {
      kind: "archive",
      file: { name: "tar-1.0.tar.gz", path: "vendor/tar-1.0.tar.gz", sha256: hash },
    });
    assert.deepEqual(tar?.wheels, []);
    for (const outside of ["../..", "/etc"]) {
      assert.throws(
        () => readLock(text.replace("subdirectory = 'py'", `subdirectory = '${outside}'`), "x"),
        /the subdirectory of the vcs of package lib leaves it\.$/,
      );
    }
    assert.throws(
      () =>
        readLock(
          text.replace(
            "editable = true }",
            "editable = true }\nvcs = { type = 'git', url = 'x', commit-id = 'y' }",
          ),
          "pylock.toml",
        ),
      /package app has both vcs and directory\.$/,
    );
  });

  const good = lockToml(resolution);
  const cases: [string, string, RegExp][] = [
    [
      "bad TOML",
      good.replace('name = "certifi"', 'name = "certifi'),
      /is not valid TOML: .* at line \d+, column \d+\.$/,
    ],
    [
      "a missing hash",
      good.replace(/hashes = \{ sha256 = "[0-9a-f]+" \}/, 'hashes = { md5 = "x" }'),
      /certifi-2024\.2\.2-py3-none-any\.whl of package certifi has no sha256 hash\.$/,
    ],
    [
      "a malformed hash",
      good.replace(/hashes = \{ sha256 = "[0-9a-f]+" \}/, 'hashes = { sha256 = "00" }'),
      /certifi-2024\.2\.2-py3-none-any\.whl of package certifi has a sha256 hash that is not 64 hexadecimal digits\.$/,
    ],
    [
      "an unknown major version",
      good.replace('lock-version = "1.0"', 'lock-version = "2.0"'),
      /lock-version is "2\.0" and this pyferry reads only 1\.x\.$/,
    ],
    [
      "a package without files",
      good.replace(/^wheels = \[\n.*certifi.*\n\]$/m, ""),
      /package certifi has neither a wheel nor an sdist\.$/,
    ],
    [
      "a VCS entry besides wheels",
      good.replace(
        'name = "certifi"',
        'name = "certifi"\nvcs = { type = "git", url = "x", commit-id = "y" }',
      ),
      /package certifi has vcs besides its wheels or sdist; PEP 751 allows one or the other\.$/,
    ],
    [
      "a duplicate",
      `${good}\n[[packages]]\nname = "certifi"\nversion = "1"\nsdist = { url = "https://x/certifi-1.tar.gz", hashes = { sha256 = "${"0".repeat(64)}" } }\n`,
      /package certifi is listed twice without markers\.$/,
    ],
    [
      "a name that is not a project name",
      good.replace('name = "certifi"', 'name = "../../evil"'),
      /packages entry \d+ has the invalid project name "\.\.\/\.\.\/evil"\.$/,
    ],
    [
      "an invalid version",
      good.replace(/(name = "certifi"\nversion = )"[^"]+"/, '$1"notaversion!!"'),
      /package certifi has the invalid version "notaversion!!"\.$/,
    ],
    [
      "a file of another version",
      good.replace(/(name = "certifi"\nversion = )"[^"]+"/, '$1"1.0"'),
      /certifi-2024\.2\.2-py3-none-any\.whl is not a file of certifi 1\.0\.$/,
    ],
    [
      "no packages",
      "lock-version = '1.0'\ncreated-by = 'x'\n",
      /it has no \[\[packages\]\] list\.$/,
    ],
  ];
  for (const [what, text, expected] of cases) {
    test(`rejects ${what} with one sentence`, () => {
      assert.throws(
        () => readLock(text, "pylock.toml"),
        (err: Error) => {
          assert.ok(err instanceof UserError, String(err));
          assert.match(err.message, /^The lock file pylock\.toml is (invalid|not valid TOML): /);
          assert.match(err.message, expected);
          assert.equal(err.message.split("\n").length, 1);
          return true;
        },
      );
    });
  }
});
