import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readScriptMetadata, writeScriptMetadata } from "../../../src/analyze/pep723.js";
import { UserError } from "../../../src/util/errors.js";

const lines = (...l: string[]): string => l.map((x) => `${x}\n`).join("");

describe("readScriptMetadata", () => {
  test("reads dependencies, requires-python, the other keys, and where the block is", () => {
    const block = lines(
      "# /// script",
      '# requires-python = ">=3.11"',
      "# dependencies = [",
      '#   "requests<3",',
      '#   "rich",',
      "# ]",
      "#",
      "# [tool.uv]",
      '# exclude-newer = "2024-01-01T00:00:00Z"',
      "# ///",
    );
    const source = `#!/usr/bin/env python3\n${block}import requests\n`;
    const meta = readScriptMetadata(source);
    assert.ok(meta);
    assert.deepEqual(meta.dependencies, ["requests<3", "rich"]);
    assert.equal(meta.requiresPython, ">=3.11");
    // smol-toml builds null-prototype tables; compare their plain JSON form.
    assert.deepEqual(JSON.parse(JSON.stringify(meta.toml.tool)), {
      uv: { "exclude-newer": "2024-01-01T00:00:00Z" },
    });
    assert.equal(meta.line, 2);
    assert.equal(source.slice(meta.start, meta.end), block);
  });

  test("a script without a block, or with an empty one, has no metadata", () => {
    assert.equal(readScriptMetadata("import os\n"), undefined);
    assert.equal(readScriptMetadata(""), undefined);
    // The canonical regex needs at least one content line.
    assert.equal(readScriptMetadata(lines("# /// script", "# ///")), undefined);
  });

  test("dependencies and requires-python are optional", () => {
    const meta = readScriptMetadata(lines("# /// script", "#", "# ///"));
    assert.ok(meta);
    assert.deepEqual(meta.dependencies, []);
    assert.equal(meta.requiresPython, undefined);
    assert.equal("requiresPython" in meta, false);
  });

  test("an unclosed block is ignored", () => {
    assert.equal(
      readScriptMetadata(lines("# /// script", '# dependencies = ["a"]', "x = 1")),
      undefined,
    );
    // A non-comment line ends the run before the closing line could be reached.
    const broken = lines("# /// script", '# dependencies = ["a"]', "#bad", "# ///");
    assert.equal(readScriptMetadata(broken), undefined);
  });

  test("opening and closing lines must be exact", () => {
    const body = ['# dependencies = ["a"]', "# ///"];
    for (const opener of [
      "#/// script",
      "# /// script ",
      "  # /// script",
      "# ///  script",
      "##/// script",
    ]) {
      assert.equal(readScriptMetadata(lines(opener, ...body)), undefined, opener);
    }
    // "# /// " with a trailing space is a content line, not a closing one.
    assert.equal(
      readScriptMetadata(lines("# /// script", '# dependencies = ["a"]', "# /// ")),
      undefined,
    );
    assert.ok(readScriptMetadata(lines("# /// script", ...body)));
  });

  test("the last '# ///' of the comment run closes the block", () => {
    // Stopping at the first "# ///" would leave an unterminated TOML string.
    const source = lines(
      "# /// script",
      '# dependencies = ["a"]',
      '# note = """',
      "# ///",
      '# """',
      "# ///",
      "import a",
    );
    const meta = readScriptMetadata(source);
    assert.ok(meta);
    assert.equal(meta.toml.note, "///\n");
    assert.equal(source.slice(meta.end), "import a\n");
  });

  test("a '# ///' followed by code closes the block even when another '# ///' comes later", () => {
    const source = lines("# /// script", '# dependencies = ["a"]', "# ///", "import a", "# ///");
    const meta = readScriptMetadata(source);
    assert.ok(meta);
    assert.deepEqual(meta.dependencies, ["a"]);
    assert.equal(source.slice(meta.end), "import a\n# ///\n");
  });

  test("comment lines after the closing line stay outside the block when no '# ///' follows", () => {
    const source = lines("# /// script", '# dependencies = ["a"]', "# ///", "# a comment", "x = 1");
    const meta = readScriptMetadata(source);
    assert.ok(meta);
    assert.equal(source.slice(meta.end), "# a comment\nx = 1\n");
  });

  test("the closing line may end the file without a newline", () => {
    const source = '# /// script\n# dependencies = ["a"]\n# ///';
    const meta = readScriptMetadata(source);
    assert.ok(meta);
    assert.equal(meta.end, source.length);
  });

  test("blocks of other types are skipped, including a script opener inside one", () => {
    const source = lines(
      "# /// pyproject",
      "# /// script",
      '# dependencies = ["inner"]',
      "# ///",
      "",
      "# /// script",
      '# dependencies = ["outer"]',
      "# ///",
    );
    const meta = readScriptMetadata(source);
    assert.ok(meta);
    assert.deepEqual(meta.dependencies, ["outer"]);
    assert.equal(meta.line, 6);
    assert.equal(readScriptMetadata(lines("# /// other-type", "# x = [", "# ///")), undefined);
  });

  test("reads CRLF files", () => {
    const source =
      '# /// script\r\n# requires-python = ">=3.9"\r\n# dependencies = ["a"]\r\n# ///\r\nx = 1\r\n';
    const meta = readScriptMetadata(source);
    assert.ok(meta);
    assert.deepEqual(meta.dependencies, ["a"]);
    assert.equal(source.slice(meta.end), "x = 1\r\n");
  });

  test("two script blocks are an error naming both lines", () => {
    const block = lines("# /// script", '# dependencies = ["a"]', "# ///");
    assert.throws(
      () => readScriptMetadata(`${block}x = 1\n${block}`),
      (err: unknown) =>
        err instanceof UserError &&
        err.message ===
          "The script has two '# /// script' metadata blocks (lines 1 and 5); keep one.",
    );
  });

  test("invalid TOML is an error naming the file line", () => {
    const source = lines(
      "import os",
      "# /// script",
      '# requires-python = ">=3.9"',
      "# dependencies = [a",
      "# ///",
    );
    assert.throws(
      () => readScriptMetadata(source),
      (err: unknown) =>
        err instanceof UserError && /is not valid TOML \(line 4: /.test(err.message),
    );
  });

  test("dependencies must be a list of strings and requires-python a string", () => {
    for (const bad of ['dependencies = "a"', "dependencies = [1]", 'dependencies = [["a"]]']) {
      assert.throws(
        () => readScriptMetadata(lines("# /// script", `# ${bad}`, "# ///")),
        /'dependencies' that is not a list of strings/,
        bad,
      );
    }
    assert.throws(
      () => readScriptMetadata(lines("# /// script", "# requires-python = 3.9", "# ///")),
      (err: unknown) =>
        err instanceof UserError && /'requires-python' that is not a string/.test(err.message),
    );
  });
});

describe("writeScriptMetadata", () => {
  test("replaces dependencies in an existing block, one per line, keeping other keys", () => {
    const source = lines(
      "#!/usr/bin/env python3",
      "# /// script",
      '# requires-python = ">=3.10"',
      '# dependencies = ["numpy"]',
      "# [tool.uv]",
      '# exclude-newer = "2024-01-01T00:00:00Z"',
      "# ///",
      "import numpy, requests",
    );
    const out = writeScriptMetadata(source, { dependencies: ["numpy", "requests>=2"] });
    assert.equal(
      out,
      lines(
        "#!/usr/bin/env python3",
        "# /// script",
        '# requires-python = ">=3.10"',
        "# dependencies = [",
        '#     "numpy",',
        '#     "requests>=2",',
        "# ]",
        "#",
        "# [tool.uv]",
        '# exclude-newer = "2024-01-01T00:00:00Z"',
        "# ///",
        "import numpy, requests",
      ),
    );
  });

  test("sets requires-python when given, keeps the existing one when not", () => {
    const source = lines(
      "# /// script",
      '# requires-python = ">=3.8"',
      "# dependencies = []",
      "# ///",
    );
    assert.equal(
      readScriptMetadata(writeScriptMetadata(source, { dependencies: ["a"] }))?.requiresPython,
      ">=3.8",
    );
    const updated = writeScriptMetadata(source, { requiresPython: ">=3.12", dependencies: [] });
    assert.equal(readScriptMetadata(updated)?.requiresPython, ">=3.12");
  });

  test("leaves a block that already holds the data untouched, comments included", () => {
    const source = lines("# /// script", '# dependencies = ["a"]  # why a', "# ///", "import a");
    assert.equal(writeScriptMetadata(source, { dependencies: ["a"] }), source);
  });

  test("keeps integers, floats and dates as they were", () => {
    const source = lines(
      "# /// script",
      '# dependencies = ["a"]',
      "# n = 1",
      "# f = 1.0",
      "# d = 2024-01-02",
      "# ///",
    );
    const out = writeScriptMetadata(source, { dependencies: ["b"] });
    assert.match(out, /^# n = 1$/m);
    assert.match(out, /^# f = 1\.0$/m);
    assert.match(out, /^# d = 2024-01-02$/m);
  });

  test("inserts a new block after the shebang and encoding lines, before the docstring", () => {
    const source = lines(
      "#!/usr/bin/env python3",
      "# -*- coding: utf-8 -*-",
      '"""Doc."""',
      "import a",
    );
    assert.equal(
      writeScriptMetadata(source, { requiresPython: ">=3.10", dependencies: ["a"] }),
      lines(
        "#!/usr/bin/env python3",
        "# -*- coding: utf-8 -*-",
        "# /// script",
        '# requires-python = ">=3.10"',
        "# dependencies = [",
        '#     "a",',
        "# ]",
        "# ///",
        "",
        '"""Doc."""',
        "import a",
      ),
    );
  });

  test("a new block goes first when there is no shebang, without a second blank line", () => {
    assert.equal(
      writeScriptMetadata("\nimport a\n", { dependencies: [] }),
      "# /// script\n# dependencies = []\n# ///\n\nimport a\n",
    );
    assert.equal(
      writeScriptMetadata("", { dependencies: [] }),
      "# /// script\n# dependencies = []\n# ///\n",
    );
    // An encoding line on line 2 only counts under a comment; here line 1 is code.
    assert.match(
      writeScriptMetadata("x = 1\n# coding: latin-1\n", { dependencies: [] }),
      /^# \/\/\/ script\n/,
    );
    assert.match(
      writeScriptMetadata("# coding: latin-1\nx = 1\n", { dependencies: [] }),
      /^# coding: latin-1\n# \/\/\/ script\n/,
    );
  });

  test("handles a shebang without a final newline and a byte order mark", () => {
    assert.equal(
      writeScriptMetadata("#!/usr/bin/python", { dependencies: [] }),
      "#!/usr/bin/python\n# /// script\n# dependencies = []\n# ///\n",
    );
    assert.equal(
      writeScriptMetadata("\uFEFFimport a\n", { dependencies: [] }),
      "\uFEFF# /// script\n# dependencies = []\n# ///\n\nimport a\n",
    );
  });

  test("keeps the file's CRLF newlines", () => {
    const source = "#!/usr/bin/env python3\r\nimport a\r\n";
    const out = writeScriptMetadata(source, { dependencies: ["a", "b"] });
    assert.equal(out.replaceAll("\r\n", "").includes("\n"), false);
    assert.deepEqual(readScriptMetadata(out)?.dependencies, ["a", "b"]);
    const again = writeScriptMetadata(out, { dependencies: ["c"] });
    assert.equal(again.replaceAll("\r\n", "").includes("\n"), false);
    assert.deepEqual(readScriptMetadata(again)?.dependencies, ["c"]);
  });

  test("round trip: what is written reads back, and writing twice changes nothing", () => {
    const sources = [
      "",
      "import a\n",
      '#!/usr/bin/env python3\n"""Doc."""\n',
      lines(
        "# /// script",
        '# dependencies = ["old"]',
        "# [tool.uv]",
        "# x = 1",
        "# ///",
        "import a",
      ),
    ];
    const updates = [
      { dependencies: [] },
      {
        dependencies: [
          "numpy>=1.2",
          'pywin32; sys_platform == "win32"',
          "pkg[extra] @ https://x/y.whl",
        ],
      },
      { requiresPython: ">=3.9,<4", dependencies: ['a "quoted" \\ name\x7f'] },
    ];
    for (const source of sources) {
      for (const update of updates) {
        const once = writeScriptMetadata(source, update);
        const meta = readScriptMetadata(once);
        assert.ok(meta);
        assert.deepEqual(meta.dependencies, update.dependencies);
        if (update.requiresPython) assert.equal(meta.requiresPython, update.requiresPython);
        assert.equal(writeScriptMetadata(once, update), once);
        // The code after the block is untouched.
        assert.ok(once.endsWith(source.slice(readScriptMetadata(source)?.end ?? source.length)));
      }
    }
  });
});
