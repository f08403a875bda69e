/**
 * Differential test of installing from PEP 751 locks against the reference implementation,
 * `packaging.pylock` (packaging >= 26.1, fetched from pip's configured index): for locks other
 * tools could write and for locks pyferry writes, under every local interpreter packaging runs
 * on, and for each choice of extras and dependency groups, pyferry selects the same packages
 * and the same files as `Pylock.select()`, or both refuse. Then `env create --lock` with
 * --extra/--group installs exactly that selection from real wheels.
 */
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { after, before, test } from "node:test";
import { pathToFileURL } from "node:url";
import { parse } from "smol-toml";
import { type InterpreterInfo, probeInterpreter } from "../../src/python/interpreter.js";
import { tagRanks } from "../../src/python/tags.js";
import { targetFromInterpreter, targetTagList } from "../../src/python/target.js";
import { type LockedPackage, readLock } from "../../src/resolve/lock.js";
import { installFile, type LockChoice, selectPackages } from "../../src/resolve/lock-select.js";
import { UserError } from "../../src/util/errors.js";
import { pyferry } from "../support/cli.js";
import { PIP_FLAGS, testPython } from "../support/install-child.js";
import { mirrorWheels } from "../support/mirror.js";
import { tempDir } from "../support/temp.js";

const work = tempDir("pyferry-lock-ref-");
after(() => rmSync(work, { recursive: true, force: true }));

/** The reference: packaging's wheel from the index pip is configured with. */
let packagingWheel = "";
before(() => {
  const dest = join(work, "packaging");
  const r = spawnSync(
    "python3",
    [
      "-m",
      "pip",
      "download",
      ...PIP_FLAGS,
      "--no-deps",
      "--only-binary",
      ":all:",
      "-d",
      dest,
      "packaging>=26.1",
    ],
    { encoding: "utf8" },
  );
  assert.equal(r.status, 0, `pip could not fetch packaging>=26.1 from its index:\n${r.stderr}`);
  const wheel = readdirSync(dest).find((f) => f.endsWith(".whl"));
  assert.ok(wheel, "pip download left no packaging wheel");
  packagingWheel = join(dest, wheel);
});

const PYENV = join(homedir(), ".pyenv", "versions");
const INTERPRETERS = [
  "/usr/bin/python3",
  ...(existsSync(PYENV) ? readdirSync(PYENV).map((v) => join(PYENV, v, "bin", "python")) : []),
].filter((p) => existsSync(p));

// --- locks ------------------------------------------------------------------------------

const sha = (text: string) => createHash("sha256").update(text).digest("hex");
const file = (name: string) =>
  `{ name = "${name}", url = "https://files.example/${name}", hashes = { sha256 = "${sha(name)}" } }`;
const wheels = (pkg: string, version: string, tags: string[]) =>
  `wheels = [\n${tags.map((t) => `  ${file(`${pkg}-${version}-${t}.whl`)},`).join("\n")}\n]`;
const sdist = (pkg: string, version: string) => `sdist = ${file(`${pkg}-${version}.tar.gz`)}`;

function pkg(name: string, version: string, ...lines: string[]): string {
  return ["", "[[packages]]", `name = "${name}"`, `version = "${version}"`, ...lines].join("\n");
}

/** A pure wheel of `name` installed only where `marker` holds. */
const when = (name: string, version: string, marker: string) =>
  pkg(name, version, `marker = ${JSON.stringify(marker)}`, wheels(name, version, ["py3-none-any"]));

const HEAD = (extra: string[] = []) =>
  ['lock-version = "1.0"', ...extra, 'created-by = "a hand-written lock (pyferry tests)"'].join(
    "\n",
  );

