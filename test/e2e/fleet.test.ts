/**
 * `pyferry deploy` and `pyferry rollback` against a fleet of five real OpenSSH servers
 * (test/support/sshd.ts), two environments on each, each with its own requirements, from a
 * wheelhouse of real wheels taken from the machine's package mirror (found through pip's
 * configuration). Each host's $HOME is a folder on this machine, so environments and stores are
 * inspected directly: the exact set of distributions in site-packages, what the environment's
 * own Python sees and imports, where each environment's link points, and what each store holds.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { basename, join } from "node:path";
import { after, before, describe, test } from "node:test";
import { stripVTControlCharacters } from "node:util";
import { findPython311, makeWheelhouse, mirrorWheels, norm } from "../support/mirror.js";
import {
  defaultStore,
  entries,
  type Finished,
  hasStackTrace,
  processesIn,
  pyferryAsync,
  type SummaryLine,
  show,
  sleep,
  startPyferry,
  summary,
  waitFor,
} from "../support/remote.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { tempDir } from "../support/temp.js";

// ---------------------------------------------------------------------------------------------
// The machine's mirror and a wheelhouse from it

/** Python: copy the wheel argv[1] to argv[2] with one more file, listed in its RECORD. */
const REBUILD = `
import base64, hashlib, sys, zipfile
src, dst = sys.argv[1:3]
extra = b"rebuilt\\n"
digest = base64.urlsafe_b64encode(hashlib.sha256(extra).digest()).rstrip(b"=").decode()
with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_DEFLATED) as zout:
    for info in zin.infolist():
        data = zin.read(info)
        if info.filename.endswith(".dist-info/RECORD"):
            data += f"six_rebuilt.txt,sha256={digest},{len(extra)}\\n".encode()
        zout.writestr(info, data)
    zout.writestr("six_rebuilt.txt", extra)
`;

const WHEELHOUSE = [
  ["six", "1.17.0"],
  ["zipp", "3.23.0"],
  ["zipp", "4.1.0"],
  ["tabulate", "0.8.10"],
  ["tabulate", "0.10.0"],
  ["fsspec", "2026.6.0"],
  ["fsspec", "2026.7.0"],
  ["fsspec", "2026.9.0"],
  ["websockets", "15.0.1"],
  ["websockets", "16.1.1"],
  ["websockets", "17.1"],
  ["idna", "3.20"],
  ["attrs", "26.1.0"],
  ["packaging", "26.3"],
  ["jinja2", "3.1.6"],
  ["markupsafe", "3.0.3"],
] as const;

// ---------------------------------------------------------------------------------------------
// The fleet

type Packages = Record<string, string>;

interface EnvSpec {
  host: string;
  kind: "app" | "jobs";
  /** Lines of its requirements file. */
  reqs: string[];
  /** Exactly what it must hold once deployed: normalized name -> version. */
  expect: Packages;
  hooks?: string[];
}

/** What each environment asks for, and what that must give (unpinned = newest in the house). */
function initialFleet(): EnvSpec[] {
  return [
    {
      host: "h1",
      kind: "app",
      reqs: ["six", "zipp==3.23.0", "tabulate==0.8.10"],
      expect: { six: "1.17.0", zipp: "3.23.0", tabulate: "0.8.10" },
    },
    {
      host: "h1",
      kind: "jobs",
      reqs: ["fsspec==2026.7.0", "websockets==16.1.1"],
      expect: { fsspec: "2026.7.0", websockets: "16.1.1" },
    },
    {
      host: "h2",
      kind: "app",
      reqs: ["six", "zipp==4.1.0", "jinja2"],
      expect: { six: "1.17.0", zipp: "4.1.0", jinja2: "3.1.6", markupsafe: "3.0.3" },
    },
    {
      host: "h2",
      kind: "jobs",
      reqs: ["websockets==15.0.1", "packaging"],
      expect: { websockets: "15.0.1", packaging: "26.3" },
    },
    {
      host: "h3",
      kind: "app",
      reqs: ["tabulate", "idna"],
      expect: { tabulate: "0.10.0", idna: "3.20" },
    },
    {
      host: "h3",
      kind: "jobs",
      reqs: ["fsspec==2026.7.0", "six"],
      expect: { fsspec: "2026.7.0", six: "1.17.0" },
    },
    {
      host: "h4",
      kind: "app",
      reqs: ["six", "fsspec==2026.6.0", "attrs"],
      expect: { six: "1.17.0", fsspec: "2026.6.0", attrs: "26.1.0" },
    },
    {
      host: "h4",
      kind: "jobs",
      reqs: ["tabulate==0.10.0", "websockets"],
      expect: { tabulate: "0.10.0", websockets: "17.1" },
    },
    {
      host: "h5",
      kind: "app",
      reqs: ["attrs", "zipp"],
      expect: { attrs: "26.1.0", zipp: "4.1.0" },
    },
    {
      host: "h5",
      kind: "jobs",
      reqs: ["fsspec", "idna==3.20", "jinja2"],
      expect: { fsspec: "2026.9.0", idna: "3.20", jinja2: "3.1.6", markupsafe: "3.0.3" },
    },
  ];
}

const GROUPS: Record<string, string[]> = {
  h1: ["web"],
  h2: ["web"],
  h3: ["web"],
  h4: ["batch"],
  h5: ["batch"],
};

/** name -> version of the *.dist-info folders in the environment's site-packages. */
function distInfos(env: string): Packages {
  const lib = join(env, "lib");
  const pys = readdirSync(lib).filter((d) => d.startsWith("python"));
  assert.equal(pys.length, 1, `one lib/pythonX.Y in ${env}: ${pys.join(", ")}`);
  const sp = join(lib, pys[0] as string, "site-packages");
  const out: Packages = {};
  for (const d of readdirSync(sp)) {
    const m = /^(.+)-([^-]+)\.dist-info$/.exec(d);
    if (m) out[norm(m[1] as string)] = m[2] as string;
  }
  return out;
}

