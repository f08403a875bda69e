import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import {
  bestTagRank,
  InvalidWheelFilename,
  linuxPlatformTags,
  macosPlatformTags,
  parseSdistFilename,
  parseWheelFilename,
  type TargetPlatform,
  tagKey,
  tagRanks,
  targetTags,
} from "../../../src/python/tags.js";
import { normalizeVersion } from "../../../src/python/version.js";
import { referencePython, runPython } from "../../support/packaging-reference.js";

const PYENV = join(homedir(), ".pyenv", "versions");
const INTERPRETERS = existsSync(PYENV)
  ? readdirSync(PYENV).map((v) => join(PYENV, v, "bin", "python"))
  : [];

const PYTHON = referencePython();
const keys = (target: TargetPlatform) => targetTags(target).map(tagKey);

test("parseWheelFilename splits names and expands compressed tag sets", () => {
  assert.deepEqual(parseWheelFilename("six-1.16.0-py2.py3-none-any.whl"), {
    name: "six",
    normalized: "six",
    version: "1.16.0",
    tags: [
      { interpreter: "py2", abi: "none", platform: "any" },
      { interpreter: "py3", abi: "none", platform: "any" },
    ],
  });
  const numpy = parseWheelFilename(
    "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
  );
  assert.deepEqual(numpy.tags.map(tagKey), [
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp311-cp311-manylinux2014_x86_64",
  ]);
  const built = parseWheelFilename("Foo_Bar-2.0rc1-1a-PY3-none-ANY.whl");
  assert.equal(built.normalized, "foo-bar");
  assert.equal(built.build, "1a");
  assert.equal(built.version, "2.0rc1");
  assert.deepEqual(built.tags.map(tagKey), ["py3-none-any"]);
});

test("parseWheelFilename rejects malformed names", () => {
  const bad = [
    "foo-1.0-py3-none-any.zip",
    "foo-1.0-py3-none-any.WHL",
    "foo-1.0-py3-none.whl",
    "a-b-c-d-e-f-g.whl",
    "foo-1.0-x1-py3-none-any.whl",
    "foo-not!a!version-py3-none-any.whl",
    "foo__bar-1.0-py3-none-any.whl",
    "-1.0-py3-none-any.whl",
    "foo-1.0-py3.-none-any.whl",
  ];
  for (const f of bad) assert.throws(() => parseWheelFilename(f), InvalidWheelFilename, f);
  assert.throws(
    () => parseWheelFilename("foo-1.0-x1-py3-none-any.whl"),
    /^InvalidWheelFilename: "foo-1.0-x1-py3-none-any.whl" is not a valid wheel file name: build tag "x1" must start with a digit\.$/,
  );
});

test("parseSdistFilename", () => {
  assert.deepEqual(parseSdistFilename("requests-2.31.0.tar.gz"), {
    name: "requests",
    version: "2.31.0",
  });
  assert.deepEqual(parseSdistFilename("zope.interface-6.0.zip"), {
    name: "zope.interface",
    version: "6.0",
  });
  assert.deepEqual(parseSdistFilename("foo-bar-1.0rc1.tar.gz"), {
    name: "foo-bar",
    version: "1.0rc1",
  });
  for (const f of [
    "foo.tar.gz",
    "foo-1.0.tar.bz2",
    "foo-bad!.tar.gz",
    "-1.0.tar.gz",
    "foo-1.0.whl",
  ]) {
    assert.equal(parseSdistFilename(f), undefined, f);
  }
});

test("linuxPlatformTags: order and legacy aliases", () => {
  const tags = linuxPlatformTags("x86_64", { major: 2, minor: 17 });
  assert.deepEqual(tags.slice(0, 2), ["manylinux_2_17_x86_64", "manylinux2014_x86_64"]);
  assert.equal(tags.indexOf("manylinux2010_x86_64"), tags.indexOf("manylinux_2_12_x86_64") + 1);
  assert.deepEqual(tags.slice(-3), ["manylinux_2_5_x86_64", "manylinux1_x86_64", "linux_x86_64"]);
  assert.equal(tags.length, 13 + 3 + 1);
  // Nothing older than glibc 2.17 was ever built for aarch64.
  assert.deepEqual(linuxPlatformTags("aarch64", { major: 2, minor: 18 }), [
    "manylinux_2_18_aarch64",
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",
    "linux_aarch64",
  ]);
  assert.deepEqual(linuxPlatformTags("aarch64", { major: 2, minor: 12 }), ["linux_aarch64"]);
  assert.deepEqual(linuxPlatformTags("x86_64", undefined, { major: 1, minor: 2 }), [
    "musllinux_1_2_x86_64",
    "musllinux_1_1_x86_64",
    "musllinux_1_0_x86_64",
    "linux_x86_64",
  ]);
  assert.deepEqual(linuxPlatformTags("sparc", { major: 2, minor: 30 }), ["linux_sparc"]);
  assert.deepEqual(linuxPlatformTags("armv8l", { major: 2, minor: 17 }), [
    "manylinux_2_17_armv8l",
    "manylinux2014_armv8l",
    "manylinux_2_17_armv7l",
    "manylinux2014_armv7l",
    "linux_armv8l",
    "linux_armv7l",
  ]);
});

