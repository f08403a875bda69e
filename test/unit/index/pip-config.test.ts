import assert from "node:assert/strict";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, test } from "node:test";
import {
  DEFAULT_INDEX_URL,
  loadPipSettings,
  parseIni,
  withOverrides,
} from "../../../src/index/pip-config.js";
import { UserError } from "../../../src/util/errors.js";
import { tempDir } from "../../support/temp.js";

const root = tempDir("pyferry-pipconf-");
after(() => rmSync(root, { recursive: true, force: true }));
let counter = 0;

/** A fresh fake machine: home, XDG global dir, venv; returns paths and a base environment. */
function machine() {
  const base = join(root, `m${counter++}`);
  const paths = {
    base,
    global: join(base, "xdg", "pip", "pip.conf"),
    legacy: join(base, "home", ".pip", "pip.conf"),
    user: join(base, "home", ".config", "pip", "pip.conf"),
    site: join(base, "venv", "pip.conf"),
    envFile: join(base, "custom.conf"),
  };
  mkdirSync(join(base, "home"), { recursive: true });
  const env: NodeJS.ProcessEnv = { HOME: join(base, "home"), XDG_CONFIG_DIRS: join(base, "xdg") };
  return { paths, env };
}

function write(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text);
}

describe("parseIni", () => {
  test("reads configparser syntax: both delimiters, continuations, comments, DEFAULT", () => {
    const text = [
      "# comment",
      "; another comment",
      "[DEFAULT]",
      "timeout = 5",
      "[global]",
      "Index-URL: https://a.example/simple",
      "find-links =",
      "    /one",
      "",
      "  # comment inside a value",
      "    /two",
      "trusted-host = a.example  ",
      "[install]",
      "no-index=yes",
    ].join("\n");
    const ini = parseIni(text, "x.conf");
    assert.deepEqual([...ini.keys()], ["global", "install"]);
    const global = ini.get("global");
    assert.equal(global?.get("index-url"), "https://a.example/simple");
    assert.deepEqual(global?.get("find-links")?.split(/\s+/).filter(Boolean), ["/one", "/two"]);
    assert.equal(global?.get("trusted-host"), "a.example");
    assert.equal(global?.get("timeout"), "5");
    assert.equal(ini.get("install")?.get("no-index"), "yes");
    assert.equal(ini.get("install")?.get("timeout"), "5");
  });

  test("rejects lines it cannot read, naming the file and line", () => {
    assert.throws(() => parseIni("key = v\n", "/p/pip.conf"), /\/p\/pip\.conf line 1 .*section/);
    assert.throws(() => parseIni("[global]\njust words\n", "/p/pip.conf"), /line 2/);
  });
});

