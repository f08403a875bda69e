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
  /** The newest message not drawn yet: a stage named early shows once the moment is over. */
  let pending: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const draw = () => {
    timer = undefined;
    if (pending === undefined) return;
    last = Date.now();
    shown = true;
    // A terminal that does not know its width (a pty nobody sized) says 0 columns.
    const width = Math.max(20, (stream.columns || 80) - 1);
    stream.write(`\r\x1b[2K${pending.slice(0, width)}`);
    pending = undefined;
  };
  return {
    update(message, done, total) {
      pending = `${message}${done !== undefined && total ? ` ${done}/${total}` : ""}`;
      if (timer) return;
      const now = Date.now();
      const wait = Math.max(started + DELAY_MS - now, last + THROTTLE_MS - now);
      if (wait <= 0) return draw();
      // Unref'd: a status line never keeps the process alive.
      timer = setTimeout(draw, wait).unref();
    },
    done() {
      clearTimeout(timer);
      timer = undefined;
      pending = undefined;
      if (shown) stream.write("\r\x1b[2K");
      shown = false;
    },
  };
}
