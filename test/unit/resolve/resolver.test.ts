import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, test } from "node:test";
import { NeedsBuild } from "../../../src/index/wheel-metadata.js";
import type { CoreMetadata } from "../../../src/python/metadata.js";
import { normalizeName } from "../../../src/python/names.js";
import { parseRequirement } from "../../../src/python/requirement.js";
import type { Target } from "../../../src/python/target.js";
import { compareVersions, satisfies } from "../../../src/python/version.js";
import type { Candidate, Provider } from "../../../src/resolve/provider.js";
import { type Resolution, ResolutionImpossible, resolve } from "../../../src/resolve/resolver.js";
import { UserError } from "../../../src/util/errors.js";
import { linuxTarget } from "../../support/targets.js";

const target: Target = linuxTarget();

interface Release {
  deps?: string[];
  requiresPython?: string;
  yanked?: boolean;
  /** Provides-Extra. */
  extras?: string[];
  /** An sdist whose dependencies are dynamic. */
  needsBuild?: boolean;
}

/** project -> version -> dependencies (or more). */
type Index = Record<string, Record<string, string[] | Release>>;

/** An index in memory; counts metadata reads; can answer after random delays. */
class MemoryProvider implements Provider {
  metadataReads = 0;
  constructor(
    private readonly index: Index,
    private readonly jitter = false,
  ) {}

  private release(c: Candidate): Release {
    const r = this.index[c.name]?.[c.version];
    return Array.isArray(r) ? { deps: r } : (r ?? {});
  }

  private async delay(): Promise<void> {
    if (this.jitter) await new Promise((go) => setTimeout(go, Math.random() * 5));
  }

  async candidates(name: string): Promise<Candidate[]> {
    await this.delay();
    const project = normalizeName(name);
    const versions = Object.keys(this.index[project] ?? {});
    return versions
      .sort((a, b) => compareVersions(b, a))
      .map((version) => {
        const r = this.index[project]?.[version];
        const yanked = !Array.isArray(r) && r?.yanked === true;
        return {
          name: project,
          version,
          file: {
            filename: `${project}-${version}-py3-none-any.whl`,
            url: `https://example.invalid/${project}-${version}-py3-none-any.whl`,
            hashes: {},
            yanked,
          },
          kind: "wheel" as const,
          source: "memory",
          yanked,
        };
      });
  }

  async metadata(c: Candidate): Promise<CoreMetadata> {
    await this.delay();
    this.metadataReads++;
    const r = this.release(c);
    if (r.needsBuild) throw new NeedsBuild(c.file.filename, "its Requires-Dist is dynamic");
    return {
      metadataVersion: "2.1",
      name: c.name,
      version: c.version,
      requiresDist: r.deps ?? [],
      providesExtra: r.extras ?? [],
      fields: new Map(),
      ...(r.requiresPython ? { requiresPython: r.requiresPython } : {}),
    };
  }

  async directCandidate(name: string): Promise<Candidate> {
    throw new UserError(`${name}: no direct URLs in memory.`);
  }

  async sha256(c: Candidate): Promise<string> {
    return createHash("sha256").update(c.file.url).digest("hex");
  }

  describeSources(): string {
    return "the test index";
  }
}

function pins(res: Resolution): Record<string, string> {
  return Object.fromEntries(res.packages.map((p) => [p.name, p.version]));
}

async function run(
  index: Index,
  reqs: string[],
  extra: { prereleases?: boolean; constraints?: string[]; warnings?: string[] } = {},
) {
  const provider = new MemoryProvider(index);
  const res = await resolve(
    {
      requirements: reqs.map(parseRequirement),
      target,
      onWarning: (m) => extra.warnings?.push(m),
      ...(extra.prereleases ? { prereleases: true } : {}),
      ...(extra.constraints ? { constraints: extra.constraints.map(parseRequirement) } : {}),
    },
    provider,
  );
  return { res, provider };
}

async function failure(index: Index, reqs: string[]): Promise<string> {
  try {
    await run(index, reqs);
  } catch (err) {
    assert.ok(err instanceof ResolutionImpossible, String(err));
    return err.message;
  }
  assert.fail("the resolution should have failed");
}

