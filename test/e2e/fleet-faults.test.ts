/**
 * Deployments that go wrong, against five real OpenSSH servers: pyferry killed with SIGKILL at
 * random moments of a deploy (planning, building, shipping, switching, hooks), and a host whose
 * sshd is down, or one that takes the connection and never answers. After every kill each
 * environment is exactly its old state or exactly its new one and imports fine, never missing or
 * half-made; the next deploy finishes the job. An unreachable or silent host fails only its own
 * environments, in a sentence, within ssh's connect timeout.
 *
 * The kills land at random delays spread over the length of a complete deploy measured first
 * (at least 100 ms after the start); PYFERRY_FAULT_SEED fixes them (the seed is printed).
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { createServer, type Socket } from "node:net";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { findPython311, makeWheelhouse, norm } from "../support/mirror.js";
import {
  checkObjects,
  defaultStore,
  type Finished,
  hasStackTrace,
  processesIn,
  pyferryAsync,
  show,
  sleep,
  startPyferry,
  waitFor,
} from "../support/remote.js";
import { type SshLab, sshAvailable, startSshLab } from "../support/sshd.js";
import { tempDir } from "../support/temp.js";

type Packages = Record<string, string>;

function distInfos(env: string): Packages {
  const lib = join(env, "lib");
  const pys = readdirSync(lib).filter((d) => d.startsWith("python"));
  const out: Packages = {};
  for (const py of pys) {
    for (const d of readdirSync(join(lib, py, "site-packages"))) {
      const m = /^(.+)-([^-]+)\.dist-info$/.exec(d);
      if (m) out[norm(m[1] as string)] = m[2] as string;
    }
  }
  return out;
}

const VIEW = `
import importlib, importlib.metadata as md, json, sys
for m in sys.argv[1:]:
    importlib.import_module(m)
print(json.dumps({d.metadata["Name"].lower().replace("_", "-"): d.version for d in md.distributions()}))
`;

/** Who the environment is now, as "old", "new", or what is wrong with it. */
function stateOf(env: string, old: Packages, now: Packages): "old" | "new" | string {
  if (!existsSync(env)) return `${env} is missing`;
  const target = realpathSync(env);
  if (!existsSync(join(target, ".pyferry-complete")))
    return `${env} -> ${target}, which is not a complete environment`;
  const dists = distInfos(env);
  const same = (a: Packages, b: Packages) =>
    JSON.stringify(sorted(a)) === JSON.stringify(sorted(b));
  const kind = same(dists, old) ? "old" : same(dists, now) ? "new" : undefined;
  if (!kind) return `${env} holds ${JSON.stringify(dists)}: neither the old nor the new state`;
  const r = spawnSync(join(env, "bin", "python"), ["-c", VIEW, ...Object.keys(dists)], {
    encoding: "utf8",
  });
  if (r.status !== 0) return `${env}/bin/python cannot import its packages: ${r.stderr.trim()}`;
  if (!same(JSON.parse(r.stdout) as Packages, dists))
    return `${env}/bin/python sees ${r.stdout.trim()}, not its dist-info folders`;
  return kind;
}