describe("loadPipSettings", () => {
  test("defaults when nothing is configured", () => {
    const { env } = machine();
    const s = loadPipSettings({ ...env, PIP_CONFIG_FILE: "/dev/null" }, root);
    assert.equal(s.indexUrl, DEFAULT_INDEX_URL);
    assert.deepEqual(s.extraIndexUrls, []);
    assert.deepEqual(s.findLinks, []);
    assert.equal(s.noIndex, false);
    assert.deepEqual(s.sources, {});
  });

  test("global < legacy user < XDG user < site (VIRTUAL_ENV) < PIP_CONFIG_FILE < PIP_*", () => {
    const { paths, env } = machine();
    write(
      paths.global,
      "[global]\nindex-url = https://global/simple\nfind-links = /g1 /g2\ntrusted-host = g\n",
    );
    write(paths.legacy, "[global]\nindex-url = https://legacy/simple\nno-index = on\n");
    write(paths.user, "[global]\nindex-url = https://user/simple\n");
    const s1 = loadPipSettings(env, root);
    assert.equal(s1.indexUrl, "https://user/simple");
    assert.equal(s1.sources["index-url"], paths.user);
    assert.deepEqual(s1.findLinks, ["/g1", "/g2"]);
    assert.equal(s1.sources["find-links"], paths.global);
    assert.equal(s1.noIndex, true);
    assert.equal(s1.sources["no-index"], paths.legacy);

    write(paths.site, "[global]\nindex-url = https://site/simple\n");
    const venv = { ...env, VIRTUAL_ENV: dirname(paths.site) };
    assert.equal(loadPipSettings(venv, root).indexUrl, "https://site/simple");

    write(paths.envFile, "[global]\nindex-url = https://envfile/simple\n");
    const withFile = { ...venv, PIP_CONFIG_FILE: paths.envFile };
    const s2 = loadPipSettings(withFile, root);
    assert.equal(s2.indexUrl, "https://envfile/simple");
    assert.equal(s2.sources["index-url"], paths.envFile);
    // pip does not read the per-user files when PIP_CONFIG_FILE names an existing file.
    assert.equal(s2.noIndex, false);
    assert.deepEqual(s2.trustedHosts, ["g"]);

    const s3 = loadPipSettings({ ...withFile, PIP_INDEX_URL: "https://env/simple" }, root);
    assert.equal(s3.indexUrl, "https://env/simple");
    assert.equal(s3.sources["index-url"], "PIP_INDEX_URL");
  });

  test("a PIP_CONFIG_FILE that does not exist leaves the user files in place", () => {
    const { paths, env } = machine();
    write(paths.user, "[global]\nextra-index-url = https://user/simple\n");
    const s = loadPipSettings({ ...env, PIP_CONFIG_FILE: join(paths.base, "missing.conf") }, root);
    assert.deepEqual(s.extraIndexUrls, ["https://user/simple"]);
  });

  test("XDG_CONFIG_HOME moves the user file", () => {
    const { paths, env } = machine();
    const xdgHome = join(paths.base, "xdg-home");
    write(join(xdgHome, "pip", "pip.conf"), "[global]\nindex-url = https://xdg-home/simple\n");
    write(paths.user, "[global]\nindex-url = https://dot-config/simple\n");
    const s = loadPipSettings({ ...env, XDG_CONFIG_HOME: xdgHome }, root);
    assert.equal(s.indexUrl, "https://xdg-home/simple");
  });

  test("PIP_CONFIG_FILE=/dev/null disables every file but not the environment", () => {
    const { paths, env } = machine();
    write(paths.global, "[global]\nindex-url = https://global/simple\n");
    write(paths.user, "[global]\nfind-links = /u\n");
    const s = loadPipSettings(
      { ...env, PIP_CONFIG_FILE: "/dev/null", PIP_EXTRA_INDEX_URL: "https://x/simple" },
      root,
    );
    assert.equal(s.indexUrl, DEFAULT_INDEX_URL);
    assert.deepEqual(s.findLinks, []);
    assert.deepEqual(s.extraIndexUrls, ["https://x/simple"]);
  });

  test("the command's section overrides [global] whatever file each comes from", () => {
    const { paths, env } = machine();
    write(
      paths.global,
      "[install]\nindex-url = https://global-install/simple\n[download]\nfind-links = /dl\n",
    );
    write(paths.user, "[global]\nindex-url = https://user-global/simple\nfind-links = /ug\n");
    const install = loadPipSettings(env, root);
    assert.equal(install.indexUrl, "https://global-install/simple");
    assert.deepEqual(install.findLinks, ["/ug"]);
    const download = loadPipSettings(env, root, "download");
    assert.equal(download.indexUrl, "https://user-global/simple");
    assert.deepEqual(download.findLinks, ["/dl"]);
  });

  test("environment variables: lists split on whitespace, booleans, aliases", () => {
    const { env } = machine();
    const s = loadPipSettings(
      {
        ...env,
        PIP_CONFIG_FILE: "/dev/null",
        PIP_FIND_LINKS: "/a  /b\n/c",
        PIP_EXTRA_INDEX_URL: "https://one/simple\n  https://two/simple",
        PIP_NO_INDEX: "1",
        PIP_TRUSTED_HOST: "one two:8080",
        PIP_DEFAULT_TIMEOUT: "2.5",
        PIP_CERT: "/etc/ca.pem",
      },
      root,
    );
    assert.deepEqual(s.findLinks, ["/a", "/b", "/c"]);
    assert.deepEqual(s.extraIndexUrls, ["https://one/simple", "https://two/simple"]);
    assert.equal(s.noIndex, true);
    assert.deepEqual(s.trustedHosts, ["one", "two:8080"]);
    assert.equal(s.timeoutSeconds, 2.5);
    assert.equal(s.cert, "/etc/ca.pem");
    assert.equal(s.sources.timeout, "PIP_DEFAULT_TIMEOUT");
  });

  test("booleans are parsed like pip's strtobool, and bad ones are reported", () => {
    const { env } = machine();
    const noIndex = (v: string) =>
      loadPipSettings({ ...env, PIP_CONFIG_FILE: "/dev/null", PIP_NO_INDEX: v }, root).noIndex;
    for (const v of ["true", "YES", "on", "1", "y", "t"]) assert.equal(noIndex(v), true, v);
    for (const v of ["false", "No", "off", "0", "n", "f"]) assert.equal(noIndex(v), false, v);
    assert.throws(
      () => noIndex("maybe"),
      (err: unknown) => {
        assert.ok(err instanceof UserError);
        assert.match(err.message, /"maybe" for no-index in PIP_NO_INDEX is not a boolean/);
        return true;
      },
    );
  });

  test("keys may use underscores and any case; pypi-url is index-url", () => {
    const { paths, env } = machine();
    write(
      paths.user,
      "[global]\nFind_Links = /x\nextra_index_url = https://e/simple\npypi-url = https://p/simple\n",
    );
    const s = loadPipSettings(env, root);
    assert.deepEqual(s.findLinks, ["/x"]);
    assert.deepEqual(s.extraIndexUrls, ["https://e/simple"]);
    assert.equal(s.indexUrl, "https://p/simple");
  });

  test("an empty value in a later file clears an earlier one", () => {
    const { paths, env } = machine();
    write(paths.global, "[global]\nfind-links = /g\n");
    write(paths.user, "[global]\nfind-links =\n");
    assert.deepEqual(loadPipSettings(env, root).findLinks, []);
  });

  test("relative and ~ paths are resolved; a local index path becomes a file URL", () => {
    const { paths, env } = machine();
    write(paths.user, "[global]\nfind-links = wheels ~/more https://h/links\nindex-url = ./idx\n");
    const s = loadPipSettings(env, "/work/dir");
    assert.deepEqual(s.findLinks, [
      "/work/dir/wheels",
      join(paths.base, "home", "more"),
      "https://h/links",
    ]);
    assert.equal(s.indexUrl, "file:///work/dir/idx");
  });
});

describe("withOverrides", () => {
  test("replaces index-url and no-index, adds to the lists, records the command line", () => {
    const { paths, env } = machine();
    write(paths.user, "[global]\nextra-index-url = https://e/simple\nfind-links = /f\n");
    const s = loadPipSettings(env, root);
    const o = withOverrides(
      s,
      {
        indexUrl: "https://cli/simple",
        extraIndexUrls: ["https://e/simple", "https://e2/simple"],
        findLinks: ["rel"],
        noIndex: true,
      },
      "/cwd",
    );
    assert.equal(o.indexUrl, "https://cli/simple");
    assert.deepEqual(o.extraIndexUrls, ["https://e/simple", "https://e2/simple"]);
    assert.deepEqual(o.findLinks, ["/f", "/cwd/rel"]);
    assert.equal(o.noIndex, true);
    assert.equal(o.sources["index-url"], "command line");
    assert.equal(o.sources["find-links"], "command line");
    // The input is left untouched.
    assert.deepEqual(s.findLinks, ["/f"]);
    assert.equal(s.sources["index-url"], undefined);
  });
});
