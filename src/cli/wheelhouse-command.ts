/**
 * `pyferry wheelhouse`: a folder of wheels with a release log, which pip can use with
 * --find-links and pyferry can serve as a package index. Registration is light; each action
 * loads src/fleet when it runs.
 */
import type { Command } from "commander";
import type { AddOutcome, LogRecord, WheelEntry, Wheelhouse } from "../fleet/index.js";
import { UserError } from "../util/errors.js";
import { readText } from "../util/read-text.js";
import { mib } from "../util/units.js";
import type { AnalyzeFlags } from "./analyze.js";
import { addIndexOptions, collect, PLATFORM_HELP } from "./options.js";
import { warn, writeJson } from "./output.js";

interface Flags {
  wheelhouse?: string;
  json?: boolean;
}

const WHEELHOUSE_HELP = "the wheelhouse folder (default: $PYFERRY_WHEELHOUSE, else ./wheelhouse)";

function located(cmd: Command): Command {
  return cmd.option("--wheelhouse <dir>", WHEELHOUSE_HELP);
}

async function open(flags: Flags) {
  const { openWheelhouse, wheelhouseRoot } = await import("../fleet/index.js");
  return openWheelhouse(wheelhouseRoot(flags.wheelhouse));
}

/** Run `fn` on the wheelhouse, made if missing (and removed again if `fn` fails). */
async function changing<T>(flags: Flags, fn: (wh: Wheelhouse) => Promise<T>): Promise<T> {
  const { withWheelhouse, wheelhouseRoot } = await import("../fleet/index.js");
  return withWheelhouse(wheelhouseRoot(flags.wheelhouse), fn);
}

const say = (line: string): void => {
  process.stderr.write(`${line}\n`);
};

function reportAdds(outcomes: readonly AddOutcome[]): void {
  for (const o of outcomes) {
    if (o.status === "added") say(`Added ${o.name} ${o.version} (${o.file}).`);
    else if (o.status === "replaced")
      say(`Replaced ${o.file} (now sha256 ${o.sha256.slice(0, 12)}).`);
    else say(`${o.file} is already in the wheelhouse.`);
  }
}

/** Rows as columns, each as wide as its widest cell. */
function table(rows: string[][]): string {
  const widths = (rows[0] ?? []).map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows
    .map((r) =>
      r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0))).join("  "),
    )
    .join("\n");
}

function listText(entries: readonly WheelEntry[]): string {
  const rows = entries.map((e) => [
    e.name,
    e.version,
    e.file,
    e.sha256.slice(0, 12),
    e.added ?? "-",
  ]);
  return table([["NAME", "VERSION", "FILE", "SHA256", "ADDED"], ...rows]);
}

function entryJson(e: WheelEntry) {
  return {
    name: e.name,
    version: e.version,
    file: e.file,
    sha256: e.sha256,
    size: e.size,
    added: e.added ?? null,
  };
}

function logText(records: readonly LogRecord[]): string {
  const rows = records.map((r) => [
    r.time,
    r.action,
    r.name,
    r.version,
    r.file,
    r.sha256.slice(0, 12),
    `${r.user}@${r.host}${r.via ? ` (${r.via})` : ""}`,
  ]);
  return table(rows);
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!/^\d+$/.test(text) || port > 65535) {
    throw new UserError(`--port takes a port number from 0 to 65535, not ${text}.`, 2);
  }
  return port;
}