const VIEW = `
import importlib, importlib.metadata as md, json, os, sys
mods = sys.argv[1:]
where = {}
for m in mods:
    where[m] = os.path.realpath(importlib.import_module(m).__file__)
dists = {}
for d in md.distributions():
    dists[d.metadata["Name"].lower().replace("_", "-").replace(".", "-")] = d.version
print(json.dumps({"dists": dists, "where": where, "prefix": os.path.realpath(sys.prefix)}))
`;

/** What the environment's own Python sees: its distributions, and where its imports come from. */
function pythonView(env: string, modules: string[]) {
  const r = spawnSync(join(env, "bin", "python"), ["-c", VIEW, ...modules], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "/usr/bin:/bin" },
  });
  assert.equal(r.status, 0, `${env}/bin/python imports ${modules.join(", ")}: ${r.stderr}`);
  return JSON.parse(r.stdout) as {
    dists: Packages;
    where: Record<string, string>;
    prefix: string;
  };
}

/** The environment holds exactly `expect`, and its Python imports all of it from itself. */
function assertState(env: string, expect: Packages): void {
  assert.deepEqual(distInfos(env), expect, `the dist-info folders of ${env}`);
  const view = pythonView(env, Object.keys(expect));
  assert.deepEqual(view.dists, expect, `what ${env}/bin/python sees`);
  const real = realpathSync(env);
  assert.equal(view.prefix, real, `sys.prefix of ${env}`);
  for (const [m, file] of Object.entries(view.where))
    assert.ok(file.startsWith(`${real}/`), `${m} is imported from ${env}, not ${file}`);
}

