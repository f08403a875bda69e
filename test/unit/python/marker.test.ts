import assert from "node:assert/strict";
import { test } from "node:test";
import {
  evaluateMarker,
  formatMarker,
  type Marker,
  type MarkerEnvironment,
  MarkerError,
  MarkerEvaluationError,
  MarkerSyntaxError,
  markerAnd,
  markerNot,
  markerOr,
  parseMarker,
} from "../../../src/python/marker.js";
import { referencePython, runPython } from "../../support/packaging-reference.js";
import { linuxEnv } from "../../support/targets.js";

const PYTHON = referencePython();

const LINUX: MarkerEnvironment = linuxEnv({
  platform_version: "#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1 (2024-02-01)",
});
const WINDOWS: MarkerEnvironment = {
  implementation_name: "cpython",
  implementation_version: "3.8.10",
  os_name: "nt",
  platform_machine: "AMD64",
  platform_python_implementation: "CPython",
  platform_release: "10",
  platform_system: "Windows",
  platform_version: "10.0.19041",
  python_full_version: "3.8.10",
  python_version: "3.8",
  sys_platform: "win32",
};
const MAC_PYPY: MarkerEnvironment = {
  implementation_name: "pypy",
  implementation_version: "7.3.12",
  os_name: "posix",
  platform_machine: "arm64",
  platform_python_implementation: "PyPy",
  platform_release: "23.1.0",
  platform_system: "Darwin",
  platform_version: "Darwin Kernel Version 23.1.0",
  python_full_version: "3.10.12",
  python_version: "3.10",
  sys_platform: "darwin",
};
const PY27: MarkerEnvironment = {
  ...LINUX,
  implementation_version: "0",
  python_full_version: "2.7.18",
  python_version: "2.7",
  platform_release: "5.4.0",
};
const PY313_RC: MarkerEnvironment = {
  ...LINUX,
  implementation_version: "3.13.0rc1",
  python_full_version: "3.13.0rc1",
  python_version: "3.13",
  platform_machine: "aarch64",
};
const FINAL_ENVS = [LINUX, WINDOWS, MAC_PYPY, PY27];
const withExtras = (envs: MarkerEnvironment[]) =>
  envs.flatMap((e) => [e, { ...e, extra: "test" }, { ...e, extra: "Test_Extra" }]);

// Markers whose meaning pypa/packaging and PEP 508 agree on.
const MARKERS = [
  'python_version >= "3.8"',
  'python_version < "3.10"',
  'python_version == "2.7"',
  'python_version != "3.11"',
  'python_version > "3.9" and python_version <= "3.12"',
  'python_full_version >= "3.11.4"',
  'python_full_version < "3.13"',
  'python_full_version >= "3.13.0rc1"',
  'python_version ~= "3.10"',
  'python_full_version ~= "3.11.0"',
  'python_version == "3.*"',
  'python_version in "2.7 3.4 3.5"',
  '"3.11" in python_version',
  'sys_platform == "win32"',
  'sys_platform != "darwin" and platform_machine == "x86_64"',
  'os_name == "nt" or os_name == "posix"',
  'platform_system == "Linux"',
  'platform_python_implementation == "CPython"',
  'implementation_name == "pypy"',
  'implementation_version >= "7.3"',
  'os.name == "posix"',
  'sys.platform == "linux"',
  'platform.machine == "arm64"',
  'python_implementation == "PyPy"',
  'platform.python_implementation == "CPython"',
  'platform.version == "Darwin Kernel Version 23.1.0"',
  'extra == "test"',
  'extra == "Test_Extra"',
  'extra == "test-extra" and python_version >= "3"',
  '(python_version < "3" or python_version >= "3.8") and sys_platform != "win32"',
  "python_version>='3.6' and (sys_platform==\"win32\" or (os_name=='nt' and platform_machine!='x86'))",
  "'linux' in sys_platform",
  '"arm" not in platform_machine',
  'python_version == "3.11" or python_version == "3.12"',
  'platform_release >= "20"',
  "sys_platform == 'darwin' and platform_machine == 'arm64'",
  'python_full_version == "3.11.*"',
  'python_version === "3.11"',
  'platform_system != "Windows" and python_version < "3.12" or extra == "all"',
  'implementation_name == "cpython" and implementation_version < "3.12"',
  '"2.7" == python_version',
  '"3.9" < python_version',
  'python_version<"3.8"and os_name=="nt"',
];

