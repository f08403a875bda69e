/** The Python a program needs: declared requires-python, the interpreter, and the syntax floor. */
import type { InterpreterInfo } from "../python/interpreter.js";
import { compareVersions, majorMinor, satisfies } from "../python/version.js";
import type { PythonReport } from "./analyze.js";
import type { SyntaxFloor } from "./scan.js";

export function pythonReport(
  interp: InterpreterInfo | undefined,
  declared: { spec: string; source: string } | undefined,
  floor: (SyntaxFloor & { file: string }) | null,
  warnings: string[],
): PythonReport {
  let version = interp?.version ?? null;
  let source = interp ? `the interpreter ${interp.executable}` : "no interpreter found";
  if (floor && version && compareVersions(majorMinor(version), floor.version) < 0) {
    warnings.push(
      `${floor.file} line ${floor.line} uses ${floor.feature}, which needs Python ${floor.version}, newer than the interpreter's ${version}.`,
    );
    version = floor.version;
    source = `the syntax floor (${floor.feature} in ${floor.file})`;
  }
  if (declared && version && !satisfies(version, declared.spec)) {
    warnings.push(
      `Python ${version} does not satisfy requires-python ${declared.spec} from ${declared.source}.`,
    );
  }
  const requires = declared ? declared.spec : floor ? `>=${floor.version}` : null;
  if (declared) source = `requires-python in ${declared.source}`;
  return { version, requires, source, interpreter: interp?.executable ?? null, floor };
}