function sorted(p: Packages): Packages {
  return Object.fromEntries(Object.entries(p).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/** A small deterministic random source (mulberry32). */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const NUMPY = ["1.26.4", "2.0.2", "2.2.6", "2.3.5", "2.4.6"];
const FSSPEC = ["2026.6.0", "2026.7.0", "2026.9.0"];
const WEBSOCKETS = ["15.0.1", "16.1.1", "17.1"];
const ZIPP = ["3.23.0", "4.1.0"];
const TABULATE = ["0.8.10", "0.10.0"];

/**
 * Generation g of the fleet: every environment's pins. The app environments carry numpy (about
 * 60 MB installed), so a deploy ships enough to be killed in the middle of it. Generations
 * differ from each other in every environment (numpy/zipp/fsspec by g mod 5/2/3).
 */
function generation(g: number, host: number): { app: Packages; jobs: Packages } {
  const at = <T>(list: T[], i: number) => list[i % list.length] as T;
  return {
    app: sorted({
      numpy: at(NUMPY, g + host),
      zipp: at(ZIPP, g),
      fsspec: at(FSSPEC, g + host),
    }),
    jobs: sorted({
      six: "1.17.0",
      websockets: at(WEBSOCKETS, g),
      tabulate: at(TABULATE, g + host),
    }),
  };
}

describe("fleet faults", { skip: sshAvailable() ?? false, timeout: 1_200_000 }, () => {
  let lab: SshLab;
  let work: string;
  let python: string;
  let gen = 0;
  /** Milliseconds of a complete, uninterrupted deploy of a new generation. */
  let full = 0;

  const envs = () =>
    lab.hosts.flatMap((h, i) =>
      (["app", "jobs"] as const).map((kind) => ({
        host: h.alias,
        index: i,
        kind,
        path: join(h.root, "srv", kind, "venv"),
      })),
    );
  const want = (g: number, e: { index: number; kind: "app" | "jobs" }) =>
    generation(g, e.index)[e.kind];

  function writeFleet(g: number): void {
    const lines = ['wheelhouse = "wheelhouse"', "[defaults]", `python = ${JSON.stringify(python)}`];
    for (const h of lab.hosts) {
      lines.push(`[hosts.${h.alias}]`, `address = ${JSON.stringify(h.alias)}`);
      for (const e of envs().filter((x) => x.host === h.alias)) {
        const reqs = `${e.host}-${e.kind}.txt`;
        const pins = Object.entries(want(g, e)).map(([n, v]) => `${n}==${v}`);
        writeFileSync(join(work, reqs), `${pins.join("\n")}\n`);
        lines.push(
          `[[hosts.${h.alias}.envs]]`,
          `path = ${JSON.stringify(e.path)}`,
          `requirements = ${JSON.stringify(reqs)}`,
          `hooks = ${JSON.stringify([`python -c "import ${Object.keys(want(g, e)).join(", ")}"`])}`,
          `reload = ${JSON.stringify("sleep 0.2")}`,
        );
      }
    }
    writeFileSync(join(work, "inventory.toml"), `${lines.join("\n")}\n`);
    gen = g;
  }

  const pyferry = (args: string[]): Promise<Finished> =>
    pyferryAsync(args, { cwd: work, env: lab.env(), timeoutMs: 600_000 });

  /** Wait until nothing started by a killed pyferry still runs, here or on the hosts. */
  async function settle(): Promise<void> {
    await waitFor(
      "the sessions of the killed deploy to end",
      () => processesIn([work, lab.dir]).length === 0,
      60_000,
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}: ${JSON.stringify(processesIn([work, lab.dir]).slice(0, 5), null, 1)}`,
      );
    });
  }

  function assertDeployed(g: number): void {
    for (const e of envs()) assert.equal(stateOf(e.path, {}, want(g, e)), "new", e.path);
  }

  before(async () => {
    const py = findPython311(process.env.PYFERRY_TEST_PYTHON);
    assert.ok(py, "a CPython 3.11 (set PYFERRY_TEST_PYTHON)");
    python = py;
    lab = await startSshLab({ hosts: 5, netns: "auto" });
    work = tempDir("pyferry-fleet-faults-");
    makeWheelhouse(join(work, "wheelhouse"), [
      ...NUMPY.map((v) => ["numpy", v] as const),
      ...FSSPEC.map((v) => ["fsspec", v] as const),
      ...WEBSOCKETS.map((v) => ["websockets", v] as const),
      ...ZIPP.map((v) => ["zipp", v] as const),
      ...TABULATE.map((v) => ["tabulate", v] as const),
      ["six", "1.17.0"],
    ]);
    writeFleet(0);
    const r = await pyferry(["deploy", "--yes", "--forks", "5"]);
    assert.equal(r.status, 0, show(r));
    assertDeployed(0);
    // How long a complete deploy of a new generation takes, to spread the kills over.
    writeFleet(1);
    const timed = await pyferry(["deploy", "--yes", "--forks", "5"]);
    assert.equal(timed.status, 0, show(timed));
    assertDeployed(1);
    full = timed.ms;
  });
  after(async () => {
    await lab?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  test("kill -9 at random moments: every environment is old or new, and the next deploy finishes", async (t) => {
    const seed = Number(process.env.PYFERRY_FAULT_SEED ?? Date.now() % 100_000);
    const rand = random(seed);
    t.diagnostic(`PYFERRY_FAULT_SEED=${seed}; a complete deploy took ${full} ms`);
    // One trial per band of delays, spread over a whole deploy: from 100 ms after the start of
    // the process (planning) to about the end of a complete deploy measured before (switching,
    // hooks, reload).
    const bands: [number, number][] = [
      [0, 0.1],
      [0.1, 0.3],
      [0.3, 0.5],
      [0.5, 0.7],
      [0.7, 0.85],
      [0.85, 1.05],
    ];
    const seen = { old: 0, new: 0 };
    let kills = 0;
    let early = 0;
    for (let band = 0; band < bands.length; ) {
      const [lo, hi] = bands[band] as [number, number];
      const from = gen;
      writeFleet(gen + 1);
      const delay = Math.max(100, Math.round(full * (lo + rand() * (hi - lo))));
      const victim = startPyferry(["deploy", "--yes", "--forks", "5"], {
        cwd: work,
        env: lab.env(),
        timeoutMs: 600_000,
      });
      await sleep(delay);
      victim.child.kill("SIGKILL");
      const killed = await victim.done;
      if (killed.signal !== "SIGKILL") {
        // It finished before the kill (deploys get faster as the local cache fills): the new
        // generation is in place; try this band again, scaled to this deploy's length.
        assert.equal(killed.status, 0, show(killed));
        assertDeployed(gen);
        t.diagnostic(`finished in ${killed.ms} ms, before the kill at ${delay} ms; again`);
        full = Math.min(full, killed.ms);
        assert.ok(++early <= 6, "the deploys keep finishing before the kill");
        continue;
      }
      band++;
      kills++;
      const said = killed.stdout.trim().split("\n").filter(Boolean).length;
      const planned = killed.stderr.split("\n").filter((l) => /: [-+^v]\S+ /.test(l)).length;
      // Right after the kill, and again once the orphaned sessions have ended.
      const right = envs().map((e) => stateOf(e.path, want(from, e), want(gen, e)));
      await settle();
      const later = envs().map((e) => stateOf(e.path, want(from, e), want(gen, e)));
      for (const [i, s] of [...right, ...later].entries())
        assert.ok(s === "old" || s === "new", `after a kill at ${delay} ms (#${i % 10}): ${s}`);
      for (const s of later) seen[s as "old" | "new"]++;
      for (const h of lab.hosts) {
        assert.deepEqual(checkObjects(defaultStore(h.root)).bad, [], `${h.alias}'s objects`);
      }
      const next = await pyferry(["deploy", "--yes", "--forks", "5"]);
      t.diagnostic(
        `killed at ${delay} ms (${planned} plans shown, ${said} summary lines): ` +
          `right after ${right.filter((s) => s === "new").length}/10 new, settled ` +
          `${later.filter((s) => s === "new").length}/10 new; the next deploy took ${next.ms} ms`,
      );
      assert.equal(next.status, 0, show(next));
      for (const line of next.stdout.trim().split("\n"))
        assert.match(line, /^\S+ {2}(ok|changed)\b/, show(next));
      assertDeployed(gen);
      const again = await pyferry(["deploy", "--check"]);
      assert.equal(again.status, 0, `nothing left to do: ${show(again)}`);
    }
    assert.equal(kills, bands.length);
    t.diagnostic(`environments found old/new after the kills: ${seen.old}/${seen.new}`);
  });

  test("an unreachable host and a silent one fail their environments in a sentence; the others deploy (exit 1)", async (t) => {
    const from = gen;
    writeFleet(gen + 1);
    // A host that takes the connection and never says a word: only a timeout ends the wait.
    const held: Socket[] = [];
    const silent = createServer((s) => held.push(s));
    await new Promise<void>((ok) => silent.listen(0, "127.0.0.1", ok));
    const port = (silent.address() as { port: number }).port;
    const first = envs()[0];
    assert.ok(first);
    writeFileSync(
      join(work, "inventory.toml"),
      `${readFileSync(join(work, "inventory.toml"), "utf8")}[hosts.silent]\naddress = "127.0.0.1"\nport = ${port}\n[[hosts.silent.envs]]\npath = "/srv/silent/venv"\nrequirements = "${first.host}-${first.kind}.txt"\n`,
    );
    const h5 = lab.host("h5");
    await h5.stop();
    let r: Finished;
    try {
      r = await pyferry(["deploy", "--yes", "--forks", "6"]);
    } finally {
      await h5.restart();
      for (const s of held) s.destroy();
      silent.close();
      writeFleet(gen);
    }
    t.diagnostic(`with h5 down and a silent host: ${r.ms} ms`);
    assert.ok(r.ms < 60_000, `the silent host was given up on in time: ${r.ms} ms`);
    assert.match(
      r.stdout,
      /^silent:\/srv\/silent\/venv {2}failed {2}.*silent cannot be reached .*timed out/m,
      show(r),
    );
    assert.equal(r.status, 1, show(r));
    assert.ok(!hasStackTrace(r.stderr), show(r));
    const lines = new Map(
      r.stdout
        .trim()
        .split("\n")
        .filter((l) => !l.startsWith("silent:"))
        .map((l) => {
          const m = /^(\S+) {2}(\w+)(?: {2}(.*))?$/.exec(l);
          assert.ok(m, l);
          return [m[1] as string, { outcome: m[2], detail: m[3] ?? "" }];
        }),
    );
    for (const e of envs()) {
      const line = lines.get(`${e.host}:${e.path}`);
      if (e.host === "h5") {
        if (e.kind === "app") t.diagnostic(`h5 said: ${line?.detail}`);
        assert.equal(line?.outcome, "failed", show(r));
        assert.match(line?.detail ?? "", /\bh5\b.*(refused|connect)/i, show(r));
        assert.equal(stateOf(e.path, want(from, e), want(gen, e)), "old", e.path);
      } else {
        assert.equal(line?.outcome, "changed", show(r));
        assert.equal(stateOf(e.path, want(from, e), want(gen, e)), "new", e.path);
      }
    }
    const back = await pyferry(["deploy", "--yes"]);
    assert.equal(back.status, 0, show(back));
    for (const [where, line] of back.stdout
      .trim()
      .split("\n")
      .map((l) => l.split("  ") as [string, string])) {
      assert.equal(line, where.startsWith("h5:") ? "changed" : "ok", show(back));
    }
    assertDeployed(gen);
  });
});
