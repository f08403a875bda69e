import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import {
  type Config,
  describeConfig,
  type LoadOptions,
  loadConfig,
  parseDestination,
  resolveTarget,
  withFlags,
} from "../../../src/config/index.js";
import { UserError } from "../../../src/util/errors.js";
import { pyferry } from "../../support/cli.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-config-");
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A fresh fake machine: /etc file, home, project folder; nothing outside `root` is read. */
function machine() {
  const base = join(root, `m${counter++}`);
  const paths = {
    system: join(base, "etc", "pyferry.toml"),
    home: join(base, "home"),
    user: join(base, "home", ".config", "pyferry", "config.toml"),
    project: join(base, "project"),
    local: join(base, "project", "pyferry.toml"),
    pyproject: join(base, "project", "pyproject.toml"),
  };
  mkdirSync(paths.home, { recursive: true });
  mkdirSync(paths.project, { recursive: true });
  const env: NodeJS.ProcessEnv = { HOME: paths.home };
  const opts = (extra: NodeJS.ProcessEnv = {}): LoadOptions => ({
    cwd: paths.project,
    home: paths.home,
    systemFile: paths.system,
    env: { ...env, ...extra },
  });
  return { base, paths, opts };
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

/** The value and source of one dotted key in `config show` terms. */
function row(config: Config, key: string) {
  const r = describeConfig(config).find((x) => x.key === key);
  return r && { value: r.value, source: r.source };
}

/** Run `fn`, expect a one-sentence UserError matching `pattern`; returns its message. */
function throwsUser(fn: () => unknown, pattern: RegExp): string {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof UserError, `expected a UserError, got ${String(e)}`);
    assert.match(e.message, pattern);
    assert.match(e.message, /\.$/, "a message is one sentence ending with a period");
    return e.message;
  }
  assert.fail(`expected an error matching ${pattern}`);
}

