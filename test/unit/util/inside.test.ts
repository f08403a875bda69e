/** Containment of paths, compared as resolved paths rather than as strings. */
import assert from "node:assert/strict";
import { test } from "node:test";
import { isInside, isUnder } from "../../../src/util/inside.js";

test("a folder holds itself and what lies under it, isUnder leaves out the folder itself", () => {
  assert.equal(isInside("/srv/app", "/srv/app"), true);
  assert.equal(isUnder("/srv/app", "/srv/app"), false);
  for (const p of ["/srv/app/x", "/srv/app/a/b/c.py", "/srv/app/..data", "/srv/app/a/../b"]) {
    assert.equal(isInside("/srv/app", p), true, p);
    assert.equal(isUnder("/srv/app", p), true, p);
  }
});

test("siblings sharing a prefix, parents and escapes are outside", () => {
  for (const p of [
    "/srv/app2",
    "/srv/ap",
    "/srv",
    "/",
    "/srv/app/../other",
    "/srv/app/x/../../y",
  ]) {
    assert.equal(isInside("/srv/app", p), false, p);
    assert.equal(isUnder("/srv/app", p), false, p);
  }
});

test("a trailing slash or a relative spelling of the same folder changes nothing", () => {
  assert.equal(isInside("/srv/app/", "/srv/app/lib"), true);
  assert.equal(isUnder(process.cwd(), "lib/x.py"), true);
  assert.equal(isInside(process.cwd(), ".."), false);
});
