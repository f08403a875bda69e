import assert from "node:assert/strict";
import { rmSync } from "node:fs";
import { after, test } from "node:test";
import { DEFAULT_INDEX_URL, loadPipSettings } from "../../../src/index/pip-config.js";
import { listProjects } from "../../../src/index/simple.js";
import { loadTopLevelMap, lookupModule, MAX_PROJECTS } from "../../../src/index/top-level-map.js";
import { normalizeName } from "../../../src/python/names.js";
import { tempDir } from "../../support/temp.js";

// A fresh cache, so this is a cold load of the machine's real indexes.
const cache = tempDir("pyferry-realmap-");
process.env.PYFERRY_CACHE_DIR = cache;
after(() => rmSync(cache, { recursive: true, force: true }));

test("the map built from this machine's pip configuration", async (t) => {
  const settings = loadPipSettings();
  const indexes = settings.noIndex ? [] : [settings.indexUrl, ...settings.extraIndexUrls];
  if (indexes.every((u) => u === DEFAULT_INDEX_URL) && settings.findLinks.length === 0) {
    t.skip("pip is configured with nothing but PyPI, which is too large to enumerate");
    return;
  }
  const listed = new Map<string, Set<string>>();
  for (const url of indexes) {
    // A source too large or unreachable counts as empty here; the map reports it as a warning.
    const names = await listProjects(url, { maxProjects: MAX_PROJECTS }).catch(() => []);
    listed.set(url, new Set(names.map(normalizeName)));
  }
  assert.ok(
    [...listed.values()].some((names) => names.size > 100),
    "some configured index lists more than 100 projects",
  );

  const map = await loadTopLevelMap(settings);
  t.diagnostic(`${map.modules.size} import names from ${map.indexes.join(", ")}`);
  for (const w of map.warnings) t.diagnostic(`warning: ${w}`);
  const offered = (project: string) => [...listed.values()].some((n) => n.has(project));
  for (const [module, project] of [
    ["yaml", "pyyaml"],
    ["sklearn", "scikit-learn"],
    ["PIL", "pillow"],
    ["google.protobuf", "protobuf"],
  ] as const) {
    if (!offered(project)) continue;
    const found = lookupModule(map, `${module}.anything`);
    assert.equal(found?.prefix, module);
    assert.ok(
      found?.providers.some((p) => p.project === project),
      `${module} is provided by ${project}`,
    );
  }
});
