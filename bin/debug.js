// Under --debug (or PYFERRY_DEBUG=1) stack traces name the TypeScript sources: source maps must
// be on before the bundle is loaded, so each entry point imports the bundle after this call.
export function sourceMapsIfDebugging() {
  if (process.argv.includes("--debug") || process.env.PYFERRY_DEBUG === "1") {
    process.setSourceMapsEnabled(true);
  }
}
