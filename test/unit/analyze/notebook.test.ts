import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { readNotebook } from "../../../src/analyze/notebook.js";
import { UserError } from "../../../src/util/errors.js";

interface Cell {
  cell_type: string;
  source: string | string[];
}

const code = (source: string | string[]): Cell => ({ cell_type: "code", source });
const markdown = (source: string): Cell => ({ cell_type: "markdown", source });

function notebook(cells: Cell[], metadata: Record<string, unknown> = {}): string {
  return JSON.stringify({ nbformat: 4, nbformat_minor: 5, metadata, cells });
}

/** The Python a single code cell becomes. */
const python = (source: string): string | undefined =>
  readNotebook(notebook([code(source)]), "nb.ipynb").cells[0]?.source;

/** The requirements a single code cell installs. */
const installs = (source: string): string[] =>
  readNotebook(notebook([code(source)]), "nb.ipynb").pipInstalls.flatMap((p) => p.requirements);

describe("readNotebook: cells", () => {
  test("keeps code cells with their position among all cells; sources may be lists", () => {
    const nb = readNotebook(
      notebook([markdown("# Title"), code(["import os\n", "import sys"]), code("x = 1")]),
      "nb.ipynb",
    );
    assert.deepEqual(nb.cells, [
      { index: 1, source: "import os\nimport sys" },
      { index: 2, source: "x = 1" },
    ]);
    assert.deepEqual(nb.pipInstalls, []);
  });

  test("reads nbformat 3 worksheets", () => {
    const v3 = JSON.stringify({
      nbformat: 3,
      metadata: { name: "" },
      worksheets: [
        {
          cells: [
            {
              cell_type: "code",
              input: ["import numpy\n", "!pip install numpy"],
              language: "python",
            },
          ],
        },
        {
          cells: [
            { cell_type: "heading", source: "x" },
            { cell_type: "code", input: "import scipy" },
          ],
        },
      ],
    });
    const nb = readNotebook(v3, "old.ipynb");
    assert.deepEqual(nb.cells, [
      { index: 0, source: "import numpy\n" },
      { index: 2, source: "import scipy" },
    ]);
    assert.deepEqual(nb.pipInstalls, [{ cell: 0, requirements: ["numpy"] }]);
  });

  test("the kernel's language is reported, and a non-Python notebook is an error", () => {
    const py = { kernelspec: { name: "python3", language: "python", display_name: "Python 3" } };
    assert.equal(readNotebook(notebook([], py), "nb.ipynb").language, "python");
    assert.equal(
      readNotebook(notebook([], { language_info: { name: "python" } }), "nb.ipynb").language,
      "python",
    );
    assert.equal(readNotebook(notebook([]), "nb.ipynb").language, undefined);
    assert.throws(
      () =>
        readNotebook(
          notebook([code("x <- 1")], { kernelspec: { language: "R" } }),
          "analysis.ipynb",
        ),
      (err: unknown) =>
        err instanceof UserError &&
        err.message === "analysis.ipynb is a notebook for R, not Python.",
    );
    assert.throws(
      () => readNotebook(notebook([], { language_info: { name: "julia" } }), "j.ipynb"),
      /j\.ipynb is a notebook for julia, not Python\./,
    );
  });

  test("malformed JSON or a document that is not a notebook is an error naming the file", () => {
    for (const text of ["{", "", "[1, 2]", '{"metadata": {}}', "null", '"cells"']) {
      assert.throws(
        () => readNotebook(text, "broken.ipynb"),
        (err: unknown) =>
          err instanceof UserError && err.message.startsWith("broken.ipynb is not a"),
        text,
      );
    }
  });
});

