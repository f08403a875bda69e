/**
 * `python_package_analyze [--toplevel] [--function F] [--pkg-mapping IMPORT=NAME] <script> <json-out>`:
 * the cctools-compatible entry. Writes the conda-style spec that python_package_create reads.
 */
import { resolve } from "node:path";
import { Command } from "commander";
import { buildSpec, specJson } from "../analyze/spec.js";
import { UserError } from "../util/errors.js";
import { inputAt, planOutput, sameName, writeOutputFile } from "../util/output-file.js";
import {
  type AnalyzeFlags,
  addAnalyzeOptions,
  analyzeOptions,
  refuseAnalyzedOutput,
  runAnalysis,
} from "./analyze.js";
import { warn } from "./output.js";
import { runProgram } from "./parse.js";

export async function runSeedAnalyze(argv: string[]): Promise<number> {
  const program = new Command("python_package_analyze")
    .description(
      "Analyze a Python script for the distributions and interpreter it needs; write a conda environment spec.",
    )
    .argument("<python-script>", "the script to analyze")
    .argument("<json-output-file>", "where to write the JSON spec (overwritten if it exists)")
    .option("--debug", "show stack traces on errors")
    .option("--include-optional", "also include optional (try/except ImportError) dependencies")
    .showHelpAfterError()
    .exitOverride();
  addAnalyzeOptions(program).addHelpText(
    "after",
    `
Example:
  python_package_analyze example.py dependencies.json
  python_package_create dependencies.json example_venv.tar.gz`,
  );
  program.action(
    async (script: string, output: string, flags: AnalyzeFlags & { includeOptional?: boolean }) => {
      // The script before any work; its local modules once the analysis has found them.
      if (inputAt(output, [script]) !== undefined)
        throw new UserError(
          `${output} is ${sameName(output, script)}a file being analyzed; write the result elsewhere.`,
          2,
        );
      const plan = await planOutput(resolve(output));
      const report = await runAnalysis(script, analyzeOptions(flags));
      refuseAnalyzedOutput(output, script, report, false, "");
      for (const w of report.warnings) warn(w);
      for (const e of report.errors)
        warn(`${e.file}${e.line ? ` line ${e.line}` : ""}: ${e.message}`);
      for (const u of report.unresolved) {
        warn(
          `no distribution found for '${u.import}'; add --pkg-mapping ${u.import}=NAME if it comes from pip or conda.`,
        );
      }
      for (const a of report.ambiguous.filter((x) => !x.chosen)) {
        warn(
          `'${a.import}' could come from ${a.candidates.map((c) => c.name).join(" or ")}; choose with --pkg-mapping.`,
        );
      }
      const include = flags.includeOptional === true;
      // Left out without a word, an optional import would look like one the analysis missed.
      const optional = report.requirements.filter((r) => r.optional && !r.dev);
      if (!include && optional.length > 0)
        warn(
          `left out as optional (imported under try/except ImportError): ${optional.map((r) => r.name).join(", ")}; --include-optional keeps them.`,
        );
      await writeOutputFile(
        resolve(output),
        specJson(buildSpec(report, { includeOptional: include })),
        plan,
      );
    },
  );
  return runProgram(program, argv);
}
