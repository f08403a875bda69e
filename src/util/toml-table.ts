/** A TOML table as smol-toml parses it (also a JSON object). */
export type Table = Record<string, unknown>;

/** Whether a parsed value is a table: smol-toml's dates are Date objects, arrays are arrays. */
export const isTable = (v: unknown): v is Table =>
  typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Date);