describe("resolve", () => {
  test("picks the newest versions and records who asked and who depends on what", async () => {
    const { res } = await run(
      {
        app: { "1.0": ["lib>=1", "util"], "2.0": ["lib>=2", "util"] },
        lib: { "1.0": [], "2.0": ["util<3"], "2.1": ["util<3"] },
        util: { "2.0": [], "2.5": [], "3.0": [] },
      },
      ["App"],
    );
    assert.deepEqual(pins(res), { app: "2.0", lib: "2.1", util: "2.5" });
    const app = res.packages.find((p) => p.name === "app");
    assert.equal(app?.requested, true);
    assert.deepEqual(app?.dependencies, ["lib", "util"]);
    assert.equal(res.packages.find((p) => p.name === "util")?.requested, false);
    assert.deepEqual(res.requirements, ["App"]);
    assert.match(res.packages[0]?.sha256 ?? "", /^[0-9a-f]{64}$/);
  });

  test("evaluates markers for the target and adds an extra's dependencies only when asked", async () => {
    const index: Index = {
      web: {
        "1.0": [
          'old-shim; python_version < "3.8"',
          'winlib; sys_platform == "win32"',
          'socks; extra == "proxy"',
          'fast; extra == "speed" and python_version >= "3.10"',
          "core",
        ],
      },
      core: { "1.0": [] },
      socks: { "1.0": [] },
      fast: { "1.0": [] },
    };
    const plain = await run(index, ["web", 'never; python_version < "3"']);
    assert.deepEqual(pins(plain.res), { core: "1.0", web: "1.0" });
    const both = await run(index, ["web[proxy,Speed]"]);
    assert.deepEqual(pins(both.res), { core: "1.0", fast: "1.0", socks: "1.0", web: "1.0" });
    const web = both.res.packages.find((p) => p.name === "web");
    assert.deepEqual(web?.extras, ["proxy", "speed"]);
    assert.deepEqual(web?.dependencies, ["core", "fast", "socks"]);
  });

  test("tells which origins lead to each package, following extras edge by edge", async () => {
    const index: Index = {
      app: { "1.0": ["core", 'socks; extra == "proxy"'] },
      core: { "1.0": ["shared"] },
      socks: { "1.0": ["shared"] },
      shared: { "1.0": [] },
      lint: { "1.0": ["shared", 'win; sys_platform == "win32"'] },
      win: { "1.0": [] },
    };
    const origins = [
      { label: "", requirements: ["app"] },
      { label: "x", requirements: ["app[proxy]"] },
      { label: "g", requirements: ["lint", 'never; python_version < "3"'] },
    ].map((o) => ({ label: o.label, requirements: o.requirements.map(parseRequirement) }));
    const res = await resolve(
      { requirements: origins.flatMap((o) => o.requirements), origins, target },
      new MemoryProvider(index),
    );
    const via = Object.fromEntries(res.packages.map((p) => [p.name, p.via]));
    // socks comes only with app's extra, though the one app package carries that extra.
    assert.deepEqual(via, {
      app: ["", "x"],
      core: ["", "x"],
      lint: ["g"],
      shared: ["", "g", "x"],
      socks: ["x"],
    });
    const plain = await run(index, ["app"]);
    assert.equal(plain.res.packages[0]?.via, undefined, "no origins, no via");
  });

  test("an extra pins its package: both requests end on the same version", async () => {
    const { res } = await run(
      {
        pkg: { "1.0": ['helper; extra == "x"'], "2.0": ['helper<2; extra == "x"'] },
        helper: { "1.0": [], "2.0": [] },
        other: { "1.0": ["pkg<2"] },
      },
      ["pkg[x]", "other"],
    );
    assert.deepEqual(pins(res), { helper: "2.0", other: "1.0", pkg: "1.0" });
  });

  test("pre-releases only when asked, named, or nothing else fits", async () => {
    const index: Index = {
      a: { "1.0": [], "2.0b1": [] },
      onlypre: { "1.0rc1": [], "1.0rc2": [] },
    };
    assert.deepEqual(pins((await run(index, ["a"])).res), { a: "1.0" });
    assert.deepEqual(pins((await run(index, ["a>=2.0b1"])).res), { a: "2.0b1" });
    assert.deepEqual(pins((await run(index, ["a"], { prereleases: true })).res), { a: "2.0b1" });
    assert.deepEqual(pins((await run(index, ["onlypre"])).res), { onlypre: "1.0rc2" });
  });

  test("yanked versions only under an exact pin; too-new Pythons and unbuildable sdists skipped", async () => {
    const index: Index = {
      y: { "1.0": [], "1.1": { yanked: true } },
      py: { "1.0": [], "2.0": { requiresPython: ">=3.12" } },
      sd: { "1.0": [], "2.0": { needsBuild: true } },
    };
    assert.deepEqual(pins((await run(index, ["y", "py", "sd"])).res), {
      py: "1.0",
      sd: "1.0",
      y: "1.0",
    });
    assert.deepEqual(pins((await run(index, ["y==1.1"])).res), { y: "1.1" });
  });

  test("warnings, as pip gives them: an extra the chosen version lacks, a yanked version taken for its pin", async () => {
    const index: Index = {
      y: { "1.0": [], "1.1": { yanked: true } },
      // 1.0 predates Provides-Extra: its extra is known only from a Requires-Dist marker.
      e: { "1.0": ['dep; extra == "fast"'], "2.0": { extras: ["gui"] } },
      dep: { "1.0": [] },
    };
    const warned = async (reqs: string[]) => {
      const warnings: string[] = [];
      const { res } = await run(index, reqs, { warnings });
      return { pins: pins(res), warnings };
    };
    assert.deepEqual(await warned(["e[fast,gui]"]), {
      pins: { e: "2.0" },
      warnings: ["e 2.0 has no extra 'fast'; it adds nothing."],
    });
    assert.deepEqual(await warned(["e[fast]==1.0"]), {
      pins: { dep: "1.0", e: "1.0" },
      warnings: [],
    });
    assert.deepEqual(await warned(["y==1.1"]), {
      pins: { y: "1.1" },
      warnings: ["y 1.1 is yanked; it is used because a requirement pins it exactly."],
    });
    assert.deepEqual(await warned(["y"]), { pins: { y: "1.0" }, warnings: [] });
  });

  test("constraints narrow versions but add no packages", async () => {
    const index: Index = { a: { "1.0": [], "2.0": [] }, b: { "1.0": [] } };
    const { res } = await run(index, ["a"], { constraints: ["a<2", "b==1.0"] });
    assert.deepEqual(pins(res), { a: "1.0" });
    assert.deepEqual(res.constraints, ["a<2", "b==1.0"]);
  });

  test("backtracks when a newer version's dependencies conflict elsewhere", async () => {
    // foo 1.1 needs left and right, whose needs on shared meet only at shared 1.0, which
    // needs a target the root excludes; foo 1.0 needs nothing.
    const { res } = await run(
      {
        foo: { "1.0.0": [], "1.1.0": ["left>=1,<2", "right>=1,<2"] },
        left: { "1.0.0": ["shared>=1"] },
        right: { "1.0.0": ["shared<2"] },
        shared: { "1.0.0": ["target>=1,<2"], "2.0.0": [] },
        target: { "1.0.0": [], "2.0.0": [] },
      },
      ["foo>=1,<2", "target>=2,<3"],
    );
    assert.deepEqual(pins(res), { foo: "1.0.0", target: "2.0.0" });
  });

  test("backjumps over unrelated decisions in a deep chain, reading few versions", async () => {
    // top k needs c1 == k, c1 k needs c2 == k, ... c8 k needs leaf == k, and the root allows
    // only leaf 1: every top version but the oldest fails eight levels down. Ten unrelated
    // packages with three versions each are decided on the way; chronological backtracking
    // would retry their 3^10 combinations, a learning solver never touches them again.
    const versions = ["1", "2", "3", "4", "5", "6"];
    const each = (dep: (v: string) => string[]) =>
      Object.fromEntries(versions.map((v) => [v, dep(v)]));
    const index: Index = { top: each((v) => [`c1==${v}`]), leaf: each(() => []) };
    for (let i = 1; i <= 8; i++) {
      index[`c${i}`] = each((v) => [i === 8 ? `leaf==${v}` : `c${i + 1}==${v}`]);
    }
    const unrelated: string[] = [];
    for (let i = 0; i < 10; i++) {
      index[`u${i}`] = { "1": [], "2": [], "3": [] };
      unrelated.push(`u${i}`);
    }
    const { res, provider } = await run(index, ["top", "leaf<2", ...unrelated]);
    const got = pins(res);
    assert.equal(got.top, "1");
    assert.equal(got.c8, "1");
    assert.equal(got.leaf, "1");
    assert.equal(got.u0, "3");
    // Each project's metadata is read at most a handful of times over (with lookahead), far
    // from the thousands a search without learning would need.
    assert.ok(provider.metadataReads < 200, `${provider.metadataReads} metadata reads`);
  });

  test("explains a conflict with the requirements involved", async () => {
    const message = await failure(
      {
        flask: { "2.0": ["werkzeug>=2"], "3.0": ["werkzeug>=3"], "3.1": ["werkzeug>=3"] },
        werkzeug: { "2.0": [], "3.0": [] },
      },
      ["flask>=3", "werkzeug<3"],
    );
    assert.equal(
      message,
      "Because flask>=3 depends on werkzeug>=3 and you asked for werkzeug<3, " +
        "flask>=3 and werkzeug<3 cannot be installed together.",
    );
  });

  test("explains a conflict that needed several steps", async () => {
    const message = await failure(
      {
        app: { "1.0": ["lib>=2"], "2.0": ["lib>=2"] },
        lib: { "1.0": [], "2.0": ["base>=2"] },
        base: { "1.0": [], "2.0": [] },
      },
      ["app", "base<2"],
    );
    assert.equal(
      message,
      "Because app depends on lib>=2 and lib>=2 depends on base>=2, app requires base>=2.\n" +
        "And because you asked for base<2, app and base<2 cannot be installed together.",
    );
  });

  test("names missing projects and versions", async () => {
    assert.equal(
      await failure({ a: { "1.0": [] } }, ["nope"]),
      "No project named 'nope' on the test index.",
    );
    assert.equal(
      await failure({ a: { "1.0": [], "1.5": [] } }, ["a>=2"]),
      "You asked for a>=2, but only 1.5 or 1.0 are available.",
    );
    // The version asked for exists, yanked: the sentence must not deny it.
    assert.equal(
      await failure({ t: { "0.8": [], "0.10": { yanked: true } } }, ["t>=0.10"]),
      "You asked for t>=0.10, but only 0.8 is available; 0.10 is yanked, which only an exact pin such as t==0.10 takes.",
    );
    const yanked = { yanked: true };
    assert.equal(
      await failure({ t: { "0.9": yanked, "0.10": yanked } }, ["t>=0.9"]),
      "You asked for t>=0.9, but 0.10 and 0.9 are yanked, which only an exact pin such as t==0.10 takes.",
    );
    // Yanked versions the requirement does not match are no way out: not offered as one.
    assert.equal(
      await failure({ t: { "0.9": yanked, "0.10": yanked } }, ["t>=0.11"]),
      "You asked for t>=0.11, but only 0.10 or 0.9 are available, all of them yanked.",
    );
    assert.equal(
      await failure({ t: { "0.8": [], "0.10": yanked } }, ["t>=0.11"]),
      "You asked for t>=0.11, but only 0.10 or 0.8 are available.",
    );
    // As a dependency: no parentheses inside parentheses, and a long list ends in a count.
    const many = Object.fromEntries(
      ["1", "2", "3", "4", "5", "6", "7"].map((v) => [`${v}.0`, yanked]),
    );
    assert.equal(
      await failure({ a: { "1.0": ["t>=1"] }, t: many }, ["a"]),
      "Because a depends on t>=1 (7.0, 6.0, 5.0, 4.0, 3.0 and 2 more are yanked, which only an exact pin such as t==7.0 takes) and you asked for a, a cannot be installed.",
    );
    const dep = await failure({ a: { "1.0": ["ghost>=1"] } }, ["a"]);
    assert.equal(
      dep,
      "Because a depends on ghost>=1 (no usable file of ghost is on the test index) " +
        "and you asked for a, a cannot be installed.",
    );
    const py = await failure({ a: { "1.0": { requiresPython: ">=3.12" } } }, ["a"]);
    assert.equal(
      py,
      "Because a cannot be used (it requires Python >=3.12 and the target has 3.11.7) " +
        "and you asked for a, a cannot be installed.",
    );
  });

  test("gives the same answer however the provider's answers are timed", async () => {
    const index: Index = {
      a: { "1.0": ["b", "c<2"], "2.0": ["b>=2", "c>=2"] },
      b: { "1.0": ["d"], "2.0": ["d<2"] },
      c: { "1.0": [], "2.0": ["d>=2"] },
      d: { "1.0": [], "2.0": [] },
    };
    const reqs = ["a"].map(parseRequirement);
    const expected = await resolve({ requirements: reqs, target }, new MemoryProvider(index));
    for (let i = 0; i < 5; i++) {
      const again = await resolve({ requirements: reqs, target }, new MemoryProvider(index, true));
      assert.deepEqual(again, expected);
    }
    assert.deepEqual(pins(expected), { a: "1.0", b: "2.0", c: "1.0", d: "1.0" });
  });
});

