/** How an install places the cache's files into an environment, and the default's source. */
import { UserError } from "../util/errors.js";

export const LINK_MODES = ["auto", "clone", "hardlink", "copy"] as const;

/** "auto": clone, else hardlink, else copy. */
export type LinkMode = (typeof LINK_MODES)[number];

/** The link mode when none is asked for: PYFERRY_LINK_MODE, else auto. */
export function defaultLinkMode(): LinkMode {
  const mode = process.env.PYFERRY_LINK_MODE || "auto";
  if (!(LINK_MODES as readonly string[]).includes(mode)) {
    const list = `${LINK_MODES.slice(0, -1).join(", ")} or ${LINK_MODES.at(-1)}`;
    // A usage error, as a bad --link-mode is.
    throw new UserError(`PYFERRY_LINK_MODE is "${mode}", but it can only be ${list}.`, 2);
  }
  return mode as LinkMode;
}
