/** The inventory's TOML, the seed's selectors, and plans as exact syncs. */
import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, test } from "node:test";
import { checkWheelhouse, readInventory } from "../../../src/fleet/inventory.js";
import { describeChanges, diff, distInfoName } from "../../../src/fleet/plan.js";
import { resolveSelection, selectEnvs } from "../../../src/fleet/selector.js";
import { UserError } from "../../../src/util/errors.js";
import { tempDir } from "../../support/temp.js";

const dir = tempDir("pyferry-inventory-");
after(() => rmSync(dir, { recursive: true, force: true }));
let n = 0;
function inventory(text: string): string {
  const file = join(dir, `inv-${++n}.toml`);
  writeFileSync(file, text);
  return file;
}

const SAMPLE = `
wheelhouse = "wh"
[defaults]
python = "/usr/bin/python3"
hooks = ["manage migrate"]
[hosts.web1]
address = "deploy@10.0.0.1:2222"
groups = ["web"]
[[hosts.web1.envs]]
path = "/srv/shop/venv/"
requirements = "shop.txt"
reload = "systemctl reload shop"
[[hosts.web1.envs]]
path = "/srv/blog/venv"
user = "blog"
lock = "blog.pylock.toml"
hooks = []
[hosts.web2]
groups = ["web"]
[[hosts.web2.envs]]
path = "/srv/shop/venv"
requirements = "shop.txt"
[hosts.db1]
[[hosts.db1.envs]]
path = "/opt/tools"
requirements = "tools.txt"
compile = true
[groups.backend]
hosts = ["db1"]
`;

test("hosts, environments, defaults, groups and paths relative to the inventory", () => {
  const inv = readInventory(inventory(SAMPLE));
  assert.equal(inv.wheelhouse, join(dir, "wh"));
  const [web1, web2, db1] = inv.hosts;
  assert.equal(web1?.address, "deploy@10.0.0.1");
  assert.equal(web1?.port, 2222);
  assert.equal(web1?.user, "deploy");
  assert.equal(web2?.address, "web2");
  assert.deepEqual(web1?.envs[0], {
    host: "web1",
    path: "/srv/shop/venv",
    python: "/usr/bin/python3",
    requirements: join(dir, "shop.txt"),
    hooks: ["manage migrate"],
    reload: "systemctl reload shop",
    compile: false,
    extras: [],
    dependencyGroups: [],
  });
  assert.equal(web1?.envs[1]?.user, "blog");
  assert.deepEqual(web1?.envs[1]?.hooks, []);
  assert.equal(db1?.envs[0]?.compile, true);
  assert.deepEqual(inv.groups.get("web"), ["web1", "web2"]);
  assert.deepEqual(inv.groups.get("backend"), ["db1"]);
});

test("the seed's selectors and group names pick exactly their environments", () => {
  const inv = readInventory(inventory(SAMPLE));
  const pick = (...s: string[]) => selectEnvs(inv, s).map((x) => `${x.host.name}:${x.env.path}`);
  const all = [
    "web1:/srv/shop/venv",
    "web1:/srv/blog/venv",
    "web2:/srv/shop/venv",
    "db1:/opt/tools",
  ];
  assert.deepEqual(pick(), all);
  assert.deepEqual(pick("web1"), all.slice(0, 2));
  assert.deepEqual(pick("blog@web1"), ["web1:/srv/blog/venv"]);
  assert.deepEqual(pick("deploy@web1"), ["web1:/srv/shop/venv"]);
  assert.deepEqual(pick("deploy@web1:/srv/shop/venv"), ["web1:/srv/shop/venv"]);
  assert.deepEqual(pick("web2:/srv/shop/venv"), ["web2:/srv/shop/venv"]);
  assert.deepEqual(pick(":/srv/shop/venv"), ["web1:/srv/shop/venv", "web2:/srv/shop/venv"]);
  assert.deepEqual(pick("blog@"), ["web1:/srv/blog/venv"]);
  assert.deepEqual(pick("web"), all.slice(0, 3));
  assert.deepEqual(pick("backend", "blog@"), ["web1:/srv/blog/venv", "db1:/opt/tools"]);
  assert.throws(() => pick("nowhere"), /names no host or group/);
  assert.throws(() => pick("web1:relative"), /absolute path/);
  assert.throws(() => pick("nobody@"), /No environment .* matches "nobody@"/);
  // A group where a host goes; a selector that picks nothing is an error even beside others.
  assert.deepEqual(pick("web:/srv/shop/venv"), ["web1:/srv/shop/venv", "web2:/srv/shop/venv"]);
  assert.deepEqual(pick("blog@web"), ["web1:/srv/blog/venv"]);
  assert.throws(
    () => pick("web1", "nobody@", ":/srv/typo"),
    /No environment .* matches "nobody@" or ":\/srv\/typo"\.$/,
  );
});

