/**
 * `cloudpy`: the seed's entry, with its flags and configuration files, on pyferry's remote
 * machinery. `cloudpy SCRIPT` packs, syncs, runs and cleans; -P, -S, -R and -C do one step.
 */

import { basename } from "node:path";
import { Command } from "commander";
import { loadCloudpyConfig, loadConfig, resolveTarget, withFlags } from "../config/index.js";
import { findPack } from "../pipeline/pack-folder.js";
import { remoteRun } from "../pipeline/remote-run.js";
import { packFolder, removePackFolder } from "../pipeline/staged.js";
import { UserError } from "../util/errors.js";
import { runProgram } from "./parse.js";
import { sshTargetOf } from "./ssh-target.js";

interface CloudpyFlags {
  P?: boolean;
  S?: boolean;
  R?: boolean;
  C?: boolean;
  n?: string;
  m?: boolean;
  f?: boolean;
  N?: boolean;
  c?: boolean;
}

/** The target and store folder from cloudpy.conf. */
function cloudpyTarget(): { target: ReturnType<typeof sshTargetOf>; root: string } {
  const conf = loadCloudpyConfig();
  if (!conf.host) {
    throw new UserError(
      'No host is configured; write {"host": "user@address", "depository": "cloudpy_depo"} into ./cloudpy.conf, ~/.cloudpy.conf or /etc/cloudpy.conf.',
    );
  }
  if (conf.hostSep !== undefined && conf.hostSep !== "/") {
    throw new UserError(
      `host_sep ${JSON.stringify(conf.hostSep)} is not supported: pyferry ships to POSIX hosts, whose separator is "/".`,
    );
  }
  // A host from cloudpy.conf may also be a pyferry target name, with its ssh settings.
  const t = resolveTarget(withFlags(loadConfig(), { target: conf.host }), conf.host);
  const depo = conf.depository ?? t.root ?? "";
  // A relative depository is relative to the remote home, as cloudpy's ssh commands were.
  const root = depo === "" || depo.startsWith("/") || depo.startsWith("~") ? depo : `~/${depo}`;
  return { target: sshTargetOf(t), root };
}

async function pack(script: string, flags: CloudpyFlags): Promise<string> {
  const { id, dir, report } = await packFolder(script, {
    // A name is reused: packing again refreshes that folder (the seed's edit-and-rerun loop).
    ...(flags.n ? { name: flags.n, refresh: true } : {}),
    ...(flags.f ? { guessFiles: true } : {}),
  });
  const open = report.ambiguous.filter((a) => !a.chosen).length + report.unresolved.length;
  if (open > 0) process.stderr.write(`${open} import(s) need a decision in ${dir}/conf/mods.\n`);
  return id;
}

function packDir(id: string): string {
  const dir = findPack(id);
  if (!dir)
    throw new UserError(
      `There is no packed folder ${id} here; pack it first with cloudpy -P SCRIPT.`,
      2,
    );
  return dir;
}

/**
 * Send (and run) a packed folder. In the steps (-S, -R) the ID names it on the host, so that
 * -R finds what -S sent; the easy way names it there only when the user did (-n). -c removes
 * the run and its environment afterwards, and the easy way without -n always does.
 */
async function shipOrRun(
  id: string,
  args: string[],
  flags: CloudpyFlags,
  step: "sync" | "run" | "easy",
): Promise<number> {
  const dir = packDir(id);
  const { target, root } = cloudpyTarget();
  const named = step !== "easy" || flags.n !== undefined;
  const report = await remoteRun({
    script: id,
    pack: dir,
    ...(named ? { name: basename(dir) } : {}),
    args,
    target,
    root,
    fetch: [],
    env: [],
    verbose: flags.N === true,
    cleanAfter: step !== "sync" && (flags.c === true || !named),
    forgetName: flags.c === true,
    ...(step === "sync" ? { syncOnly: true } : {}),
  });
  return report.code;
}

export function buildCloudpy(): Command {
  return new Command("cloudpy")
    .description("run a python script in its own environment on a remote host (over ssh)")
    .argument("<script|id>", "the script (or, with -S, -R or -C, the ID that -P printed)")
    .argument("[args...]", "arguments for the script (after --, when they look like options)")
    .option(
      "-P",
      "pack: gather the script, its modules and a list of its dependencies; print the ID",
    )
    .option("-S", "sync: send the packed ID to the host, with its environment")
    .option("-R", "run the packed ID on the host, output live")
    .option("-C", "clean: remove the local packed folder ID")
    .option("-n <name>", "name the pack (a later run reuses the environment made on the host)")
    .option("-m", "guess uncertain modules from the package index (always done by pyferry)")
    .option("-f", "also pack files the script names in string literals")
    .option("-N", "say more: how the environment is set up and sent")
    .option(
      "-c",
      "remove the run and its environment from the host afterwards (the easy way without -n always does)",
    )
    .showHelpAfterError("(run with --help for usage)")
    .exitOverride()
    .addHelpText(
      "after",
      `
Configuration: /etc/cloudpy.conf, ~/.cloudpy.conf, ./cloudpy.conf (later ones win), each a
Python dict such as {"host": "ubuntu@192.168.70.145", "depository": "cloudpy_depo", "host_sep": "/"}.

Examples:
  cloudpy my_script.py             pack, send, run and clean in one go
  cloudpy -P my_script.py          pack only; prints the ID (edit ID/conf/mods if asked)
  cloudpy -S ID && cloudpy -R ID   send, then run
  cloudpy -C ID                    remove the local folder
  cloudpy my_script.py -- --epochs 3   arguments for the script go after --`,
    )
    .action(async (what: string, args: string[], flags: CloudpyFlags) => {
      const steps = [flags.P, flags.S, flags.R, flags.C].filter(Boolean).length;
      if (steps > 1)
        throw new UserError("-P, -S, -R and -C each do one step; give at most one.", 2);
      if (flags.P) {
        process.stdout.write(`${await pack(what, flags)}\n`);
        return;
      }
      if (flags.S) {
        await shipOrRun(what, [], flags, "sync");
        return;
      }
      if (flags.R) {
        process.exitCode = await shipOrRun(what, args, flags, "run");
        return;
      }
      if (flags.C) {
        await removePackFolder(what);
        return;
      }
      // The easy way: every step; the local folder goes unless it was named for reuse.
      const id = await pack(what, flags);
      try {
        process.exitCode = await shipOrRun(id, args, flags, "easy");
      } finally {
        if (!flags.n) await removePackFolder(id);
      }
    });
}

export function runCloudpy(argv: string[]): Promise<number> {
  return runProgram(buildCloudpy(), argv);
}
