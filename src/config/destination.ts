/**
 * SSH destinations as people write them: "host", "user@host", "host:port", "user@host:port",
 * "user@[::1]:2222", a bare IPv6 address, or an ~/.ssh/config alias (a plain word ssh resolves).
 * Whatever is accepted here reaches ssh's command line and, through %h and %r, possibly a
 * ProxyCommand run by a shell; so option-like and shell-special text is refused up front.
 */
import { UserError } from "../util/errors.js";
import { q } from "./types.js";

export interface Destination {
  user?: string;
  /** Without brackets for IPv6. */
  host: string;
  port?: number;
  /** What ssh is given: "user@host" or "host". */
  address: string;
}

/** IPv6, optionally with a zone ("fe80::1%eth0"). */
const IPV6 = /^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(%[A-Za-z0-9_.-]+)?$/;
// Characters a shell gives meaning to, refused in user names as OpenSSH itself does since 9.6.
const USER_BAD = /[\s'"`$\\;&<>|(){}*?!#~[\]]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what it finds
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/**
 * Parse a destination, or throw a UserError that starts with `what` (for instance
 * `The target "x" from flag --on`) and says what is wrong with it.
 */
export function parseDestination(text: string, what: string = q(text)): Destination {
  const fail = (why: string): never => {
    throw new UserError(`${what} is not a valid SSH destination (${why}).`);
  };
  if (text === "") fail("it is empty");
  if (text.startsWith("-")) fail('it starts with "-", which ssh would read as an option');
  if (CONTROL.test(text)) fail("it contains a control character");
  if (/\s/.test(text)) fail("it contains whitespace");

  // The user name ends at the last "@", as ssh reads it ("first.last@corp@host").
  const at = text.lastIndexOf("@");
  const user = at >= 0 ? text.slice(0, at) : undefined;
  const rest = at >= 0 ? text.slice(at + 1) : text;
  if (user !== undefined) {
    if (user === "") fail("the user name before @ is empty");
    const bad = USER_BAD.exec(user);
    if (bad) fail(`the user name contains ${q(bad[0])}`);
  }

  let host: string;
  let portText: string | undefined;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) fail('"[" has no matching "]"');
    host = rest.slice(1, close);
    const after = rest.slice(close + 1);
    if (after !== "") {
      if (!after.startsWith(":")) fail(`unexpected ${q(after)} after "]"`);
      portText = after.slice(1);
    }
    if (!IPV6.test(host)) fail("only an IPv6 address goes between [ and ]");
  } else {
    const colons = rest.split(":").length - 1;
    if (colons === 1) {
      const colon = rest.indexOf(":");
      host = rest.slice(0, colon);
      portText = rest.slice(colon + 1);
    } else {
      host = rest;
      // Several colons: a bare IPv6 address, which cannot carry a port without brackets.
      if (colons > 1 && !IPV6.test(host))
        fail('write an IPv6 address with a port as "[addr]:port"');
    }
    if (colons <= 1) {
      if (host === "") fail("the host name is empty");
      if (host.startsWith("-")) fail('the host name starts with "-"');
      const bad = /[^A-Za-z0-9_.-]/.exec(host);
      if (bad) fail(`the host name contains ${q(bad[0])}`);
    }
  }

  const d: Destination = { host, address: user === undefined ? host : `${user}@${host}` };
  if (user !== undefined) d.user = user;
  if (portText !== undefined) {
    const port = parsePort(portText);
    if (port === undefined) fail(`the port must be a number from 1 to 65535, not ${q(portText)}`);
    d.port = port;
  }
  return d;
}

export function parsePort(text: string): number | undefined {
  if (!/^[0-9]{1,5}$/.test(text)) return undefined;
  const n = Number(text);
  return n >= 1 && n <= 65535 ? n : undefined;
}
