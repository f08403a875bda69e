/** `pyferry deploy` and `pyferry rollback`: the fleet of environments in the inventory. */

import { constants as osConstants } from "node:os";
import { createInterface } from "node:readline/promises";
import type { Command } from "commander";
import { UserError } from "../util/errors.js";
import { out, writeJson } from "./output.js";

interface FleetFlags {
  inventory: string;
  check?: boolean;
  yes?: boolean;
  forks: string;
  json?: boolean;
}

function forksOf(flags: FleetFlags): number {
  const n = Number(flags.forks);
  if (!Number.isInteger(n) || n < 1)
    throw new UserError("--forks takes a whole number of 1 or more.", 2);
  return n;
}

/**
 * One line per environment (or --json), and the exit status the results call for; `stoppedBy`:
 * the signal that cut the deploy short.
 */
async function report(
  results: import("../fleet/deploy.js").EnvResult[],
  flags: FleetFlags,
  stoppedBy?: NodeJS.Signals,
): Promise<void> {
  const { describeChanges } = await import("../fleet/plan.js");
  if (flags.json) writeJson(stoppedBy ? { results, stopped_by: stoppedBy } : { results });
  else {
    const colour = {
      ok: out.green,
      changed: out.yellow,
      failed: out.red,
      pending: out.cyan,
      skipped: out.dim,
    };
    for (const r of results) {
      const where = `${r.user ? `${r.user}@` : ""}${r.host}:${r.path}`;
      // The moves (for a failure, those that took effect all the same), and why when they are
      // not all of it (a wheel replaced, hooks owed, ...) or what failed.
      const detail = [describeChanges(r.changes), r.error ?? r.reason].filter(Boolean).join(": ");
      process.stdout.write(
        `${where}  ${colour[r.outcome](r.outcome)}${detail ? `  ${detail}` : ""}\n`,
      );
    }
  }
  if (results.some((r) => r.outcome === "failed")) process.exitCode = 1;
  else if (results.some((r) => r.outcome === "pending")) process.exitCode = 2;
}

async function ask(question: string): Promise<"yes" | "no" | "all" | "quit"> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  let interrupted = false;
  // A question still open when input ends never settles by itself: it is aborted.
  const ac = new AbortController();
  rl.on("SIGINT", () => {
    interrupted = true;
    ac.abort();
  });
  rl.on("close", () => ac.abort());
  try {
    for (;;) {
      const a = (await rl.question(`${question} [y]es/[n]o/[a]ll/[q]uit: `, { signal: ac.signal }))
        .trim()
        .toLowerCase();
      if (a === "y" || a === "yes") return "yes";
      if (a === "n" || a === "no") return "no";
      if (a === "a" || a === "all") return "all";
      if (a === "q" || a === "quit") return "quit";
    }
  } catch (err) {
    // Ctrl-C: nothing is applied, as after any interruption; Ctrl-D (end of input): quit.
    if (interrupted) {
      process.stderr.write("\n");
      throw new UserError("Interrupted at the question; nothing was changed.", 130);
    }
    if ((err as Error).name === "AbortError") return "quit";
    throw err;
  } finally {
    rl.close();
  }
}

/**
 * While a deploy applies: stopped by SIGINT or SIGTERM, report the environments whose outcome
 * was final (`finished()`), say where that leaves the rest (each old or new, never half) and
 * how to finish, then end as the signal would.
 */
function sayWhenStopped(
  connections: { closeSync(): void },
  finished: () => import("../fleet/deploy.js").EnvResult[],
  flags: FleetFlags,
  status: { done(): void },
): () => void {
  const stopped = async (sig: NodeJS.Signals) => {
    const code = 128 + (osConstants.signals[sig] ?? 15);
    status.done();
    // Hosts learn that pyferry is gone (their hooks are stopped) while the report is written.
    connections.closeSync();
    await report(finished(), flags, sig);
    if (!flags.json)
      process.stderr.write(
        `\npyferry: ${sig === "SIGINT" ? "interrupted" : "stopped"}; each environment not listed is as it was or wholly switched, never half: pyferry deploy --check shows what is left.\n`,
      );
    process.exit(code);
  };
  process.once("SIGINT", stopped);
  process.once("SIGTERM", stopped);
  return () => {
    process.off("SIGINT", stopped);
    process.off("SIGTERM", stopped);
  };
}