const MANY = "manylinux_2_17_x86_64.manylinux2014_x86_64";
/** Markers on extras and groups, tag preference, sdist fallback, versions by marker, ties. */
const WIDE = [
  HEAD([
    'requires-python = ">=3.8"',
    'extras = ["cli", "fast-io"]',
    'dependency-groups = ["dev", "docs"]',
    'default-groups = ["default"]',
  ]),
  pkg("plain", "1.0", wheels("plain", "1.0", ["py3-none-any"])),
  pkg(
    "native",
    "2.0",
    wheels("native", "2.0", [
      "py3-none-any",
      "cp38-abi3-manylinux_2_17_x86_64",
      ...["38", "39", "310", "311", "313"].map((v) => `cp${v}-cp${v}-${MANY}`),
      "cp312-cp312-manylinux_2_99_x86_64",
      "cp311-cp311-musllinux_1_2_x86_64",
      "cp311-cp311-win_amd64",
      "cp311-cp311-macosx_11_0_arm64",
    ]),
  ),
  pkg(
    "abi3only",
    "1.0",
    wheels("abi3only", "1.0", ["py3-none-any", "cp39-abi3-manylinux_2_17_x86_64"]),
  ),
  pkg(
    "withsdist",
    "1.0",
    wheels("withsdist", "1.0", [`cp312-cp312-${MANY}`]),
    sdist("withsdist", "1.0"),
  ),
  pkg("sdistonly", "1.0", sdist("sdistonly", "1.0")),
  when("winonly", "1.0", "sys_platform == 'win32'"),
  when("versioned", "1.0", "python_version < '3.10'"),
  when("versioned", "2.0", "python_version >= '3.10'"),
  when("clitool", "1.0", "'cli' in extras"),
  when("fastio", "1.0", "'Fast_IO' in extras"),
  when("devtool", "1.0", "'dev' in dependency_groups"),
  when("basedep", "1.0", "'default' in dependency_groups"),
  when("nodocs", "1.0", "'docs' not in dependency_groups"),
  when(
    "mixed",
    "1.0",
    "'cli' in extras and sys_platform == 'linux' or python_full_version >= '3.13.0'",
  ),
  pkg(
    "torchlike",
    "2.0+cpu",
    `wheels = [{ url = "https://files.example/torchlike-2.0%2Bcpu-py3-none-any.whl", hashes = { sha256 = "${sha("t")}" } }]`,
  ),
  pkg(
    "queried",
    "1.0",
    `wheels = [{ url = "https://files.example/queried-1.0-py3-none-any.whl?raw=1#x", hashes = { sha256 = "${sha("q")}" } }]`,
  ),
  pkg("tie", "1.0", wheels("tie", "1.0", ["1-py3-none-any", "2-py3-none-any"])),
  pkg("newer", "1.0", 'requires-python = ">=3.8"', wheels("newer", "1.0", ["py3-none-any"])),
  [
    "",
    "[[packages]]",
    'name = "localproj"',
    'directory = { path = "../localproj", editable = true }',
  ].join("\n"),
  pkg(
    "gitdep",
    "0.3",
    `vcs = { type = "git", url = "https://example.org/gitdep.git", requested-revision = "v0.3", commit-id = "${sha("gitdep").slice(0, 40)}" }`,
  ),
  pkg(
    "tarball",
    "1.0",
    "marker = \"python_version >= '3.11'\"",
    `archive = { url = "https://files.example/tarball-1.0.tar.gz", hashes = { sha256 = "${sha("tarball")}" } }`,
  ),
].join("\n");

const PICKS: LockChoice[] = [
  {},
  { extras: ["cli"] },
  { extras: ["Fast.IO", "cli"] },
  { groups: ["dev"] },
  { groups: ["docs", "dev"], noDefaultGroups: true },
  { noDefaultGroups: true },
];

