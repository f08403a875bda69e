// The command-line programs bundled into dist/bundle (what bin/ runs), from the sources: one
// file per entry point plus shared chunks, with lazily imported parts (resolver,
// installer, remote code) kept in chunks of their own. Node's loader resolves, reads and links
// each of dozens of small modules one by one; the bundle saves ~50 ms of every start here.
import { rmSync } from "node:fs";
import { build } from "esbuild";

const outdir = "dist/bundle";
rmSync(outdir, { recursive: true, force: true });
await build({
  entryPoints: {
    "fast-run": "src/cli/fast-run.ts",
    main: "src/cli/main.ts",
    "seed-analyze": "src/cli/seed-analyze.ts",
    "seed-cloudpy": "src/cli/seed-cloudpy.ts",
    "seed-create": "src/cli/seed-create.ts",
    "seed-run": "src/cli/seed-run.ts",
    // Started by src/install/unpack-pool.ts and copy-pool.ts as ./unpack-worker.js and
    // ./copy-worker.js next to the chunk that holds them: every output file sits in one folder.
    "unpack-worker": "src/install/unpack-worker.ts",
    "copy-worker": "src/install/copy-worker.ts",
  },
  outdir,
  bundle: true,
  splitting: true,
  format: "esm",
  platform: "node",
  target: "node20",
  // CommonJS dependencies (commander, yauzl) call require() for Node's own modules.
  banner: {
    js: 'import { createRequire as pyferryRequire } from "node:module";\nconst require = pyferryRequire(import.meta.url);',
  },
  chunkNames: "chunk-[hash]",
  // Read only under --debug (bin/ enables source maps then), so stack traces name src/*.ts lines.
  sourcemap: true,
  logLevel: "warning",
});