test("environment paths are normalized: doubled and trailing slashes go", () => {
  const inv = readInventory(
    inventory(
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/srv//app/venv/"\npython = "p"\nrequirements = "r"\n',
    ),
  );
  assert.equal(inv.hosts[0]?.envs[0]?.path, "/srv/app/venv");
});

test("selector paths are normalized as inventory paths are: doubled and trailing slashes", () => {
  const inv = readInventory(inventory(SAMPLE));
  const pick = (...s: string[]) => selectEnvs(inv, s).map((x) => `${x.host.name}:${x.env.path}`);
  assert.deepEqual(pick("web2:/srv//shop/venv"), ["web2:/srv/shop/venv"]);
  assert.deepEqual(pick("web2:/srv/shop/venv/"), ["web2:/srv/shop/venv"]);
  assert.deepEqual(pick("deploy@web1:/srv/./shop//venv//"), ["web1:/srv/shop/venv"]);
  assert.throws(() => pick("web1:/"), /absolute path/);
});

test("ssh_options read as in the configuration: ssh's own -o spelling too, each checked", () => {
  const text = (opts: string) =>
    `[hosts.a]\nssh_options = ${opts}\n[[hosts.a.envs]]\npath = "/x"\npython = "p"\nrequirements = "r"\n`;
  for (const opts of [
    '["-o", "ConnectTimeout=3"]',
    '["-oConnectTimeout=3"]',
    '["ConnectTimeout=3"]',
  ])
    assert.deepEqual(readInventory(inventory(text(opts))).hosts[0]?.sshOptions, [
      "ConnectTimeout=3",
    ]);
  assert.throws(
    () => readInventory(inventory(text('["-o"]'))),
    /hosts\.a\.ssh_options\[0\] must be one ssh_config option/,
  );
});

test("accept_new_host_keys is a host's own choice, off unless set", () => {
  const inv = readInventory(
    inventory(
      '[hosts.a]\naccept_new_host_keys = true\n[hosts.b]\n[[hosts.b.envs]]\npath = "/x"\npython = "p"\nrequirements = "r"\n',
    ),
  );
  assert.deepEqual(
    inv.hosts.map((h) => [h.name, h.acceptNewHostKeys]),
    [
      ["a", true],
      ["b", false],
    ],
  );
});

test("a broken inventory is one sentence naming the file and the key", () => {
  const cases: [string, RegExp][] = [
    ["[hosts.a]\nport = 70000\n", /hosts\.a\.port must be a port number/],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "rel"\npython = "p"\nrequirements = "r"\n',
      /path must be an absolute path/,
    ],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/"\npython = "p"\nrequirements = "r"\n',
      /path must name a folder below \/ with no \. or \.\. in it/,
    ],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/srv/../etc"\npython = "p"\nrequirements = "r"\n',
      /path must name a folder below \//,
    ],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/x"\npython = "p"\n',
      /needs exactly one of requirements and lock/,
    ],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/x"\npython = "p"\nrequirements = "r"\ndependency_groups = ["dev"]\n',
      /hosts\.a\.envs\[0\]\.dependency_groups picks from a lock \(pyferry lock PROJECT --group G writes one\)\.$/,
    ],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/x"\npython = "p"\nlock = "l.toml"\nextras = "gpu"\n',
      /hosts\.a\.envs\[0\]\.extras must be an array of strings/,
    ],
    ["[hosts.a]\nflavour = 1\n", /hosts\.a\.flavour is not a known key/],
    [
      '[hosts.a]\naddress = "h1"\n[[hosts.a.envs]]\npath = "/v"\npython = "p"\nrequirements = "r"\n[hosts.b]\naddress = "h1"\n[[hosts.b.envs]]\npath = "/v"\npython = "p"\nrequirements = "s"\n',
      /hosts\.b deploys to h1:\/v, as hosts\.a does; list it once/,
    ],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/x"\npython = "p"\nrequirements = "r"\nworkdir = "app"\n',
      /hosts\.a\.envs\[0\]\.workdir must be an absolute path on the host\.$/,
    ],
    [
      '[hosts.a]\naddress = "u@h1:22"\n[[hosts.a.envs]]\npath = "/v"\npython = "p"\nrequirements = "r"\n[hosts.b]\naddress = "h1"\nport = 22\n[[hosts.b.envs]]\npath = "/v/"\npython = "p"\nrequirements = "s"\n',
      /hosts\.b deploys to h1:\/v, as hosts\.a does; list it once/,
    ],
    ['[hosts.a]\naddress = "-oProxyCommand=x"\n', /not a valid SSH destination/],
    ['[groups.g]\nhosts = ["zz"]\n', /names the unknown host "zz"/],
    ["hosts = [\n", /is not valid TOML \(line/],
    [
      '[hosts.a]\n[[hosts.a.envs]]\npath = "/x"\nrequirements = "r"\n',
      /hosts\.a\.envs\[0\] names no interpreter: set python \(e\.g\. "\/usr\/bin\/python3\.11"\) in it or in \[defaults\]/,
    ],
    [
      '[hosts.a]\naccept_new_host_keys = "yes"\n',
      /hosts\.a\.accept_new_host_keys must be true or false/,
    ],
  ];
  for (const [text, want] of cases) {
    assert.throws(
      () => readInventory(inventory(text)),
      (e: unknown) => e instanceof UserError && want.test(e.message),
      text,
    );
  }
});

