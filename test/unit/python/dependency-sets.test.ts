import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parse } from "smol-toml";
import {
  extraRequirements,
  groupRequirements,
  readDependencySets,
} from "../../../src/python/dependency-sets.js";
import { formatRequirement } from "../../../src/python/requirement.js";
import { UserError } from "../../../src/util/errors.js";

const sets = (toml: string) => readDependencySets(parse(toml), "pyproject.toml");
const texts = (reqs: Parameters<typeof formatRequirement>[0][]) => reqs.map(formatRequirement);

function refused(fn: () => unknown, message: RegExp, exitCode = 1): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof UserError);
    assert.match(err.message, message);
    assert.equal(err.exitCode, exitCode);
    return true;
  });
}

describe("extras", () => {
  const project = sets(`
[project]
name = "My_App"
[project.optional-dependencies]
Web = ["flask>=3", "gunicorn; sys_platform == 'linux'"]
cli = ["click"]
all = ["my-app[web,cli]; python_version >= '3.9'", "rich"]
loop = ["my-app[loop2]"]
loop2 = ["my-app[loop]", "tqdm"]
`);

  test("an extra's requirements, names normalized", () => {
    assert.deepEqual(texts(extraRequirements(project, "web")), [
      "flask>=3",
      'gunicorn; sys_platform == "linux"',
    ]);
  });

  test("a self-reference takes the named extras, under its own marker", () => {
    assert.deepEqual(texts(extraRequirements(project, "all")), [
      'flask>=3; python_version >= "3.9"',
      'gunicorn; sys_platform == "linux" and python_version >= "3.9"',
      'click; python_version >= "3.9"',
      "rich",
    ]);
  });

  test("self-references in a cycle end", () => {
    assert.deepEqual(texts(extraRequirements(project, "loop")), ["tqdm"]);
  });

  test("an extra the project lacks is refused with what it has (exit 2)", () => {
    refused(
      () => extraRequirements(project, "gui"),
      /has no extra 'gui' \(it has all, cli, loop, loop2, web\)/,
      2,
    );
  });
});

describe("dependency groups", () => {
  const project = sets(`
[dependency-groups]
Test = ["pytest", {include-group = "lint"}]
lint = ["ruff", {include-group = "typing"}]
typing = ["mypy"]
a = [{include-group = "b"}]
b = [{include-group = "a"}]
broken = [{include-group = "nowhere"}]
`);

  test("a group's requirements, included groups expanded in place", () => {
    assert.deepEqual(texts(groupRequirements(project, "test")), ["pytest", "ruff", "mypy"]);
  });

  test("a cycle of inclusions is refused", () => {
    refused(() => groupRequirements(project, "a"), /include each other in a cycle \(a -> b -> a\)/);
  });

  test("an inclusion of a group that does not exist is the file's fault", () => {
    refused(() => groupRequirements(project, "broken"), /'broken' includes 'nowhere'/);
  });

  test("a group the project lacks is refused (exit 2)", () => {
    refused(() => groupRequirements(project, "docs"), /no dependency group 'docs'/, 2);
  });
});

describe("shape", () => {
  test("malformed tables and entries are refused in one sentence", () => {
    refused(() => sets(`[project]\noptional-dependencies = 3`), /must be a table/);
    refused(() => sets(`[project.optional-dependencies]\nx = "a"`), /'x' must be a list/);
    refused(() => sets(`[dependency-groups]\nx = [3]`), /neither a requirement string/);
    refused(() => sets(`[dependency-groups]\nA_b = []\na-B = []`), /two dependency groups/);
    refused(
      () => groupRequirements(sets(`[dependency-groups]\nx = ["not a req!"]`), "x"),
      /the dependency group 'x' holds 'not a req!'/,
    );
  });

  test("a project without either table has none", () => {
    const none = sets(`[project]\nname = "x"`);
    assert.equal(none.extras.size, 0);
    assert.equal(none.groups.size, 0);
  });
});
