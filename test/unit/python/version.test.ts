import assert from "node:assert/strict";
import { test } from "node:test";
import {
  compareVersions,
  isValidSpecifier,
  isValidVersion,
  majorMinor,
  normalizeVersion,
  parseSpecifier,
  parseVersion,
  satisfies,
  VersionError,
} from "../../../src/python/version.js";
import { referencePython, runPython } from "../../support/packaging-reference.js";

const PYTHON = referencePython();

// PEP 440, "Summary of permitted suffixes and relative ordering", in ascending order.
const PEP440_ORDER = [
  "1.dev0",
  "1.0.dev456",
  "1.0a1",
  "1.0a2.dev456",
  "1.0a12.dev456",
  "1.0a12",
  "1.0b1.dev456",
  "1.0b2",
  "1.0b2.post345.dev456",
  "1.0b2.post345",
  "1.0rc1.dev456",
  "1.0rc1",
  "1.0",
  "1.0+abc.5",
  "1.0+abc.7",
  "1.0+5",
  "1.0.post456.dev34",
  "1.0.post456",
  "1.0.15",
  "1.1.dev1",
];

test("compareVersions orders the PEP 440 example list", () => {
  for (let i = 0; i < PEP440_ORDER.length; i++) {
    for (let j = 0; j < PEP440_ORDER.length; j++) {
      const a = PEP440_ORDER[i] as string;
      const b = PEP440_ORDER[j] as string;
      assert.equal(compareVersions(a, b), Math.sign(i - j), `${a} vs ${b}`);
    }
  }
});

test("compareVersions: epochs, zero padding, and invalid input", () => {
  const epochs = ["2013.10", "2014.04", "1!1.0", "1!1.1", "1!2.0"];
  for (let i = 1; i < epochs.length; i++) {
    assert.equal(compareVersions(epochs[i - 1] as string, epochs[i] as string), -1);
  }
  assert.equal(compareVersions("1.1", "1.1.0"), 0);
  assert.equal(compareVersions("1.0", "1.0.0.0"), 0);
  assert.equal(compareVersions("3.10", "3.9"), 1);
  assert.throws(() => compareVersions("1.0", "banana"), VersionError);
  assert.throws(() => compareVersions("", "1.0"), /not a valid PEP 440 version/);
});

test("normalizeVersion uses the PEP 440 normal forms", () => {
  const cases: [string, string][] = [
    ["1.0-1", "1.0.post1"],
    ["1.0alpha1", "1.0a1"],
    ["1.0-r4", "1.0.post4"],
    ["v1.0", "1.0"],
    ["1.0.dev", "1.0.dev0"],
    ["1.0RC1", "1.0rc1"],
    ["1.0c1", "1.0rc1"],
    ["1.0+ubuntu-1", "1.0+ubuntu.1"],
    ["1.0-beta.2", "1.0b2"],
    ["0!1.0", "1.0"],
  ];
  for (const [input, expected] of cases) assert.equal(normalizeVersion(input), expected, input);
  assert.throws(() => normalizeVersion("1.0+"), VersionError);
});

test("isValidVersion", () => {
  for (const ok of ["1", "1.0", "1!1.0", "1.0rc1.post2.dev3+local.7", "v1.0", "2024.1.15"]) {
    assert.equal(isValidVersion(ok), true, ok);
  }
  for (const bad of ["", "1.0.", "a", "1.0+", "1..0", "1.0-", "1!", "1.0+a..b", "1.0 beta", "*"]) {
    assert.equal(isValidVersion(bad), false, bad);
  }
});

test("majorMinor and parseVersion", () => {
  assert.equal(majorMinor("3.11.7"), "3.11");
  assert.equal(majorMinor("3.13.0rc1"), "3.13");
  assert.equal(majorMinor("3"), "3.0");
  assert.throws(() => majorMinor("three"), VersionError);
  const v = parseVersion("1!2.0rc1.post2.dev3+Abc.1");
  assert.deepEqual(v, {
    epoch: 1,
    release: [2, 0],
    public: "1!2.0rc1.post2.dev3",
    baseVersion: "1!2.0",
    local: "abc.1",
    isPrerelease: true,
    isPostrelease: true,
  });
});

