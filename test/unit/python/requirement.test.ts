import assert from "node:assert/strict";
import { test } from "node:test";
import {
  evaluateMarker,
  formatMarker,
  type MarkerEnvironment,
} from "../../../src/python/marker.js";
import {
  formatRequirement,
  parseRequirement,
  parseRequirementsTxt,
  type Requirement,
  RequirementSyntaxError,
} from "../../../src/python/requirement.js";
import { referencePython, runPython } from "../../support/packaging-reference.js";
import { linuxEnv } from "../../support/targets.js";

const PYTHON = referencePython();

const ENV: MarkerEnvironment = linuxEnv({ platform_version: "2" });
const ENVS: MarkerEnvironment[] = [
  ENV,
  { ...ENV, os_name: "a", python_version: "2.6", python_full_version: "2.6.9", extra: "test_x" },
  { ...ENV, os_name: "c", sys_platform: "win32", python_version: "2.7", extra: "" },
  { ...ENV, os_name: "b", platform_version: "1", python_version: "3.8" },
];

// Valid under both PEP 508 and pypa/packaging (mostly the PEP's own examples).
const VALID = [
  "A",
  "A.B-C_D",
  "aa",
  "name",
  "name<=1",
  "name>=3",
  "name>=3,<2",
  "name@http://foo.com",
  "name [fred,bar] @ http://foo.com ; python_version=='2.7'",
  "name[quux, strange];python_version<'2.7' and platform_version=='2'",
  "name; os_name=='a' or os_name=='b'",
  "name; os_name=='a' and os_name=='b' or os_name=='c'",
  "name; os_name=='a' and (os_name=='b' or os_name=='c')",
  "name; os_name=='a' or os_name=='b' and os_name=='c'",
  "name; (os_name=='a' or os_name=='b') and os_name=='c'",
  'requests[security,tests] >= 2.8.1, == 2.8.* ; python_version < "2.7"',
  "name (>=1.0)",
  "name(>=1.0, <2)",
  "name ( >= 1.0 , < 2 )",
  "name[]",
  "name [ a , b ]",
  "  name  ",
  "pip @ https://github.com/pypa/pip/archive/22.0.2.zip",
  "pip @ file:///localbuilds/pip-1.3.1.zip",
  "name==1.0.*",
  "name~=1.4.2",
  "name===foobar",
  "name!=1.5,>1.0",
  "Name.With.Dots>=1.0",
  'name>=1.0; extra == "Test_X"',
  'name @ https://x.y/z.whl ; sys_platform == "linux"',
  'name>=1.0;python_version>="3"',
  "name\t>=1.0",
  'name ; python_version>"3"',
];

const INVALID = [
  "name>=",
  "name[bar",
  "name[bar baz]",
  "name[bar,]",
  "@ http://foo.com",
  "name @",
  'name @ http://foo.com; python_version >= "3"',
  "name>=1.0 python_version",
  'name; foo == "bar"',
  "name; python_version",
  "name==1.0.*.*",
  "name>=1.0.*",
  "name~=1",
  "name<1.0+local",
  "-name",
  "name (>=1.0",
  "name >=1.0)",
  "name; ",
  "name==1.0 ==2.0",
  "name ==",
  "name[extra]@",
  "",
  "name=1.0",
  "name>=1.0;;",
];

test("parseRequirement: PEP 508 examples", () => {
  assert.deepEqual(
    parseRequirement("name[quux, strange];python_version<'2.7' and platform_version=='2'"),
    {
      name: "name",
      normalized: "name",
      extras: ["quux", "strange"],
      specifier: "",
      marker: {
        kind: "and",
        items: [
          {
            kind: "compare",
            left: { kind: "var", name: "python_version" },
            op: "<",
            right: { kind: "str", value: "2.7" },
          },
          {
            kind: "compare",
            left: { kind: "var", name: "platform_version" },
            op: "==",
            right: { kind: "str", value: "2" },
          },
        ],
      },
    },
  );
  assert.deepEqual(parseRequirement("name@http://foo.com"), {
    name: "name",
    normalized: "name",
    extras: [],
    specifier: "",
    url: "http://foo.com",
  });
  const r = parseRequirement("Django_Rest.Framework [Foo] ( >= 3.0 , < 4 , != 3.5.* )");
  assert.equal(r.name, "Django_Rest.Framework");
  assert.equal(r.normalized, "django-rest-framework");
  assert.deepEqual(r.extras, ["Foo"]);
  assert.equal(r.specifier, ">=3.0,<4,!=3.5.*");
  assert.equal(r.marker, undefined);
  assert.deepEqual(parseRequirement("n[a, A, b_c, B.C]").extras, ["a", "b_c"]);
});

test("parseRequirement: errors name the problem, the text and the place", () => {
  for (const text of [...INVALID, "name>=1.0,", "name @ ./local/dir", "name_"]) {
    assert.throws(() => parseRequirement(text), RequirementSyntaxError, JSON.stringify(text));
  }
  const messages: [string, string][] = [
    ["name>=", 'Invalid requirement "name>=": expected a version after ">=" at the end.'],
    ["", 'Invalid requirement "": expected a project name at the end.'],
    ["-name", 'Invalid requirement "-name": expected a project name at column 1.'],
    [
      "name>=1.0.*",
      'Invalid requirement "name>=1.0.*": ">=1.0.*" is not a valid PEP 440 version specifier at column 5.',
    ],
    [
      "name[bar baz]",
      'Invalid requirement "name[bar baz]": expected "," or "]" in the list of extras at column 10.',
    ],
    [
      'name; foo == "bar"',
      'Invalid requirement "name; foo == "bar"": in the marker, "foo" is not a marker variable at column 7.',
    ],
    [
      "name foo",
      'Invalid requirement "name foo": expected a version specifier, "@" and a URL, ";" and a marker, or the end at column 6.',
    ],
    [
      "name @ foo",
      'Invalid requirement "name @ foo": "foo" is not a URL (it has no scheme) at column 8.',
    ],
  ];
  for (const [text, message] of messages) assert.throws(() => parseRequirement(text), { message });
});

