import assert from "node:assert/strict";
import { test } from "node:test";
import { isValidProjectName, normalizeName } from "../../../src/python/names.js";

test("normalizeName follows PEP 503", () => {
  // PEP 503: these all name the same project.
  for (const name of ["friendly-bard", "Friendly-Bard", "FRIENDLY-BARD", "friendly.bard"]) {
    assert.equal(normalizeName(name), "friendly-bard");
  }
  assert.equal(normalizeName("friendly_bard"), "friendly-bard");
  assert.equal(normalizeName("FrIeNdLy-._.-bArD"), "friendly-bard");
  assert.equal(normalizeName("zope.interface"), "zope-interface");
  assert.equal(normalizeName("a__b--c..d"), "a-b-c-d");
  assert.equal(normalizeName("A1"), "a1");
});

test("isValidProjectName follows PEP 508", () => {
  for (const ok of [
    "a",
    "A",
    "0",
    "requests",
    "zope.interface",
    "typing_extensions",
    "a-b",
    "a..b",
  ]) {
    assert.equal(isValidProjectName(ok), true, ok);
  }
  for (const bad of ["", "-a", "a-", "_a", "a_", ".a", "a.", "a b", "a/b", "é", "a+b", "a[b]"]) {
    assert.equal(isValidProjectName(bad), false, bad);
  }
});