const INVALID = [
  'python_version >= "3.8" and',
  "python_version >= ",
  'python_version = "3.8"',
  'foo == "bar"',
  "python_version >= 3.8",
  '(python_version >= "3.8"',
  'python_version >= "3.8")',
  'python_version not "3.8"',
  '"a" "b"',
  'python_version >= "3.8" or or os_name == "nt"',
  'python_version ~ "3"',
  'python_version >= "3.8" && os_name == "nt"',
  "python_version >= '3.8\"",
  "",
  "and",
  'platform.release == "5"',
  'platform.system == "Linux"',
  "()",
  'python_version >= "3.8" os_name == "nt"',
];

const cmp = (name: string, op: "==" | "<" | ">=", value: string): Marker => ({
  kind: "compare",
  left: { kind: "var", name },
  op,
  right: { kind: "str", value },
});

test("parseMarker builds the expected tree (PEP 508 examples)", () => {
  assert.deepEqual(parseMarker("python_version<'2.7' and platform_version=='2'"), {
    kind: "and",
    items: [cmp("python_version", "<", "2.7"), cmp("platform_version", "==", "2")],
  });
  // `and` binds tighter than `or`.
  assert.deepEqual(parseMarker('os_name == "a" or os_name == "b" and os_name == "c"'), {
    kind: "or",
    items: [
      cmp("os_name", "==", "a"),
      { kind: "and", items: [cmp("os_name", "==", "b"), cmp("os_name", "==", "c")] },
    ],
  });
  // Nested groups of the same kind are flattened; single-item groups disappear.
  assert.deepEqual(
    parseMarker('(os_name == "a" and (os_name == "b")) and ((os_name == "c"))'),
    parseMarker('os_name == "a" and os_name == "b" and os_name == "c"'),
  );
  assert.deepEqual(parseMarker('"x" not in extras'), {
    kind: "compare",
    left: { kind: "str", value: "x" },
    op: "not in",
    right: { kind: "var", name: "extras" },
  });
  assert.deepEqual(parseMarker("'dev' in dependency_groups").kind, "compare");
});

test("parseMarker maps legacy variable names to PEP 508 ones", () => {
  const legacy: [string, string][] = [
    ["os.name", "os_name"],
    ["sys.platform", "sys_platform"],
    ["platform.version", "platform_version"],
    ["platform.machine", "platform_machine"],
    ["platform.python_implementation", "platform_python_implementation"],
    ["python_implementation", "platform_python_implementation"],
  ];
  for (const [old, modern] of legacy) {
    assert.deepEqual(parseMarker(`${old} == "x"`), cmp(modern, "==", "x"), old);
  }
});

test("parseMarker rejects malformed markers with a clear message", () => {
  for (const text of INVALID) {
    assert.throws(() => parseMarker(text), MarkerSyntaxError, JSON.stringify(text));
  }
  assert.throws(() => parseMarker('python_version >= "3.8" and'), {
    message:
      'Invalid marker "python_version >= "3.8" and": expected a marker variable or a quoted string at the end.',
  });
  assert.throws(() => parseMarker('foo == "bar"'), /"foo" is not a marker variable at column 1/);
  assert.throws(() => parseMarker("python_version >= '3.8"), /never closed at column 19/);
  assert.throws(() => parseMarker('python_version = "3"'), /unexpected character "="/);
  assert.throws(() => parseMarker('python_version not "3"'), /expected "in" after "not"/);
  const err = (() => {
    try {
      parseMarker('os_name == "a")');
    } catch (e) {
      return e;
    }
  })();
  assert.ok(err instanceof MarkerSyntaxError);
  assert.equal(err.position, 14);
  assert.equal(err.reason, 'expected "and", "or" or the end of the marker');
});

test("formatMarker writes the canonical form", () => {
  assert.equal(
    formatMarker(
      parseMarker("python_version>='3.8' and (sys_platform==\"win32\" or os_name=='nt')"),
    ),
    'python_version >= "3.8" and (sys_platform == "win32" or os_name == "nt")',
  );
  assert.equal(
    formatMarker(parseMarker("(os_name=='a' and os_name=='b') or os_name=='c'")),
    'os_name == "a" and os_name == "b" or os_name == "c"',
  );
  assert.equal(formatMarker(parseMarker(`os_name == 'say "hi"'`)), `os_name == 'say "hi"'`);
  assert.equal(formatMarker(parseMarker("'x'   not  in extras")), '"x" not in extras');
  const both: Marker = {
    kind: "compare",
    left: { kind: "var", name: "os_name" },
    op: "==",
    right: { kind: "str", value: `'"` },
  };
  assert.throws(() => formatMarker(both), MarkerError);
  assert.throws(() => formatMarker({ kind: "or", items: [] }), MarkerError);
});

