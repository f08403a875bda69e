// The command-line programs bundled into dist/bundle (what bin/ runs), from the sources.
// Node's ES module loader resolves, reads and links each module one by one, and compiles them
// anew on every start: a deploy loaded ~60 chunks. Each program is instead one CommonJS file,
// which bin/ loads through load.js (src/cli/code-cache.ts) with V8's code cache: measured here,
// a no-op deploy over kept connections went from 0.34 s to 0.27 s, and a warm `env create` from
// 0.43 s to 0.38 s.
import { rmSync } from "node:fs";
import { build } from "esbuild";

const outdir = "dist/bundle";
rmSync(outdir, { recursive: true, force: true });
const common = {
  outdir,
  bundle: true,
  platform: "node",
  target: "node20",
  // Read only under --debug (code-cache.ts turns source maps on then), so that stack traces
  // name src/*.ts lines.
  sourcemap: true,
  logLevel: "warning",
};
const programs = await build({
  ...common,
  metafile: true,
  entryPoints: {
    pyferry: "src/cli/pyferry-entry.ts",
    "seed-analyze": "src/cli/seed-analyze.ts",
    "seed-cloudpy": "src/cli/seed-cloudpy.ts",
    "seed-create": "src/cli/seed-create.ts",
    "seed-run": "src/cli/seed-run.ts",
  },
  format: "cjs",
  outExtension: { ".js": ".cjs" },
  // Files next to the bundle (the worker threads' scripts below) are found from its own URL.
  define: { "import.meta.url": "__pyferryUrl" },
  banner: { js: 'var __pyferryUrl = require("node:url").pathToFileURL(__filename).href;' },
});
// An import() left in a program (one of Node's own modules: the rest is bundled) would fail
// there, as code compiled by vm has no module loader without an experimental flag.
for (const [out, { imports }] of Object.entries(programs.metafile.outputs)) {
  const dynamic = imports.filter((i) => i.kind === "dynamic-import").map((i) => i.path);
  if (dynamic.length > 0) {
    throw new Error(`${out} keeps import() of ${dynamic.join(", ")}: import these statically.`);
  }
}
await build({
  ...common,
  entryPoints: {
    // The loader itself, and the worker threads that src/install/unpack-pool.ts and
    // copy-pool.ts start as ./unpack-worker.js and ./copy-worker.js next to the bundle.
    load: "src/cli/code-cache.ts",
    "unpack-worker": "src/install/unpack-worker.ts",
    "copy-worker": "src/install/copy-worker.ts",
  },
  format: "esm",
  // CommonJS dependencies (yauzl) call require() for Node's own modules.
  banner: {
    js: 'import { createRequire as pyferryRequire } from "node:module";\nconst require = pyferryRequire(import.meta.url);',
  },
});