describe("pyferry deploy to five hosts", {
  skip: sshAvailable() ?? false,
  timeout: 900_000,
}, () => {
  let lab: SshLab;
  let work: string;
  let python: string;
  let fleet: EnvSpec[];

  const envPath = (e: { host: string; kind: string }) =>
    join(lab.host(e.host).root, "srv", e.kind, "venv");
  /** The summary's name of an environment: jobs environments name their user. */
  const label = (e: { host: string; kind: string }) =>
    `${e.kind === "jobs" ? `${lab.user}@` : ""}${e.host}:${envPath(e)}`;
  const spec = (host: string, kind: string) =>
    fleet.find((e) => e.host === host && e.kind === kind) as EnvSpec;
  const store = (host: string) => defaultStore(lab.host(host).root);

  function writeFleet(): void {
    const lines = [
      'wheelhouse = "wheelhouse"',
      "[defaults]",
      `python = ${JSON.stringify(python)}`,
      "[groups.db]",
      'hosts = ["h2", "h5"]',
    ];
    for (const h of lab.hosts) {
      lines.push(
        `[hosts.${h.alias}]`,
        `address = ${JSON.stringify(h.alias)}`,
        `groups = ${JSON.stringify(GROUPS[h.alias])}`,
      );
      for (const e of fleet.filter((x) => x.host === h.alias)) {
        const reqs = `reqs/${e.host}-${e.kind}.txt`;
        writeFileSync(join(work, reqs), `${e.reqs.join("\n")}\n`);
        const hooks = e.hooks ?? [
          `python -c "import ${Object.keys(e.expect).join(", ")}"`,
          'echo "$VIRTUAL_ENV" >> hooks.log',
        ];
        lines.push(
          `[[hosts.${h.alias}.envs]]`,
          `path = ${JSON.stringify(envPath(e))}`,
          ...(e.kind === "jobs" ? [`user = ${JSON.stringify(lab.user)}`] : []),
          `requirements = ${JSON.stringify(reqs)}`,
          `hooks = ${JSON.stringify(hooks)}`,
          `reload = ${JSON.stringify('readlink "$VIRTUAL_ENV" >> reload.log')}`,
        );
      }
    }
    writeFileSync(join(work, "inventory.toml"), `${lines.join("\n")}\n`);
  }

  /** NAME.toml: one environment on h4 at `path`, from reqs/NAME.txt, with `more` lines. */
  const oneEnvOnH4 = (name: string, path: string, more: string[] = []) =>
    writeFileSync(
      join(work, `${name}.toml`),
      [
        'wheelhouse = "wheelhouse"',
        "[defaults]",
        `python = ${JSON.stringify(python)}`,
        "[hosts.h4]",
        'address = "h4"',
        "[[hosts.h4.envs]]",
        `path = ${JSON.stringify(path)}`,
        `requirements = "reqs/${name}.txt"`,
        ...more,
        "",
      ].join("\n"),
    );

  const pyferry = (args: string[]): Promise<Finished> =>
    pyferryAsync(args, { cwd: work, env: lab.env(), timeoutMs: 300_000 });

  /** Everything a deployment could change, to compare before and after. */
  function snapshot(): string {
    const out: Record<string, unknown> = {};
    for (const e of fleet) {
      const p = envPath(e);
      const dir = join(p, "..");
      const read = (f: string) =>
        existsSync(join(dir, f)) ? readFileSync(join(dir, f), "utf8") : "";
      out[label(e)] = {
        link: existsSync(p) ? readlinkSync(p) : "(missing)",
        hooks: read("hooks.log"),
        reload: read("reload.log"),
      };
    }
    for (const h of lab.hosts) {
      const s = store(h.alias);
      out[h.alias] = {
        envs: entries(s, "envs"),
        names: entries(s, "names").map((n) => `${n}=${readFileSync(join(s, "names", n), "utf8")}`),
        objects: entries(s, "objects").flatMap((d) => entries(s, join("objects", d))).length,
        tmp: entries(s, "tmp"),
      };
    }
    return JSON.stringify(out, null, 1);
  }

  /** The summary gives `env` the line `expected`, and every other environment is ok. */
  function onlyOneChanges(stdout: string, env: EnvSpec, expected: SummaryLine): void {
    for (const [where, line] of summary(stdout)) {
      if (where === label(env)) assert.deepEqual(line, expected);
      else assert.deepEqual(line, { outcome: "ok", detail: "" }, where);
    }
  }

  function assertAllStates(): void {
    for (const e of fleet) assertState(envPath(e), e.expect);
  }

  before(async () => {
    const py = findPython311(process.env.PYFERRY_TEST_PYTHON);
    assert.ok(py, "a CPython 3.11 (set PYFERRY_TEST_PYTHON)");
    python = py;
    lab = await startSshLab({ hosts: 5, netns: "auto" });
    work = tempDir("pyferry-fleet-");
    mkdirSync(join(work, "reqs"));
    makeWheelhouse(join(work, "wheelhouse"), WHEELHOUSE);
    fleet = initialFleet();
    writeFleet();
  });
  after(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("without --yes and without a terminal, deploy refuses in a sentence (exit 2)", async () => {
    const before = snapshot();
    const r = await pyferry(["deploy"]);
    assert.equal(r.status, 2, show(r));
    assert.match(r.stderr, /^error: .*confirm.*--yes.*\.$/m, show(r));
    assert.ok(!hasStackTrace(r.stderr), show(r));
    assert.equal(snapshot(), before, "nothing changed");
    for (const e of fleet) assert.ok(!existsSync(envPath(e)), `${envPath(e)} was not made`);
  });

  test("--check on a new fleet: all pending, exit 2, nothing is made there", async (t) => {
    const before = snapshot();
    const r = await pyferry(["deploy", "--check"]);
    t.diagnostic(`deploy --check, 10 new environments: ${r.ms} ms`);
    assert.equal(r.status, 2, show(r));
    const s = summary(r.stdout);
    assert.equal(s.size, fleet.length, show(r));
    for (const e of fleet) {
      const line = s.get(label(e));
      assert.equal(line?.outcome, "pending", `${label(e)}: ${show(r)}`);
      const adds = Object.entries(e.expect)
        .sort(([a], [b]) => (a < b ? -1 : 1))
        .map(([n, v]) => `+${n} ${v}`)
        .join(" ");
      assert.equal(line?.detail, adds, label(e));
    }
    assert.equal(snapshot(), before, "nothing changed");
    for (const h of lab.hosts) assert.deepEqual(entries(store(h.alias), "envs"), []);
  });

  test("deploy --yes: every environment changed, exactly its packages, hooks then reload", async (t) => {
    const r = await pyferry(["deploy", "--yes"]);
    t.diagnostic(`first deploy, 10 environments on 5 hosts: ${r.ms} ms`);
    assert.equal(r.status, 0, show(r));
    const s = summary(r.stdout);
    assert.deepEqual([...s.keys()], fleet.map(label), "one line each, in inventory order");
    for (const e of fleet) assert.equal(s.get(label(e))?.outcome, "changed", label(e));
    assertAllStates();
    for (const e of fleet) {
      const p = envPath(e);
      const dir = join(p, "..");
      const key = readlinkSync(p);
      assert.ok(key.startsWith(`${store(e.host)}/envs/`), `${p} -> ${key}`);
      assert.equal(readFileSync(join(dir, "hooks.log"), "utf8"), `${p}\n`, "the hooks ran once");
      assert.equal(readFileSync(join(dir, "reload.log"), "utf8"), `${key}\n`, "reload, once");
    }
  });

  test("a second deploy has nothing to do: ok everywhere, nothing changes", async (t) => {
    const before = snapshot();
    const r = await pyferry(["deploy", "--yes"]);
    t.diagnostic(`no-op deploy: ${r.ms} ms`);
    assert.equal(r.status, 0, show(r));
    const s = summary(r.stdout);
    assert.equal(s.size, fleet.length);
    for (const e of fleet) assert.deepEqual(s.get(label(e)), { outcome: "ok", detail: "" });
    assert.equal(snapshot(), before, "same links, same store, no hook or reload ran");

    // Nothing to confirm: no --yes needed even without a terminal; --check finds nothing.
    const plain = await pyferry(["deploy"]);
    assert.equal(plain.status, 0, show(plain));
    const check = await pyferry(["deploy", "--check"]);
    assert.equal(check.status, 0, show(check));
    for (const line of summary(check.stdout).values()) assert.equal(line.outcome, "ok");
    assert.equal(snapshot(), before);
    assertAllStates();
  });

  test("an environment changed or removed by hand in the store is found and assembled again", async () => {
    const app4 = spec("h4", "app");
    const p = envPath(app4);
    const key = readlinkSync(p);
    const sp = join(key, "lib", "python3.11", "site-packages");
    for (const d of readdirSync(sp).filter((n) => /^six[-.]/.test(n)))
      rmSync(join(sp, d), { recursive: true, force: true });
    const why =
      ": its environment in the store was changed or removed since it was deployed, and is assembled again";
    for (const [damage, detail] of [
      ["six removed", `+six 1.17.0${why}`],
      ["the whole environment removed", `+attrs 26.1.0 +fsspec 2026.6.0 +six 1.17.0${why}`],
    ] as const) {
      if (damage === "the whole environment removed") rmSync(key, { recursive: true, force: true });
      const check = await pyferry(["deploy", "--check"]);
      assert.equal(check.status, 2, `${damage}: ${show(check)}`);
      onlyOneChanges(check.stdout, app4, { outcome: "pending", detail });
      assert.match(check.stderr, /changed or removed since it was deployed/, show(check));
      const r = await pyferry(["deploy", "--yes"]);
      assert.equal(r.status, 0, `${damage}: ${show(r)}`);
      onlyOneChanges(r.stdout, app4, { outcome: "changed", detail });
      assert.equal(readlinkSync(p), key, "the same environment, assembled again");
      assertState(p, app4.expect);
    }
    const again = await pyferry(["deploy", "--check"]);
    assert.equal(again.status, 0, show(again));
  });

  test("one pin changed in one file: only that environment changes", async (t) => {
    const jobs3 = spec("h3", "jobs");
    jobs3.reqs = ["fsspec==2026.9.0", "six"];
    jobs3.expect = { ...jobs3.expect, fsspec: "2026.9.0" };
    writeFleet();
    const links = new Map(fleet.map((e) => [label(e), readlinkSync(envPath(e))]));

    const before = snapshot();
    const check = await pyferry(["deploy", "--check"]);
    assert.equal(check.status, 2, show(check));
    onlyOneChanges(check.stdout, jobs3, {
      outcome: "pending",
      detail: "^fsspec 2026.7.0->2026.9.0",
    });
    assert.equal(snapshot(), before, "--check changed nothing");

    const r = await pyferry(["deploy", "--yes"]);
    t.diagnostic(`one environment changed: ${r.ms} ms`);
    assert.equal(r.status, 0, show(r));
    onlyOneChanges(r.stdout, jobs3, { outcome: "changed", detail: "^fsspec 2026.7.0->2026.9.0" });
    for (const e of fleet) {
      const now = readlinkSync(envPath(e));
      if (e === jobs3) assert.notEqual(now, links.get(label(e)), "it points elsewhere now");
      else assert.equal(now, links.get(label(e)), `${label(e)} was not touched`);
    }
    assertAllStates();
    assert.equal(
      readFileSync(join(envPath(jobs3), "..", "hooks.log"), "utf8"),
      `${envPath(jobs3)}\n`.repeat(2),
    );
  });

  test("the wheelhouse changes, the files do not: unpinned requirements follow it", async () => {
    // Each deploy reuses the lock of the last one with the same files; the wheelhouse is part of
    // that key, so taking a wheel out, and putting it back, must still reach every host.
    const jobs4 = spec("h4", "jobs");
    const wheels = join(work, "wheelhouse", "wheels");
    const aside = tempDir("pyferry-aside-");
    const newest = readdirSync(wheels).filter((f) => f.startsWith("websockets-17.1-"));
    assert.ok(newest.length > 0);
    for (const f of newest) copyFileSync(join(wheels, f), join(aside, f));
    const removed = await pyferry(["wheelhouse", "remove", "websockets==17.1"]);
    assert.equal(removed.status, 0, show(removed));
    const down = await pyferry(["deploy", "--yes"]);
    assert.equal(down.status, 0, show(down));
    onlyOneChanges(down.stdout, jobs4, { outcome: "changed", detail: "vwebsockets 17.1->16.1.1" });
    assertState(envPath(jobs4), { ...jobs4.expect, websockets: "16.1.1" });
    const added = await pyferry(["wheelhouse", "add", ...newest.map((f) => join(aside, f))]);
    assert.equal(added.status, 0, show(added));
    rmSync(aside, { recursive: true, force: true });
    const up = await pyferry(["deploy", "--yes"]);
    assert.equal(up.status, 0, show(up));
    onlyOneChanges(up.stdout, jobs4, { outcome: "changed", detail: "^websockets 16.1.1->17.1" });
    assertAllStates();
  });

  test("selectors pick exactly the environments the seed says", async () => {
    const pick = async (...sels: string[]): Promise<string[]> => {
      const r = await pyferry(["deploy", "--check", "--json", ...sels]);
      assert.equal(r.status, 0, show(r));
      const doc = JSON.parse(r.stdout) as { results: { host: string; path: string }[] };
      return doc.results.map((x) => `${x.host}:${x.path}`);
    };
    const names = (...es: [string, string][]) =>
      es.map(([h, k]) => `${h}:${envPath({ host: h, kind: k })}`);
    const app4 = envPath({ host: "h4", kind: "app" });
    const jobs2 = envPath({ host: "h2", kind: "jobs" });
    const u = lab.user;

    assert.deepEqual(await pick("h2"), names(["h2", "app"], ["h2", "jobs"]), "hostname");
    assert.deepEqual(await pick(`:${app4}`), names(["h4", "app"]), ":full_path");
    assert.deepEqual(await pick(`h4:${app4}`), names(["h4", "app"]), "host:full_path");
    assert.deepEqual(
      await pick("web"),
      names(
        ["h1", "app"],
        ["h1", "jobs"],
        ["h2", "app"],
        ["h2", "jobs"],
        ["h3", "app"],
        ["h3", "jobs"],
      ),
      "group from the hosts' groups",
    );
    assert.deepEqual(
      await pick("db"),
      names(["h2", "app"], ["h2", "jobs"], ["h5", "app"], ["h5", "jobs"]),
      "group from [groups]",
    );
    // The app environments name no user: they are the login user's, whom ssh's configuration
    // (the lab's) names, so a selector with that user picks them too.
    assert.deepEqual(
      await pick(`${u}@`),
      names(...fleet.map((e) => [e.host, e.kind] as [string, string])),
      "user@",
    );
    assert.deepEqual(await pick(`${u}@h2`), names(["h2", "app"], ["h2", "jobs"]), "vpy_user@host");
    assert.deepEqual(await pick(`${u}@h2:${jobs2}`), names(["h2", "jobs"]), "user@host:path");
    assert.deepEqual(
      await pick("h5", `:${app4}`, "h1"),
      names(["h1", "app"], ["h1", "jobs"], ["h4", "app"], ["h5", "app"], ["h5", "jobs"]),
      "several: their union, in inventory order",
    );
    assert.deepEqual(
      await pick(),
      names(...fleet.map((e) => [e.host, e.kind] as [string, string])),
    );

    for (const [sel, why] of [
      ["h9", /names no host or group/],
      [`nobody@h2:${app4.replace("h4", "h2")}`, /No environment .* matches/],
      [`h3:${app4}`, /No environment .* matches/],
      ["nobody@", /No environment .* matches/],
      ["h1:relative/venv", /absolute path/],
    ] as const) {
      const r = await pyferry(["deploy", "--check", sel]);
      assert.equal(r.status, 2, `${sel}: ${show(r)}`);
      assert.match(r.stderr, /^error: .*\.$/m, show(r));
      assert.match(r.stderr, why, show(r));
      assert.equal(r.stdout, "", show(r));
    }
  });

  test("rollback returns an environment to its previous packages; --json shapes", async (t) => {
    const jobs3 = spec("h3", "jobs");
    const p = envPath(jobs3);
    const r = await pyferry(["rollback", "--json", `${lab.user}@h3:${p}`]);
    t.diagnostic(`rollback: ${r.ms} ms`);
    assert.equal(r.status, 0, show(r));
    assert.deepEqual(JSON.parse(r.stdout), {
      results: [
        {
          host: "h3",
          path: p,
          user: lab.user,
          outcome: "changed",
          changes: [{ name: "fsspec", from: "2026.9.0", to: "2026.7.0" }],
        },
      ],
    });
    assertState(p, { ...jobs3.expect, fsspec: "2026.7.0" });
    for (const e of fleet) if (e !== jobs3) assertState(envPath(e), e.expect);
    // Nothing was deployed there before that: a second rollback does not go forward again.
    const twice = await pyferry(["rollback", `${lab.user}@h3:${p}`]);
    assert.equal(twice.status, 1, show(twice));
    assert.match(summary(twice.stdout).get(label(jobs3))?.detail ?? "", /no earlier environment/);
    assertState(p, { ...jobs3.expect, fsspec: "2026.7.0" });

    // The requirements still say 2026.9.0: the fleet is one step behind, as JSON.
    const check = await pyferry(["deploy", "--check", "--json"]);
    assert.equal(check.status, 2, show(check));
    const doc = JSON.parse(check.stdout) as { results: Record<string, unknown>[] };
    assert.deepEqual(Object.keys(doc), ["results"]);
    assert.equal(doc.results.length, fleet.length);
    for (const [i, res] of doc.results.entries()) {
      const e = fleet[i] as EnvSpec;
      const want: Record<string, unknown> = {
        host: e.host,
        path: envPath(e),
        outcome: e === jobs3 ? "pending" : "ok",
        changes: e === jobs3 ? [{ name: "fsspec", from: "2026.7.0", to: "2026.9.0" }] : [],
        ...(e.kind === "jobs" ? { user: lab.user } : {}),
      };
      assert.deepEqual(res, want, `results[${i}]`);
    }
    assert.equal(check.stderr.trim(), "", "--json: nothing for people on stderr");

    const again = await pyferry(["deploy", "--yes", "--json"]);
    assert.equal(again.status, 0, show(again));
    const res = (JSON.parse(again.stdout) as { results: Record<string, unknown>[] }).results;
    assert.deepEqual(
      res.map((x) => x.outcome),
      fleet.map((e) => (e === jobs3 ? "changed" : "ok")),
    );
    assertAllStates();
  });

  test("rollback where there is nothing earlier fails in a sentence (exit 1)", async () => {
    const app1 = envPath({ host: "h1", kind: "app" });
    const before = snapshot();
    const r = await pyferry(["rollback", `:${app1}`]);
    assert.equal(r.status, 1, show(r));
    assert.deepEqual(summary(r.stdout).get(label({ host: "h1", kind: "app" })), {
      outcome: "failed",
      detail: "there is no earlier environment to return to",
    });
    assert.equal(snapshot(), before);
    assertAllStates();
  });

  test("a failing hook: that environment switches back and fails (exit 1), the others succeed", async (t) => {
    const app2 = spec("h2", "app");
    const app4 = spec("h4", "app");
    const old2 = { ...app2.expect };
    const oldLink = readlinkSync(envPath(app2));
    // h2's app gets a downgrade and a hook that fails after one that works; h4's app a change.
    app2.reqs = ["six", "zipp==3.23.0", "jinja2"];
    app2.hooks = ['echo "$VIRTUAL_ENV" >> hooks.log', "false"];
    app4.reqs = ["six", "fsspec==2026.7.0", "attrs"];
    app4.expect = { ...app4.expect, fsspec: "2026.7.0" };
    writeFleet();
    const reloads = readFileSync(join(envPath(app2), "..", "reload.log"), "utf8");

    const r = await pyferry(["deploy", "--yes"]);
    t.diagnostic(`deploy with a failing hook: ${r.ms} ms`);
    assert.equal(r.status, 1, show(r));
    assert.ok(!hasStackTrace(r.stderr), show(r));
    const s = summary(r.stdout);
    const failed = s.get(label(app2));
    assert.equal(failed?.outcome, "failed", show(r));
    assert.match(failed?.detail ?? "", /hook "false" failed with exit status 1/, show(r));
    assert.match(failed?.detail ?? "", /switched back to the previous environment/, show(r));
    assert.deepEqual(s.get(label(app4)), {
      outcome: "changed",
      detail: "^fsspec 2026.6.0->2026.7.0",
    });
    for (const e of fleet)
      if (e !== app2 && e !== app4)
        assert.deepEqual(s.get(label(e)), { outcome: "ok", detail: "" });

    assert.equal(readlinkSync(envPath(app2)), oldLink, "h2's app points where it did before");
    app2.expect = old2;
    assertAllStates();
    // The new environment ran the first hook, then after the switch back the service was
    // reloaded onto the old one.
    const log = readFileSync(join(envPath(app2), "..", "reload.log"), "utf8").slice(reloads.length);
    assert.equal(log.trim().split("\n").pop(), oldLink, "reload ran on the old environment last");

    // As if the failed deploy had never happened: no earlier environment to roll back to (h2's
    // app was deployed once), and the change is still pending.
    const rb = await pyferry(["rollback", `h2:${envPath(app2)}`]);
    assert.equal(rb.status, 1, show(rb));
    assert.match(summary(rb.stdout).get(label(app2))?.detail ?? "", /no earlier environment/);
    assert.equal(readlinkSync(envPath(app2)), oldLink);
    const check = await pyferry(["deploy", "--check", "h2"]);
    assert.equal(check.status, 2, show(check));
    assert.deepEqual(summary(check.stdout).get(label(app2)), {
      outcome: "pending",
      detail: "vzipp 4.1.0->3.23.0",
    });

    // Fixed hook: it goes through.
    app2.hooks = undefined;
    app2.expect = { ...old2, zipp: "3.23.0" };
    writeFleet();
    const ok = await pyferry(["deploy", "--yes"]);
    assert.equal(ok.status, 0, show(ok));
    assert.deepEqual(summary(ok.stdout).get(label(app2)), {
      outcome: "changed",
      detail: "vzipp 4.1.0->3.23.0",
    });
    assertAllStates();
  });
  test("on a terminal: a question per environment (no, yes, quit, all), a status line cleared after", async (t) => {
    const app1 = spec("h1", "app");
    const app5 = spec("h5", "app");
    const pinZipp = (e: EnvSpec, version: string) => {
      e.reqs = [...e.reqs.filter((r) => !r.startsWith("zipp")), `zipp==${version}`];
      e.expect = { ...e.expect, zipp: version };
    };
    const other = (e: EnvSpec) => (e.expect.zipp === "4.1.0" ? "3.23.0" : "4.1.0");
    const [zipp1, zipp5, first5] = [other(app1), other(app5), app5.expect.zipp as string];
    const old1 = { ...app1.expect };
    pinZipp(app1, zipp1);
    pinZipp(app5, zipp5);
    writeFleet();
    const QUESTION = /Apply to (\S+)\? \[y\]es\/\[n\]o\/\[a\]ll\/\[q\]uit: /g;
    /** A deploy on a terminal, answering its questions in turn: what it asked, and the run. */
    const deployAnswering = async (answers: string[]) => {
      const run = startPyferry(["deploy"], {
        cwd: work,
        env: lab.env(),
        timeoutMs: 300_000,
        terminal: true,
        openStdin: true,
      });
      for (const [i, a] of answers.entries()) {
        await waitFor(`question ${i + 1}`, () => [...run.stdout().matchAll(QUESTION)].length > i);
        run.child.stdin?.write(`${a}\n`);
      }
      const r = await run.done;
      run.child.stdin?.end();
      const asked = [...r.stdout.matchAll(QUESTION)].map((m) => m[1] as string);
      // What the terminal shows in the end: each line from its last carriage return, without
      // control sequences.
      const lines = r.stdout
        .split("\n")
        .map((l) => stripVTControlCharacters(l.replace(/\r$/, "").split("\r").pop() ?? ""));
      const results = summary(
        lines.filter((l) => /^\S+ {2}(ok|changed|failed|pending|skipped)\b/.test(l)).join("\n"),
      );
      return { r, asked: [...new Set(asked)], lines, results };
    };
    const expectResults = (got: Map<string, SummaryLine>, wanted: Map<string, string>) => {
      assert.equal(got.size, fleet.length);
      for (const e of fleet) assert.equal(got.get(label(e))?.outcome, wanted.get(label(e)) ?? "ok");
    };

    // No for the first, yes for the second.
    const one = await deployAnswering(["n", "y"]);
    t.diagnostic(`deploy answering n, y on a terminal: ${one.r.ms} ms`);
    assert.equal(one.r.status, 0, show(one.r));
    assert.deepEqual(one.asked, [label(app1), label(app5)], show(one.r));
    expectResults(
      one.results,
      new Map([
        [label(app1), "skipped"],
        [label(app5), "changed"],
      ]),
    );
    // The status line was there while the change went out, and nothing of it is left shown.
    assert.match(one.r.stdout, /applying \([\d.]+ MiB sent\) [01]\/1/, show(one.r));
    assert.ok(!one.lines.some((l) => l.includes("applying (")), show(one.r));
    assert.ok(!hasStackTrace(one.r.stdout), show(one.r));
    assertState(envPath(app1), old1);
    assertState(envPath(app5), app5.expect);

    // Quit at the first question: nothing is applied, and nothing more is asked.
    const before = snapshot();
    const two = await deployAnswering(["q"]);
    assert.equal(two.r.status, 0, show(two.r));
    assert.deepEqual(two.asked, [label(app1)], show(two.r));
    expectResults(two.results, new Map([[label(app1), "skipped"]]));
    assert.equal(snapshot(), before);

    // Ctrl-C at the question: nothing is applied, one sentence, the status of SIGINT.
    const ctrlC = await deployAnswering(["\x03"]);
    assert.equal(ctrlC.r.status, 130, show(ctrlC.r));
    assert.match(ctrlC.r.stdout, /error: Interrupted at the question; nothing was changed\./);
    assert.ok(!hasStackTrace(ctrlC.r.stdout), show(ctrlC.r));
    assert.equal(snapshot(), before);

    // All at the first question: both pending environments change, with one question.
    pinZipp(app5, first5);
    writeFleet();
    const three = await deployAnswering(["a"]);
    assert.equal(three.r.status, 0, show(three.r));
    assert.deepEqual(three.asked, [label(app1)], show(three.r));
    expectResults(
      three.results,
      new Map([
        [label(app1), "changed"],
        [label(app5), "changed"],
      ]),
    );
    app1.expect = { ...old1, zipp: zipp1 };
    assertAllStates();
  });

  test("a deploy killed after the switch: the next one runs the hooks it owed, once", async (t) => {
    const jobs3 = spec("h3", "jobs");
    const before = readlinkSync(envPath(jobs3));
    jobs3.reqs = ["fsspec==2026.6.0", "six"];
    jobs3.expect = { ...jobs3.expect, fsspec: "2026.6.0" };
    jobs3.hooks = ["sleep 4", 'echo "$VIRTUAL_ENV" >> owed.log'];
    writeFleet();
    const owed = join(envPath(jobs3), "..", "owed.log");
    const run = startPyferry(["deploy", "--yes", "h3"], {
      cwd: work,
      env: lab.env(),
      timeoutMs: 300_000,
    });
    // Killed while the first hook sleeps: switched, but the hooks never finished.
    await waitFor("the switch", () => readlinkSync(envPath(jobs3)) !== before).catch(
      async (err) => {
        run.child.kill("SIGKILL");
        const r = await run.done.catch(() => undefined);
        throw new Error(`${(err as Error).message}\n${r ? show(r) : ""}`);
      },
    );
    await sleep(1500);
    run.child.kill("SIGKILL");
    await run.done.catch(() => undefined);
    await sleep(4000);
    assert.ok(!existsSync(owed), "the second hook never ran");
    const again = await pyferry(["deploy", "--yes"]);
    t.diagnostic(`deploy after the kill: ${again.ms} ms`);
    assert.equal(again.status, 0, show(again));
    assert.equal(summary(again.stdout).get(label(jobs3))?.outcome, "changed", show(again));
    assert.match(again.stderr, /its hooks and reload, not completed since it was switched to/);
    assert.equal(readFileSync(owed, "utf8").trim().split("\n").length, 1);
    assertAllStates();
    const third = await pyferry(["deploy", "--yes"]);
    assert.equal(third.status, 0, show(third));
    assert.equal(summary(third.stdout).get(label(jobs3))?.outcome, "ok");
    assert.equal(readFileSync(owed, "utf8").trim().split("\n").length, 1, "owed hooks run once");
  });

  test("Ctrl-C while a deploy applies: what finished, a sentence on the rest, the status of SIGINT; the hook stops there too", async () => {
    const root = lab.host("h4").root;
    const path = join(root, "srv", "int", "venv");
    // On h3, an environment with no hooks: finished before the interruption, and reported.
    const quick = join(lab.host("h3").root, "srv", "int", "venv");
    writeFileSync(join(work, "reqs", "int.txt"), "six\n");
    const lines = ['wheelhouse = "wheelhouse"', "[defaults]", `python = ${JSON.stringify(python)}`];
    lines.push(
      "[hosts.h4]",
      'address = "h4"',
      "[[hosts.h4.envs]]",
      `path = ${JSON.stringify(path)}`,
    );
    lines.push('requirements = "reqs/int.txt"', 'hooks = ["sleep 60"]');
    lines.push("[hosts.h3]", 'address = "h3"', "[[hosts.h3.envs]]");
    lines.push(`path = ${JSON.stringify(quick)}`, 'requirements = "reqs/int.txt"');
    writeFileSync(join(work, "int.toml"), `${lines.join("\n")}\n`);
    const run = startPyferry(["deploy", "--yes", "--forks", "2", "-i", "int.toml"], {
      cwd: work,
      env: lab.env(),
      timeoutMs: 120_000,
    });
    const hookDir = join(root, "srv", "int");
    await waitFor("the hook to run", () => processesIn([hookDir]).length > 0, 60_000);
    await waitFor("h3's environment", () => existsSync(join(quick, "bin", "python")), 30_000);
    await sleep(500);
    run.child.kill("SIGINT");
    const r = await run.done;
    assert.equal(r.status, 130, show(r));
    assert.equal(r.stdout, `h3:${quick}  changed  +six 1.17.0\n`, show(r));
    assert.match(
      r.stderr,
      /pyferry: interrupted; each environment not listed is as it was or wholly switched, never half: pyferry deploy --check shows what is left\./,
    );
    assert.ok(!hasStackTrace(r.stderr), show(r));
    // Stopped there too, not left running for the next deploy to start a second copy beside.
    await waitFor(
      "the hook to be stopped",
      () => processesIn([hookDir]).length === 0,
      10_000,
    ).catch((err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(processesIn([hookDir]))}`);
    });
    const check = await pyferry(["deploy", "--check", "-i", "int.toml"]);
    assert.equal(check.status, 2, show(check));
    assert.match(check.stderr, /its hooks and reload, not completed since it was switched to/);
  });

  test("a failing hook on a first deploy: the path is left with no environment, as before", async () => {
    const root = lab.host("h4").root;
    const path = join(root, "srv", "first", "venv");
    writeFileSync(join(work, "reqs", "first.txt"), "six\n");
    const inv = (hooks: string[]) =>
      oneEnvOnH4("first", path, [`hooks = ${JSON.stringify(hooks)}`]);
    inv(["exit 3"]);
    const r = await pyferry(["deploy", "--yes", "-i", "first.toml"]);
    assert.equal(r.status, 1, show(r));
    assert.match(
      r.stdout,
      /failed {2}hook "exit 3" failed with exit status 3 \(no output\); \S+ was removed again, as it had no environment before/,
      show(r),
    );
    assert.throws(() => lstatSync(path), /ENOENT/, "nothing at the path, not even a link");
    // Planned afresh next time (not as hooks owed), and deployed once the hook works.
    const check = await pyferry(["deploy", "--check", "-i", "first.toml"]);
    assert.equal(check.status, 2, show(check));
    assert.doesNotMatch(check.stderr, /not completed/, show(check));
    inv(["true"]);
    const ok = await pyferry(["deploy", "--yes", "-i", "first.toml"]);
    assert.equal(ok.status, 0, show(ok));
    assert.ok(existsSync(join(path, "bin", "python")));
  });

  test("a wheel replaced under the same version is a change, and the plan says why", async () => {
    const root = lab.host("h4").root;
    const path = join(root, "srv", "rebuilt", "venv");
    writeFileSync(join(work, "reqs", "rebuilt.txt"), "six\n");
    oneEnvOnH4("rebuilt", path);
    const first = await pyferry(["deploy", "--yes", "-i", "rebuilt.toml"]);
    assert.equal(first.status, 0, show(first));
    // six 1.17.0 again, with one more file (and its RECORD line): new bytes, the same version.
    const original = mirrorWheels("six", "1.17.0")[0];
    assert.ok(original);
    const rebuilt = join(tempDir("pyferry-rebuilt-"), basename(original));
    const py = spawnSync(python, ["-c", REBUILD, original, rebuilt], { encoding: "utf8" });
    assert.equal(py.status, 0, py.stderr);
    const replace = (wheel: string) =>
      pyferry(["wheelhouse", "add", "--replace", "--wheelhouse", "wheelhouse", wheel]);
    try {
      const added = await replace(rebuilt);
      assert.equal(added.status, 0, show(added));
      const check = await pyferry(["deploy", "--check", "-i", "rebuilt.toml"]);
      assert.equal(check.status, 2, show(check));
      assert.match(
        check.stderr,
        /the same versions, with files that differ from those deployed \(a wheel replaced under the same version/,
        show(check),
      );
      const r = await pyferry(["deploy", "--yes", "-i", "rebuilt.toml"]);
      assert.equal(r.status, 0, show(r));
      const site = readdirSync(join(path, "lib")).map((d) => join(path, "lib", d, "site-packages"));
      assert.ok(existsSync(join(site[0] as string, "six_rebuilt.txt")), show(r));
    } finally {
      const back = await replace(original);
      assert.equal(back.status, 0, show(back));
    }
  });

  test("compile is part of what an environment is: turning it on is a change, and only that path gets bytecode", async () => {
    const root = lab.host("h4").root;
    const a = join(root, "srv", "ca", "venv");
    const b = join(root, "srv", "cb", "venv");
    const inv = (compileB: boolean) => {
      writeFileSync(join(work, "reqs", "c.txt"), "six\n");
      const lines = [
        'wheelhouse = "wheelhouse"',
        "[defaults]",
        `python = ${JSON.stringify(python)}`,
      ];
      lines.push("[hosts.h4]", 'address = "h4"');
      for (const [path, compile] of [
        [a, true],
        [b, compileB],
      ] as const)
        lines.push(
          "[[hosts.h4.envs]]",
          `path = ${JSON.stringify(path)}`,
          'requirements = "reqs/c.txt"',
          `compile = ${compile}`,
        );
      writeFileSync(join(work, "compile.toml"), `${lines.join("\n")}\n`);
    };
    const pyc = (env: string) =>
      existsSync(
        join(env, "lib", "python3.11", "site-packages", "__pycache__", "six.cpython-311.pyc"),
      );
    const run = (...args: string[]) => pyferry([...args, "-i", "compile.toml"]);
    inv(false);
    let r = await run("deploy", "--yes");
    assert.equal(r.status, 0, show(r));
    assert.deepEqual([pyc(a), pyc(b)], [true, false]);
    assert.notEqual(readlinkSync(a), readlinkSync(b));
    inv(true);
    r = await run("deploy", "--check");
    assert.equal(r.status, 2, show(r));
    assert.deepEqual(summary(r.stdout).get(`h4:${b}`), {
      outcome: "pending",
      detail: "the same packages, with bytecode compiled there",
    });
    assert.match(r.stderr, /the same packages, with bytecode compiled there/);
    r = await run("deploy", "--yes");
    assert.equal(r.status, 0, show(r));
    assert.deepEqual([pyc(a), pyc(b)], [true, true]);
    assertState(b, { six: "1.17.0" });
    r = await run("deploy", "--check");
    assert.equal(r.status, 0, show(r));
  });

  test("an existing virtualenv is taken over and kept for rollback; any other folder is refused; rollback goes further back each time", async () => {
    const root = lab.host("h5").root;
    const plain = join(root, "srv", "plain", "venv");
    const other = join(root, "srv", "other", "venv");
    mkdirSync(join(plain, ".."), { recursive: true });
    const mk = spawnSync(python, ["-m", "venv", "--without-pip", plain], { encoding: "utf8" });
    assert.equal(mk.status, 0, mk.stderr);
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, "keep.txt"), "not a virtualenv");
    const inv = (reqs: string) => {
      writeFileSync(join(work, "reqs", "plain.txt"), reqs);
      const lines = [
        'wheelhouse = "wheelhouse"',
        "[defaults]",
        `python = ${JSON.stringify(python)}`,
      ];
      lines.push("[hosts.h5]", 'address = "h5"');
      for (const path of [plain, other])
        lines.push(
          "[[hosts.h5.envs]]",
          `path = ${JSON.stringify(path)}`,
          'requirements = "reqs/plain.txt"',
          `hooks = ${JSON.stringify(["test ! -e fail"])}`,
        );
      // An interpreter missing there fails its own environment, not the host's others.
      lines.push(
        "[[hosts.h5.envs]]",
        `path = ${JSON.stringify(join(root, "srv", "badpy", "venv"))}`,
        'requirements = "reqs/plain.txt"',
        'python = "/nonexistent/python3.99"',
      );
      writeFileSync(join(work, "takeover.toml"), `${lines.join("\n")}\n`);
    };
    const at = (path: string) => `h5:${path}`;
    const run = (...args: string[]) => pyferry([...args, "-i", "takeover.toml"]);
    inv("six\n");

    let r = await run("deploy", "--yes");
    assert.equal(r.status, 1, show(r));
    const s = summary(r.stdout);
    assert.deepEqual(s.get(at(plain)), { outcome: "changed", detail: "+six 1.17.0" });
    assert.equal(s.get(at(other))?.outcome, "failed", show(r));
    assert.match(s.get(at(other))?.detail ?? "", /is a folder but not a virtualenv/);
    const bad = s.get(at(join(root, "srv", "badpy", "venv")));
    assert.equal(bad?.outcome, "failed", show(r));
    assert.match(bad?.detail ?? "", /python3\.99/, show(r));
    assert.match(r.stderr, /moved aside to .*plain\/venv\.pyferry-orig and kept for rollback/);
    assert.equal(readFileSync(join(other, "keep.txt"), "utf8"), "not a virtualenv", "untouched");
    assert.ok(existsSync(join(`${plain}.pyferry-orig`, "pyvenv.cfg")), "the old venv is kept");
    const first = readlinkSync(plain);
    assertState(plain, { six: "1.17.0" });
    // What the taken-over venv's users source still works, and names the path, not the store.
    const act = spawnSync(
      "bash",
      [
        "-c",
        '. "$1/bin/activate" && echo "$VIRTUAL_ENV" && python -c "import sys; print(sys.prefix)"',
        "-",
        plain,
      ],
      { encoding: "utf8", env: { PATH: "/usr/bin:/bin" } },
    );
    assert.equal(act.stdout, `${plain}\n${plain}\n`, act.stderr);

    // A failing hook goes back to the environment before, whatever it was.
    inv("six\nidna\n");
    writeFileSync(join(plain, "..", "fail"), "");
    r = await run("deploy", "--yes", at(plain));
    assert.equal(r.status, 1, show(r));
    assert.match(summary(r.stdout).get(at(plain))?.detail ?? "", /switched back to the previous/);
    assert.equal(readlinkSync(plain), first);
    rmSync(join(plain, "..", "fail"));
    r = await run("deploy", "--yes", at(plain));
    assert.equal(r.status, 0, show(r));
    assertState(plain, { six: "1.17.0", idna: "3.20" });

    // Each rollback goes one step further back, down to the virtualenv that was there first.
    r = await run("rollback", at(plain));
    assert.equal(r.status, 0, show(r));
    assert.equal(readlinkSync(plain), first);
    r = await run("rollback", at(plain));
    assert.equal(r.status, 0, show(r));
    assert.equal(realpathSync(plain), realpathSync(`${plain}.pyferry-orig`));
    const py = spawnSync(join(plain, "bin", "python"), ["-c", "import sys; print(sys.prefix)"], {
      encoding: "utf8",
    });
    assert.equal(py.status, 0, py.stderr);
    r = await run("rollback", at(plain));
    assert.equal(r.status, 1, show(r));
    assert.match(summary(r.stdout).get(at(plain))?.detail ?? "", /no earlier environment/);
    assert.equal(realpathSync(plain), realpathSync(`${plain}.pyferry-orig`));
  });
});