test("targetTags: CPython order", () => {
  const tags = keys({
    implementation: "cpython",
    pythonVersion: "3.11.7",
    abiTags: ["cp311"],
    platforms: ["manylinux_2_17_x86_64", "linux_x86_64"],
  });
  assert.deepEqual(tags.slice(0, 6), [
    "cp311-cp311-manylinux_2_17_x86_64",
    "cp311-cp311-linux_x86_64",
    "cp311-abi3-manylinux_2_17_x86_64",
    "cp311-abi3-linux_x86_64",
    "cp311-none-manylinux_2_17_x86_64",
    "cp311-none-linux_x86_64",
  ]);
  assert.equal(tags[6], "cp310-abi3-manylinux_2_17_x86_64");
  assert.ok(tags.includes("cp32-abi3-linux_x86_64"));
  assert.ok(!tags.includes("cp31-abi3-linux_x86_64"));
  const any = tags.filter((t) => t.endsWith("-any"));
  assert.deepEqual(any.slice(0, 4), [
    "cp311-none-any",
    "py311-none-any",
    "py3-none-any",
    "py310-none-any",
  ]);
  assert.equal(any.at(-1), "py30-none-any");
  // Free-threaded CPython cannot use abi3.
  const threaded = keys({
    implementation: "cpython",
    pythonVersion: "3.13",
    abiTags: ["cp313t"],
    platforms: ["win_amd64"],
  });
  assert.deepEqual(threaded.slice(0, 3), [
    "cp313-cp313t-win_amd64",
    "cp313-none-win_amd64",
    "py313-none-win_amd64",
  ]);
  assert.ok(!threaded.some((t) => t.includes("abi3")));
  assert.throws(
    () => targetTags({ implementation: "cpython", pythonVersion: "3", abiTags: [], platforms: [] }),
    RangeError,
  );
});

test("targetTags: PyPy and other implementations", () => {
  const pypy = { implementation: "pypy", pythonVersion: "3.1", platforms: ["linux_x86_64"] };
  assert.deepEqual(keys({ ...pypy, abiTags: ["pypy31_pp73"] }), [
    "pp31-pypy31_pp73-linux_x86_64",
    "pp31-none-linux_x86_64",
    "py31-none-linux_x86_64",
    "py3-none-linux_x86_64",
    "py30-none-linux_x86_64",
    "pp3-none-any",
    "py31-none-any",
    "py3-none-any",
    "py30-none-any",
  ]);
  const other = keys({ ...pypy, implementation: "IronPython", abiTags: ["none"] });
  assert.deepEqual(other.slice(0, 2), ["ip31-none-linux_x86_64", "py31-none-linux_x86_64"]);
  assert.equal(other.filter((t) => t.endsWith("-any")).length, 3);
});

test("tagRanks and bestTagRank pick the most preferred wheel", () => {
  const ranks = tagRanks(
    targetTags({
      implementation: "cpython",
      pythonVersion: "3.11",
      abiTags: ["cp311"],
      platforms: linuxPlatformTags("x86_64", { major: 2, minor: 31 }),
    }),
  );
  const rank = (f: string) => bestTagRank(parseWheelFilename(f), ranks);
  const specific = rank("numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl");
  const abi3 = rank("cryptography-42.0.0-cp39-abi3-manylinux_2_28_x86_64.whl");
  const pure = rank("six-1.16.0-py2.py3-none-any.whl");
  assert.ok(specific !== undefined && abi3 !== undefined && pure !== undefined);
  assert.ok(specific < abi3 && abi3 < pure);
  assert.equal(rank("numpy-1.26.4-cp311-cp311-win_amd64.whl"), undefined);
  assert.equal(rank("numpy-1.26.4-cp312-cp312-manylinux_2_17_x86_64.whl"), undefined);
  assert.equal(rank("x-1.0-cp311-cp311-manylinux_2_32_x86_64.whl"), undefined);
  // Of a wheel's tags the best one counts.
  assert.equal(rank("six-1.16.0-py2.py3-none-any.whl"), ranks.get("py3-none-any"));
});