test("isValidSpecifier and parseSpecifier", () => {
  for (const ok of [
    "",
    ">=1.0",
    ">= 1.0 , < 2",
    "==1.0.*",
    "!=1.*",
    "~=1.0",
    "===foo",
    "==1.0+l",
  ]) {
    assert.equal(isValidSpecifier(ok), true, ok);
  }
  const bad = ["~=1", ">=1.0.*", "==1.0+local.*", "<1.0+local", "=>1.0", ">=", "1.0", "==1.0a1.*"];
  for (const b of [...bad, "~=1.0.*", ">=1.0 <2", "==1.0.post1.*", "===foo bar", ">=1.0,"]) {
    assert.equal(isValidSpecifier(b), false, b);
  }
  assert.deepEqual(parseSpecifier(" >= 1.0, ==2.* "), [
    { op: ">=", version: "1.0", prefix: false },
    { op: "==", version: "2", prefix: true },
  ]);
  assert.throws(() => parseSpecifier(">>1"), /">>1" is not a valid PEP 440 version specifier/);
});

test("satisfies: PEP 440 specifier examples", () => {
  const yes = (v: string, s: string) => assert.equal(satisfies(v, s), true, `${v} ${s}`);
  const no = (v: string, s: string) => assert.equal(satisfies(v, s), false, `${v} ${s}`);
  // Compatible release: ~=2.2 is >=2.2, ==2.*; ~=1.4.5 is >=1.4.5, ==1.4.*.
  yes("2.9", "~=2.2");
  no("3.0", "~=2.2");
  no("2.1", "~=2.2");
  yes("1.4.9", "~=1.4.5");
  no("1.5.0", "~=1.4.5");
  yes("2.2.post3", "~=2.2.post3");
  no("2.2", "~=2.2.post3");
  yes("1.4.5", "~=1.4.5a4");
  // Version matching: zero padding, prefix matching, post-releases.
  yes("1.1", "==1.1.0");
  no("1.1.post1", "==1.1");
  yes("1.1.post1", "==1.1.post1");
  yes("1.1.post1", "==1.1.*");
  yes("1", "==1.0.*");
  no("1.1.post1", "!=1.1.*");
  // Local labels are ignored unless the specifier has one.
  yes("1.0+local", "==1.0");
  yes("1.0+local", "==1.0+local");
  no("1.0+other", "==1.0+local");
  no("1.0", "==1.0+local");
  // Exclusive ordered comparisons.
  yes("1.7.1", ">1.7");
  no("1.7.0.post1", ">1.7");
  no("1.7.0+local", ">1.7");
  yes("1.7.1", ">1.7.post2");
  yes("1.7.0.post3", ">1.7.post2");
  no("1.7.0", ">1.7.post2");
  assert.equal(satisfies("3.1.dev0", "<3.1", { prereleases: true }), false);
  yes("3.1.dev0", "<3.1.dev1");
  yes("3.13.0", ">3.13.0rc1");
  yes("1.0", "<1.0.post1");
  // Arbitrary equality is a string comparison.
  yes("foobar", "===foobar");
  no("1.0.0", "===1.0");
  no("foobar", "==1.0");
  // Epochs.
  no("1!1.0", "<=2.0");
  yes("1!1.0", "==1!1.*");
  assert.throws(() => satisfies("1.0", ">=banana"), VersionError);
});

function yesWith(v: string, s: string, opts: { prereleases?: boolean }) {
  assert.equal(satisfies(v, s, opts), true, `${v} ${s} ${JSON.stringify(opts)}`);
}

test("satisfies: pre-release policy", () => {
  assert.equal(satisfies("2.0b1", ">=1.0"), false);
  yesWith("2.0b1", ">=1.0", { prereleases: true });
  assert.equal(satisfies("2.0", ">=1.0", { prereleases: false }), true);
  assert.equal(satisfies("1.0rc1", ">=1.0rc1", { prereleases: false }), false);
  // A pre-release named in any clause (other than !=) lets pre-releases in.
  yesWith("1.5a1", ">=1.0a1,<2", {});
  assert.equal(satisfies("1.5a1", ">=1.0,!=1.5a2"), false);
  assert.equal(satisfies("1.0rc1", ""), false);
  yesWith("1.0rc1", "", { prereleases: true });
  yesWith("1.0", "", {});
  assert.equal(satisfies("banana", ""), false);
});

