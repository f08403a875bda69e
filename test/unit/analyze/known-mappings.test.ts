import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { KNOWN_MAPPINGS, knownDistributions } from "../../../src/analyze/known-mappings.js";
import { isValidProjectName, normalizeName } from "../../../src/python/names.js";

// The compiled test runs from dist/test/unit/analyze/; the table's source is in src/analyze/.
const SOURCE = new URL("../../../../src/analyze/known-mappings.ts", import.meta.url);

test("the table's source lists no import name twice", () => {
  // Read the literal itself: a Map built from it would hide a repeated key.
  const keys = [...readFileSync(SOURCE, "utf8").matchAll(/^\s*\[\s*"([^"]+)",\s*\[/gm)].map(
    (m) => m[1],
  );
  const repeated = keys.filter((k, i) => keys.indexOf(k) !== i);
  assert.deepEqual(repeated, []);
  assert.equal(keys.length, KNOWN_MAPPINGS.size);
});

test("the table is large and well-formed", () => {
  assert.ok(KNOWN_MAPPINGS.size >= 150, `only ${KNOWN_MAPPINGS.size} entries`);
  for (const [name, dists] of KNOWN_MAPPINGS) {
    assert.match(name, /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$/, name);
    assert.ok(dists.length > 0, name);
    for (const d of dists) assert.ok(isValidProjectName(d), `${name}: ${d}`);
    const normalized = dists.map(normalizeName);
    assert.equal(new Set(normalized).size, dists.length, `${name} lists a project twice`);
  }
});

test("no entry only repeats the import name", () => {
  // An identically named project may appear as an alternative (psycopg2), never alone.
  const identity = [...KNOWN_MAPPINGS]
    .filter(([name, dists]) => dists.every((d) => normalizeName(d) === normalizeName(name)))
    .map(([name]) => name);
  assert.deepEqual(identity, []);
});

test("well-known mismatches", () => {
  const expect: [string, string[]][] = [
    [
      "cv2",
      [
        "opencv-python",
        "opencv-python-headless",
        "opencv-contrib-python",
        "opencv-contrib-python-headless",
      ],
    ],
    ["yaml", ["PyYAML"]],
    ["sklearn", ["scikit-learn"]],
    ["PIL", ["Pillow"]],
    ["bs4", ["beautifulsoup4"]],
    ["dateutil", ["python-dateutil"]],
    ["jwt", ["PyJWT"]],
    ["Crypto", ["pycryptodome", "pycrypto"]],
    ["attr", ["attrs"]],
    ["psycopg2", ["psycopg2", "psycopg2-binary"]],
    ["win32api", ["pywin32"]],
    ["MySQLdb", ["mysqlclient"]],
    ["gi", ["PyGObject"]],
    ["fitz", ["PyMuPDF"]],
  ];
  for (const [name, dists] of expect) assert.deepEqual(KNOWN_MAPPINGS.get(name), dists, name);
});

test("knownDistributions matches the longest dotted prefix", () => {
  assert.deepEqual(knownDistributions("google.protobuf.message"), {
    prefix: "google.protobuf",
    dists: ["protobuf"],
  });
  assert.deepEqual(knownDistributions("google.protobuf"), {
    prefix: "google.protobuf",
    dists: ["protobuf"],
  });
  assert.deepEqual(knownDistributions("PIL.Image"), { prefix: "PIL", dists: ["Pillow"] });
  assert.equal(knownDistributions("mpl_toolkits.basemap.pyproj")?.prefix, "mpl_toolkits.basemap");
  assert.deepEqual(knownDistributions("mpl_toolkits.mplot3d")?.dists, ["matplotlib"]);
  assert.equal(knownDistributions("yaml")?.prefix, "yaml");
});

test("knownDistributions does not match partial names, other cases, or unlisted modules", () => {
  for (const miss of [
    "google",
    "google.cloud.storage",
    "google.api_core",
    "numpy",
    "pil",
    "yamlx",
    "cv",
    "",
  ]) {
    assert.equal(knownDistributions(miss), undefined, miss);
  }
});