test("markers survive parse -> format -> parse", () => {
  for (const text of [...MARKERS, '"a" in extras and "b" not in dependency_groups']) {
    const parsed = parseMarker(text);
    const formatted = formatMarker(parsed);
    assert.deepEqual(parseMarker(formatted), parsed, text);
    assert.equal(formatMarker(parseMarker(formatted)), formatted, text);
  }
});

test("evaluateMarker: versions, strings, extras", () => {
  const ev = (text: string, env: MarkerEnvironment) => evaluateMarker(parseMarker(text), env);
  assert.equal(ev('python_version >= "3.8"', LINUX), true);
  // A version comparison, not a string one: "3.11" < "3.9" as strings.
  assert.equal(ev('python_version > "3.9"', LINUX), true);
  assert.equal(ev('python_version < "3.9"', WINDOWS), true);
  // `<3.13` excludes 3.13's own pre-releases (PEP 440 exclusive ordering).
  assert.equal(ev('python_full_version < "3.13"', PY313_RC), false);
  assert.equal(ev('python_full_version >= "3.13.0rc1"', PY313_RC), true);
  // Not a PEP 440 version, so Python string comparison applies.
  const kernel = { ...LINUX, platform_release: "6.1.0-18-amd64" };
  assert.equal(ev('platform_release >= "5.0"', kernel), true);
  assert.equal(ev('platform_release < "10"', kernel), false);
  // Only version variables compare as versions: for os_name "10" > "9" is false.
  assert.equal(ev('os_name > "9"', { ...LINUX, os_name: "10" }), false);
  assert.equal(ev('platform_release > "9"', { ...LINUX, platform_release: "10" }), true);
  // PEP 685: extras compare normalized.
  assert.equal(ev('extra == "Test.Extra"', { ...LINUX, extra: "test_extra" }), true);
  assert.equal(ev('extra == "test"', LINUX), false);
  assert.equal(ev('"Foo_Bar" in extras', { ...LINUX, extras: ["foo-bar"] }), true);
  assert.equal(ev('"dev" not in dependency_groups', LINUX), true);
  assert.equal(ev('"dev" in dependency_groups', { ...LINUX, dependency_groups: ["Dev"] }), true);
  assert.equal(ev('"x86" in platform_machine', LINUX), true);
  assert.equal(ev('python_version === "3.11"', LINUX), true);
});

test("evaluateMarker rejects undefined comparisons", () => {
  assert.throws(
    () => evaluateMarker(parseMarker('os_name ~= "1.0"'), LINUX),
    MarkerEvaluationError,
  );
  assert.throws(() => evaluateMarker(parseMarker('extras == "x"'), LINUX), MarkerEvaluationError);
  assert.throws(() => evaluateMarker(cmp("nonsense", "==", "x"), LINUX), /no value for "nonsense"/);
});

test("markerAnd / markerOr flatten, deduplicate and treat undefined as true", () => {
  const a = cmp("os_name", "==", "a");
  const b = cmp("os_name", "==", "b");
  const c = cmp("os_name", "==", "c");
  assert.equal(markerAnd(), undefined);
  assert.equal(markerAnd(undefined, undefined), undefined);
  assert.deepEqual(markerAnd(a), a);
  assert.deepEqual(markerAnd(a, undefined, b), { kind: "and", items: [a, b] });
  assert.deepEqual(markerAnd(a, { ...a }), a);
  assert.deepEqual(markerAnd({ kind: "and", items: [a, b] }, c, b), {
    kind: "and",
    items: [a, b, c],
  });
  assert.equal(markerOr(a, undefined), undefined);
  assert.deepEqual(markerOr(a, b, a), { kind: "or", items: [a, b] });
  assert.deepEqual(markerOr({ kind: "or", items: [a, b] }, c), { kind: "or", items: [a, b, c] });
  assert.throws(() => markerOr(), RangeError);
  const mixed = markerAnd(markerOr(a, b), cmp("sys_platform", "==", "linux")) as Marker;
  assert.equal(
    formatMarker(mixed),
    '(os_name == "a" or os_name == "b") and sys_platform == "linux"',
  );
  assert.equal(evaluateMarker(mixed, { ...LINUX, os_name: "b" }), true);
  assert.equal(evaluateMarker(mixed, { ...LINUX, os_name: "c" }), false);
  assert.equal(evaluateMarker(mixed, { ...WINDOWS, os_name: "a" }), false);
});

