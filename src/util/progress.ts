/**
 * One status line on stderr for slow work, shown only on a TTY and only once the work has
 * taken longer than a moment; cleared when done so that it never mixes with real output.
 */
const DELAY_MS = 400;
const THROTTLE_MS = 80;

/** How long work runs before its status line shows: PYFERRY_STATUS_DELAY_MS, else 400 ms. */
function delayMs(): number {
  const asked = Number(process.env.PYFERRY_STATUS_DELAY_MS);
  return process.env.PYFERRY_STATUS_DELAY_MS?.trim() && asked >= 0 ? asked : DELAY_MS;
}

export interface Progress {
  update(message: string, done?: number, total?: number): void;
  done(): void;
}

/**
 * The stages of slow work as lines of their own on stderr, for -v: each new message once,
 * without counts, on a terminal or not.
 */
export function stageLines(stream: NodeJS.WritableStream = process.stderr): Progress {
  let last: string | undefined;
  return {
    update(message) {
      if (message === last) return;
      last = message;
      stream.write(`${message}\n`);
    },
    done() {},
  };
}

/** Status lines on the screen now: each takes itself off for a line written meanwhile. */
const onScreen = new Set<{ clear(): void; redraw(): void }>();

/**
 * Write a line of its own (a warning) while a status line may be showing: the status line is
 * cleared first, so that the two never share a line, and drawn again after.
 */
export function besideStatus(write: () => void): void {
  const shown = [...onScreen];
  for (const s of shown) s.clear();
  write();
  for (const s of shown) s.redraw();
}

export function progress(stream: NodeJS.WriteStream = process.stderr, quiet = false): Progress {
  if (!stream.isTTY || quiet) return { update() {}, done() {} };
  const started = Date.now();
  const delay = delayMs();
  let last = 0;
  /** What the line shows now. */
  let text = "";
  const screen = {
    clear: () => stream.write("\r\x1b[2K"),
    redraw: () => stream.write(text),
  };
  /** The newest message not drawn yet: a stage named early shows once the moment is over. */
  let pending: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  const draw = () => {
    timer = undefined;
    if (pending === undefined) return;
    last = Date.now();
    // A terminal that does not know its width (a pty nobody sized) says 0 columns.
    const width = Math.max(20, (stream.columns || 80) - 1);
    text = pending.slice(0, width);
    stream.write(`\r\x1b[2K${text}`);
    onScreen.add(screen);
    pending = undefined;
  };
  return {
    update(message, done, total) {
      pending = `${message}${done !== undefined && total ? ` ${done}/${total}` : ""}`;
      if (timer) return;
      const now = Date.now();
      const wait = Math.max(started + delay - now, last + THROTTLE_MS - now);
      if (wait <= 0) return draw();
      // Unref'd: a status line never keeps the process alive.
      timer = setTimeout(draw, wait).unref();
    },
    done() {
      clearTimeout(timer);
      timer = undefined;
      pending = undefined;
      if (onScreen.delete(screen)) stream.write("\r\x1b[2K");
    },
  };
}