describe("loadConfig: layers", () => {
  test("no files: an empty configuration, and every place looked at is listed", () => {
    const m = machine();
    const c = loadConfig(m.opts());
    assert.deepEqual(c.files, []);
    assert.equal(c.defaultTarget, undefined);
    assert.equal(c.targets.size, 0);
    assert.deepEqual(c.searched, [m.paths.system, m.paths.user, m.paths.local, m.paths.pyproject]);
  });

  test("later files override earlier ones, tables merge key by key", () => {
    const m = machine();
    write(
      m.paths.system,
      `default_target = "sys"\n[targets.gpu1]\naddress = "root@gpu1.lab"\nport = 22\npython = "3.11"\n`,
    );
    write(m.paths.user, `[targets.gpu1]\nport = 2200\nidentity_file = "~/.ssh/id_gpu"\n`);
    // A project's file may add to a target of the user's, but not change how it is reached.
    write(m.paths.local, `default_target = "gpu1"\n[targets.gpu1]\npython = "3.12"\n`);
    write(
      m.paths.pyproject,
      `[project]\nname = "x"\n[tool.pyferry.targets.gpu1]\nroot = "/srv/ferry"\n[tool.pyferry.targets.cpu]\naddress = "me@cpu"\n`,
    );
    const c = loadConfig(m.opts());
    assert.deepEqual(c.files, [m.paths.system, m.paths.user, m.paths.local, m.paths.pyproject]);
    assert.deepEqual(row(c, "default_target"), { value: "gpu1", source: m.paths.local });
    assert.deepEqual(row(c, "targets.gpu1.address"), {
      value: "root@gpu1.lab",
      source: m.paths.system,
    });
    assert.deepEqual(row(c, "targets.gpu1.port"), { value: 2200, source: m.paths.user });
    assert.deepEqual(row(c, "targets.gpu1.python"), { value: "3.12", source: m.paths.local });
    assert.deepEqual(row(c, "targets.gpu1.identity_file"), {
      value: join(m.paths.home, ".ssh", "id_gpu"),
      source: m.paths.user,
    });
    assert.deepEqual(row(c, "targets.gpu1.root"), {
      value: "/srv/ferry",
      source: m.paths.pyproject,
    });
    assert.deepEqual(row(c, "targets.gpu1.accept_new_host_keys"), {
      value: false,
      source: "default",
    });
    assert.deepEqual(row(c, "targets.cpu.address"), { value: "me@cpu", source: m.paths.pyproject });

    const t = resolveTarget(c);
    assert.deepEqual(t, {
      name: "gpu1",
      address: "root@gpu1.lab",
      user: "root",
      host: "gpu1.lab",
      port: 2200,
      identityFile: join(m.paths.home, ".ssh", "id_gpu"),
      sshOptions: [],
      root: "/srv/ferry",
      python: "3.12",
      acceptNewHostKeys: false,
    });
  });

  test("a project's file may not change where a target of the user's own connects", () => {
    for (const [file, body, key] of [
      ["local", `[targets.lab]\nport = 2300\n`, "targets.lab.port"],
      ["local", `[targets.lab]\naddress = "evil"\n`, "targets.lab.address"],
      [
        "pyproject",
        `[tool.pyferry.targets.lab]\nssh_options = ["Port=2300"]\n`,
        "tool.pyferry.targets.lab.ssh_options",
      ],
      ["local", `[targets.lab]\nidentity_file = "k"\n`, "targets.lab.identity_file"],
    ] as const) {
      const m = machine();
      write(m.paths.user, `[targets.lab]\naddress = "lab"\naccept_new_host_keys = true\n`);
      write(m.paths[file], body);
      throwsUser(
        () => loadConfig(m.opts()),
        new RegExp(
          `^${m.paths[file]}: ${key.replace(/\./g, "\\.")} would change how the target lab of ${m.paths.user} is reached, which a project's file may not do \\(it may set only root and python there\\); give the project's target another name\\.$`,
        ),
      );
    }
    // The same name only in the project's files, or only root and python: fine.
    const m = machine();
    write(m.paths.user, `[targets.lab]\naddress = "lab"\n`);
    write(
      m.paths.local,
      `[targets.lab]\nroot = "/scratch/x"\n[targets.other]\naddress = "o"\nport = 2\n`,
    );
    write(m.paths.pyproject, `[tool.pyferry.targets.other]\nport = 3\n`);
    const c = loadConfig(m.opts());
    assert.equal(resolveTarget(c, "lab").root, "/scratch/x");
    assert.equal(resolveTarget(c, "other").port, 3);
  });

  test("XDG_CONFIG_HOME replaces ~/.config", () => {
    const m = machine();
    const xdg = join(m.base, "xdg");
    write(m.paths.user, `default_target = "from-home"\n`);
    write(join(xdg, "pyferry", "config.toml"), `default_target = "from-xdg"\n`);
    const c = loadConfig(m.opts({ XDG_CONFIG_HOME: xdg }));
    assert.deepEqual(row(c, "default_target"), {
      value: "from-xdg",
      source: join(xdg, "pyferry", "config.toml"),
    });
    assert.equal(c.searched.includes(m.paths.user), false);
    // A relative XDG_CONFIG_HOME is ignored, as the XDG spec asks.
    const rel = loadConfig(m.opts({ XDG_CONFIG_HOME: "relative/xdg" }));
    assert.equal(rel.defaultTarget?.value, "from-home");
  });

  test("PYFERRY_CONFIG adds a layer after pyproject.toml; a missing one is an error", () => {
    const m = machine();
    write(m.paths.local, `[targets.a]\naddress = "a.lab"\nport = 1\n`);
    const extra = join(m.base, "extra.toml");
    write(extra, `[targets.a]\nport = 2\n`);
    const c = loadConfig(m.opts({ PYFERRY_CONFIG: extra }));
    assert.deepEqual(c.files, [m.paths.local, extra]);
    assert.deepEqual(row(c, "targets.a.port"), { value: 2, source: extra });
    throwsUser(
      () => loadConfig(m.opts({ PYFERRY_CONFIG: join(m.base, "nope.toml") })),
      /PYFERRY_CONFIG names .*nope\.toml, which does not exist/,
    );
  });

  test("PYFERRY_TARGET overrides the files, and a flag overrides PYFERRY_TARGET", () => {
    const m = machine();
    write(m.paths.local, `default_target = "gpu1"\n`);
    const c = loadConfig(m.opts({ PYFERRY_TARGET: "me@box:2200" }));
    assert.deepEqual(row(c, "default_target"), {
      value: "me@box:2200",
      source: "environment variable PYFERRY_TARGET",
    });
    const t = resolveTarget(c);
    assert.equal(t.address, "me@box");
    assert.equal(t.port, 2200);
    const f = withFlags(c, { target: "other" });
    assert.deepEqual(row(f, "default_target"), { value: "other", source: "flag --on" });
    assert.equal(withFlags(c, {}), c);
  });

  test("pyproject.toml without [tool.pyferry] is not a layer, and not even parsed", () => {
    const m = machine();
    write(m.paths.pyproject, `[project]\nname = "x"\n`);
    assert.deepEqual(loadConfig(m.opts()).files, []);
    write(m.paths.pyproject, `this is [not toml\n`);
    assert.deepEqual(loadConfig(m.opts()).files, []);
  });

  test("relative paths are taken from the folder of the file that says them", () => {
    const m = machine();
    write(m.paths.system, `[targets.a]\nknown_hosts_file = "keys/known_hosts"\n`);
    const c = loadConfig(m.opts());
    assert.equal(
      c.targets.get("a")?.knownHostsFile?.value,
      join(dirname(m.paths.system), "keys", "known_hosts"),
    );
  });
});

