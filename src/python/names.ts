/** Project names as PEP 503 and PEP 508 define them. */

// PEP 508: ASCII letters and digits, with `.`, `-`, `_` allowed only between them.
const PROJECT_NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** PEP 503 normal form: lowercase, every run of `-`, `_` and `.` becomes one `-`. */
export function normalizeName(name: string): string {
  return name.replace(/[-_.]+/g, "-").toLowerCase();
}

/** Whether `name` is a valid project (or extra) name under PEP 508. */
export function isValidProjectName(name: string): boolean {
  return PROJECT_NAME.test(name);
}