/** Locks every installer must refuse somewhere: pyferry must refuse exactly where packaging does. */
const REFUSED: [string, string][] = [
  [
    "a package's requires-python",
    [
      HEAD(),
      pkg("new", "1.0", 'requires-python = ">=3.12"', wheels("new", "1.0", ["py3-none-any"])),
    ].join("\n"),
  ],
  [
    "two entries of one name that both apply",
    [
      HEAD(),
      when("dup", "1.0", "python_version >= '3.8'"),
      when("dup", "2.0", "sys_platform == 'linux'"),
    ].join("\n"),
  ],
  [
    "the lock's requires-python",
    [
      HEAD(['requires-python = ">=3.10"']),
      pkg("a", "1.0", wheels("a", "1.0", ["py3-none-any"])),
    ].join("\n"),
  ],
  [
    "environments",
    [
      HEAD([`environments = ["sys_platform == 'win32'", "python_version < '3.0'"]`]),
      pkg("a", "1.0", wheels("a", "1.0", ["py3-none-any"])),
    ].join("\n"),
  ],
  [
    "an extra marker",
    [HEAD(), when("withextra", "1.0", "sys_platform == 'linux' and extra == 'x'")].join("\n"),
  ],
  [
    "a folder besides wheels",
    [
      HEAD(),
      pkg("both", "1.0", 'directory = { path = "both" }', wheels("both", "1.0", ["py3-none-any"])),
    ].join("\n"),
  ],
  [
    "no fitting wheel and no sdist",
    [HEAD(), pkg("win", "1.0", wheels("win", "1.0", ["cp311-cp311-win_amd64"]))].join("\n"),
  ],
];

// --- both sides -------------------------------------------------------------------------

type Outcome = { files: [string, string][] } | { error: string };
interface Case {
  label: string;
  text: string;
  picks: LockChoice[];
}

/** The groups packaging is given: None (its default-groups) unless the pick says otherwise. */
function referenceGroups(lockText: string, pick: LockChoice): string[] | null {
  if (!pick.groups && !pick.noDefaultGroups) return null;
  const defaults = pick.noDefaultGroups
    ? []
    : ((parse(lockText)["default-groups"] as string[] | undefined) ?? []);
  return [...defaults, ...(pick.groups ?? [])];
}

const REFERENCE = `
import json, sys
sys.path.insert(0, sys.argv[1])
from packaging.pylock import Pylock
try:
    import tomllib
except ImportError:
    tomllib = None
def shown(f):
    kind = type(f).__name__
    if kind == "PackageDirectory":
        return "directory:" + f.path
    if kind == "PackageVcs":
        return "vcs:" + f.commit_id
    if kind == "PackageArchive":
        return "archive:" + (f.url or f.path)
    return f.filename
out = []
for case in json.load(sys.stdin):
    try:
        lock = Pylock.from_dict(tomllib.loads(case["text"]) if tomllib else case["data"])
    except Exception as e:
        out.append({"invalid": str(e)})
        continue
    picks = []
    for pick in case["picks"]:
        try:
            picks.append({"files": [[p.name, shown(f)] for p, f in lock.select(extras=pick["extras"], dependency_groups=pick["groups"])]})
        except Exception as e:
            picks.append({"error": str(e)})
    out.append({"picks": picks})
print(json.dumps(out))
`;