const VERSIONS = [
  ...["1.0", "1.0.0", "1", "1.0rc1", "1.0.dev0", "1.0a1.dev1", "1.0.post1", "1.0.post1.dev1"],
  ...["1.0+local", "1.0+local.2", "1.1", "1.1.dev1", "1.1rc1", "2.0", "2.0b2", "0.9", "0.9.post1"],
  ...["1!1.0", "1!0.5", "3.13.0rc1", "3.13.0", "3.13", "3.12.7", "3.8", "3.8.0", "3.8.10"],
  ...["1.7.0.post1", "1.7.1", "1.7", "1.7.0.post3", "2.2.5", "2.3", "1.4.5", "1.4.6", "1.5"],
  ...["v1.0", "1.0-1", "1.0.0.0.0", "1.0+abc.5", "1.0+abc.7", "1.0+5", "1.0.0+local", "2.2.post3"],
];
const SPECIFIERS = [
  ...["", ">=1.0", ">1.0", "<1.0", "<=1.0", "==1.0", "!=1.0", "==1.0.*", "!=1.0.*", "~=1.0"],
  ...["~=1.0.0", "==1.*", ">1.7", ">1.7.post2", "<3.13", ">=3.13", "<3.13.0rc2", ">3.13.0rc1"],
  ...["==1.0+local", "!=1.0+local", "===1.0", "~=2.2", "~=1.4.5", "~=2.2.post3", "~=1.4.5a4"],
  ...[">=1.0,<2", ">=1.0a1,<2", "==1!1.*", "<=1!1.0", ">=0.9,!=1.0.*", "==3.8.*", "<1.0.post1"],
  ...[">1.0.dev0", "<1.0a1", "==1.0.0.*", "==1.0.0.0.*", ">0.9.post1", "~=0.9"],
  ...["~=1!1.0", "!=1.0.0", "==1.0.0+local", ">=3.8,<3.13", "==v1.0", "== 1.0 , != 1.0.post1"],
];
const INVALID_SPECIFIERS = [
  ...["~=1", ">=1.0.*", "==1.0+local.*", "<1.0+local", "=>1.0", ">=", "<=1.0+local"],
  ...["~=1.0.*", "==1.0a1.*", "===foo bar", ">=1.0 <2", "==1.0.post1.*", "~=1.0+abc"],
];

test("differential: versions and specifiers against pypa/packaging", { skip: !PYTHON }, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  const code = `
import json, sys
from pip._vendor.packaging.version import Version, InvalidVersion
from pip._vendor.packaging.specifiers import SpecifierSet, InvalidSpecifier
d = json.load(sys.stdin)
vs = [Version(v) for v in d["versions"]]
def valid(s):
    try:
        SpecifierSet(s)
        return True
    except InvalidSpecifier:
        return False
print(json.dumps({
    "normalized": [str(v) for v in vs],
    "order": [[(a > b) - (a < b) for b in vs] for a in vs],
    "valid": [valid(s) for s in d["specs"] + d["invalid"]],
    "pre": [[SpecifierSet(s).contains(v, prereleases=True) for v in d["versions"]] for s in d["specs"]],
    "default": [[SpecifierSet(s).contains(v) for v in d["versions"]] for s in d["specs"]],
}))`;
  const ref = runPython(PYTHON as string, code, {
    versions: VERSIONS,
    specs: SPECIFIERS,
    invalid: INVALID_SPECIFIERS,
  }) as {
    normalized: string[];
    order: number[][];
    valid: boolean[];
    pre: boolean[][];
    default: boolean[][];
  };
  assert.deepEqual(VERSIONS.map(normalizeVersion), ref.normalized);
  assert.deepEqual(
    VERSIONS.map((a) => VERSIONS.map((b) => compareVersions(a, b))),
    ref.order,
  );
  assert.deepEqual([...SPECIFIERS, ...INVALID_SPECIFIERS].map(isValidSpecifier), ref.valid);
  let compared = 0;
  SPECIFIERS.forEach((spec, i) => {
    // packaging 24.2 started to let `<`/`>` of a pre-release admit pre-releases (as this
    // module does); older ones did not, so the default policy is only compared without them.
    const varies = parseSpecifier(spec).some(
      (c) => (c.op === "<" || c.op === ">") && parseVersion(c.version).isPrerelease,
    );
    VERSIONS.forEach((v, j) => {
      // Before 26, packaging applied `===` to the normalized version, not the text as written.
      if (spec.startsWith("===") && normalizeVersion(v) !== v) return;
      const where = `${v} in "${spec}"`;
      assert.equal(satisfies(v, spec, { prereleases: true }), ref.pre[i]?.[j], where);
      if (!varies) assert.equal(satisfies(v, spec), ref.default[i]?.[j], `${where} (default)`);
      compared++;
    });
  });
  assert.ok(compared > 1500, `only ${compared} comparisons`);
});