export function registerWheelhouse(program: Command): void {
  const wh = program
    .command("wheelhouse")
    .description("a local wheel repository with a release log, served as a package index")
    .option("--wheelhouse <dir>", `${WHEELHOUSE_HELP}; before or after the action`)
    // Options are positional (main.ts), so one given before the action is this command's:
    // hand it to the action, unless the action was given its own (the later one wins).
    .hook("preAction", (group, action) => {
      const before = group.opts<Flags>().wheelhouse;
      if (before !== undefined && action.opts<Flags>().wheelhouse === undefined) {
        action.setOptionValue("wheelhouse", before);
      }
    })
    .addHelpText(
      "after",
      `
A wheelhouse is a folder with wheels/ (the wheel files, for pip --find-links) and release.log
(one JSON line per add or remove: time, action, file, name, version, sha256, user, host,
and via: build, mirror, import, prune or replace when not a plain add or remove).

Examples:
  pyferry wheelhouse add dist/*.whl ./myproject     add wheels, and build a project into one
  pyferry wheelhouse mirror requests -r reqs.txt    add what the requirements resolve to
  pyferry wheelhouse serve --port 8080              pip install --index-url http://127.0.0.1:8080/simple/ ...
  pyferry wheelhouse export wheels.tar              carry it elsewhere; there: wheelhouse import wheels.tar`,
    );

  located(
    wh
      .command("add")
      .description("add wheels (checked whole) and project folders (built with their backend)")
      .argument("<files...>", "wheel files, or project folders with pyproject.toml or setup.py")
      .option("--replace", "replace a wheel of the same name that has different content")
      .option("--python <version|path>", "interpreter to build project folders with")
      .option("--json", "machine-readable output")
      .addHelpText(
        "after",
        "\nExamples:\n  pyferry wheelhouse add dist/app-1.2-py3-none-any.whl\n  pyferry wheelhouse add ./myproject --python 3.11",
      ),
  ).action(async (files: string[], flags: Flags & { replace?: boolean; python?: string }) => {
    const { addSources } = await import("../fleet/index.js");
    const { loadPipSettings } = await import("../index/pip-config.js");
    const { progress } = await import("../util/progress.js");
    const bar = progress(process.stderr, flags.json === true);
    try {
      const outcomes = await changing(flags, (house) =>
        addSources(house, files, {
          settings: loadPipSettings(),
          ...(flags.python ? { python: flags.python } : {}),
          ...(flags.replace ? { replace: true } : {}),
          onBuild: (dir) => bar.update(`Building ${dir}`),
        }),
      );
      bar.done();
      if (flags.json) writeJson(outcomes);
      else reportAdds(outcomes);
    } finally {
      bar.done();
    }
  });

  located(
    wh
      .command("list")
      .description("the wheels, by project and version")
      .option("--json", "machine-readable output")
      .addHelpText("after", "\nExample:\n  pyferry wheelhouse list --wheelhouse /srv/wheelhouse"),
  ).action(async (flags: Flags) => {
    const { listWheels } = await import("../fleet/index.js");
    const entries = await listWheels(await open(flags));
    if (flags.json) writeJson(entries.map(entryJson));
    else if (entries.length === 0) say("The wheelhouse is empty.");
    else process.stdout.write(`${listText(entries)}\n`);
  });

  located(
    wh
      .command("remove")
      .description("remove wheels, by file name or as NAME==VERSION (every wheel of that version)")
      .argument("<wheels...>", "wheel file names, or NAME==VERSION")
      .option("--json", "machine-readable output")
      .addHelpText(
        "after",
        "\nExamples:\n  pyferry wheelhouse remove app==1.2\n  pyferry wheelhouse remove app-1.2-py3-none-any.whl",
      ),
  ).action(async (targets: string[], flags: Flags) => {
    const { removeWheels } = await import("../fleet/index.js");
    const removed = await removeWheels(await open(flags), targets);
    if (flags.json) writeJson(removed.map(entryJson));
    else for (const e of removed) say(`Removed ${e.name} ${e.version} (${e.file}).`);
  });

  located(
    wh
      .command("log")
      .description("the release log: every add and remove, oldest first")
      .option("--json", "machine-readable output")
      .addHelpText("after", "\nExample:\n  pyferry wheelhouse log --json"),
  ).action(async (flags: Flags) => {
    const { readLog } = await import("../fleet/index.js");
    const { records, unreadable } = await readLog((await open(flags)).log);
    if (unreadable.length > 0) {
      warn(`release.log line(s) ${unreadable.join(", ")} hold no record and were skipped.`);
    }
    if (flags.json) writeJson(records);
    else if (records.length === 0) say("The release log is empty.");
    else process.stdout.write(`${logText(records)}\n`);
  });

  located(
    wh
      .command("prune")
      .description("keep the N newest versions of each project (PEP 440 order), remove the rest")
      .requiredOption("--keep <n>", "versions to keep per project")
      .option("--dry-run", "say what would be removed, remove nothing")
      .option("--json", "machine-readable output")
      .addHelpText("after", "\nExample:\n  pyferry wheelhouse prune --keep 3 --dry-run"),
  ).action(async (flags: Flags & { keep: string; dryRun?: boolean }) => {
    if (!/^\d+$/.test(flags.keep) || Number(flags.keep) < 1) {
      throw new UserError("--keep takes a whole number of versions, at least 1.", 2);
    }
    const { pruneWheels } = await import("../fleet/index.js");
    const dryRun = flags.dryRun === true;
    const { kept, removed } = await pruneWheels(await open(flags), Number(flags.keep), { dryRun });
    if (flags.json) {
      writeJson({ dry_run: dryRun, removed: removed.map(entryJson), kept: kept.map(entryJson) });
      return;
    }
    for (const e of removed)
      say(`${dryRun ? "Would remove" : "Removed"} ${e.name} ${e.version} (${e.file}).`);
    say(`${dryRun ? "Would keep" : "Kept"} ${kept.length} wheel(s).`);
  });

  located(
    wh
      .command("serve")
      .description(
        "serve the wheelhouse as a package index (PEP 503 HTML, PEP 691 JSON, PEP 658 metadata)",
      )
      .option("--host <address>", "address to listen on (only this one)", "127.0.0.1")
      .option("--port <port>", "port to listen on (0: any free one)", "8080")
      .option("--quiet", "do not log each request on stderr"),
  )
    .addHelpText(
      "after",
      `
Stop it with Ctrl-C (or SIGTERM). Example:
  pyferry wheelhouse serve --port 8080 &
  pip install --index-url http://127.0.0.1:8080/simple/ requests`,
    )
    .action(async (flags: Flags & { host: string; port: string; quiet?: boolean }) => {
      const port = parsePort(flags.port);
      const house = await open(flags);
      const { serveWheelhouse } = await import("../fleet/index.js");
      // Handlers first: whoever reads the URL below may signal at once.
      const stopped = new Promise<void>((done) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          done();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      const server = await serveWheelhouse(house, {
        host: flags.host,
        port,
        ...(flags.quiet ? {} : { onRequest: say }),
      });
      say(`Serving ${house.root} at ${server.url} (Ctrl-C stops)`);
      await stopped;
      await server.close();
      say("Stopped.");
    });

  located(
    wh
      .command("export")
      .description("write the wheels and the release log into one tar, to carry elsewhere")
      .argument("<file>", "the tar to write (replaced if it exists)")
      .addHelpText("after", "\nExample:\n  pyferry wheelhouse export /media/usb/wheels.tar"),
  ).action(async (file: string, flags: Flags) => {
    const { exportWheelhouse } = await import("../fleet/index.js");
    const { wheels, bytes } = await exportWheelhouse(await open(flags), file);
    say(`Exported ${wheels} wheel(s) (${mib(bytes)}) and the release log to ${file}.`);
  });

  located(
    wh
      .command("import")
      .description("add the wheels of an exported tar (each checked again) and merge its log")
      .argument("<file>", "a tar written by pyferry wheelhouse export")
      .option("--json", "machine-readable output")
      .addHelpText(
        "after",
        "\nExample (inside the air-gapped network):\n  pyferry wheelhouse import /media/usb/wheels.tar --wheelhouse /srv/wheelhouse",
      ),
  ).action(async (file: string, flags: Flags) => {
    const { importWheelhouse } = await import("../fleet/index.js");
    const { house, result } = await changing(flags, async (house) => ({
      house,
      result: await importWheelhouse(house, file),
    }));
    if (result.unreadable > 0) {
      warn(
        `${result.unreadable} line(s) of the archive's release.log hold no record and were skipped.`,
      );
    }
    if (result.skipped.length > 0) {
      const files = [...new Set(result.skipped.map((r) => r.file))].join(", ");
      warn(
        `${result.skipped.length} record(s) of the archive's release.log were not merged: they remove ${files}, which this wheelhouse still holds (an import never removes); pyferry wheelhouse remove it here too if it should go.`,
      );
    }
    if (flags.json) {
      writeJson(result);
      return;
    }
    const added = result.outcomes.filter((o) => o.status !== "unchanged").length;
    say(
      `Imported ${file} into ${house.root}: ${added} wheel(s) added, ${result.outcomes.length - added} already there; ${result.merged} log record(s) merged.`,
    );
  });

  located(
    addIndexOptions(
      wh
        .command("mirror")
        .description("resolve requirements from pip's index and add every wheel of the result")
        .argument("[requirements...]", 'requirement strings, e.g. requests "flask>=3"')
        .option("-r, --requirement <file>", "requirements file (repeatable)", collect)
        .option("--python <version|path>", "interpreter to resolve for (default: the active one)")
        .option("--platform <file>", PLATFORM_HELP)
        .option("--pre", "allow pre-releases")
        .option("--replace", "replace wheels of the same name that have different content"),
    ).option("--json", "machine-readable output"),
  )
    .addHelpText(
      "after",
      `
A project with only an sdist is built into a wheel by the interpreter (not with --platform).
Example:
  pyferry wheelhouse mirror requests -r requirements.txt --python 3.12`,
    )
    .action(
      async (
        reqs: string[],
        flags: Flags &
          AnalyzeFlags & {
            requirement?: string[];
            platform?: string;
            pre?: boolean;
            replace?: boolean;
            mixedSources?: boolean;
          },
      ) => {
        if (flags.python && flags.platform) {
          throw new UserError("Give --python or --platform, not both.", 2);
        }
        const { fromRequirementsTxt, fromStrings } = await import("../pipeline/inputs.js");
        const requirements = reqs.length > 0 ? fromStrings(reqs).requirements : [];
        for (const r of flags.requirement ?? []) {
          const text = await readText(r, "the requirements file");
          requirements.push(...fromRequirementsTxt(text, r).requirements);
        }
        const { indexSettings } = await import("./analyze.js");
        const { mirrorRequirements } = await import("../fleet/index.js");
        const { progress } = await import("../util/progress.js");
        const bar = progress(process.stderr, flags.json === true);
        try {
          const { house, outcomes } = await changing(flags, async (house) => ({
            house,
            outcomes: await mirrorRequirements(house, requirements, {
              settings: indexSettings(flags),
              ...(flags.python ? { python: flags.python } : {}),
              ...(flags.platform ? { platform: flags.platform } : {}),
              ...(flags.pre ? { prereleases: true } : {}),
              ...(flags.replace ? { replace: true } : {}),
              ...(flags.mixedSources ? { mixedSources: true } : {}),
              onProgress: (m) => bar.update(m),
            }),
          }));
          bar.done();
          if (flags.json) {
            writeJson(outcomes);
            return;
          }
          reportAdds(outcomes.filter((o) => o.status !== "unchanged"));
          const fresh = outcomes.filter((o) => o.status !== "unchanged").length;
          say(`Mirrored ${outcomes.length} package(s) into ${house.root} (${fresh} new).`);
        } finally {
          bar.done();
        }
      },
    );
}