test("formatRequirement writes the canonical form and round-trips", () => {
  assert.equal(
    formatRequirement(parseRequirement("requests [socks] >= 2.0 ; python_version>='3.8'")),
    'requests[socks]>=2.0; python_version >= "3.8"',
  );
  assert.equal(
    formatRequirement(parseRequirement("name [fred,bar] @ http://foo.com ; python_version=='2.7'")),
    'name[fred,bar] @ http://foo.com ; python_version == "2.7"',
  );
  assert.equal(formatRequirement(parseRequirement("name@http://foo.com")), "name @ http://foo.com");
  for (const text of VALID) {
    const r = parseRequirement(text);
    assert.deepEqual(parseRequirement(formatRequirement(r)), r, text);
  }
});

test("parseRequirementsTxt handles comments, continuations, options and errors", () => {
  const text = [
    "# A comment",
    "",
    "requests[socks]>=2.0  # trailing comment",
    "-r base.txt",
    "--requirement=other.txt",
    "-cconstraints.txt",
    "--index-url https://example.org/simple",
    "-e ./local/pkg",
    "numpy>=1.20 \\",
    "    ; python_version >= '3.8'",
    `flask==2.0 --hash=sha256:${"A".repeat(64)} --hash sha256:${"b".repeat(64)}`,
    `six==1.17.0 --hash=md5:${"c".repeat(32)} --config-settings=x=y`,
    "this is not a requirement",
    "django>=4\\",
    "# a comment ends the continuation",
    "attrs",
    "pkg @ git+https://example.org/pkg.git#egg=pkg",
    "./relative/path",
    "\ttabbed>=1\r",
    "last \\",
  ].join("\r\n");
  const parsed = parseRequirementsTxt(text);
  assert.deepEqual(parsed.requirements.map(formatRequirement), [
    "requests[socks]>=2.0",
    'numpy>=1.20; python_version >= "3.8"',
    "flask==2.0",
    "six==1.17.0",
    "django>=4",
    "attrs",
    "pkg @ git+https://example.org/pkg.git#egg=pkg",
    "tabbed>=1",
    "last",
  ]);
  assert.deepEqual(parsed.includes, ["base.txt", "other.txt", "constraints.txt"]);
  assert.deepEqual(parsed.options, [
    { line: 7, text: "--index-url https://example.org/simple" },
    { line: 8, text: "-e ./local/pkg" },
  ]);
  assert.deepEqual(parsed.requirements[2]?.hashes, ["a".repeat(64), "b".repeat(64)]);
  assert.equal(parsed.requirements[0]?.hashes, undefined);
  assert.deepEqual(parsed.requirementOptions, [{ line: 12, text: "--config-settings=x=y" }]);
  assert.deepEqual(
    parsed.errors.map((e) => [e.line, e.text.split(" ")[0]]),
    [
      [12, "six==1.17.0"],
      [13, "this"],
      [18, "./relative/path"],
    ],
  );
  assert.match(parsed.errors[0]?.message ?? "", /--hash md5:c+ is not sha256:<64 hex digits>/);
  assert.match(parsed.errors[1]?.message ?? "", /^Invalid requirement "this is not a requirement"/);
});

interface Reference {
  ok: boolean;
  name?: string;
  url?: string | null;
  extras?: string[];
  specifier?: string[];
  marker?: boolean[] | null;
}

test("differential: requirements against pypa/packaging", { skip: !PYTHON }, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  const formatted = VALID.map((t) => formatRequirement(parseRequirement(t)));
  const code = `
import json, sys
from pip._vendor.packaging.requirements import Requirement, InvalidRequirement
d = json.load(sys.stdin)
def describe(text):
    try:
        r = Requirement(text)
    except InvalidRequirement:
        return {"ok": False}
    return {
        "ok": True,
        "name": r.name,
        "url": r.url,
        "extras": sorted(r.extras),
        "specifier": sorted(str(s) for s in r.specifier),
        "marker": [r.marker.evaluate(env) for env in d["envs"]] if r.marker else None,
    }
print(json.dumps([describe(t) for t in d["texts"]]))`;
  const texts = [...VALID, ...formatted, ...INVALID];
  assert.ok(VALID.length + INVALID.length >= 30);
  const envs = ENVS.map((e) => ({ extra: "", ...e }));
  const ref = runPython(PYTHON as string, code, { texts, envs }) as Reference[];
  texts.forEach((text, i) => {
    const expected = ref[i] as Reference;
    let mine: Requirement;
    try {
      mine = parseRequirement(text);
    } catch (err) {
      assert.ok(err instanceof RequirementSyntaxError);
      assert.equal(expected.ok, false, `${text}: ${err.message}`);
      return;
    }
    assert.equal(expected.ok, true, `${text} was accepted`);
    const marker = mine.marker;
    assert.deepEqual(
      {
        ok: true,
        name: mine.name,
        url: mine.url ?? null,
        extras: [...new Set(mine.extras)].sort(),
        specifier: mine.specifier === "" ? [] : mine.specifier.split(",").sort(),
        marker: marker ? envs.map((env) => evaluateMarker(marker, env)) : null,
      },
      expected,
      `${text} (marker ${marker ? formatMarker(marker) : "none"})`,
    );
  });
});