test("a wheelhouse that is missing, a file, or has no wheels folder is one sentence", () => {
  const host =
    '[hosts.h]\n[[hosts.h.envs]]\npath = "/srv/v"\npython = "/usr/bin/python3"\nrequirements = "r.txt"\n';
  writeFileSync(join(dir, "app.txt"), "");
  mkdirSync(join(dir, "bare"));
  mkdirSync(join(dir, "good", "wheels"), { recursive: true });
  const cases: [string, string, string][] = [
    ['wheelhouse = "nowh"\n', "nowh", "does not exist."],
    ["", "wheelhouse", "does not exist."],
    ['wheelhouse = "app.txt"\n', "app.txt", "is not a folder."],
    [
      'wheelhouse = "app.txt/wh"\n',
      "app.txt/wh",
      "cannot be read: part of its path is a file, not a folder.",
    ],
    ['wheelhouse = "bare"\n', "bare", "has no wheels folder; pyferry wheelhouse add makes one."],
  ];
  for (const [line, at, why] of cases) {
    const file = inventory(line + host);
    assert.throws(
      () => checkWheelhouse(readInventory(file)),
      (e: unknown) =>
        e instanceof UserError &&
        e.exitCode === 1 &&
        e.message === `The wheelhouse ${join(dir, at)} (from ${file}) ${why}`,
      line,
    );
  }
  checkWheelhouse(readInventory(inventory(`wheelhouse = "good"\n${host}`)));
});

test("plans are exact syncs: installs, upgrades, downgrades and removals", () => {
  assert.deepEqual(distInfoName("Foo_Bar-1.2.post1.dist-info"), ["foo-bar", "1.2.post1"]);
  assert.equal(distInfoName("notes.txt"), undefined);
  const installed = new Map([
    ["six", "1.16.0"],
    ["idna", "3.7"],
    ["chardet", "5.2.0"],
    ["requests", "2.31.0"],
  ]);
  const wanted = new Map([
    ["six", "1.16.0"],
    ["idna", "3.6"],
    ["requests", "2.32.3"],
    ["urllib3", "2.2.1"],
  ]);
  const changes = diff(installed, wanted);
  assert.equal(
    describeChanges(changes),
    "-chardet 5.2.0 vidna 3.7->3.6 ^requests 2.31.0->2.32.3 +urllib3 2.2.1",
  );
  assert.deepEqual(diff(wanted, wanted), []);
});

test("a selector's user matches an environment with none by whom ssh logs in as there", async () => {
  const config = join(dir, "ssh_config");
  writeFileSync(config, "Host web2\n  User deploy\nHost *\n  User ops\n");
  const saved = process.env.PYFERRY_SSH_COMMAND;
  process.env.PYFERRY_SSH_COMMAND = `ssh -F ${config}`;
  try {
    const inv = readInventory(inventory(SAMPLE));
    const pick = async (...s: string[]) =>
      (await resolveSelection(inv, s)).map((x) => `${x.host.name}:${x.env.path}`);
    assert.deepEqual(await pick("deploy@web2"), ["web2:/srv/shop/venv"]);
    // web1's address names deploy: the inventory's user wins over ssh's configuration.
    assert.deepEqual(await pick("deploy@"), ["web1:/srv/shop/venv", "web2:/srv/shop/venv"]);
    assert.deepEqual(await pick("ops@db1:/opt/tools"), ["db1:/opt/tools"]);
    assert.deepEqual(await pick("blog@web1"), ["web1:/srv/blog/venv"]);
    await assert.rejects(pick("ops@web2"), /No environment .* matches "ops@web2"/);
    // Without the lookup the inventory alone knows no user for web2.
    assert.throws(() => selectEnvs(inv, ["deploy@web2"]), /No environment .* matches/);
  } finally {
    if (saved === undefined) delete process.env.PYFERRY_SSH_COMMAND;
    else process.env.PYFERRY_SSH_COMMAND = saved;
  }
});
