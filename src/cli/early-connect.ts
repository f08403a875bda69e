/**
 * For `pyferry run [OPTIONS] --on TARGET SCRIPT ...` and `pyferry deploy`: start the SSH
 * connections before the command line framework and the commands load. Anything unusual (an
 * option not known here, a value joined to a short option, short options bundled) connects to
 * nothing and is left to the full parse, which also reports every error: guessing wrong would
 * connect where the command will not, such as the hosts of ./inventory.toml when `-iOTHER`
 * names another inventory. These never fail.
 */
import { connectEarly } from "../transport/early.js";
import { GLOBAL_FLAGS, RUN_FLAGS, RUN_WITH_VALUE } from "./run-options.js";
import { sshTargetOf, targetFor } from "./ssh-target.js";

export function connectForRun(argv: readonly string[]): void {
  if (argv[0] !== "run") return;
  let on: string | undefined;
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (!a.startsWith("-")) break;
    if (a === "--") break;
    const eq = a.indexOf("=");
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    if (a.startsWith("--on=")) on = a.slice(5);
    else if (RUN_WITH_VALUE.has(a)) {
      if (a === "--on") on = argv[i + 1];
      i++;
    } else if (!(RUN_WITH_VALUE.has(name) || RUN_FLAGS.has(a) || GLOBAL_FLAGS.has(a))) return;
  }
  if (on === undefined) return;
  try {
    connectEarly(sshTargetOf(targetFor(on)));
  } catch {
    // The full parse says what is wrong.
  }
}

/** Options of `deploy` that take a value, and those that take none (see fleet-command.ts). */
const FLEET_WITH_VALUE = new Set(["-i", "--inventory", "--forks"]);
const FLEET_FLAGS = new Set(["--check", "-y", "--yes", "--json"]);

/** What `deploy ARGS` will connect to, as the full parse will read it; undefined when unsure. */
export function deployTargets(
  argv: readonly string[],
): { inventory: string; selectors: string[]; forks: number } | undefined {
  if (argv[0] !== "deploy") return undefined;
  let inventory = "inventory.toml";
  let forks = "5";
  const selectors: string[] = [];
  for (let i = 1; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "--") {
      selectors.push(...argv.slice(i + 1));
      break;
    }
    const eq = a.indexOf("=");
    const name = a.startsWith("--") && eq > 0 ? a.slice(0, eq) : a;
    const inline = a.startsWith("--") && eq > 0 ? a.slice(eq + 1) : undefined;
    if (FLEET_WITH_VALUE.has(name)) {
      const value = inline ?? argv[++i];
      if (value === undefined) return undefined;
      if (name === "--forks") forks = value;
      else inventory = value;
    } else if (!a.startsWith("-")) selectors.push(a);
    else if (!FLEET_FLAGS.has(a) && !GLOBAL_FLAGS.has(a)) return undefined;
  }
  const n = Number(forks);
  return Number.isInteger(n) && n >= 1 ? { inventory, selectors, forks: n } : undefined;
}

export async function connectForDeploy(argv: readonly string[]): Promise<void> {
  const t = deployTargets(argv);
  if (!t) return;
  try {
    const { checkWheelhouse, readInventory } = await import("../fleet/inventory.js");
    const { resolveSelection } = await import("../fleet/selector.js");
    const { connectEarly, earlyKey } = await import("../fleet/connections.js");
    const inv = readInventory(t.inventory);
    // A deploy that will stop at its wheelhouse connects to nothing.
    checkWheelhouse(inv);
    connectEarly(
      earlyKey(t.inventory, t.selectors, t.forks),
      await resolveSelection(inv, t.selectors),
      t.forks,
    );
  } catch {
    // The full parse says what is wrong.
  }
}