describe("loadConfig: mistakes", () => {
  const cases: [string, string, RegExp][] = [
    [
      "unknown top-level key",
      `defualt_target = "x"\n`,
      /pyferry\.toml: defualt_target is not a known key/,
    ],
    [
      "unknown target key",
      `[targets.gpu1]\nprot = 22\n`,
      /pyferry\.toml: targets\.gpu1\.prot is not a known key; a target takes address, port/,
    ],
    [
      "port as a string",
      `[targets.g]\nport = "22"\n`,
      /targets\.g\.port must be an integer from 1 to 65535, not the string "22"/,
    ],
    [
      "port out of range",
      `[targets.g]\nport = 70000\n`,
      /targets\.g\.port must be an integer from 1 to 65535, not the integer 70000/,
    ],
    [
      "port as a float",
      `[targets.g]\nport = 22.0\n`,
      /must be an integer from 1 to 65535, not the float 22/,
    ],
    [
      "default_target not a string",
      `default_target = 3\n`,
      /default_target must be a string, not the integer 3/,
    ],
    ["targets not a table", `targets = "gpu1"\n`, /targets must be a table/],
    ["target not a table", `targets.g = 1\n`, /targets\.g must be a table, not the integer 1/],
    [
      "ssh_options not an array",
      `[targets.g]\nssh_options = "A=b"\n`,
      /ssh_options must be an array of strings/,
    ],
    [
      "ssh_options item",
      `[targets.g]\nssh_options = [1]\n`,
      /ssh_options\[0\] must be a string, not the integer 1/,
    ],
    [
      "ssh_options as a raw flag",
      `[targets.g]\nssh_options = ["-oProxyCommand=evil"]\n`,
      /ssh_options\[0\] sets ProxyCommand, which a project.s configuration may not do/,
    ],
    [
      "host key checking turned off by a project",
      `[targets.g]\nssh_options = ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]\n`,
      /ssh_options\[0\] sets StrictHostKeyChecking, which a project.s configuration may not do: it may set only AddressFamily, .*ConnectTimeout, .*User \(options that cannot run commands here, hand out credentials or change which host keys are trusted\)/,
    ],
    [
      "credentials forwarded by a project",
      `[targets.g]\nssh_options = ["ConnectTimeout=5", "GSSAPIDelegateCredentials=yes"]\n`,
      /ssh_options\[1\] sets GSSAPIDelegateCredentials, which a project.s configuration may not do/,
    ],
    [
      "the agent forwarded through a socket by a project",
      `[targets.g]\nssh_options = ["RemoteForward=/tmp/fwd.sock \${SSH_AUTH_SOCK}"]\n`,
      /ssh_options\[0\] sets RemoteForward, which a project.s configuration may not do/,
    ],
    [
      "a HostName a user's ProxyCommand would hand to a shell",
      `[targets.g]\nssh_options = ["-o", "HostName=$(id>/tmp/x)"]\n`,
      /ssh_options\[1\] sets HostName, which a project.s configuration may not do/,
    ],
    [
      "cryptography weakened by a project",
      `[targets.g]\nssh_options = ["-o", "Ciphers=+3des-cbc"]\n`,
      /ssh_options\[1\] sets Ciphers, which a project.s configuration may not do/,
    ],
    [
      "host keys trusted blindly by a project",
      `[targets.g]\naccept_new_host_keys = true\n`,
      /targets\.g\.accept_new_host_keys may be set only in your own configuration \(~\/\.config\/pyferry\/config\.toml\): which host keys to trust is not a project.s to decide\.$/,
    ],
    [
      "a project's own known_hosts",
      `[targets.g]\nknown_hosts_file = "/dev/null"\n`,
      /targets\.g\.known_hosts_file may be set only in your own configuration/,
    ],
    ["empty string", `[targets.g]\npython = ""\n`, /targets\.g\.python must not be empty/],
    [
      "control character",
      `[targets.g]\nroot = "/a\\nb"\n`,
      /targets\.g\.root must not contain control characters/,
    ],
    [
      "bad address",
      `[targets.g]\naddress = "-oProxyCommand=x"\n`,
      /targets\.g\.address "-oProxyCommand=x" is not a valid SSH destination \(it starts with "-"/,
    ],
    [
      "address and port disagree",
      `[targets.g]\naddress = "h:2222"\nport = 22\n`,
      /gives port 2222 but targets\.g\.port gives 22/,
    ],
    ["bad target name", `[targets."-x"]\naddress = "h"\n`, /targets\.-x has an unusable name/],
    ["~user", `[targets.g]\nidentity_file = "~bob/key"\n`, /does not expand/],
  ];
  for (const [name, toml, pattern] of cases) {
    test(name, () => {
      const m = machine();
      write(m.paths.local, toml);
      const message = throwsUser(() => loadConfig(m.opts()), pattern);
      assert.ok(message.startsWith(`${m.paths.local}: `), "the message starts with the file");
    });
  }

  test("a user's own file is checked too: accept_new_host_keys must be a boolean", () => {
    const m = machine();
    write(m.paths.user, `[targets.g]\naccept_new_host_keys = "yes"\n`);
    throwsUser(() => loadConfig(m.opts()), /accept_new_host_keys must be a boolean/);
  });

  test("malformed TOML names the file and the line", () => {
    const m = machine();
    write(m.paths.user, `default_target = "a"\n[targets.g\naddress = "h"\n`);
    throwsUser(
      () => loadConfig(m.opts()),
      /config\.toml is not valid TOML at line 2, column \d+: /,
    );
  });

  test("keys in pyproject.toml are named with their tool.pyferry prefix", () => {
    const m = machine();
    write(m.paths.pyproject, `[tool.pyferry.targets.g]\nport = true\n`);
    throwsUser(
      () => loadConfig(m.opts()),
      /pyproject\.toml: tool\.pyferry\.targets\.g\.port must be an integer/,
    );
    write(m.paths.pyproject, `[tool]\npyferry = 1\n`);
    throwsUser(() => loadConfig(m.opts()), /pyproject\.toml: tool\.pyferry must be a table/);
  });

  test("a project's files may not set ssh options that run commands here; the user's may", () => {
    const m = machine();
    const toml = `[targets.g]\nssh_options = ["ServerAliveInterval=30", "ProxyCommand nc %h %p"]\n`;
    write(m.paths.local, toml);
    throwsUser(
      () => loadConfig(m.opts()),
      /ssh_options\[1\] sets ProxyCommand, which a project's configuration may not do/,
    );
    rmSync(m.paths.local);
    write(m.paths.user, toml);
    const c = loadConfig(m.opts());
    assert.deepEqual(resolveTarget(c, "g").sshOptions, [
      "ServerAliveInterval=30",
      "ProxyCommand nc %h %p",
    ]);
  });

  test('ssh_options also takes ssh\'s own spelling, ["-o", "Key=Value"]', () => {
    const m = machine();
    write(
      m.paths.local,
      `[targets.g]\nssh_options = ["-o", "ConnectTimeout=5", "ServerAliveInterval=30"]\n`,
    );
    assert.deepEqual(resolveTarget(loadConfig(m.opts()), "g").sshOptions, [
      "ConnectTimeout=5",
      "ServerAliveInterval=30",
    ]);
  });

  test("an unreadable configuration file is an error, not skipped", () => {
    const m = machine();
    mkdirSync(m.paths.local); // a folder where the file should be
    throwsUser(
      () => loadConfig(m.opts()),
      /Cannot read the configuration file .*pyferry\.toml \(it is a folder\)/,
    );
  });
});

describe("resolveTarget and destinations", () => {
  const empty: Config = { targets: new Map(), files: [], searched: [] };

  test("destination forms", () => {
    const cases: [string, { user?: string; host: string; port?: number; address: string }][] = [
      ["host", { host: "host", address: "host" }],
      ["gpu.example.com", { host: "gpu.example.com", address: "gpu.example.com" }],
      ["host:2222", { host: "host", port: 2222, address: "host" }],
      [
        "ubuntu@192.168.70.145",
        { user: "ubuntu", host: "192.168.70.145", address: "ubuntu@192.168.70.145" },
      ],
      ["ubuntu@host:22", { user: "ubuntu", host: "host", port: 22, address: "ubuntu@host" }],
      ["me@[::1]:2222", { user: "me", host: "::1", port: 2222, address: "me@::1" }],
      ["[fe80::1%eth0]", { host: "fe80::1%eth0", address: "fe80::1%eth0" }],
      ["::1", { host: "::1", address: "::1" }],
      [
        "first.last@corp@host",
        { user: "first.last@corp", host: "host", address: "first.last@corp@host" },
      ],
    ];
    for (const [spec, want] of cases) {
      assert.deepEqual(parseDestination(spec), want, spec);
    }
  });

  test("a plain word that is not a target goes to ssh as it is (an ~/.ssh/config alias)", () => {
    assert.deepEqual(resolveTarget(empty, "mybox"), {
      address: "mybox",
      host: "mybox",
      sshOptions: [],
      python: "bundled",
      acceptNewHostKeys: false,
    });
  });

  test("option injection and shell-special text are refused", () => {
    const bad: [string, RegExp][] = [
      ["-oProxyCommand=touch /tmp/pwned", /starts with "-", which ssh would read as an option/],
      ["me@-oProxyCommand=x", /the host name starts with "-"/],
      ["me@host name", /whitespace/],
      ["host\n", /control character/],
      ["me@host:0", /the port must be a number from 1 to 65535, not "0"/],
      ["me@host:99999", /the port must be a number/],
      ["me@host:ssh", /the port must be a number/],
      ["@host", /the user name before @ is empty/],
      ["$(id)@host", /the user name contains "\$"/],
      ["me@ho;st", /the host name contains ";"/],
      ["me@[::1", /has no matching/],
      ["me@[host]:22", /only an IPv6 address/],
      ["host:2:3", /"\[addr\]:port"/],
      ["", /it is empty/],
    ];
    for (const [spec, pattern] of bad) {
      throwsUser(() => resolveTarget(empty, spec), pattern);
    }
  });

  test("the source of a bad default target is named", () => {
    const c = withFlags(empty, { target: "-oProxyCommand=x" });
    throwsUser(
      () => resolveTarget(c),
      /^The target "-oProxyCommand=x" from flag --on is not a valid SSH destination/,
    );
  });

  test("no target anywhere", () => {
    throwsUser(() => resolveTarget(empty), /No target was given; pass --on TARGET/);
  });

  test("a named target without an address is reached by its name; an address port is a port", () => {
    const m = machine();
    write(
      m.paths.local,
      `[targets.alias]\npython = "/usr/bin/python3"\n[targets.b]\naddress = "me@[::1]:2201"\n`,
    );
    write(m.paths.user, `[targets.alias]\naccept_new_host_keys = true\n`);
    const c = loadConfig(m.opts());
    const a = resolveTarget(c, "alias");
    assert.equal(a.address, "alias");
    assert.equal(a.python, "/usr/bin/python3");
    assert.equal(a.acceptNewHostKeys, true);
    const b = resolveTarget(c, "b");
    assert.deepEqual([b.address, b.host, b.user, b.port], ["me@::1", "::1", "me", 2201]);
    assert.deepEqual(row(c, "targets.b.port"), { value: 2201, source: m.paths.local });
  });
});

describe("pyferry config show", () => {
  function cliMachine() {
    const m = machine();
    const xdg = join(m.base, "xdg");
    write(join(xdg, "pyferry", "config.toml"), `[targets.gpu1]\naddress = "ubuntu@10.0.0.5"\n`);
    write(m.paths.local, `default_target = "gpu1"\n[targets.gpu1]\nroot = "/scratch/ferry"\n`);
    const env = {
      HOME: m.paths.home,
      XDG_CONFIG_HOME: xdg,
      PYFERRY_TARGET: undefined,
      PYFERRY_CONFIG: undefined,
    };
    return { m, xdg, env };
  }

  test("--json lists every value with its source, and the files read", () => {
    const { m, xdg, env } = cliMachine();
    const r = pyferry(["config", "show", "--json"], { cwd: m.paths.project, env });
    assert.equal(r.status, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as {
      values: { key: string; value: unknown; source: string }[];
      files: string[];
    };
    const user = join(xdg, "pyferry", "config.toml");
    // /etc/pyferry.toml of the machine, if there is one, comes first; ours follow in order.
    assert.deepEqual(doc.files.slice(-2), [user, m.paths.local]);
    const get = (key: string) => doc.values.find((v) => v.key === key);
    assert.deepEqual(get("default_target"), {
      key: "default_target",
      value: "gpu1",
      source: m.paths.local,
    });
    assert.deepEqual(get("targets.gpu1.address"), {
      key: "targets.gpu1.address",
      value: "ubuntu@10.0.0.5",
      source: user,
    });
    assert.deepEqual(get("targets.gpu1.root"), {
      key: "targets.gpu1.root",
      value: "/scratch/ferry",
      source: m.paths.local,
    });
    assert.deepEqual(get("targets.gpu1.python"), {
      key: "targets.gpu1.python",
      value: "bundled",
      source: "default",
    });
  });

  test("the table for people, PYFERRY_TARGET, and errors as one sentence", () => {
    const { m, env } = cliMachine();
    const r = pyferry(["config", "show"], {
      cwd: m.paths.project,
      env: { ...env, PYFERRY_TARGET: "me@box" },
    });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /^KEY\s+VALUE\s+SOURCE$/m);
    assert.match(r.stdout, /^default_target\s+"me@box"\s+environment variable PYFERRY_TARGET$/m);
    assert.match(r.stdout, /^targets\.gpu1\.root\s+"\/scratch\/ferry"\s+.*pyferry\.toml$/m);
    assert.match(r.stdout, /Files read, in order:/);

    write(m.paths.local, `[targets.gpu1]\nport = "x"\n`);
    const bad = pyferry(["config", "show"], { cwd: m.paths.project, env });
    assert.equal(bad.status, 1);
    assert.match(
      bad.stderr,
      /error: .*pyferry\.toml: targets\.gpu1\.port must be an integer from 1 to 65535, not the string "x"\.\n$/,
    );
  });
});
