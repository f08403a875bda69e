import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { readDeclared } from "../../../src/analyze/declared.js";
import { UserError } from "../../../src/util/errors.js";
import { tempDir } from "../../support/temp.js";

function dir(files: Record<string, string>): string {
  const d = tempDir("pyferry-declared-");
  for (const [n, c] of Object.entries(files)) writeFileSync(join(d, n), c);
  return d;
}

test("PEP 723 first, then pyproject, then requirements.txt; the first declaration of a name wins", async () => {
  const d = dir({
    "pyproject.toml":
      '[project]\nname="x"\nversion="1"\ndependencies=["requests>=2", "rich"]\nrequires-python=">=3.10"\n',
    "requirements.txt": "requests==2.31.0\nnumpy  # comment\n-r other.txt\n",
  });
  const script =
    "# /// script\n# dependencies = ['requests<3']\n# requires-python = '>=3.11'\n# ///\nimport requests\n";
  const r = await readDeclared(d, d, { path: join(d, "s.py"), text: script });
  assert.deepEqual(
    r.requirements.map((q) => `${q.normalized}${q.specifier}`),
    ["requests<3", "rich", "numpy"],
  );
  assert.match(r.from.get("requests") ?? "", /script/);
  assert.equal(r.from.get("rich"), "pyproject.toml");
  assert.equal(r.from.get("numpy"), "requirements.txt");
  assert.equal(r.requiresPython?.spec, ">=3.11");
  assert.ok(r.warnings.some((w) => w.includes("other.txt")));
});

test("a broken pyproject.toml is one clear error naming the place", async () => {
  const d = dir({ "pyproject.toml": "[project]\ndependencies = [1, 2]\n" });
  await assert.rejects(
    readDeclared(d, d),
    (e: Error) => e instanceof UserError && /must be a list of strings/.test(e.message),
  );
  const d2 = dir({ "pyproject.toml": "[project\n" });
  await assert.rejects(
    readDeclared(d2, d2),
    (e: Error) => e instanceof UserError && /not valid TOML at line 1/.test(e.message),
  );
  const d3 = dir({ "pyproject.toml": '[project]\nrequires-python = "3.x"\n' });
  await assert.rejects(readDeclared(d3, d3), /requires-python/);
});

test("an unparsable dependency string is skipped with a warning", async () => {
  const d = dir({ "pyproject.toml": '[project]\ndependencies = ["good", "bad name !!"]\n' });
  const r = await readDeclared(d, d);
  assert.deepEqual(
    r.requirements.map((q) => q.name),
    ["good"],
  );
  assert.equal(r.warnings.length, 1);
});