test("markerNot: forms of the negation", () => {
  const not = (text: string) => formatMarker(markerNot(parseMarker(text)));
  assert.equal(not('python_version < "3.8"'), 'python_version >= "3.8"');
  assert.equal(not('python_version > "3.8"'), 'python_version <= "3.8"');
  assert.equal(not('"a" in extras'), '"a" not in extras');
  assert.equal(
    not('python_version >= "3.8" and (os_name == "nt" or sys_platform != "linux")'),
    'python_version < "3.8" or os_name != "nt" and sys_platform == "linux"',
  );
  assert.equal(
    not('python_full_version ~= "3.11.2"'),
    'python_full_version < "3.11.2" or python_full_version != "3.11.*"',
  );
  assert.equal(
    not('python_version ~= "1!3.8"'),
    'python_version < "1!3.8" or python_version != "1!3.*"',
  );
  assert.throws(() => markerNot(parseMarker('python_version === "3.8"')), MarkerError);
  assert.throws(() => markerNot(parseMarker('"3.8" ~= python_version')), MarkerError);
});

test("markerNot truth table: evaluate(not m) === !evaluate(m)", () => {
  // `===` has no negation (markerNot throws, tested above).
  const base = [
    ...MARKERS.filter((m) => !m.includes("===")),
    'python_full_version ~= "3.10.5"',
    'python_version ~= "2.7" or implementation_version ~= "7.3.0"',
    '"test" in extras or "docs" not in dependency_groups',
  ].map(parseMarker);
  const markers = [...base];
  for (let i = 0; i < base.length; i++) {
    const a = base[i] as Marker;
    const b = base[(i * 7 + 3) % base.length] as Marker;
    markers.push(markerAnd(a, b) as Marker, markerOr(a, b) as Marker);
  }
  const envs = withExtras(FINAL_ENVS).flatMap((e) => [
    e,
    { ...e, extras: ["test"], dependency_groups: ["docs"] },
  ]);
  let checked = 0;
  for (const m of markers) {
    const negated = markerNot(m);
    for (const env of envs) {
      const where = `${formatMarker(m)} in ${JSON.stringify(env)}`;
      assert.equal(evaluateMarker(negated, env), !evaluateMarker(m, env), where);
      assert.equal(evaluateMarker(markerNot(negated), env), evaluateMarker(m, env), where);
      checked++;
    }
  }
  assert.ok(checked > 2000, `only ${checked}`);
});

test("markerNot: the documented gap at a pre-release of the boundary version", () => {
  // PEP 440 makes both `< 3.13` and `>= 3.13` false for 3.13.0rc1; no marker is the exact
  // complement, and markerNot documents that it uses the plain inversion.
  const m = parseMarker('python_full_version < "3.13"');
  assert.equal(evaluateMarker(m, PY313_RC), false);
  assert.equal(evaluateMarker(markerNot(m), PY313_RC), false);
});

test("differential: evaluation and syntax against pypa/packaging", { skip: !PYTHON }, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  const code = `
import json, sys
from pip._vendor.packaging.markers import Marker, InvalidMarker
d = json.load(sys.stdin)
def invalid(m):
    try:
        Marker(m)
        return False
    except InvalidMarker:
        return True
print(json.dumps({
    "invalid": [invalid(m) for m in d["invalid"]],
    "results": [[Marker(m).evaluate(env) for env in d["envs"]] for m in d["markers"]],
}))`;
  const envs = withExtras([...FINAL_ENVS, PY313_RC]).map((e) => ({ extra: "", ...e }));
  const ref = runPython(PYTHON as string, code, { markers: MARKERS, invalid: INVALID, envs }) as {
    invalid: boolean[];
    results: boolean[][];
  };
  assert.deepEqual(
    ref.invalid,
    INVALID.map(() => true),
  );
  assert.ok(MARKERS.length >= 30);
  MARKERS.forEach((text, i) => {
    const mine = envs.map((env) => evaluateMarker(parseMarker(text), env));
    assert.deepEqual(mine, ref.results[i], text);
  });
});
