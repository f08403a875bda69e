/**
 * Packages a PEP 751 lock names by direct reference. A local project folder (editable or not)
 * and a git commit have no hash to check: each is built into a wheel by its own PEP 517 backend,
 * in place as pip builds them (so that version-control based versions work). Every direct
 * reference records where it came from in a direct_url.json (PEP 610), as pip writes it.
 */
import { existsSync, statSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { isProjectFolder } from "../install/project-build.js";
import { type BuildDeps, buildWheelFromTree } from "../install/sdist.js";
import type { LockedPackage, LockedSource } from "../resolve/lock.js";
import { lockedFileUrl } from "../resolve/lock.js";
import { type Built, packageLabel } from "../resolve/lock-select.js";
import { capture } from "../util/capture.js";
import { UserError } from "../util/errors.js";
import { inTempDir } from "../util/temp-dir.js";

type Vcs = Extract<LockedSource, { kind: "vcs" }>;

/** A path of the lock, which a relative one is relative to the lock file's folder. */
function fromLock(path: string, lockDir: string): string {
  return isAbsolute(path) ? path : resolve(lockDir, path);
}

/** The repository a vcs entry names, as git takes it: a URL, or a local path. */
function repository(s: Vcs, lockDir: string): string {
  if (s.url === undefined) return fromLock(s.path as string, lockDir);
  return s.url.replace(/^git\+/, "");
}

/**
 * A URL for direct_url.json: a local path as a file: URL; credentials left out, except the
 * well-known user "git" of ssh URLs, which PEP 610 keeps.
 */
function recordedUrl(location: string): string {
  if (!/^[a-z][a-z0-9+.-]*:\/\//i.test(location)) {
    return isAbsolute(location) ? pathToFileURL(location).href : location;
  }
  try {
    const u = new URL(location);
    if (u.password || (u.username && u.username !== "git")) {
      u.username = "";
      u.password = "";
    }
    return u.href;
  } catch {
    return location;
  }
}

/** What git said that explains a failure: its first fatal or error line, else its last line. */
function gitReason(stderr: string, code: number | null): string {
  const lines = stderr
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean);
  const line = lines.find((l) => /^(fatal|error):/.test(l)) ?? lines.at(-1);
  return (line ?? `git exited with ${code}`).replace(/^(fatal|error):\s*/, "").replace(/\.$/, "");
}

/** Run git quietly; a failure is a sentence with what git said. */
async function git(args: string[], cwd: string | undefined, what: string): Promise<string> {
  // Never a prompt for credentials nobody can type: fail instead.
  const env = { ...process.env, GIT_TERMINAL_PROMPT: "0" };
  const r = await capture("git", args, { env, ...(cwd ? { cwd } : {}) }).catch(
    (e: NodeJS.ErrnoException) => {
      const why =
        e.code === "ENOENT" ? "needs git, which is not installed" : `failed: ${e.message}`;
      throw new UserError(`${what} ${why}.`);
    },
  );
  if (r.code !== 0) throw new UserError(`${what} failed: ${gitReason(r.stderr, r.code)}.`);
  return r.stdout.trim();
}

/**
 * Check out `s`'s commit (and its submodules) into `dest`; returns the full commit id. A commit
 * no branch or tag reaches (a pull request's, a deleted branch's) is fetched by its id, as pip
 * does, or else through the requested revision.
 */
