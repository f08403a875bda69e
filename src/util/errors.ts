/**
 * An error meant for the person at the terminal: its message is one complete sentence,
 * printed without a stack trace (unless --debug). `exitCode` is the process exit status.
 */
export class UserError extends Error {
  readonly exitCode: number;
  constructor(message: string, exitCode = 1) {
    super(message);
    this.name = "UserError";
    this.exitCode = exitCode;
  }
}