export function registerFleet(program: Command): void {
  const common = (cmd: Command) =>
    cmd
      .option("-i, --inventory <file>", "the inventory (TOML)", "inventory.toml")
      .option("--forks <n>", "hosts worked on at once", "5")
      .option("--json", "machine-readable results");
  common(
    program
      .command("deploy")
      .description(
        "bring the inventory's environments exactly to their requirements, from the wheelhouse",
      )
      .argument(
        "[selectors...]",
        "which environments: hostname, user@host, user@host:/path, host:/path, :/path, user@, or a group (default: all)",
      )
      .option("--check", "change nothing; show the plan and exit 2 when changes are pending")
      .option("-y, --yes", "apply every plan without asking"),
  )
    .addHelpText(
      "after",
      `
Each environment is read on its host (its .dist-info folders), planned (installs, upgrades,
downgrades and removals), confirmed (yes / no / all / quit), then built beside the old one and
switched to in one rename; hooks and the reload command run after it, and a failure switches
back. One line per environment: ok, changed, pending (--check), skipped or failed.

Examples:
  pyferry deploy --check                     what would change, everywhere
  pyferry deploy web --yes --forks 10        the hosts of group web, without asking
  pyferry deploy app@web1:/srv/app/venv      one environment`,
    )
    .action(async (selectors: string[], flags: FleetFlags) => {
      const forks = forksOf(flags);
      const { checkWheelhouse, readInventory } = await import("../fleet/inventory.js");
      const { resolveSelection } = await import("../fleet/selector.js");
      const { Connections, earlyKey, takeEarly } = await import("../fleet/connections.js");
      const inv = readInventory(flags.inventory);
      checkWheelhouse(inv);
      const sels = await resolveSelection(inv, selectors);
      // The handshakes overlap loading the resolver and the installer: they may have started
      // before the command line was even parsed (cli/early-connect.ts).
      const connections =
        takeEarly(earlyKey(flags.inventory, selectors, forks)) ?? new Connections();
      connections.connectAhead(sels, forks);
      const { deploy, order } = await import("../fleet/deploy.js");
      const interactive = process.stdin.isTTY === true && !flags.json;
      const { progress } = await import("../util/progress.js");
      const status = progress(process.stderr, flags.json === true);
      const finished: import("../fleet/deploy.js").EnvResult[] = [];
      const unwatch = sayWhenStopped(connections, () => order(sels, finished), flags, status);
      const results = await deploy(
        inv,
        sels,
        {
          check: flags.check === true,
          yes: flags.yes === true,
          forks,
          ...(interactive ? { confirm: ask } : {}),
          say: (line) => {
            status.done();
            if (!flags.json) process.stderr.write(`${line}\n`);
          },
          status,
          onResult: (r) => finished.push(r),
        },
        connections,
      ).finally(() => {
        unwatch();
        status.done();
      });
      await report(results, flags);
    });
  common(
    program
      .command("rollback")
      .description("return environments to the state before their last deployment")
      .argument("<selectors...>", "which environments (as for deploy)"),
  )
    .addHelpText("after", "\nExample:\n  pyferry rollback web1:/srv/app/venv")
    .action(async (selectors: string[], flags: FleetFlags) => {
      const forks = forksOf(flags);
      const { readInventory } = await import("../fleet/inventory.js");
      const { resolveSelection } = await import("../fleet/selector.js");
      const { rollback } = await import("../fleet/deploy.js");
      const inv = readInventory(flags.inventory);
      await report(await rollback(await resolveSelection(inv, selectors), forks), flags);
    });
}
