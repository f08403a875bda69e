/**
 * One status line on stderr for slow work, shown only on a TTY and only once the work has
 * taken longer than a moment; cleared when done so that it never mixes with real output.
 */
const DELAY_MS = 400;
const THROTTLE_MS = 80;

export interface Progress {
  update(message: string, done?: number, total?: number): void;
  done(): void;
}

export function progress(stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  if (!stream.isTTY || quiet) return { update() {}, done() {} };
  const started = Date.now();
  let last = 0;
  let shown = false;
  return {
    update(message, done, total) {
      const now = Date.now();
      if (now - started < DELAY_MS || now - last < THROTTLE_MS) return;
      last = now;
      shown = true;
      const count = done !== undefined && total ? ` ${done}/${total}` : "";
      // A terminal that does not know its width (a pty nobody sized) says 0 columns.
      const width = Math.max(20, (stream.columns || 80) - 1);
      stream.write(`\r\x1b[2K${`${message}${count}`.slice(0, width)}`);
    },
    done() {
      if (shown) stream.write("\r\x1b[2K");
      shown = false;
    },
  };
}
