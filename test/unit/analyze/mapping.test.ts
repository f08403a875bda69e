import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { decide, type MappingContext, suggest } from "../../../src/analyze/mapping.js";
import type { TopLevelMap } from "../../../src/index/top-level-map.js";
import { parseRequirement } from "../../../src/python/requirement.js";

function indexMap(entries: Record<string, string[]>): TopLevelMap {
  const modules = new Map(
    Object.entries(entries).map(([mod, projects]) => [
      mod,
      projects.map((p) => ({ project: p, wheel: `${p}-1.0-py3-none-any.whl` })),
    ]),
  );
  return { modules, indexes: ["file:///fake"], warnings: [] };
}

function ctx(over: Partial<MappingContext> = {}, map?: TopLevelMap): MappingContext {
  return {
    options: new Map(),
    declared: [],
    declaredFrom: new Map(),
    index: async () => map,
    ...over,
  };
}

describe("decide", () => {
  test("--pkg-mapping wins over everything, by longest prefix", async () => {
    const d = await decide(
      "cv2.aruco",
      ctx({ options: new Map([["cv2", "opencv-contrib-python"]]) }),
    );
    assert.equal(d.kind, "chosen");
    assert.equal(d.kind === "chosen" && d.dist.name, "opencv-contrib-python");
  });
  test("a declared dependency linked through the index wins and keeps its requirement", async () => {
    const r = parseRequirement("PyYAML>=6");
    const d = await decide(
      "yaml",
      ctx(
        { declared: [r], declaredFrom: new Map([["pyyaml", "pyproject.toml"]]) },
        indexMap({ yaml: ["pyyaml", "yaml-alt"] }),
      ),
    );
    assert.ok(d.kind === "chosen");
    assert.equal(d.dist.name, "pyyaml");
    assert.equal(d.dist.declared?.specifier, ">=6");
    assert.equal(d.dist.evidence[0]?.source, "declared");
  });
  test("a declared name equal to the import links without other evidence", async () => {
    const r = parseRequirement("tabulate==0.9");
    const d = await decide(
      "tabulate",
      ctx({ declared: [r], declaredFrom: new Map([["tabulate", "requirements.txt"]]) }),
    );
    assert.ok(d.kind === "chosen" && d.dist.name === "tabulate");
  });
  test("one index provider is chosen", async () => {
    const d = await decide(
      "sklearn.linear_model",
      ctx({}, indexMap({ sklearn: ["scikit-learn"] })),
    );
    assert.ok(d.kind === "chosen" && d.dist.name === "scikit-learn");
  });
  test("several index providers: the table breaks the tie, visibly", async () => {
    const d = await decide(
      "cv2",
      ctx({}, indexMap({ cv2: ["opencv-python-headless", "opencv-python"] })),
    );
    assert.ok(d.kind === "chosen");
    assert.equal(d.dist.name, "opencv-python");
    assert.deepEqual(
      d.alternatives.map((c) => c.name),
      ["opencv-python-headless"],
    );
    assert.ok(d.reason);
  });
  test("several index providers with no independent evidence stay ambiguous, ranked", async () => {
    const d = await decide("zzmod", ctx({}, indexMap({ zzmod: ["beta-dist", "alpha-dist"] })));
    assert.ok(d.kind === "ambiguous");
    assert.deepEqual(
      d.candidates.map((c) => c.name),
      ["alpha-dist", "beta-dist"],
    );
  });
  test("namespace packages: the longest dotted prefix decides", async () => {
    const map = indexMap({
      "google.protobuf": ["protobuf"],
      "google.cloud.storage": ["google-cloud-storage"],
    });
    const a = await decide("google.protobuf.message", ctx({}, map));
    const b = await decide("google.cloud.storage.blob", ctx({}, map));
    assert.ok(a.kind === "chosen" && a.dist.name === "protobuf");
    assert.ok(b.kind === "chosen" && b.dist.name === "google-cloud-storage");
  });
  test("the built-in table alone decides when the index knows nothing", async () => {
    const d = await decide("PIL.Image", ctx({}, indexMap({})));
    assert.ok(d.kind === "chosen" && d.dist.name === "pillow");
    assert.equal(d.dist.evidence[0]?.source, "table");
  });
  test("nothing known: unresolved", async () => {
    const d = await decide("zz_nothing_zz", ctx({}, indexMap({})));
    assert.equal(d.kind, "unresolved");
  });
});

test("suggest: close and containing names", () => {
  assert.deepEqual(suggest("reqeusts", ["requests", "numpy", "flask"]), ["requests"]);
  assert.deepEqual(suggest("yaml", ["pyyaml", "ruamel-yaml", "numpy"]), ["pyyaml", "ruamel-yaml"]);
  assert.deepEqual(suggest("qqq", ["numpy"]), []);
});