describe("readNotebook: IPython syntax", () => {
  test("line magics, shell escapes and help become blank lines", () => {
    const source = [
      "%matplotlib inline",
      "import numpy as np",
      "!ls -la",
      "!!echo hi",
      "np.array?",
      "np??",
      "?np",
      "%timeit?",
      "x = !ls",
      "a, b = %sx pwd",
      "y = %timeit f()",
      "/print 1 2",
      "print(np)",
    ].join("\n");
    assert.equal(python(source), `\nimport numpy as np${"\n".repeat(11)}print(np)`);
  });

  test("Python that only looks like IPython is kept", () => {
    const source = [
      'msg = ("%s items"',
      "       % count)",
      "s = '''",
      "!important",
      "%d",
      "'''",
      "ok = a != b",
      "eq = x == y  # really?",
      "t = 'a' \\",
      "    % 3",
      'u = "x\\',
      '!y"',
      'fmt = "%s" % name',
    ].join("\n");
    assert.equal(python(source), source);
  });

  test("an indented IPython line that is a block's only statement becomes pass", () => {
    const source = [
      "if missing:",
      "    !pip install numpy",
      "    %pip install scipy",
      "x = 1",
    ].join("\n");
    assert.equal(python(source), ["if missing:", "    pass", "", "x = 1"].join("\n"));
    const after = ["for i in range(3):", "    f(i)", "    %time g(i)"].join("\n");
    assert.equal(python(after), ["for i in range(3):", "    f(i)", ""].join("\n"));
  });

  test("a backslash continues an IPython line", () => {
    const source = ["%pip install numpy \\", "    pandas", "import numpy"].join("\n");
    assert.equal(python(source), "\n\nimport numpy");
    assert.deepEqual(installs(source), ["numpy", "pandas"]);
  });

  test("cells with a non-Python cell magic are skipped, timing and capture keep their body", () => {
    const nb = readNotebook(
      notebook([
        code("%%bash\npip install numpy\necho hi"),
        code("%%writefile helper.py\nimport secret_module"),
        code("%%html\n<b>x</b>"),
        code("\n%%time\nimport pandas\n!ls"),
        code("%%timeit -n 3\nsum(range(9))"),
        code("%%capture\n%pip install requests\nimport requests"),
      ]),
      "nb.ipynb",
    );
    assert.deepEqual(nb.cells, [
      { index: 3, source: "\n\nimport pandas\n" },
      { index: 4, source: "\nsum(range(9))" },
      { index: 5, source: "\n\nimport requests" },
    ]);
    assert.deepEqual(nb.pipInstalls, [{ cell: 5, requirements: ["requests"] }]);
  });

  test("CRLF line ends do not change line numbers", () => {
    assert.equal(python("%load_ext autoreload\r\nimport os\r\n"), "\nimport os\n");
  });
});

describe("readNotebook: declared installs", () => {
  test("pip in its usual spellings", () => {
    assert.deepEqual(installs("%pip install numpy"), ["numpy"]);
    assert.deepEqual(installs("!pip install numpy>=1.2"), ["numpy>=1.2"]);
    assert.deepEqual(installs("!pip3 install requests"), ["requests"]);
    assert.deepEqual(installs("!python -m pip install rich"), ["rich"]);
    assert.deepEqual(installs("!python3.11 -m pip install rich"), ["rich"]);
    assert.deepEqual(installs("!{sys.executable} -m pip install tqdm"), ["tqdm"]);
    assert.deepEqual(installs("!uv pip install httpx"), ["httpx"]);
    assert.deepEqual(installs("  !pip install click"), ["click"]);
  });

  test("options, files, paths and expansions are skipped; quotes are removed", () => {
    assert.deepEqual(
      installs(
        `%pip install -q -U --upgrade --quiet "pandas<3" 'scikit-learn[alldeps]>=1' -r requirements.txt -e ./pkg --index-url https://x/simple matplotlib`,
      ),
      ["pandas<3", "scikit-learn[alldeps]>=1", "matplotlib"],
    );
    assert.deepEqual(
      installs(
        "!pip install . ./local dist/pkg-1.0-py3-none-any.whl git+https://github.com/a/b $PKG {pkg} six",
      ),
      ["six"],
    );
    assert.deepEqual(installs('!pip install "mylib @ https://example.com/mylib-1.0.tar.gz"'), [
      "mylib @ https://example.com/mylib-1.0.tar.gz",
    ]);
    assert.deepEqual(installs("!pip install --target=/tmp/x --no-deps attrs"), ["attrs"]);
  });

  test("shell operators and redirections end a requirement list", () => {
    assert.deepEqual(installs("!pip install numpy > /dev/null 2>&1"), ["numpy"]);
    assert.deepEqual(installs("!pip install a && pip install b; echo done"), ["a", "b"]);
    assert.deepEqual(installs("!cd x && python -m pip install c"), ["c"]);
  });

  test("conda installs, with conda's version syntax turned into PEP 508", () => {
    assert.deepEqual(
      installs("%conda install -y -c conda-forge numpy scipy=1.11 conda-forge::pandas"),
      ["numpy", "scipy==1.11.*", "pandas"],
    );
    assert.deepEqual(installs("!mamba install xarray=2024.1=pyhd8ed1ab_0 'dask>=2024'"), [
      "xarray==2024.1",
      "dask>=2024",
    ]);
  });

  test("other commands and other pip subcommands declare nothing", () => {
    assert.deepEqual(
      installs("!pip uninstall -y numpy\n!pip list\n%run setup.py install\n!apt install x"),
      [],
    );
  });

  test("each cell's installs are reported with its index", () => {
    const nb = readNotebook(
      notebook([
        code("!pip install a"),
        markdown("text"),
        code("import a"),
        code("%pip install b c"),
      ]),
      "nb.ipynb",
    );
    assert.deepEqual(nb.pipInstalls, [
      { cell: 0, requirements: ["a"] },
      { cell: 3, requirements: ["b", "c"] },
    ]);
  });
});
