// Builds pyferry's optional native addon (native/: libdeflate and Node's OpenSSL, to unpack
// wheels faster). npm runs it as the package's `install` script, in a checkout (npm ci) as in
// an install from the registry or a tarball; `npm run build:native` runs it again. Without the
// addon pyferry unpacks in JavaScript with Node's zlib, so a build that cannot be done says why
// in one line and the install goes on. It needs libdeflate's
// headers (Debian: libdeflate-dev), a C compiler, and Node's headers for node-gyp, which comes
// with npm.
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const gyp = process.env.npm_config_node_gyp;
const skipped = (why, advice) => {
  console.error(
    `pyferry: native unpacking not built (${why}); wheels are unpacked with zlib, more slowly. ${advice}`,
  );
};
const RETRY = "Then run `npm run build:native` to build it.";
if (!gyp) {
  skipped(
    "this script is run by npm, which provides node-gyp",
    `Run it as \`npm run build:native\`.`,
  );
} else {
  // node-gyp fetches Node's headers when npm's `nodedir` names none: a network that swallows
  // the request must not hold the install up for ever.
  const r = spawnSync(process.execPath, [gyp, "rebuild", "--directory", join(root, "native")], {
    encoding: "utf8",
    timeout: 300_000,
    killSignal: "SIGKILL",
  });
  if (r.error || r.status !== 0) {
    const log = `${r.stdout ?? ""}\n${r.stderr ?? ""}`;
    if (/libdeflate\.h/.test(log)) {
      skipped(
        "libdeflate's headers are missing",
        `Install libdeflate-dev (Debian's name). ${RETRY}`,
      );
    } else if (
      /gyp (WARN|ERR!) install|node-gyp.* headers|ENOTFOUND|ETIMEDOUT|ECONNREFUSED/.test(log)
    ) {
      skipped(
        "node-gyp could not get Node's headers",
        `Set npm's nodedir to a folder holding Node's include/node, or let node-gyp download them. ${RETRY}`,
      );
    } else {
      const lines = log.split("\n").filter((l) => /error/i.test(l) && !/^gyp (ERR|info)/.test(l));
      const why = r.error
        ? r.error.message
        : (lines[0]?.trim() ?? `node-gyp exited with ${r.status}`);
      skipped(why, `It needs a C compiler and libdeflate-dev. ${RETRY}`);
    }
  }
}
