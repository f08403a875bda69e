import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { sweepScratch } from "../../../src/util/scratch.js";
import { tempDir } from "../../support/temp.js";

const SCRATCH = fileURLToPath(new URL("../../../src/util/scratch.js", import.meta.url));

test("what a process that is gone left for the same destination is swept; a live one's stays", async () => {
  const d = tempDir("pyferry-scratch-");
  const gone = spawnSync("true").pid as number;
  for (const name of [
    `.env.${gone}.0a1b2c3d.tmp`,
    `.env.${process.pid}.0a1b2c3d.tmp`,
    `.other.${gone}.0a1b2c3d.tmp`,
    "env2",
  ])
    mkdirSync(join(d, name, "lib"), { recursive: true });
  await sweepScratch(join(d, "env"));
  assert.deepEqual(readdirSync(d).sort(), [
    `.env.${process.pid}.0a1b2c3d.tmp`,
    `.other.${gone}.0a1b2c3d.tmp`,
    "env2",
  ]);
});

test("a process stopped by SIGTERM removes what it held, and still dies of the signal", async () => {
  const d = tempDir("pyferry-scratch-");
  const held = join(d, ".env.tmp");
  const child = spawn(
    process.execPath,
    [
      "--input-type=module",
      "-e",
      `import { mkdirSync, writeFileSync } from "node:fs";
       import { holdScratch } from ${JSON.stringify(SCRATCH)};
       mkdirSync(${JSON.stringify(join(held, "lib"))}, { recursive: true });
       writeFileSync(${JSON.stringify(join(held, "lib", "f"))}, "x");
       holdScratch(${JSON.stringify(held)});
       console.log("ready");
       setInterval(() => {}, 1000);`,
    ],
    { stdio: ["ignore", "pipe", "inherit"] },
  );
  await new Promise<void>((res) => child.stdout.once("data", () => res()));
  assert.ok(existsSync(held));
  child.kill("SIGTERM");
  const [code, signal] = await new Promise<[number | null, string | null]>((res) =>
    child.once("exit", (c, s) => res([c, s])),
  );
  assert.deepEqual([code, signal], [null, "SIGTERM"]);
  assert.ok(!existsSync(held), "the held folder is gone");
});
