/**
 * The activation scripts of an environment `env create` made, sourced by the real shells: the
 * environment is found from the path the script was sourced by (a symlink's path shows as
 * itself), and `deactivate` puts everything back. A shell that is not installed is skipped.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync, symlinkSync } from "node:fs";
import { join } from "node:path";
import { describe, test } from "node:test";
import { ACTIVATE_SCRIPTS } from "../../src/install/activate.js";
import { pyferry } from "../support/cli.js";
import { tempDir } from "../support/temp.js";

const dir = tempDir("pyferry-activate-");
const env = join(dir, "app env");
const link = join(dir, "current");
const BASE_PATH = "/usr/local/bin:/usr/bin:/bin";

function has(shell: string): boolean {
  return spawnSync("sh", ["-c", `command -v ${shell}`]).status === 0;
}

const skip = (shell: string) =>
  has(shell) ? false : `${shell} is not installed (scripts/test.sh installs it with apt-get)`;

/**
 * Run `script` in `shell` from `cwd` with a known PATH and prompt; its stdout's lines. PWD is
 * passed as a user's shell has it: the path they went in by, symlinks and all.
 */
function run(shell: string, args: string[], script: string, cwd = dir): string[] {
  const r = spawnSync(shell, [...args, script], {
    cwd,
    encoding: "utf8",
    env: { PATH: BASE_PATH, HOME: dir, PWD: cwd, PS1: "$ ", PYTHONHOME: "/nowhere" },
  });
  assert.equal(r.status, 0, `${shell}: ${r.stderr}`);
  return r.stdout.trim().split("\n");
}

/** What each script prints: the environment, PATH, sys.prefix, then PATH and PYTHONHOME after. */
function check(lines: string[], root: string): void {
  assert.deepEqual(lines, [
    `VIRTUAL_ENV=${root}`,
    `PATH=${root}/bin:${BASE_PATH}`,
    `prefix=${root}`,
    "tabulate found",
    `PATH=${BASE_PATH}`,
    "PYTHONHOME=/nowhere",
    "VIRTUAL_ENV unset",
  ]);
}

/** The body for a POSIX shell, after sourcing `file`; the prompt must show `name`. */
const posix = (file: string, name = "app env") => `. '${file}' || exit 1
echo "VIRTUAL_ENV=$VIRTUAL_ENV"
echo "PATH=$PATH"
[ -z "\${PYTHONHOME+set}" ] || exit 3
echo "prefix=$(python -c 'import sys; print(sys.prefix)')"
command -v tabulate >/dev/null && echo "tabulate found"
case $PS1 in "(${name}) "*) ;; *) echo "bad prompt: $PS1"; exit 4 ;; esac
deactivate
echo "PATH=$PATH"
echo "PYTHONHOME=$PYTHONHOME"
echo "VIRTUAL_ENV \${VIRTUAL_ENV-unset}"
`;

describe("activation scripts", () => {
  test("env create writes them, the same bytes for every environment", () => {
    const r = pyferry(["env", "create", env, "tabulate"]);
    assert.equal(r.status, 0, r.stderr);
    symlinkSync(env, link);
    for (const [name, text] of Object.entries(ACTIVATE_SCRIPTS)) {
      assert.equal(readFileSync(join(env, "bin", name), "utf8"), text, name);
    }
    assert.doesNotMatch(readFileSync(join(env, "bin", "activate"), "utf8"), /app env/);
  });

  for (const shell of ["bash", "zsh"]) {
    test(`${shell}: activate by its path, through a symlink, and from bin/`, {
      skip: skip(shell),
    }, () => {
      check(run(shell, ["-c"], posix(join(env, "bin", "activate"))), env);
      // The symlink's path, not the folder it points at.
      check(run(shell, ["-c"], posix(join(link, "bin", "activate"), "current")), link);
      check(run(shell, ["-c"], posix("./activate", "current"), join(link, "bin")), link);
    });
  }

  test("dash: activate finds itself through /proc, by the current folder's path when it can", {
    skip: skip("dash"),
  }, () => {
    check(run("dash", ["-c"], posix(join(env, "bin", "activate"))), env);
    check(run("dash", ["-c"], posix("bin/activate", "current"), link), link);
  });

  test("fish: activate.fish, also through a symlink", { skip: skip("fish") }, () => {
    const body = (file: string) => `source '${file}'; or exit 1
echo "VIRTUAL_ENV=$VIRTUAL_ENV"
echo "PATH="(string join : $PATH)
set -q PYTHONHOME; and exit 3
echo "prefix="(python -c 'import sys; print(sys.prefix)')
command -q tabulate; and echo "tabulate found"
deactivate
echo "PATH="(string join : $PATH)
echo "PYTHONHOME=$PYTHONHOME"
set -q VIRTUAL_ENV; or echo "VIRTUAL_ENV unset"
`;
    check(run("fish", ["--no-config", "-c"], body(join(env, "bin", "activate.fish"))), env);
    check(run("fish", ["--no-config", "-c"], body(join(link, "bin", "activate.fish"))), link);
  });

  test("tcsh: activate.csh, from the environment's folder through a symlink", {
    skip: skip("tcsh"),
  }, () => {
    // Read as a script (not -c) so that the alias `deactivate` exists by the line that uses it.
    const body = (file: string) => `source '${file}'
echo "VIRTUAL_ENV=$VIRTUAL_ENV"
echo "PATH=$PATH"
if ($?PYTHONHOME) exit 3
echo "prefix=\`python -c 'import sys; print(sys.prefix)'\`"
which tabulate >& /dev/null && echo "tabulate found"
deactivate
echo "PATH=$PATH"
echo "PYTHONHOME=$PYTHONHOME"
if (! $?VIRTUAL_ENV) echo "VIRTUAL_ENV unset"
`;
    const csh = (script: string, cwd?: string) => {
      const file = join(dir, "check.csh");
      spawnSync("sh", ["-c", 'printf %s "$1" > "$2"', "sh", script, file]);
      return run("tcsh", ["-f"], file, cwd);
    };
    check(csh(body(join(env, "bin", "activate.csh"))), env);
    check(csh(body("bin/activate.csh"), link), link);
  });
});