async function checkout(label: string, s: Vcs, lockDir: string, dest: string): Promise<string> {
  if (s.type !== "git") {
    throw new UserError(
      `The lock's ${label} comes from ${s.type}, and pyferry checks out git repositories only.`,
    );
  }
  const repo = repository(s, lockDir);
  const what = `Checking out ${label} at ${s.commitId} from ${recordedUrl(repo)}`;
  await git(["clone", "--quiet", "--no-checkout", "--", repo, dest], undefined, what);
  const commit = `${s.commitId}^{commit}`;
  const known = () =>
    git(["rev-parse", "--quiet", "--verify", commit], dest, what).then(
      () => true,
      () => false,
    );
  // The id itself (which needs it whole), the requested revision, then every ref there is.
  const fetches = [s.commitId, ...(s.requestedRevision ? [s.requestedRevision] : [])];
  fetches.push("+refs/*:refs/pyferry/*");
  for (let i = 0; !(await known()); i++) {
    const ref = fetches[i];
    if (ref === undefined)
      throw new UserError(`${what} failed: the repository has no such commit.`);
    await git(["fetch", "--quiet", "origin", ref], dest, what).catch(() => undefined);
  }
  await git(["checkout", "--quiet", "--detach", commit], dest, what);
  const head = await git(["rev-parse", "HEAD"], dest, what);
  if (!head.toLowerCase().startsWith(s.commitId.toLowerCase())) {
    throw new UserError(`${what} failed: it gave commit ${head}.`);
  }
  if (existsSync(join(dest, ".gitmodules"))) {
    await git(["submodule", "update", "--quiet", "--init", "--recursive"], dest, what);
  }
  return head;
}

/** The folder `root` (`shown` to the user) must be a Python project, as pip requires. */
function checkProject(label: string, root: string, shown: string): void {
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) {
    throw new UserError(`The lock's ${label} is ${shown}, which does not exist.`);
  }
  if (!isProjectFolder(root)) {
    throw new UserError(
      `The lock's ${label} is ${shown}, which is not a Python project (it has neither pyproject.toml nor setup.py).`,
    );
  }
}

/**
 * Build the wheel of a folder or git entry into `outDir`: its path, and the direct_url.json to
 * record (with the full commit id of a checkout).
 */
export async function buildDirect(
  p: LockedPackage & { source: Built },
  lockDir: string,
  deps: BuildDeps,
  outDir: string,
): Promise<{ wheel: string; directUrl: string }> {
  const s = p.source;
  const label = packageLabel(p);
  if (s.kind === "directory") {
    const root = join(fromLock(s.path, lockDir), s.subdirectory ?? "");
    checkProject(label, root, `the folder ${root}`);
    const hook = s.editable ? "build_editable" : "build_wheel";
    const wheel = await buildWheelFromTree(root, label, deps, outDir, hook);
    return { wheel, directUrl: directUrl(p, lockDir) as string };
  }
  return inTempDir("pyferry-vcs-", async (work) => {
    const dest = join(work, "checkout");
    const commit = await checkout(label, s, lockDir, dest);
    const root = join(dest, s.subdirectory ?? "");
    const where = s.subdirectory === undefined ? "the top" : `the subdirectory ${s.subdirectory}`;
    checkProject(label, root, `${where} of commit ${commit.slice(0, 12)}`);
    const wheel = await buildWheelFromTree(root, label, deps, outDir);
    return {
      wheel,
      directUrl: directUrl({ ...p, source: { ...s, commitId: commit } }, lockDir) as string,
    };
  });
}

/** PEP 610's direct_url.json for a package locked by direct reference; undefined otherwise. */
export function directUrl(p: LockedPackage, lockDir: string): string | undefined {
  const s = p.source;
  if (!s) return undefined;
  const sub = s.subdirectory !== undefined ? { subdirectory: s.subdirectory } : {};
  let record: Record<string, unknown>;
  if (s.kind === "archive") {
    const url = recordedUrl(lockedFileUrl(s.file, lockDir));
    const hashes = { hashes: { sha256: s.file.sha256 }, hash: `sha256=${s.file.sha256}` };
    record = { url, archive_info: hashes, ...sub };
  } else if (s.kind === "directory") {
    const url = pathToFileURL(fromLock(s.path, lockDir)).href;
    record = { url, dir_info: s.editable ? { editable: true } : {}, ...sub };
  } else {
    const vcs = {
      vcs: s.type,
      commit_id: s.commitId,
      ...(s.requestedRevision !== undefined ? { requested_revision: s.requestedRevision } : {}),
    };
    record = { url: recordedUrl(repository(s, lockDir)), vcs_info: vcs, ...sub };
  }
  return `${JSON.stringify(record)}\n`;
}