const WHEELS = [
  "six-1.16.0-py2.py3-none-any.whl",
  "numpy-1.26.4-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
  "Foo_Bar-2.0rc1-1a-PY3-none-ANY.whl",
  "foo-v1.0-py3-none-any.whl",
  "foo-1.0-1_a.b-py3-none-any.whl",
  "pywin32-306-cp311-cp311-win_amd64.whl",
  "zope.interface-6.0-cp38-cp38-macosx_10_9_x86_64.whl",
  "foo-1.0-py2.py3-cp27mu.none-linux_x86_64.any.whl",
];

test("differential: wheel file names against pypa/packaging", { skip: !PYTHON }, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  const code = `
import json, sys
from pip._vendor.packaging.utils import parse_wheel_filename
out = []
for f in json.load(sys.stdin):
    name, version, build, tags = parse_wheel_filename(f)
    out.append([name, str(version), "".join(str(b) for b in build), sorted(str(t) for t in tags)])
print(json.dumps(out))`;
  const ref = runPython(PYTHON as string, code, WHEELS) as [string, string, string, string[]][];
  WHEELS.forEach((f, i) => {
    const w = parseWheelFilename(f);
    const mine = [
      w.normalized,
      normalizeVersion(w.version),
      w.build ?? "",
      w.tags.map(tagKey).sort(),
    ];
    assert.deepEqual(mine, ref[i], f);
  });
});

test("differential: manylinux, musllinux and macOS platforms against pypa/packaging", {
  skip: !PYTHON,
}, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  const linux: [string, number, number][] = [
    ["x86_64", 2, 36],
    ["x86_64", 2, 17],
    ["x86_64", 2, 5],
    ["x86_64", 2, 4],
    ["x86_64", 3, 1],
    ["aarch64", 2, 31],
    ["aarch64", 2, 17],
    ["aarch64", 2, 12],
    ["ppc64le", 2, 28],
    ["s390x", 2, 17],
    ["riscv64", 2, 39],
    ["loongarch64", 2, 38],
    ["sparc64", 2, 30],
  ];
  const mac: [number, number, string][] = [];
  for (const [major, minor] of [
    [10, 3],
    [10, 4],
    [10, 9],
    [10, 15],
    [10, 16],
    [11, 0],
    [12, 3],
    [14, 2],
    [15, 0],
  ]) {
    for (const arch of ["x86_64", "arm64", "i386", "ppc", "ppc64", "universal2", "intel"]) {
      mac.push([major as number, minor as number, arch]);
    }
  }
  const code = `
import json, sys
from pip._vendor.packaging import _manylinux, _musllinux, tags
d = json.load(sys.stdin)
out = {"linux": [], "musl": [], "mac": []}
for arch, major, minor in d["linux"]:
    _manylinux._get_glibc_version = lambda: (major, minor)
    out["linux"].append(list(_manylinux.platform_tags([arch])))
for arch, major, minor in d["linux"]:
    _musllinux._get_musl_version = lambda exe: _musllinux._MuslVersion(1, minor % 5)
    out["musl"].append(list(_musllinux.platform_tags([arch])))
for major, minor, arch in d["mac"]:
    out["mac"].append(list(tags.mac_platforms((major, minor), arch)))
print(json.dumps(out))`;
  const ref = runPython(PYTHON as string, code, { linux, mac }) as {
    linux: string[][];
    musl: string[][];
    mac: string[][];
  };
  linux.forEach(([arch, major, minor], i) => {
    const mine = linuxPlatformTags(arch, { major, minor }).filter((t) => t.startsWith("many"));
    assert.deepEqual(mine, ref.linux[i], `${arch} glibc ${major}.${minor}`);
    const musl = linuxPlatformTags(arch, undefined, { major: 1, minor: minor % 5 });
    assert.deepEqual(musl.slice(0, -1), ref.musl[i], `${arch} musl 1.${minor % 5}`);
  });
  mac.forEach(([major, minor, arch], i) => {
    assert.deepEqual(
      macosPlatformTags({ major, minor }, arch),
      ref.mac[i],
      `macOS ${major}.${minor} ${arch}`,
    );
  });
});