function reference(
  python: string,
  cases: Case[],
): ({ invalid: string } | { picks: Outcome[] })[] | undefined {
  const input = cases.map((c) => ({
    text: c.text,
    data: parse(c.text),
    picks: c.picks.map((p) => ({ extras: p.extras ?? [], groups: referenceGroups(c.text, p) })),
  }));
  // Interpreters older than packaging supports cannot take part.
  const probe = "import sys; sys.path.insert(0, sys.argv[1]); import packaging.pylock";
  if (spawnSync(python, ["-c", probe, packagingWheel]).status !== 0) return undefined;
  const r = spawnSync(python, ["-c", REFERENCE, packagingWheel], {
    input: JSON.stringify(input),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** What a package installs from, as the reference script shows it. */
function shown(p: LockedPackage, ranks: Map<string, number>): string {
  const s = p.source;
  if (s?.kind === "directory") return `directory:${s.path}`;
  if (s?.kind === "vcs") return `vcs:${s.commitId}`;
  if (s?.kind === "archive") return `archive:${s.file.url ?? s.file.path}`;
  return installFile(p, ranks).name;
}

function ours(info: InterpreterInfo, c: Case): { invalid: string } | { picks: Outcome[] } {
  let lock: ReturnType<typeof readLock>;
  try {
    lock = readLock(c.text, "pylock.toml");
  } catch (err) {
    if (err instanceof UserError) return { invalid: err.message };
    throw err;
  }
  const ranks = tagRanks(targetTagList(targetFromInterpreter(info)));
  return {
    picks: c.picks.map((pick): Outcome => {
      try {
        const chosen = selectPackages(lock, info, pick);
        return { files: chosen.map((p) => [p.name, shown(p, ranks)]) };
      } catch (err) {
        if (!(err instanceof UserError)) throw err;
        assert.equal(err.message.split("\n").length, 1, err.message);
        return { error: err.message };
      }
    }),
  };
}

function compare(python: string, info: InterpreterInfo, cases: Case[]): boolean {
  const theirs = reference(python, cases);
  if (!theirs) return false;
  cases.forEach((c, i) => {
    const mine = ours(info, c);
    const ref = theirs[i] as { invalid: string } | { picks: Outcome[] };
    const where = `${c.label} under ${python} (Python ${info.version})`;
    if ("invalid" in ref || "invalid" in mine) {
      // A duplicate without markers is refused when pyferry reads it, and by packaging's select.
      const refused = "invalid" in ref || ref.picks.every((p) => "error" in p);
      assert.ok(
        "invalid" in mine && refused,
        `${where}: pyferry ${JSON.stringify(mine)}, packaging ${JSON.stringify(ref)}`,
      );
      return;
    }
    c.picks.forEach((pick, k) => {
      const a = mine.picks[k] as Outcome;
      const b = ref.picks[k] as Outcome;
      const what = `${where}, picking ${JSON.stringify(pick)}`;
      if ("error" in b)
        assert.ok(
          "error" in a,
          `${what}: packaging refused (${b.error}); pyferry chose ${JSON.stringify(a)}`,
        );
      else assert.deepEqual(a, b, what);
    });
  });
  return true;
}

test("selection from locks other tools write agrees with packaging.pylock under every interpreter", async (t) => {
  const cases: Case[] = [
    { label: "the wide lock", text: WIDE, picks: PICKS },
    ...REFUSED.map(([label, text]) => ({
      label: `a lock refused for ${label}`,
      text,
      picks: [{}],
    })),
  ];
  const took: string[] = [];
  for (const python of INTERPRETERS) {
    const info = await probeInterpreter(python).catch(() => undefined);
    if (info && compare(python, info, cases)) took.push(`${python} (${info.version})`);
  }
  t.diagnostic(`interpreters compared: ${took.join(", ")}`);
  assert.ok(took.length >= 4, `only ${took.length} interpreters could run packaging.pylock`);
  // Not vacuous: the wide lock's choices differ by interpreter and pick, and some are refused.
  const info = await probeInterpreter(testPython());
  const picked = ours(info, { label: "", text: WIDE, picks: PICKS }) as { picks: Outcome[] };
  assert.equal(new Set(picked.picks.map((p) => JSON.stringify(p))).size, PICKS.length);
});

/** `pyferry lock ARGS -o OUT --python PYTHON`, which must succeed: the lock's text. */
function pyferryLock(args: string[], out: string, python: string): string {
  const r = pyferry(["lock", ...args, "-o", out, "--python", python]);
  assert.equal(r.status, 0, r.stderr);
  return readFileSync(out, "utf8");
}

test("locks pyferry writes are valid for packaging.pylock and select the same files", async (t) => {
  const python = testPython();
  const out = join(work, "own.toml");
  const text = pyferryLock(["requests", "attrs", "tabulate; python_version >= '3.8'"], out, python);
  const info = await probeInterpreter(python);
  assert.ok(compare(python, info, [{ label: "pyferry's lock", text, picks: [{}] }]));
  // Another interpreter must be refused by both, through environments and requires-python.
  const other = INTERPRETERS.find((p) => !p.includes(info.version) && /3\.1[23]/.test(p));
  if (other) {
    const otherInfo = await probeInterpreter(other);
    t.diagnostic(`refused for ${other}`);
    assert.ok(
      compare(other, otherInfo, [{ label: "pyferry's lock elsewhere", text, picks: [{}] }]),
    );
    const mine = ours(otherInfo, { label: "", text, picks: [{}] }) as { picks: Outcome[] };
    assert.ok("error" in (mine.picks[0] as Outcome));
  }
});

test("a project's extras and groups that pyferry locks select as packaging.pylock selects them", async () => {
  const python = testPython();
  const project = join(work, "project");
  mkdirSync(project, { recursive: true });
  writeFileSync(join(project, "app.py"), "import six\n");
  writeFileSync(
    join(project, "pyproject.toml"),
    [
      "[project]",
      'name = "demo"',
      'version = "1.0"',
      'dependencies = ["six", "requests"]',
      "[project.optional-dependencies]",
      'socks = ["requests[socks]"]',
      'table = ["tabulate"]',
      'all = ["demo[socks,table]"]',
      "[dependency-groups]",
      'docs = ["docutils"]',
      'dev = ["attrs", {include-group = "docs"}]',
    ].join("\n"),
  );
  const out = join(work, "project.toml");
  const text = pyferryLock([project, "--all-extras", "--all-groups"], out, python);
  const doc = parse(text) as { extras: string[]; "dependency-groups": string[] };
  assert.deepEqual(doc.extras, ["all", "socks", "table"]);
  assert.deepEqual(doc["dependency-groups"], ["dev", "docs"]);
  // pysocks comes only with requests' socks extra, which only the project's extras ask for.
  assert.match(
    text,
    /name = "pysocks"\nversion = "[^"]+"\nmarker = "'all' in extras or 'socks' in extras"/,
  );
  assert.match(text, /name = "requests"\nversion = "[^"]+"\n(?!marker)/);
  const picks: LockChoice[] = [
    {},
    { extras: ["socks"] },
    { extras: ["all"] },
    { groups: ["docs"] },
    { extras: ["table"], groups: ["dev"] },
  ];
  const info = await probeInterpreter(python);
  assert.ok(compare(python, info, [{ label: "a project's lock", text, picks }]));
  const chosen = (ours(info, { label: "", text, picks }) as { picks: Outcome[] }).picks;
  assert.equal(new Set(chosen.map((c) => JSON.stringify(c))).size, picks.length);
  // env create with the project folder installs the same as the lock with the same picks.
  const fromLock = join(work, "project-lock-env");
  const fromProject = join(work, "project-env");
  const flags = ["--extra", "socks", "--group", "docs", "--python", python];
  const a = pyferry(["env", "create", fromLock, "--lock", out, ...flags]);
  assert.equal(a.status, 0, a.stderr);
  const b = pyferry(["env", "create", fromProject, project, ...flags]);
  assert.equal(b.status, 0, b.stderr);
  assert.deepEqual(distInfos(fromProject), distInfos(fromLock));
  assert.ok(distInfos(fromLock).includes("pysocks") && distInfos(fromLock).includes("docutils"));
  assert.ok(!distInfos(fromLock).includes("tabulate"));
});

// --- the CLI ----------------------------------------------------------------------------

/** A lock of real wheels from the mirror, with an extra and groups. */
function realLock(): string {
  const entry = (name: string, version: string, marker?: string) => {
    const path = mirrorWheels(name, version)[0];
    assert.ok(path, `the mirror has no wheel of ${name} ${version}`);
    const digest = createHash("sha256").update(readFileSync(path)).digest("hex");
    const base = path.split("/").pop() as string;
    return pkg(
      name,
      version,
      ...(marker ? [`marker = ${JSON.stringify(marker)}`] : []),
      `wheels = [{ name = "${base}", url = "${pathToFileURL(path).href}", hashes = { sha256 = "${digest}" } }]`,
    );
  };
  return [
    HEAD(['extras = ["cli"]', 'dependency-groups = ["dev"]', 'default-groups = ["default"]']),
    entry("six", "1.17.0"),
    entry("idna", "3.20", "'default' in dependency_groups"),
    entry("tabulate", "0.10.0", "'cli' in extras"),
    entry("docutils", "0.22.4", "'dev' in dependency_groups"),
    entry("attrs", "26.1.0", "sys_platform == 'win32'"),
  ].join("\n");
}

function distInfos(env: string): string[] {
  const lib = join(env, "lib");
  const site = join(lib, readdirSync(lib)[0] as string, "site-packages");
  return readdirSync(site)
    .filter((d) => d.endsWith(".dist-info"))
    .map((d) => d.split("-")[0]?.toLowerCase() as string)
    .filter((n) => n !== "pip" && n !== "setuptools")
    .sort();
}

test("env create --lock installs what --extra, --group and --no-default-groups pick", () => {
  const lock = join(work, "real.toml");
  writeFileSync(lock, realLock());
  const python = testPython();
  const cases: [string[], string[]][] = [
    [[], ["idna", "six"]],
    [
      ["--extra", "cli"],
      ["idna", "six", "tabulate"],
    ],
    [
      ["--group", "dev"],
      ["docutils", "idna", "six"],
    ],
    [
      ["--extra", "cli", "--group", "dev", "--no-default-groups"],
      ["docutils", "six", "tabulate"],
    ],
    [
      ["--all-extras", "--all-groups"],
      ["docutils", "idna", "six", "tabulate"],
    ],
  ];
  cases.forEach(([flags, expected], i) => {
    const env = join(work, `env${i}`);
    const r = pyferry(["env", "create", env, "--lock", lock, "--python", python, ...flags]);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(distInfos(env), expected, flags.join(" "));
    assert.match(r.stderr, new RegExp(`with ${expected.length} packages`));
  });
});

test("env create --lock refuses extras and groups the lock does not offer, in one sentence", () => {
  const lock = join(work, "real2.toml");
  writeFileSync(lock, realLock());
  const refused: [string[], RegExp][] = [
    [
      ["--lock", lock, "--extra", "gui"],
      /^error: The lock has no extra "gui" \(it offers cli\)\.$/m,
    ],
    [
      ["--lock", lock, "--group", "test"],
      /^error: The lock has no dependency group "test" \(it offers dev\)\.$/m,
    ],
    [
      ["six", "--extra", "cli"],
      /^error: --extra and --group name extras and dependency groups of a project \(or of a lock, with --lock\): give its folder\.$/m,
    ],
    [
      ["six", "--no-default-groups"],
      /^error: --no-default-groups picks from a lock; give --lock\.$/m,
    ],
  ];
  for (const [args, message] of refused) {
    const env = join(work, "refused");
    const r = pyferry(["env", "create", env, ...args]);
    assert.equal(r.status, 2, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(existsSync(env), false);
  }
});

test("env create --lock reads a newer 1.x lock-version with a warning, as PEP 751 asks", () => {
  const lock = join(work, "newer.toml");
  writeFileSync(lock, realLock().replace('lock-version = "1.0"', 'lock-version = "1.1"'));
  const env = join(work, "newer-env");
  const r = pyferry(["env", "create", env, "--lock", lock, "--python", testPython()]);
  assert.equal(r.status, 0, r.stderr);
  assert.match(
    r.stderr,
    /^warning: .*newer\.toml has lock-version 1\.1, and this pyferry knows 1\.0; it reads what 1\.0 defines\.$/m,
  );
  assert.deepEqual(distInfos(env), ["idna", "six"]);
});

// --- direct references ------------------------------------------------------------------

/** A setuptools project `name` (version 1.0) in `dir`, whose module holds VALUE. */
function project(dir: string, name: string, value: number): void {
  mkdirSync(join(dir, "src", name), { recursive: true });
  writeFileSync(
    join(dir, "pyproject.toml"),
    `[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n\n[project]\nname = "${name}"\nversion = "1.0"\n`,
  );
  writeFileSync(join(dir, "src", name, "__init__.py"), `VALUE = ${value}\n`);
}

function gitIn(dir: string, ...args: string[]): string {
  return execFileSync("git", ["-c", "user.name=t", "-c", "user.email=t@example.org", ...args], {
    cwd: dir,
    encoding: "utf8",
  }).trim();
}

function sitePackages(env: string): string {
  const lib = join(env, "lib");
  return join(lib, readdirSync(lib)[0] as string, "site-packages");
}

test("env create --lock builds folders (editable or not) and git commits, installs archives, and records direct_url.json", () => {
  const dir = join(work, "sources");
  project(join(dir, "localproj"), "localproj", 1);
  project(join(dir, "editproj"), "editproj", 1);
  const repo = join(dir, "gitrepo");
  project(repo, "gitproj", 1);
  gitIn(repo, "init", "-q");
  gitIn(repo, "add", "-A");
  gitIn(repo, "commit", "-qm", "one");
  const first = gitIn(repo, "rev-parse", "HEAD");
  writeFileSync(join(repo, "src", "gitproj", "__init__.py"), "VALUE = 2\n");
  gitIn(repo, "commit", "-qam", "two");
  // A commit only a pull request's ref reaches, locked by a short id through a file: URL (the
  // pack protocol, which sends only what branches and tags reach).
  const prRepo = join(dir, "prrepo");
  project(prRepo, "prproj", 1);
  gitIn(prRepo, "init", "-q", "-b", "main");
  gitIn(prRepo, "add", "-A");
  gitIn(prRepo, "commit", "-qm", "one");
  gitIn(prRepo, "checkout", "-q", "-b", "side");
  writeFileSync(join(prRepo, "src", "prproj", "__init__.py"), "VALUE = 3\n");
  gitIn(prRepo, "commit", "-qam", "pull request");
  const pr = gitIn(prRepo, "rev-parse", "HEAD");
  gitIn(prRepo, "update-ref", "refs/pull/1/head", pr);
  gitIn(prRepo, "checkout", "-q", "main");
  gitIn(prRepo, "branch", "-qD", "side");
  const six = mirrorWheels("six", "1.17.0")[0] as string;
  const sixHash = createHash("sha256").update(readFileSync(six)).digest("hex");
  writeFileSync(
    join(dir, "pylock.toml"),
    [
      HEAD(),
      "",
      "[[packages]]",
      'name = "localproj"',
      'directory = { path = "localproj" }',
      "",
      "[[packages]]",
      'name = "editproj"',
      'version = "1.0"',
      'directory = { path = "editproj", editable = true }',
      pkg("gitproj", "1.0", `vcs = { type = "git", path = "gitrepo", commit-id = "${first}" }`),
      pkg(
        "prproj",
        "1.0",
        `vcs = { type = "git", url = "${pathToFileURL(prRepo).href}", commit-id = "${pr.slice(0, 12)}" }`,
      ),
      pkg(
        "six",
        "1.17.0",
        `archive = { url = "${pathToFileURL(six).href}", hashes = { sha256 = "${sixHash}" } }`,
      ),
    ].join("\n"),
  );
  const env = join(work, "sources-env");
  const r = pyferry([
    "env",
    "create",
    env,
    "--lock",
    join(dir, "pylock.toml"),
    "--python",
    testPython(),
  ]);
  assert.equal(r.status, 0, r.stderr);
  const values = () =>
    execFileSync(join(env, "bin", "python"), [
      "-c",
      "import localproj, editproj, gitproj, prproj, six; print(localproj.VALUE, editproj.VALUE, gitproj.VALUE, prproj.VALUE)",
    ])
      .toString()
      .trim();
  // The git entry is the locked commit, not the repository's newest.
  assert.equal(values(), "1 1 1 3");
  writeFileSync(join(dir, "editproj", "src", "editproj", "__init__.py"), "VALUE = 5\n");
  writeFileSync(join(dir, "localproj", "src", "localproj", "__init__.py"), "VALUE = 5\n");
  assert.equal(values(), "1 5 1 3", "only the editable install follows its folder");
  const site = sitePackages(env);
  const direct = (dist: string) =>
    JSON.parse(readFileSync(join(site, `${dist}.dist-info`, "direct_url.json"), "utf8"));
  assert.deepEqual(direct("localproj-1.0"), {
    url: pathToFileURL(join(dir, "localproj")).href,
    dir_info: {},
  });
  assert.deepEqual(direct("editproj-1.0"), {
    url: pathToFileURL(join(dir, "editproj")).href,
    dir_info: { editable: true },
  });
  assert.deepEqual(direct("gitproj-1.0"), {
    url: pathToFileURL(repo).href,
    vcs_info: { vcs: "git", commit_id: first },
  });
  // The full commit id, though the lock gave a short one.
  assert.deepEqual(direct("prproj-1.0"), {
    url: pathToFileURL(prRepo).href,
    vcs_info: { vcs: "git", commit_id: pr },
  });
  assert.deepEqual(direct("six-1.17.0"), {
    url: pathToFileURL(six).href,
    archive_info: { hashes: { sha256: sixHash }, hash: `sha256=${sixHash}` },
  });
  // Listed in RECORD, as every file the install writes.
  const record = readFileSync(join(site, "gitproj-1.0.dist-info", "RECORD"), "utf8");
  assert.match(record, /^gitproj-1\.0\.dist-info\/direct_url\.json,sha256=/m);
});

test("env create --lock refuses direct references it cannot honour, in one sentence", () => {
  const dir = join(work, "bad-sources");
  mkdirSync(dir, { recursive: true });
  project(join(dir, "other"), "otherproj", 1);
  mkdirSync(join(dir, "plain", "src"), { recursive: true });
  writeFileSync(join(dir, "plain", "src", "mod.py"), "");
  const six = mirrorWheels("six", "1.17.0")[0] as string;
  const sixHash = createHash("sha256").update(readFileSync(six)).digest("hex");
  const repo = join(work, "sources", "gitrepo");
  const cases: [string, RegExp][] = [
    [
      'name = "ghost"\ndirectory = { path = "ghost" }',
      /^error: The lock's ghost is the folder \S+ghost, which does not exist\.$/m,
    ],
    [
      'name = "named"\nversion = "1.0"\ndirectory = { path = "other" }',
      /^error: The lock's named 1\.0 built otherproj 1\.0, another project\.$/m,
    ],
    [
      `name = "gitproj"\nversion = "1.0"\nvcs = { type = "git", path = "${repo}", commit-id = "${"0".repeat(40)}" }`,
      /^error: Checking out gitproj 1\.0 at 0{40} from \S+gitrepo failed: .*\.$/m,
    ],
    [
      'name = "plain"\ndirectory = { path = "plain" }',
      /^error: The lock's plain is the folder \S+plain, which is not a Python project \(it has neither pyproject\.toml nor setup\.py\)\.$/m,
    ],
    [
      `name = "gitproj"\nvcs = { type = "git", path = "${repo}", commit-id = "${gitIn(repo, "rev-parse", "HEAD")}", subdirectory = "src" }`,
      /^error: The lock's gitproj is the subdirectory src of commit [0-9a-f]{12}, which is not a Python project/m,
    ],
    [
      `name = "hp"\nversion = "9.9"\narchive = { path = "${six}", hashes = { sha256 = "${sixHash}" } }`,
      /^error: The lock file \S+ is invalid: six-1\.17\.0-py2\.py3-none-any\.whl is not a file of hp 9\.9\.$/m,
    ],
    [
      'name = "hgproj"\nvcs = { type = "hg", url = "https://example.org/hg", commit-id = "abc" }',
      /^error: The lock's hgproj comes from hg, and pyferry checks out git repositories only\.$/m,
    ],
  ];
  cases.forEach(([entry, message], i) => {
    const lock = join(dir, `lock${i}.toml`);
    writeFileSync(lock, `${HEAD()}\n\n[[packages]]\n${entry}\n`);
    const env = join(dir, `env${i}`);
    const r = pyferry(["env", "create", env, "--lock", lock, "--python", testPython()]);
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, message);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    assert.equal(existsSync(env), false);
  });
  // Refused before any build: nothing written into the user's folder.
  assert.deepEqual(readdirSync(join(dir, "plain")), ["src"]);
});
