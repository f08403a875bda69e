/**
 * Packages a PEP 751 lock names by direct reference. A local project folder (editable or not)
 * and a git commit have no hash to check: each is built into a wheel by its own PEP 517 backend,
 * in place as pip builds them (so that version-control based versions work). Every direct
 * reference records where it came from in a direct_url.json (PEP 610), as pip writes it.
 */
import { spawn } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { withoutUserInfo } from "../index/http.js";
import { type BuildDeps, buildWheelFromTree } from "../install/sdist.js";
import type { LockedPackage, LockedSource } from "../resolve/lock.js";
import { lockedFileUrl } from "../resolve/lock.js";
import { type Built, packageLabel } from "../resolve/lock-select.js";
import { UserError } from "../util/errors.js";

/** A path of the lock, which a relative one is relative to the lock file's folder. */
function fromLock(path: string, lockDir: string): string {
  return isAbsolute(path) ? path : resolve(lockDir, path);
}

/** The repository a vcs entry names, as git takes it. */
function repository(s: Extract<LockedSource, { kind: "vcs" }>, lockDir: string): string {
  if (s.url !== undefined) return s.url.replace(/^git\+/, "");
  return fromLock(s.path as string, lockDir);
}

/** Run git quietly; a failure is a sentence with git's last line. */
function git(args: string[], cwd: string | undefined, what: string): Promise<string> {
  return new Promise((done, failed) => {
    const child = spawn("git", args, {
      cwd,
      stdio: ["ignore", "pipe", "pipe"],
      // Never a prompt for credentials nobody can type: fail instead.
      env: { ...process.env, GIT_TERMINAL_PROMPT: "0" },
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => {
      out += c.toString("utf8");
    });
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString("utf8");
    });
    child.on("error", (e: NodeJS.ErrnoException) =>
      failed(
        new UserError(
          e.code === "ENOENT"
            ? `${what} needs git, which is not installed.`
            : `${what}: ${e.message}.`,
        ),
      ),
    );
    child.on("close", (code) => {
      if (code === 0) return done(out.trim());
      const last = err.trim().split("\n").pop() ?? `git exited with ${code}`;
      failed(new UserError(`${what} failed: ${last.replace(/\.$/, "")}.`));
    });
  });
}

/** Check out `s`'s commit (and its submodules) into `dest`. */
async function checkout(
  label: string,
  s: Extract<LockedSource, { kind: "vcs" }>,
  lockDir: string,
  dest: string,
): Promise<void> {
  if (s.type !== "git") {
    throw new UserError(
      `The lock's ${label} comes from ${s.type}, and pyferry checks out git repositories only.`,
    );
  }
  const repo = repository(s, lockDir);
  const what = `Checking out ${label} at ${s.commitId} from ${withoutUserInfo(repo)}`;
  await git(["clone", "--quiet", "--no-checkout", "--", repo, dest], undefined, what);
  await git(["checkout", "--quiet", "--detach", s.commitId], dest, what);
  const head = await git(["rev-parse", "HEAD"], dest, what);
  if (!head.toLowerCase().startsWith(s.commitId.toLowerCase())) {
    throw new UserError(`${what} failed: it gave commit ${head}.`);
  }
  if (existsSync(join(dest, ".gitmodules"))) {
    await git(["submodule", "update", "--quiet", "--init", "--recursive"], dest, what);
  }
}

/**
 * Build the wheel of a folder or git entry into `outDir`; returns its path. A built wheel of
 * another project, or of another version than the lock gives, is refused.
 */
export async function buildDirect(
  p: LockedPackage & { source: Built },
  lockDir: string,
  deps: BuildDeps,
  outDir: string,
): Promise<string> {
  const s = p.source;
  const label = packageLabel(p);
  if (s.kind === "directory") {
    const root = join(fromLock(s.path, lockDir), s.subdirectory ?? "");
    if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
      throw new UserError(`The lock's ${label} is the folder ${root}, which does not exist.`);
    }
    return buildWheelFromTree(
      root,
      label,
      deps,
      outDir,
      s.editable ? "build_editable" : "build_wheel",
    );
  }
  const work = await mkdtemp(join(tmpdir(), "pyferry-vcs-"));
  try {
    const dest = join(work, "checkout");
    await checkout(label, s, lockDir, dest);
    const root = join(dest, s.subdirectory ?? "");
    if (!existsSync(root)) {
      throw new UserError(
        `The lock's ${label} names the subdirectory ${s.subdirectory}, which its commit does not have.`,
      );
    }
    return await buildWheelFromTree(root, label, deps, outDir);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

/** PEP 610's direct_url.json for a package locked by direct reference; undefined otherwise. */
export function directUrl(p: LockedPackage, lockDir: string): string | undefined {
  const s = p.source;
  if (!s) return undefined;
  const sub = s.subdirectory !== undefined ? { subdirectory: s.subdirectory } : {};
  let record: Record<string, unknown>;
  if (s.kind === "archive") {
    const url = withoutUserInfo(lockedFileUrl(s.file, lockDir));
    record = {
      url,
      archive_info: { hashes: { sha256: s.file.sha256 }, hash: `sha256=${s.file.sha256}` },
      ...sub,
    };
  } else if (s.kind === "directory") {
    const url = pathToFileURL(fromLock(s.path, lockDir)).href;
    record = { url, dir_info: s.editable ? { editable: true } : {}, ...sub };
  } else {
    const repo = repository(s, lockDir);
    const url = s.url !== undefined ? withoutUserInfo(repo) : pathToFileURL(repo).href;
    const vcs = {
      vcs: s.type,
      commit_id: s.commitId,
      ...(s.requestedRevision !== undefined ? { requested_revision: s.requestedRevision } : {}),
    };
    record = { url, vcs_info: vcs, ...sub };
  }
  return `${JSON.stringify(record)}\n`;
}