test("differential: targetTags against packaging's tag functions for given targets", {
  skip: !PYTHON,
}, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  const targets: TargetPlatform[] = [
    {
      implementation: "cpython",
      pythonVersion: "3.12",
      abiTags: ["cp312"],
      platforms: ["win_amd64"],
    },
    {
      implementation: "cpython",
      pythonVersion: "3.7",
      abiTags: ["cp37m"],
      platforms: macosPlatformTags({ major: 12, minor: 0 }, "x86_64"),
    },
    {
      implementation: "cpython",
      pythonVersion: "3.13",
      abiTags: ["cp313t"],
      platforms: linuxPlatformTags("aarch64", { major: 2, minor: 28 }),
    },
    {
      implementation: "cpython",
      pythonVersion: "3.11",
      abiTags: ["cp311d", "cp311"],
      platforms: ["linux_x86_64"],
    },
    {
      implementation: "pypy",
      pythonVersion: "3.10",
      abiTags: ["pypy310_pp73"],
      platforms: linuxPlatformTags("x86_64", { major: 2, minor: 35 }),
    },
    {
      implementation: "graalpy",
      pythonVersion: "3.11",
      abiTags: ["graalpy311_311_native"],
      platforms: ["macosx_14_0_arm64"],
    },
  ];
  const code = `
import json, sys
from pip._vendor.packaging import tags
out = []
for t in json.load(sys.stdin):
    version = tuple(int(x) for x in t["pythonVersion"].split(".")[:2])
    nodot = "".join(map(str, version))
    if t["implementation"] == "cpython":
        result = list(tags.cpython_tags(version, t["abiTags"], t["platforms"]))
        interp = "cp" + nodot
    else:
        short = tags.INTERPRETER_SHORT_NAMES.get(t["implementation"], t["implementation"])
        result = list(tags.generic_tags(short + nodot, t["abiTags"], t["platforms"]))
        interp = "pp3" if short == "pp" else None
    result += list(tags.compatible_tags(version, interp, t["platforms"]))
    out.append([str(x) for x in result])
print(json.dumps(out))`;
  const ref = runPython(PYTHON as string, code, targets) as string[][];
  targets.forEach((t, i) => {
    assert.deepEqual(keys(t), ref[i], JSON.stringify(t));
  });
});

interface Probe {
  version: [number, number, number];
  platform: string;
  glibc: string | null;
  abiflags: string;
  packaging: string;
  tags: string[];
}

test("differential: targetTags equals sys_tags() of the local interpreters", {
  skip: !PYTHON,
}, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  // Interpreters whose own pip vendors packaging < 22 (which lacked cpXY-none-any) run the
  // reference interpreter's vendored packaging instead.
  const vendor = runPython(
    PYTHON as string,
    "import json, os, pip._vendor; print(json.dumps(os.path.dirname(pip._vendor.__file__)))",
    null,
  ) as string;
  const code = `
import json, os, sys, sysconfig
try:
    from pip._vendor.packaging import tags, __version__ as used
    if int(used.split(".")[0]) < 22:
        raise ImportError(used)
except ImportError:
    sys.path.insert(0, sys.argv[1])
    from packaging import tags, __version__ as used
try:
    glibc = os.confstr("CS_GNU_LIBC_VERSION")
except (AttributeError, ValueError, OSError):
    glibc = None
print(json.dumps({
    "version": list(sys.version_info[:3]),
    "platform": sysconfig.get_platform(),
    "glibc": glibc,
    "abiflags": sys.abiflags,
    "packaging": used,
    "tags": [str(t) for t in tags.sys_tags()],
}))`;
  const checked: string[] = [];
  for (const exe of INTERPRETERS) {
    const r = spawnSync(exe, ["-c", code, vendor], { encoding: "utf8", input: "" });
    // Interpreters too old for the reference packaging (2.7, 3.6, 3.7) cannot take part.
    if (r.status !== 0) continue;
    const probe = JSON.parse(r.stdout) as Probe;
    const glibc = /^glibc (\d+)\.(\d+)/.exec(probe.glibc ?? "");
    if (!probe.platform.startsWith("linux-") || !glibc) continue;
    const [major, minor] = probe.version;
    const target: TargetPlatform = {
      implementation: "cpython",
      pythonVersion: probe.version.join("."),
      abiTags: [`cp${major}${minor}${probe.abiflags}`],
      platforms: linuxPlatformTags(probe.platform.slice("linux-".length).replace(/[-.]/g, "_"), {
        major: Number(glibc[1]),
        minor: Number(glibc[2]),
      }),
    };
    assert.deepEqual(keys(target), probe.tags, `${exe} with packaging ${probe.packaging}`);
    checked.push(`${major}.${minor}`);
  }
  t.diagnostic(`sys_tags() compared for Python ${checked.join(", ")}`);
  assert.ok(checked.length >= 2, `only ${checked.join(", ")} could be compared`);
});
