/**
 * The early reading of `pyferry deploy`'s command line (cli/early-connect.ts) against the full
 * parse by the command line framework: wherever the early one is sure, both must agree, or the
 * connections it starts are not the ones the command uses.
 */
import assert from "node:assert/strict";
import { test } from "node:test";
import { deployTargets } from "../../../src/cli/early-connect.js";
import { buildProgram } from "../../../src/cli/main.js";

/** What commander makes of `argv`, with the deploy action replaced by a recorder. */
async function fullParse(argv: string[]) {
  const program = buildProgram().exitOverride();
  const deploy = program.commands.find((c) => c.name() === "deploy");
  assert.ok(deploy);
  let seen: { inventory: string; selectors: string[]; forks: number } | undefined;
  deploy
    .exitOverride()
    .action((selectors: string[], flags: { inventory: string; forks: string }) => {
      seen = { inventory: flags.inventory, selectors, forks: Number(flags.forks) };
    });
  await program.parseAsync(["node", "pyferry", ...argv]);
  return seen;
}

const CASES: string[][] = [
  ["deploy"],
  ["deploy", "--yes"],
  ["deploy", "-i", "fleet.toml", "web", "db1:/srv/app/venv"],
  ["deploy", "--inventory=fleet.toml", "--forks", "10", "-y"],
  ["deploy", "web", "--check", "--json", "--forks=3", "app@"],
  ["deploy", "-y", "--", "-odd-group"],
  ["deploy", ":/srv/venv", "-i", "a b.toml"],
];

test("the early reading of deploy's arguments agrees with the full parse", async () => {
  for (const argv of CASES) {
    const early = deployTargets(argv);
    assert.ok(early, `sure of ${argv.join(" ")}`);
    assert.deepEqual(early, await fullParse(argv), argv.join(" "));
  }
});

test("spellings it does not read start nothing, never a guess the full parse disagrees with", async () => {
  const tricky: string[][] = [
    ["deploy", "-iother.toml"],
    ["deploy", "-yi", "other.toml"],
    ["deploy", "-yiother.toml", "web"],
    ["deploy", "--invent=other.toml"],
  ];
  for (const argv of tricky) {
    const early = deployTargets(argv);
    const full = await fullParse(argv).catch(() => undefined);
    if (early !== undefined) assert.deepEqual(early, full, argv.join(" "));
  }
  // The case a review found: ./inventory.toml's hosts were connected to (and its ssh options run).
  assert.equal(deployTargets(["deploy", "-iother.toml"]), undefined);
  assert.equal(deployTargets(["deploy", "-yi", "other.toml"]), undefined);
});

test("where it is unsure, it starts nothing", () => {
  assert.equal(deployTargets(["deploy", "--forks", "0"]), undefined);
  assert.equal(deployTargets(["deploy", "--help"]), undefined);
  assert.equal(deployTargets(["deploy", "-i"]), undefined);
  assert.equal(deployTargets(["rollback", "web"]), undefined);
});
