import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { test } from "node:test";
import { MetadataError, parseCoreMetadata } from "../../../src/python/metadata.js";
import { referencePython } from "../../support/packaging-reference.js";

const PYTHON = referencePython();

const WHEEL_METADATA = `Metadata-Version: 2.1
Name: requests
Version: 2.31.0
Summary: Python HTTP for Humans.
Home-page: https://requests.readthedocs.io
License: Apache 2.0
Classifier: Development Status :: 5 - Production/Stable
Classifier: Programming Language :: Python :: 3
Requires-Python: >=3.7
Description-Content-Type: text/markdown
Requires-Dist: charset-normalizer (<4,>=2)
Requires-Dist: idna (<4,>=2.5)
Provides-Extra: socks
Requires-Dist: PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'
Provides-Extra: use_chardet_on_py3
Requires-Dist: chardet (<6,>=3.0.2) ; extra == 'use_chardet_on_py3'
Project-URL: Source, https://github.com/psf/requests

# Requests

**Requests** is a simple, yet elegant, HTTP library.

Header-Like: line in the body
`;

test("parseCoreMetadata reads a wheel's METADATA", () => {
  const md = parseCoreMetadata(WHEEL_METADATA);
  assert.equal(md.metadataVersion, "2.1");
  assert.equal(md.name, "requests");
  assert.equal(md.version, "2.31.0");
  assert.equal(md.summary, "Python HTTP for Humans.");
  assert.equal(md.requiresPython, ">=3.7");
  assert.deepEqual(md.requiresDist, [
    "charset-normalizer (<4,>=2)",
    "idna (<4,>=2.5)",
    "PySocks (!=1.5.7,>=1.5.6) ; extra == 'socks'",
    "chardet (<6,>=3.0.2) ; extra == 'use_chardet_on_py3'",
  ]);
  assert.deepEqual(md.providesExtra, ["socks", "use_chardet_on_py3"]);
  assert.deepEqual(md.fields.get("classifier"), [
    "Development Status :: 5 - Production/Stable",
    "Programming Language :: Python :: 3",
  ]);
  assert.deepEqual(md.fields.get("project-url"), ["Source, https://github.com/psf/requests"]);
  assert.equal(md.fields.has("header-like"), false);
  assert.equal(
    md.description,
    "# Requests\n\n**Requests** is a simple, yet elegant, HTTP library.\n\nHeader-Like: line in the body\n",
  );
});

test("parseCoreMetadata: folded headers, CRLF, header-style description", () => {
  const pkgInfo = [
    "\uFEFFMetadata-Version: 1.1",
    "name: old-thing",
    "VERSION: 0.1",
    "License: Line one",
    "        line two",
    "Description: First line",
    "        second line",
    "        ",
    "            indented",
    "Summary:",
    "Platform: UNKNOWN",
    "",
  ].join("\r\n");
  const md = parseCoreMetadata(pkgInfo);
  assert.equal(md.name, "old-thing");
  assert.equal(md.version, "0.1");
  assert.equal(md.fields.get("license")?.[0], "Line one\n        line two");
  assert.equal(md.description, "First line\nsecond line\n\n    indented");
  assert.equal(md.summary, "");
  assert.deepEqual(md.requiresDist, []);
  assert.equal(md.requiresPython, undefined);
  // With no body and no Description header there is no description.
  assert.equal(parseCoreMetadata("Name: a\nVersion: 1\n\n\n").description, undefined);
  assert.equal(parseCoreMetadata("Name: a\nVersion: 1").metadataVersion, "");
});

test("parseCoreMetadata rejects metadata without Name or Version, or with a broken header", () => {
  assert.throws(() => parseCoreMetadata("Metadata-Version: 2.1\nVersion: 1.0\n"), {
    name: "MetadataError",
    message: "The metadata has no Name field.",
  });
  assert.throws(() => parseCoreMetadata("Name: foo\n\nVersion: 1.0\n"), {
    message: "The metadata for foo has no Version field.",
  });
  assert.throws(() => parseCoreMetadata("Name: foo\nVersion 1.0\n"), {
    message: 'Metadata line 2 is not a "Name: value" header.',
  });
  assert.throws(() => parseCoreMetadata(" Name: foo\n"), MetadataError);
  assert.throws(() => parseCoreMetadata(""), MetadataError);
});

test("differential: headers and body against pypa/packaging's parse_email", {
  skip: !PYTHON,
}, (t) => {
  t.diagnostic(`reference: ${PYTHON}`);
  const texts = [
    WHEEL_METADATA,
    "Metadata-Version: 2.3\nName: x\nVersion: 1\nLicense: a\n  b\n\tc\nRequires-Dist: y; extra == 'z'\n",
    "Metadata-Version: 2.1\r\nName: crlf\r\nVersion: 2\r\nSummary:  spaced\r\n\r\nbody\r\nmore\r\n",
  ];
  const code = `
import json, sys
from pip._vendor.packaging.metadata import parse_email
out = []
for text in json.load(sys.stdin):
    raw, unparsed = parse_email(text)
    out.append({k: raw.get(k) for k in ("metadata_version", "name", "version", "summary",
        "requires_python", "requires_dist", "provides_extra", "license", "description")})
print(json.dumps(out))`;
  const r = spawnSync(PYTHON as string, ["-c", code], {
    input: JSON.stringify(texts),
    encoding: "utf8",
  });
  assert.equal(r.status, 0, r.stderr);
  const ref = JSON.parse(r.stdout) as Record<string, unknown>[];
  texts.forEach((text, i) => {
    // Line endings in the description are normalized to "\n" on purpose.
    const expected = { ...ref[i] };
    if (typeof expected.description === "string") {
      expected.description = expected.description.replace(/\r\n/g, "\n");
    }
    const md = parseCoreMetadata(text);
    const first = (k: string) => md.fields.get(k)?.[0] ?? null;
    const list = (v: string[]) => (v.length > 0 ? v : null);
    assert.deepEqual(
      {
        metadata_version: md.metadataVersion,
        name: md.name,
        version: md.version,
        summary: md.summary ?? null,
        requires_python: md.requiresPython ?? null,
        requires_dist: list(md.requiresDist),
        provides_extra: list(md.providesExtra),
        license: first("license"),
        description: md.description ?? null,
      },
      expected,
      text,
    );
  });
});