/** A small deterministic PRNG (mulberry32), so failures can be replayed by seed. */
function prng(seed: number): () => number {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NAMES = ["a", "b", "c", "d", "e"];
const VERSIONS = ["1", "2", "3"];

function randomSpec(rand: () => number): string {
  const v = VERSIONS[Math.floor(rand() * 3)] as string;
  return ["", `==${v}`, `>=${v}`, `<${v}`, `!=${v}`][Math.floor(rand() * 5)] as string;
}

function randomIndex(rand: () => number): Index {
  const index: Index = {};
  for (const name of NAMES) {
    const releases: Record<string, string[]> = {};
    for (const v of VERSIONS) {
      if (rand() < 0.2) continue;
      releases[v] = NAMES.filter((n) => n !== name && rand() < 0.3).map(
        (n) => n + randomSpec(rand),
      );
    }
    index[name] = releases;
  }
  return index;
}

/** Every way to pick one version (or nothing) per project that meets the requirements. */
function bruteForce(index: Index, reqs: string[]): boolean {
  const choices = NAMES.map((n) => [undefined, ...Object.keys(index[n] ?? {})]);
  // Each requirement as (project, versions it accepts), worked out once: the search is hot.
  const parsed = new Map<string, { name: string; accepts: Set<string> }>();
  const lookup = (r: string) => {
    let hit = parsed.get(r);
    if (!hit) {
      const req = parseRequirement(r);
      hit = {
        name: req.normalized,
        accepts: new Set(VERSIONS.filter((v) => satisfies(v, req.specifier))),
      };
      parsed.set(r, hit);
    }
    return hit;
  };
  const pick = new Map<string, string | undefined>();
  const meets = (r: string) => {
    const { name, accepts } = lookup(r);
    const v = pick.get(name);
    return v !== undefined && accepts.has(v);
  };
  const ok = (): boolean =>
    reqs.every(meets) &&
    [...pick].every(
      ([name, v]) => v === undefined || ((index[name]?.[v] ?? []) as string[]).every(meets),
    );
  const search = (i: number): boolean => {
    if (i === NAMES.length) return ok();
    for (const c of choices[i] as (string | undefined)[]) {
      pick.set(NAMES[i] as string, c);
      if (search(i + 1)) return true;
    }
    return false;
  };
  return search(0);
}

test("agrees with an exhaustive search on random small indexes", async () => {
  const rand = prng(20240607);
  let solved = 0;
  let refused = 0;
  for (let round = 0; round < 400; round++) {
    const index = randomIndex(rand);
    const reqs = NAMES.filter(() => rand() < 0.4).map((n) => n + randomSpec(rand));
    if (reqs.length === 0) continue;
    const possible = bruteForce(index, reqs);
    let res: Resolution | undefined;
    try {
      res = (await run(index, reqs)).res;
    } catch (err) {
      assert.ok(err instanceof ResolutionImpossible, `round ${round}: ${String(err)}`);
      assert.ok(
        !possible,
        `round ${round}: refused a solvable case ${JSON.stringify({ index, reqs })}: ${err.message}`,
      );
      assert.ok(err.message.length > 0);
      refused++;
      continue;
    }
    assert.ok(possible, `round ${round}: solved an impossible case`);
    // The answer itself must meet every requirement and every chosen version's dependencies.
    const got = pins(res);
    const meets = (r: string) => {
      const req = parseRequirement(r);
      const v = got[req.normalized];
      return v !== undefined && satisfies(v, req.specifier);
    };
    for (const r of reqs)
      assert.ok(meets(r), `round ${round}: ${r} not met by ${JSON.stringify(got)}`);
    for (const [name, v] of Object.entries(got)) {
      for (const d of (index[name]?.[v] ?? []) as string[]) {
        assert.ok(meets(d), `round ${round}: ${name} ${v} needs ${d}, got ${JSON.stringify(got)}`);
      }
    }
    solved++;
  }
  // Both outcomes are exercised, not just one.
  assert.ok(solved > 50 && refused > 50, `${solved} solved, ${refused} refused`);
});
