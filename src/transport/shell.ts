/** Quoting for POSIX sh: every value reaches the remote program as exactly one word. */

/** `value` as one sh word: single-quoted, with embedded single quotes spliced in as '\''. */
export function shQuote(value: string): string {
  if (value !== "" && /^[A-Za-z0-9_./:=@%+,-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/**
 * The command line that runs `script` under `sh -c` on the remote, with `args` as $1, $2...
 * ssh hands the remote user's login shell one string; single quotes read the same in sh,
 * bash, zsh, ksh and fish, so the script and its arguments arrive untouched.
 */
export function shCommand(script: string, args: readonly string[] = []): string {
  return ["sh", "-c", shQuote(script), "pyferry", ...args.map(shQuote)].join(" ");
}

/** Split a command line such as PYFERRY_SSH_COMMAND into words: quotes group, no expansion. */
export function splitCommandLine(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let quote: "'" | '"' | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i] as string;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === "\\" && quote === '"' && i + 1 < line.length) word += line[++i];
      else word += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === "\\" && i + 1 < line.length) {
      word += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
    } else {
      word += c;
      inWord = true;
    }
  }
  if (quote) throw new Error(`unbalanced ${quote} quote`);
  if (inWord) words.push(word);
  return words;
}
