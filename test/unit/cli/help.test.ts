import assert from "node:assert/strict";
import { test } from "node:test";
import type { Command } from "commander";
import { buildProgram } from "../../../src/cli/main.js";

/** Every command under `cmd`, with its full name. */
function* commands(cmd: Command, prefix: string[] = []): Generator<[string, Command]> {
  for (const sub of cmd.commands) {
    const name = [...prefix, sub.name()];
    yield [name.join(" "), sub];
    yield* commands(sub, name);
  }
}

/** What `pyferry NAME --help` prints, the text added after the options included. */
function helpOf(cmd: Command): string {
  let text = "";
  cmd.configureOutput({
    writeOut: (s) => {
      text += s;
    },
  });
  cmd.outputHelp();
  return text;
}

test("every command's --help shows at least one example", () => {
  const program = buildProgram();
  const names: string[] = [];
  for (const [name, cmd] of commands(program)) {
    names.push(name);
    assert.match(helpOf(cmd), /Example/, `pyferry ${name} --help has no example`);
  }
  assert.match(helpOf(program), /Example/);
  // The walk found the nested commands too.
  for (const name of ["env create", "wheelhouse serve", "store gc", "cache prune", "deploy"])
    assert.ok(names.includes(name), `${name} among ${names.join(", ")}`);
});
