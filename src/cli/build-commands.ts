/**
 * Commands that build and run environments: lock, env create, pack, exec, run, cache.
 * Registration is light; each action loads its implementation when it runs, so that the
 * warm path of `pyferry run` starts fast.
 */
import { type Command, Option } from "commander";
import { LINK_MODES } from "../install/link-mode.js";
import { UserError } from "../util/errors.js";
import { type AnalyzeFlags, addAnalyzeOptions, analyzeOptions, indexSettings } from "./analyze.js";
import { addIndexOptions, collect, PLATFORM_HELP } from "./options.js";

export interface RunFlags {
  python?: string;
  on?: string;
  fetch?: string[];
  env?: string[];
  name?: string;
  cleanAfter?: boolean;
  guessFiles?: boolean;
  verbose?: boolean;
}

export interface BuildFlags extends AnalyzeFlags {
  output?: string;
  requirement?: string[];
  lock?: string;
  extra?: string[];
  allExtras?: boolean;
  group?: string[];
  allGroups?: boolean;
  defaultGroups?: boolean;
  platform?: string;
  pre?: boolean;
  mixedSources?: boolean;
  bundlePython?: boolean;
  compile?: boolean;
  linkMode?: string;
  name?: string;
  json?: boolean;
}

export function registerBuildCommands(program: Command): void {
  addIndexOptions(
    program
      .command("lock")
      .description("resolve exact packages for one target and write a PEP 751 pylock.toml")
      .argument(
        "[inputs...]",
        "a spec (.json), requirements file (.txt), script or project folder; or requirement strings",
      )
      .option("-r, --requirement <file>", "requirements file (repeatable)", collect)
      .option("-o, --output <file>", "where to write the lock", "pylock.toml")
      .option("--python <version|path>", "interpreter the lock is for (default: the active one)")
      .option("--platform <file>", PLATFORM_HELP)
      .option("--pre", "allow pre-releases")
      .option(
        "--extra <name>",
        "lock the project's extra too, marked for it in the lock (repeatable)",
        collect,
      )
      .option("--all-extras", "lock every extra of the project")
      .option(
        "--group <name>",
        "lock the project's dependency group too, marked for it in the lock (repeatable)",
        collect,
      )
      .option("--all-groups", "lock every dependency group of the project"),
  )
    .addHelpText(
      "after",
      `
Examples:
  pyferry lock requests "flask>=3"             lock two requirements for the active python
  pyferry lock spec.json -o pylock.toml        lock what 'pyferry analyze -o spec.json' found
  pyferry lock train.py --python 3.12          analyze train.py and lock it for Python 3.12
  pyferry lock . --all-extras --group test     a project, with its extras and test group;
                                               pick them with env create --lock --extra/--group`,
    )
    .action(async (inputs: string[], flags: BuildFlags) => {
      const { lockCommand } = await import("../pipeline/commands.js");
      await lockCommand(inputs, flags);
    });

  const env = program
    .command("env")
    .description("build and manage environments")
    .addHelpText(
      "after",
      "\nExamples:\n  pyferry env create .venv -r requirements.txt\n  pyferry env create /opt/app --lock pylock.toml --bundle-python",
    );
  addIndexOptions(
    env
      .command("create")
      .description("build an environment from requirements, a lock, or a spec")
      .argument("<dir>", "the environment folder to create (must not exist)")
      .argument("[inputs...]", "a spec, requirements file, script, or requirement strings")
      .option("-r, --requirement <file>", "requirements file (repeatable)", collect)
      .option(
        "--lock <pylock.toml>",
        "install exactly this lock, from any tool (no resolving; every file's hash verified)",
      )
      .option(
        "--extra <name>",
        "install this extra too: the lock's, or the project folder's (repeatable)",
        collect,
      )
      .option("--all-extras", "install every extra of the lock or project")
      .option(
        "--group <name>",
        "install this dependency group too: the lock's (besides its default groups), or the project folder's (repeatable)",
        collect,
      )
      .option("--all-groups", "install every dependency group of the lock or project")
      .option("--no-default-groups", "with --lock: leave out the lock's default dependency groups")
      .option(
        "--python <version|path>",
        "interpreter to build on (default: the Python series the lock's target or a spec names, else the active one)",
      )
      .option(
        "--bundle-python",
        "copy the interpreter into the environment so it runs where no Python is installed",
      )
      .option("--compile", "compile bytecode (hash-based .pyc, valid after moving)")
      .addOption(
        new Option(
          "--link-mode <mode>",
          "how files come from the cache (default: $PYFERRY_LINK_MODE, else auto: clone, else hardlink, else copy)",
        ).choices(LINK_MODES),
      ),
  )
    .addHelpText(
      "after",
      `
Examples:
  pyferry env create .venv -r requirements.txt
  pyferry env create /opt/app/env --lock pylock.toml --bundle-python
  pyferry env create .venv --lock pylock.toml --group dev    a lock another tool wrote, with its dev group`,
    )
    .action(async (dir: string, inputs: string[], flags: BuildFlags) => {
      const { envCreateCommand } = await import("../pipeline/commands.js");
      await envCreateCommand(dir, inputs, flags);
    });

  addAnalyzeOptions(
    program
      .command("pack")
      .description(
        "analyze, lock and build a program, and pack it with its environment into one archive",
      )
      .argument("<path>", "a script or project folder")
      .option("-n, --name <name>", "name of the pack (default: the script's name)")
      .option("-o, --output <file>", "the archive to write (default: NAME.tar.gz)")
      .option(
        "--no-bundle-python",
        "do not copy the interpreter in (the target must have the same Python)",
      )
      .option("--compile", "ship compiled bytecode")
      .option(
        "--folder",
        "write an editable pack folder (app files + conf/mods) for pyferry sync/run --on, not an archive",
      ),
    "pack",
  )
    .addHelpText(
      "after",
      `
Examples:
  pyferry pack train.py                     train.tar.gz: environment, interpreter and app
  pyferry pack train.py --folder -n nightly a folder nightly/ to edit, then sync and run it:
  pyferry sync nightly --on gpu1 && pyferry run --on gpu1 nightly`,
    )
    .action(async (path: string, flags: BuildFlags & { folder?: boolean }) => {
      if (flags.folder) {
        // A folder holds the app and its requirements; the environment is sync's to build.
        const unfit = [
          [flags.output !== undefined, "-o"],
          [flags.compile, "--compile"],
          [flags.bundlePython === false, "--no-bundle-python"],
        ]
          .filter(([given]) => given)
          .map(([, flag]) => flag);
        if (unfit.length > 0) {
          const { joinAnd } = await import("../resolve/provider.js");
          throw new UserError(
            `${joinAnd(unfit as string[])} ${unfit.length > 1 ? "do" : "does"} not apply to pack --folder, which writes the folder NAME (-n) and leaves building the environment to sync.`,
            2,
          );
        }
        const { packFolder } = await import("../pipeline/staged.js");
        const { id, dir, report } = await packFolder(path, {
          ...(flags.name !== undefined ? { name: flags.name } : {}),
          ...(flags.python ? { python: flags.python } : {}),
          ...(flags.guessFiles ? { guessFiles: true } : {}),
          analysis: { ...analyzeOptions(flags), index: indexSettings(flags) },
        });
        const open = report.ambiguous.filter((a) => !a.chosen).length + report.unresolved.length;
        process.stderr.write(
          `Packed ${path} into ${dir}${open ? `; ${open} import(s) need a decision in conf/mods` : ""}.\n`,
        );
        process.stdout.write(`${id}\n`);
        return;
      }
      const { packCommand } = await import("../pipeline/commands.js");
      await packCommand(path, flags);
    });

  program
    .command("sync")
    .description("build a pack folder's environment for a target and send what the target lacks")
    .argument("<id>", "the pack's ID (the folder pyferry pack --folder wrote)")
    .requiredOption(
      "--on <target>",
      "the target: a configured name, user@host[:port] or an ssh alias",
    )
    .option("-v, --verbose", "say what is set up and sent")
    .addHelpText("after", "\nExample:\n  pyferry sync nightly --on gpu1")
    .action(async (id: string, flags: { on: string; verbose?: boolean }) => {
      const { syncCommand } = await import("./remote-run.js");
      await syncCommand(id, flags);
    });

  program
    .command("exec")
    .description("run a command inside a packed bundle (unpacked once into the cache)")
    .argument("<bundle>", "an archive written by pyferry pack or python_package_create")
    .argument(
      "[command...]",
      "the command and its arguments, after -- (default: the bundle's own entry)",
    )
    .passThroughOptions()
    .addHelpText(
      "after",
      "\nThe app folder is on PYTHONPATH; the command runs in the current folder.\n\nExamples:\n  pyferry exec hello.tar.gz\n  pyferry exec hello.tar.gz -- python -m hello --verbose",
    )
    .action(async (bundle: string, command: string[]) => {
      const { execCommand } = await import("../pipeline/commands.js");
      await execCommand(bundle, command[0] === "--" ? command.slice(1) : command);
    });

  program
    .command("run")
    .description(
      "analyze, lock, build and run a script in one go, here or on another machine; every stage is cached",
    )
    .argument("<script>", "the Python script to run (or, with --on, a pack folder's ID)")
    .argument("[args...]", "arguments for the script")
    .option("--python <version|path>", "interpreter to run on (default: the active one)")
    .option(
      "--on <target>",
      "run on another machine: a configured target, user@host[:port] or an ssh alias",
    )
    .option(
      "--fetch <path>",
      "with --on: bring this file or folder of the run back (repeatable)",
      collect,
    )
    .option("--env <name=value>", "with --on: set a variable for the program (repeatable)", collect)
    .option(
      "-n, --name <name>",
      "with --on: name the pack there, so its environment is kept for later runs",
    )
    .option(
      "--clean-after",
      "with --on: remove the run's folder (and an unnamed environment) afterwards",
    )
    .option("-f, --guess-files", "ship files the script names in string literals too")
    .option("-v, --verbose", "say what is set up and sent")
    .passThroughOptions()
    .addHelpText(
      "after",
      `
Options go before the script; everything after it goes to the script.

Examples:
  pyferry run examples/hello/hello.py
  pyferry run train.py --epochs 3            arguments after the script go to the script
  pyferry run --on gpu1 train.py             ship and run on the target gpu1 (see pyferry config show)
  pyferry run --on alice@10.0.0.5:2222 --fetch out.csv report.py`,
    )
    .action(async (script: string, args: string[], flags: RunFlags) => {
      if (flags.on !== undefined) {
        const { remoteRunCommand } = await import("./remote-run.js");
        await remoteRunCommand(script, args, flags);
        return;
      }
      for (const [set, flag] of [
        [flags.fetch, "--fetch"],
        [flags.env, "--env"],
        [flags.name, "--name"],
        [flags.cleanAfter, "--clean-after"],
      ] as const) {
        if (set !== undefined) throw new UserError(`${flag} needs --on TARGET.`, 2);
      }
      const { runCommand } = await import("../pipeline/run.js");
      await runCommand(script, args, flags.python, flags.verbose === true);
    });

  const cache = program
    .command("cache")
    .description("inspect or prune pyferry's cache")
    .addHelpText(
      "after",
      "\nExamples:\n  pyferry cache info\n  pyferry cache prune --older-than 7 --dry-run",
    );
  cache
    .command("info")
    .description("where the cache is and what it holds")
    .option("--json", "machine-readable output")
    .addHelpText("after", "\nExample:\n  pyferry cache info --json")
    .action(async (flags: { json?: boolean }) => {
      const { cacheInfoCommand } = await import("../pipeline/commands.js");
      await cacheInfoCommand(flags.json === true);
    });
  cache
    .command("prune")
    .description("remove cached wheels, unpacked trees and environments not used recently")
    .option("--older-than <days>", "age in days", "30")
    .option("--dry-run", "say what would go, remove nothing")
    .option("--json", "machine-readable output")
    .addHelpText(
      "after",
      `
Wheels, unpacked wheels, wheels built from sdists, environments of run/pack and unpacked
bundles of exec go when they were last used more than DAYS ago; leftovers of writers that died
go too. Example:
  pyferry cache prune --older-than 7 --dry-run`,
    )
    .action(async (flags: { olderThan: string; dryRun?: boolean; json?: boolean }) => {
      const days = Number(flags.olderThan);
      if (!/^\d+(\.\d+)?$/.test(flags.olderThan.trim()))
        throw new UserError("--older-than takes a number of days.", 2);
      const { cachePruneCommand } = await import("../pipeline/commands.js");
      await cachePruneCommand(days, flags.json === true, flags.dryRun === true);
    });
}
